"""The signal vocabulary and the observed values."""

from __future__ import annotations

from collections.abc import Callable

from routing.churn import ChurnConfig, assess_churn
from routing.facts import ATTRIBUTE_PREFIX, SIGNALS, TURN_ACTS, observe, signal_spec
from routing.signals import SignalConfig, new_signals, update_signals
from routing.taxonomy import CATEGORIES, CONVERSATION_ACTS, EMOTION_LABELS, INTENT_LABELS, SENTIMENT_LABELS
from routing.types import CustomerInfo, TurnScores

CFG = SignalConfig()


def facts_for(turns: list[TurnScores], customer: CustomerInfo) -> dict[str, object]:
    state = new_signals()
    for turn in turns:
        state = update_signals(state, turn, CFG)
    churn = assess_churn(state, customer, ChurnConfig(), CFG.peak_emotions)
    return observe(state, customer, churn, CFG)  # type: ignore[return-value]


def test_every_signal_is_observed_and_every_observation_is_declared(
    make_turn: Callable[..., TurnScores],
) -> None:
    facts = facts_for([make_turn(0, intent="balance")], CustomerInfo(attributes={"plan": "x"}))
    declared = set(SIGNALS)
    observed = {k for k in facts if not k.startswith(ATTRIBUTE_PREFIX)}
    assert observed == declared
    assert facts["customer.attributes.plan"] == "x"


def test_label_domains_come_from_the_taxonomy() -> None:
    assert SIGNALS["reason.intent"].domain == INTENT_LABELS
    assert SIGNALS["reason.category"].domain == CATEGORIES
    assert SIGNALS["sentiment.label"].domain == SENTIMENT_LABELS
    assert SIGNALS["emotion.current"].domain == EMOTION_LABELS
    assert SIGNALS["turn.act"].domain == TURN_ACTS == (*CONVERSATION_ACTS, "unknown")
    assert signal_spec("customer.attributes.anything") is not None
    assert signal_spec("customer.attributes.") is None
    assert signal_spec("no.such.signal") is None


def test_observed_values(make_turn: Callable[..., TurnScores]) -> None:
    turns = [
        make_turn(0, text="where's my order", intent="track_order", sentiment=-0.4, emotions={"anger": 0.7}),
        make_turn(1, "bot", "on its way"),
        make_turn(2, text="agent", intent=[["contact_human_agent", 0.8]], sentiment=-0.6),
    ]
    facts = facts_for(turns, CustomerInfo(tier="gold", contacts_last_30d=3, tenure_months=None))
    assert facts["reason.intent"] == "track_order"
    assert facts["reason.confident"] is True
    assert facts["intent.current"] == "contact_human_agent"
    assert facts["intent.current_category"] == "human_agent_request"
    assert facts["sentiment.label"] == "negative"
    assert facts["sentiment.negative_run"] == 2
    assert facts["emotion.peaks"] == ["anger"]
    assert facts["emotion.peak.anger"] == 0.7
    assert facts["emotion.peak.joy"] == 0.0
    assert facts["escalation.flags"] == ["human_request", "anger_peak", "repeat_contact"]
    assert facts["escalation.human_request"] is True
    assert facts["escalation.repeat_contact"] is True
    assert facts["escalation.bot_loop"] is False
    assert facts["escalation.any"] is True
    assert facts["turns.total"] == 3 and facts["turns.bot"] == 1
    assert facts["conversation.duration_s"] == 60.0
    assert facts["customer.tier"] == "gold"
    assert facts["customer.tenure_months"] is None


def test_empty_conversation_has_missing_values() -> None:
    facts = facts_for([], CustomerInfo())
    assert facts["sentiment.label"] is None
    assert facts["intent.current"] is None
    assert facts["reason.status"] == "none"
    assert facts["conversation.duration_s"] is None
    assert facts["escalation.flags"] == []
    assert facts["turn.act"] is None
    assert facts["conversation.closing"] is False
    assert (facts["language.code"], facts["language.supported"]) == ("und", True)
    assert facts["turns.customer_lexical"] == 0


def test_act_closing_language_and_lexical_facts(make_turn: Callable[..., TurnScores]) -> None:
    turns = [
        make_turn(0, text="[noise]", lexical=False),
        make_turn(
            1,
            text="where is my card, it should have come last week",
            intent="card_arrival",
            act="question",
            language="en",
        ),
        make_turn(2, "bot", "It is on its way."),
        make_turn(3, text="great, thanks, that's all", act="thanks_or_closing", sentiment=0.6, language="en"),
    ]
    facts = facts_for(turns, CustomerInfo())
    assert facts["turn.act"] == "thanks_or_closing"
    assert facts["conversation.closing"] is True
    assert (facts["language.code"], facts["language.supported"]) == ("en", True)
    assert facts["turns.customer"] == 3 and facts["turns.customer_lexical"] == 2
    facts = facts_for([*turns, make_turn(4, text="um", lexical=False)], CustomerInfo())
    assert facts["turn.act"] == "non_lexical" and facts["conversation.closing"] is True
    # A pack without an act head (or a turn stored before acts): unknown, never missing.
    assert facts_for([make_turn(0, intent="balance")], CustomerInfo())["turn.act"] == "unknown"


def test_unsupported_language_fact(make_turn: Callable[..., TurnScores]) -> None:
    turns = [
        make_turn(0, text="Hola, perdí mi tarjeta de crédito ayer", language="es", language_supported=False),
        make_turn(1, text="y necesito ayuda", language="es", language_supported=False),
    ]
    facts = facts_for(turns, CustomerInfo())
    assert (facts["language.code"], facts["language.supported"]) == ("es", False)
    assert (
        facts["turn.act"] == "unknown"
        and facts["sentiment.label"] is None
        and facts["intent.current"] is None
    )
