"""The churn-risk heuristic: the documented formula, its bounds and its monotonicity."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing.churn import ChurnConfig, assess_churn
from routing.signals import ConversationSignals, SignalConfig, new_signals, update_signals
from routing.types import CustomerInfo, TurnScores

CFG = ChurnConfig()
PEAKS = SignalConfig().peak_emotions
MakeTurn = Callable[..., TurnScores]


def signals_of(turns: list[TurnScores]) -> ConversationSignals:
    state = new_signals()
    for turn in turns:
        state = update_signals(state, turn, SignalConfig())
    return state


def test_calm_conversation_has_no_risk(make_turn: MakeTurn) -> None:
    a = assess_churn(signals_of([make_turn(0, intent="balance", sentiment=0.4)]), CustomerInfo(), CFG, PEAKS)
    assert a.score == 0.0 and a.behaviour == 0.0 and a.drivers == []


def test_formula(make_turn: MakeTurn) -> None:
    turns = [
        make_turn(
            0, text="close my account", sentiment=-0.5, emotions={"anger": 0.5}, intent="terminate_account"
        )
    ]
    customer = CustomerInfo(tenure_months=3, lifetime_value=2500.0, contacts_last_30d=2)
    a = assess_churn(signals_of(turns), customer, CFG, PEAKS)
    contributions = {
        "churn_intent": 0.6,
        "negative_sentiment": 0.3 * 0.5,
        "anger_peak": 0.2 * 0.5,
        "repeat_contact": 0.15 * 2 / 5,
    }
    keep = 1.0
    for value in contributions.values():
        keep *= 1 - value
    assert a.behaviour == pytest.approx(1 - keep)
    assert a.tenure_factor == CFG.new_customer_factor
    assert a.value_factor == pytest.approx(1 + 0.25 * 0.5)
    assert a.score == pytest.approx(min(1.0, (1 - keep) * 1.15 * 1.125))
    assert dict(a.drivers) == pytest.approx(contributions)
    assert a.drivers[0][0] == "churn_intent"


@pytest.mark.parametrize(
    ("tenure", "factor"), [(None, 1.0), (0, 1.15), (5, 1.15), (6, 1.0), (35, 1.0), (36, 0.9)]
)
def test_tenure_factor(make_turn: MakeTurn, tenure: int | None, factor: float) -> None:
    s = signals_of([make_turn(0, sentiment=-0.6)])
    assert assess_churn(s, CustomerInfo(tenure_months=tenure), CFG, PEAKS).tenure_factor == factor


def test_value_saturates_at_high_value(make_turn: MakeTurn) -> None:
    s = signals_of([make_turn(0, sentiment=-0.6)])
    factors = [
        assess_churn(s, CustomerInfo(lifetime_value=v), CFG, PEAKS).value_factor
        for v in (None, -5.0, 0.0, 2500.0, 5000.0, 1e9)
    ]
    assert factors == [1.0, 1.0, 1.0, 1.125, 1.25, 1.25]


def test_config_problems() -> None:
    assert ChurnConfig().problems() == []
    bad = ChurnConfig(churn_intent=1.5, high_value=0.0, new_customer_factor=3.0, repeat_contact_saturation=0)
    assert [field for field, _ in bad.problems()] == [
        "churn_intent",
        "new_customer_factor",
        "repeat_contact_saturation",
        "high_value",
    ]


_flag_text = st.sampled_from(["", "close my account", "I'll sue you", "I want to file a complaint", "agent"])


@given(
    texts=st.lists(_flag_text, min_size=1, max_size=5),
    scores=st.lists(st.floats(-1, 1, allow_nan=False), min_size=5, max_size=5),
    anger=st.floats(0, 1, allow_nan=False),
    tenure=st.one_of(st.none(), st.integers(0, 500)),
    value=st.one_of(st.none(), st.floats(-1e6, 1e9, allow_nan=False)),
    contacts=st.one_of(st.none(), st.integers(-3, 100)),
)
@settings(max_examples=100, derandomize=True, deadline=None)
def test_score_is_bounded_and_grows_with_value(
    texts: list[str],
    scores: list[float],
    anger: float,
    tenure: int | None,
    value: float | None,
    contacts: int | None,
    make_turn: MakeTurn,
) -> None:
    turns = [
        make_turn(i, text=t, sentiment=scores[i], emotions={"anger": anger}) for i, t in enumerate(texts)
    ]
    s = signals_of(turns)
    customer = CustomerInfo(tenure_months=tenure, lifetime_value=value, contacts_last_30d=contacts)
    a = assess_churn(s, customer, CFG, PEAKS)
    assert 0.0 <= a.score <= 1.0
    assert 0.0 <= a.behaviour <= 1.0
    richer = CustomerInfo(
        tenure_months=tenure, lifetime_value=(abs(value or 0.0)) + 10_000, contacts_last_30d=contacts
    )
    assert assess_churn(s, richer, CFG, PEAKS).score >= a.score
