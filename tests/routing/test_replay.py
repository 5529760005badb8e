"""Table-driven scenarios (scenarios/*.toml), decided once or turn by turn, and ``replay_steps``."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from routing.decision import Decision, decide
from routing.policy import Policy
from routing.replay import replay_steps
from routing.signals import ConversationSignals, new_signals, update_signals
from routing.types import CustomerInfo, TurnScores

SCENARIOS = Path(__file__).parent / "scenarios"
FILES = ("default_policy", "guardrails", "experiments")


def _scenarios() -> list[Any]:
    cases = []
    for name in FILES:
        with (SCENARIOS / f"{name}.toml").open("rb") as f:
            for scenario in tomllib.load(f)["scenario"]:
                cases.append(pytest.param(scenario, id=f"{name}: {scenario['name']}"))
    return cases


def decide_once(
    turns: list[TurnScores], customer: CustomerInfo, policy: Policy, conversation_id: str
) -> tuple[ConversationSignals, Decision]:
    """What ``POST /v1/analyze`` does: fold every turn, then one decision with no previous one."""
    signals = new_signals()
    for turn in turns:
        signals = update_signals(signals, turn, policy.signals)
    return signals, decide(signals, customer, policy, conversation_id)


def _check(decision: Any, signals: Any, expect: dict[str, Any]) -> None:
    simple = ("route", "rule", "queue", "priority", "variant", "experiment", "fallback", "fallback_queue")
    for key in simple:
        if key in expect:
            want = None if expect[key] == "none" else expect[key]
            assert getattr(decision, key) == want, f"{key}: {decision.summary}"
    if "guardrail" in expect:
        want = None if expect["guardrail"] == "none" else expect["guardrail"]
        assert decision.guardrail == want, decision.summary
    if "active" in expect:
        assert decision.guardrails_active == expect["active"]
    for flag in expect.get("flags", []):
        assert flag in decision.flags, (flag, decision.flags)
    if "reason" in expect:
        assert signals.reason.intent == expect["reason"]
    if "status" in expect:
        assert signals.reason.status == expect["status"]
    if "level" in expect:
        assert (signals.reason.level or "none") == expect["level"], signals.reason
        assert decision.reason_level == signals.reason.level
    if "family" in expect:
        assert signals.reason.family == expect["family"]
    if "category" in expect:
        assert signals.reason.category == expect["category"]
    for flag in ("resolved", "held", "changed"):
        if flag in expect:
            assert getattr(decision, flag) is expect[flag], (flag, decision.summary)


@pytest.mark.parametrize("scenario", _scenarios())
def test_scenario(
    scenario: dict[str, Any],
    make_turns: Callable[[list[dict[str, Any]]], list[TurnScores]],
    test_policy: Callable[[str], Policy],
    customer_from: Callable[[dict[str, Any] | None], CustomerInfo],
) -> None:
    policy = test_policy(scenario.get("policy", "default"))
    turns = make_turns(scenario["turns"])
    customer = customer_from(scenario.get("customer"))
    conversation_id = scenario.get("conversation_id", "conv-test")
    if scenario.get("stepwise"):
        steps = list(replay_steps(turns, customer, policy, conversation_id))
        signals, decision = steps[-1].signals, steps[-1].decision
    else:
        signals, decision = decide_once(turns, customer, policy, conversation_id)
    _check(decision, signals, scenario["expect"])
    assert decision.policy_version == policy.version
    assert decision.policy_hash == policy.hash


def test_signals_stored_as_json_between_turns_decide_the_same(
    make_turn: Callable[..., TurnScores], policy: Policy
) -> None:
    # The service stores the signals between requests as JSON; that must not change anything.
    turns = [
        make_turn(0, text="my card hasn't arrived", intent="card_arrival", sentiment=-0.3),
        make_turn(1, "bot", "It should arrive soon."),
        make_turn(2, text="speak to a real person", sentiment=-0.6, emotions={"frustration": 0.8}),
    ]
    customer = CustomerInfo(tenure_months=12)
    signals_all, decision_all = decide_once(turns, customer, policy, "c-9")
    state = new_signals()
    for turn in turns:
        stored = msgspec.json.encode(state)
        state = update_signals(msgspec.json.decode(stored, type=type(state)), turn, policy.signals)
    assert state == signals_all
    assert decide(state, customer, policy, "c-9") == decision_all


def test_no_turns_decide_on_empty_signals(policy: Policy) -> None:
    assert list(replay_steps([], CustomerInfo(), policy, "empty")) == []
    signals, decision = decide_once([], CustomerInfo(), policy, "empty")
    assert signals == new_signals()
    # Nothing said yet (a conversation opened by the bot's greeting): the bot has it.
    assert decision.rule == "awaiting-reason"
    assert decision.route == "self_serve_bot"


def test_replay_steps_chain_the_previous_decision(
    make_turn: Callable[..., TurnScores], policy: Policy
) -> None:
    turns = [
        make_turn(0, "bot", "Hi, how can I help?"),
        make_turn(1, text="what's my balance", intent="balance", act="question"),
        make_turn(2, "bot", "It is 120."),
        make_turn(3, text="perfect, thanks!", sentiment=0.8),
    ]
    steps = list(replay_steps(turns, CustomerInfo(), policy, "c"))
    assert [s.index for s in steps] == [0, 1, 2, 3]
    assert [(s.decision.route, s.decision.rule, s.decision.changed) for s in steps] == [
        ("self_serve_bot", "awaiting-reason", True),
        ("self_serve_bot", "tier1-bot", True),  # same place, lower priority: the first decision bound nothing
        ("self_serve_bot", "tier1-bot", False),
        ("self_serve_bot", "resolved", False),
    ]
    previous = None
    for step in steps:
        assert decide(step.signals, CustomerInfo(), policy, "c", previous) == step.decision
        previous = step.decision
    # The last step's signals are the whole transcript's.
    signals, _ = decide_once(turns, CustomerInfo(), policy, "c")
    assert steps[-1].signals == signals
