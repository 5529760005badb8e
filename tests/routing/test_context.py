"""Handoff context: contents, extractive summary, redaction."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import msgspec
import pytest

from routing.context import HandoffContext, build_context
from routing.decision import decide
from routing.policy import Policy
from routing.signals import ConversationSignals, new_signals, update_signals
from routing.types import CustomerInfo, TurnScores

MakeTurn = Callable[..., TurnScores]
MODELS = {"name": "default", "version": "1.0.0", "sha256": {"model.int8.onnx": "ab" * 32}}


def signals_of(turns: list[TurnScores], policy: Policy) -> ConversationSignals:
    state = new_signals()
    for turn in turns:
        state = update_signals(state, turn, policy.signals)
    return state


@pytest.fixture
def conversation(make_turn: MakeTurn) -> list[TurnScores]:
    return [
        make_turn(0, text="hi"),
        make_turn(1, "bot", "Hello! How can I help?"),
        make_turn(
            2, text="my card hasn't arrived, it's 4111 1111 1111 1111", intent="card_arrival", sentiment=-0.2
        ),
        make_turn(3, "bot", "Cards take 5 days.", sentiment=0.2),
        make_turn(
            4,
            text="this is ridiculous, call me on 555-123-4567",
            sentiment=-0.9,
            emotions={"anger": 0.85, "frustration": 0.5, "confusion": 0.1},
            intent=[["card_arrival", 0.6], ["card_delivery_estimate", 0.3]],
        ),
        make_turn(5, text="I want to speak to a real person, jo@example.com", sentiment=-0.5),
    ]


def build(
    turns: list[TurnScores], policy: Policy, customer: CustomerInfo, redact: bool = True
) -> HandoffContext:
    signals = signals_of(turns, policy)
    decision = decide(signals, customer, policy, "conv-1")
    return build_context(signals, customer, decision, models_info=MODELS, redact=redact)


def test_context_has_what_the_human_needs(conversation: list[TurnScores], policy: Policy) -> None:
    customer = CustomerInfo(
        id="cust-9", tier="gold", tenure_months=30, contacts_last_30d=4, attributes={"plan": "max"}
    )
    ctx = build(conversation, policy, customer)
    reason = ctx.contact_reason
    assert (reason.intent, reason.category, reason.status) == ("card_arrival", "cards", "confident")
    assert reason.stated_in_turns == [2, 4]
    assert [a.intent for a in reason.alternatives] == ["card_delivery_estimate"]
    assert ctx.sentiment.most_negative_turn == 4
    assert ctx.sentiment.trend == "declining"
    assert ctx.sentiment.negative_run == 2
    assert [(p.emotion, p.turn) for p in ctx.emotion_peaks] == [("anger", 4), ("frustration", 4)]
    assert [e.flag for e in ctx.escalations] == ["human_request", "anger_peak", "repeat_contact"]
    assert ctx.escalations[0].evidence == '"speak to a real person"'
    assert ctx.escalations[-1].evidence == "4 contacts in the last 30 days"
    assert ctx.bot_sentiment.turns == 2 and ctx.agent_sentiment.turns == 0
    assert (ctx.turns.total, ctx.turns.customer, ctx.turns.bot) == (6, 4, 2)
    assert ctx.started_at == datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
    assert ctx.duration_s == 150.0
    assert ctx.customer.id == "cust-9" and ctx.customer.attributes == {"plan": "max"}
    # Upset and asking for a person: past the bot, to the reason's queue (v2 policy: rule upset-customer).
    assert ctx.routing.rule == "upset-customer" and ctx.routing.queue == "cards"
    assert ctx.versions.policy_version == policy.version
    assert ctx.versions.policy_hash == policy.hash
    assert ctx.versions.model_pack == MODELS
    assert 0.0 < ctx.churn_risk <= 1.0 and ctx.churn_drivers


def test_summary_quotes_reason_most_negative_and_last_turn_redacted(
    conversation: list[TurnScores], policy: Policy
) -> None:
    ctx = build(conversation, policy, CustomerInfo())
    assert ctx.redacted is True
    assert [(line.turn, line.roles) for line in ctx.summary] == [
        (2, ["reason"]),
        (4, ["most_negative"]),
        (5, ["last_customer"]),
    ]
    assert [line.text for line in ctx.summary] == [
        "my card hasn't arrived, it's [CARD_NUMBER]",
        "this is ridiculous, call me on [PHONE]",
        "I want to speak to a real person, [EMAIL]",
    ]
    encoded = msgspec.json.encode(ctx).decode()
    for secret in ("4111", "555-123-4567", "jo@example.com"):
        assert secret not in encoded


def test_redaction_can_be_turned_off(conversation: list[TurnScores], policy: Policy) -> None:
    ctx = build(conversation, policy, CustomerInfo(attributes={"email": "jo@example.com"}), redact=False)
    assert ctx.redacted is False
    assert "4111 1111 1111 1111" in ctx.summary[0].text
    assert ctx.customer.attributes == {"email": "jo@example.com"}


def test_quotes_the_caller_redacted_are_not_redacted_again(
    conversation: list[TurnScores], policy: Policy
) -> None:
    signals = signals_of(conversation, policy)
    customer = CustomerInfo(attributes={"email": "jo@example.com"})
    decision = decide(signals, customer, policy, "conv-1")
    ctx = build_context(signals, customer, decision, models_info=MODELS, quotes_redacted=True)
    # The caller vouched for the quotes (here they were not redacted, so the raw text shows
    # that nothing ran on them); the customer's attributes are still redacted.
    assert "4111 1111 1111 1111" in ctx.summary[0].text
    assert ctx.customer.attributes == {"email": "[EMAIL]"} and ctx.redacted is True


def test_string_attributes_are_redacted_by_default(make_turn: MakeTurn, policy: Policy) -> None:
    customer = CustomerInfo(
        attributes={"email": "jo@example.com", "plan": "ORD-2024-001234", "vip": True, "n": 3}
    )
    ctx = build([make_turn(0, intent="balance")], policy, customer)
    assert ctx.customer.attributes == {"email": "[EMAIL]", "plan": "ORD-2024-001234", "vip": True, "n": 3}


def test_one_turn_serving_several_roles_is_quoted_once(make_turn: MakeTurn, policy: Policy) -> None:
    ctx = build(
        [make_turn(0, text="close my account now", sentiment=-0.8, intent="terminate_account")],
        policy,
        CustomerInfo(),
    )
    assert [(line.turn, line.roles) for line in ctx.summary] == [
        (0, ["reason", "most_negative", "last_customer"])
    ]


def test_a_mild_turn_is_not_quoted_as_most_negative(make_turn: MakeTurn, policy: Policy) -> None:
    ctx = build(
        [make_turn(0, intent="balance", sentiment=0.3), make_turn(1, sentiment=0.1)], policy, CustomerInfo()
    )
    assert all("most_negative" not in line.roles for line in ctx.summary)


def test_unclear_reason_still_quotes_the_best_guess(make_turn: MakeTurn, policy: Policy) -> None:
    turns = [make_turn(0, text="card or payment thing", intent=[["card_arrival", 0.4], ["balance", 0.35]])]
    ctx = build(turns, policy, CustomerInfo())
    assert ctx.contact_reason.intent == "out_of_scope"
    assert ctx.contact_reason.status == "low_confidence"
    assert [a.intent for a in ctx.contact_reason.alternatives] == ["card_arrival", "balance"]
    assert ctx.summary[0].roles == ["reason", "last_customer"]


def test_empty_conversation(policy: Policy) -> None:
    signals = new_signals()
    decision = decide(signals, CustomerInfo(), policy, "c")
    ctx = build_context(signals, CustomerInfo(), decision, models_info={})
    assert ctx.summary == [] and ctx.escalations == [] and ctx.emotion_peaks == []
    assert ctx.duration_s is None and ctx.contact_reason.status == "none"


def test_long_quotes_are_cut_after_redaction(make_turn: MakeTurn, policy: Policy) -> None:
    text = "word " * 100 + "mail jo@example.com"
    ctx = build([make_turn(0, text=text, intent="balance")], policy, CustomerInfo())
    assert len(ctx.summary[0].text) <= 300
    assert ctx.summary[0].text.endswith("…")


def test_a_reason_confident_as_a_family_quotes_its_leading_intent(
    make_turn: MakeTurn, policy: Policy
) -> None:
    turns = [
        make_turn(0, "bot", "Hi, how can I help?"),
        make_turn(
            1,
            text="when does my new card come",
            intent=[["card_arrival", 0.4], ["card_delivery_estimate", 0.36]],
        ),
    ]
    ctx = build(turns, policy, CustomerInfo())
    reason = ctx.contact_reason
    assert (reason.status, reason.level, reason.family, reason.category) == (
        "confident",
        "family",
        "card_delivery",
        "cards",
    )
    assert reason.intent == "out_of_scope" and reason.stated_in_turns == [1]
    assert [a.intent for a in reason.alternatives] == ["card_arrival", "card_delivery_estimate"]
    assert [line.roles for line in ctx.summary] == [["reason", "last_customer"]]
