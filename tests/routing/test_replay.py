"""Table-driven scenarios (scenarios/*.toml) through ``replay``, plus replay's own contract."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from routing.decision import decide
from routing.policy import Policy
from routing.replay import replay
from routing.signals import new_signals, update_signals
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
    signals, decision = replay(turns, customer, policy, scenario.get("conversation_id", "conv-test"))
    _check(decision, signals, scenario["expect"])
    assert decision.policy_version == policy.version
    assert decision.policy_hash == policy.hash


def test_replay_equals_turn_by_turn_with_stored_state(
    make_turn: Callable[..., TurnScores], policy: Policy
) -> None:
    # The service stores the signals between requests as JSON; that must not change anything.
    turns = [
        make_turn(0, text="my card hasn't arrived", intent="card_arrival", sentiment=-0.3),
        make_turn(1, "bot", "It should arrive soon."),
        make_turn(2, text="speak to a real person", sentiment=-0.6, emotions={"frustration": 0.8}),
    ]
    customer = CustomerInfo(tenure_months=12)
    signals_all, decision_all = replay(turns, customer, policy, "c-9")
    state = new_signals()
    for turn in turns:
        stored = msgspec.json.encode(state)
        state = update_signals(msgspec.json.decode(stored, type=type(state)), turn, policy.signals)
    assert state == signals_all
    assert decide(state, customer, policy, "c-9") == decision_all


def test_replay_of_nothing_decides_on_empty_signals(policy: Policy) -> None:
    signals, decision = replay([], CustomerInfo(), policy, "empty")
    assert signals == new_signals()
    assert decision.rule == "unclear-reason"
    assert decision.route == "specialist"
