"""Policy test suites: parsing, replaying scored turns, the report, and the committed suite's coverage."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from routing.policy import GUARDRAILS, Policy
from routing.suite import (
    Case,
    SuiteError,
    check_suite,
    confusion,
    coverage,
    expected_coverage,
    format_report,
    parse_suite,
    run_case,
)
from routing.suite import SuiteReport as Report
from routing.types import TurnScores

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "bench" / "suites" / "default_policy.toml"
MakeTurn = Callable[..., TurnScores]

SUITE = """
format = 1
name = "tiny"

[[case]]
id = "balance"
tags = ["calm_simple"]
turns = [
  { speaker = "bot", text = "Hi, how can I help?" },
  { speaker = "customer", text = "what's my balance" },
  { speaker = "bot", text = "It is 120." },
  { speaker = "customer", text = "perfect, thanks!" },
]
expect = [
  { after = 1, route = "self_serve_bot", queue = "bot", rule = "tier1-bot" },
  { route = "self_serve_bot", rule = "resolved", resolved = true, changed = false },
]

[[case]]
id = "person"
tags = ["human_request"]
turns = [{ speaker = "customer", text = "agent please" }]
expect = [{ route = "human", queue = ["general", "cards"], guardrail = "human_request" }]
"""


def _scores(make_turn: MakeTurn) -> dict[str, list[TurnScores]]:
    return {
        "balance": [
            make_turn(0, "bot", "Hi, how can I help?"),
            make_turn(1, text="what's my balance", intent="balance", act="question"),
            make_turn(2, "bot", "It is 120."),
            make_turn(3, text="perfect, thanks!", sentiment=0.8),
        ],
        "person": [make_turn(0, text="agent please")],
    }


def _report(policy: Policy, make_turn: MakeTurn, text: str = SUITE) -> tuple[Report, list[Case]]:
    suite = parse_suite(text)
    scores = _scores(make_turn)
    results = tuple(run_case(case, scores[case.id], policy) for case in suite.cases)
    report = Report(
        results=results,
        policy_version=policy.version,
        policy_hash=policy.hash,
        rule_ids=(*(r.id for r in policy.rules), "default"),
        header="tiny suite",
        targets=suite.targets,
    )
    return report, list(suite.cases)


def test_a_suite_replays_turn_by_turn_and_checks_every_expectation(
    make_turn: MakeTurn, policy: Policy
) -> None:
    report, cases = _report(policy, make_turn)
    assert report.failures == []
    balance = report.results[0]
    assert [s.route for s in balance.steps] == ["self_serve_bot"] * 4
    assert [s.rule for s in balance.steps] == ["awaiting-reason", "tier1-bot", "tier1-bot", "resolved"]
    assert [c.after for c in balance.checks] == [1, 3]
    person = report.results[1].checks[0]
    assert (person.route, person.queue, person.guardrail) == ("specialist", "general", "human_request")
    assert confusion(report.checks) == {
        "self_serve_bot": {"self_serve_bot": 2, "specialist": 0, "retention_human": 0},
        "human": {"self_serve_bot": 0, "specialist": 1, "retention_human": 0},
    }
    text = format_report(report, cases)
    assert text.startswith("tiny suite\n\nexpected \\ actual")
    assert "human (any person)" in text
    assert text.rstrip().endswith("3/3 checks passed; 2/2 cases passed every check")


def test_failures_are_reported_with_the_conversation_and_the_explanation(
    make_turn: MakeTurn, policy: Policy
) -> None:
    right = '{ after = 1, route = "self_serve_bot", queue = "bot", rule = "tier1-bot" }'
    wrong = SUITE.replace(right, '{ after = 1, route = "specialist", queue = "cards", rule = "default" }')
    report, cases = _report(policy, make_turn, wrong)
    (failure,) = report.failures
    assert failure.problems == (
        "route: expected specialist, got self_serve_bot",
        "queue: expected cards, got bot",
        "rule: expected default, got tier1-bot",
    )
    text = format_report(report, cases)
    assert "FAIL balance after turn 1: route: expected specialist, got self_serve_bot" in text
    assert "  customer: what's my balance" in text
    assert "decision: self_serve_bot → bot (priority 10): rule 'tier1-bot'" in text
    assert "rule 'tier1-bot' matched (rule 9 of 12; first match wins)" in text
    assert "contact reason decided at the intent level" in text
    brief = format_report(report, cases, explain=False)
    assert "rule 'tier1-bot' matched" not in brief
    missing_rules, missing_guardrails = coverage(report)
    assert "fraud-security" in missing_rules and "tier1-bot" not in missing_rules
    assert missing_guardrails == ["unsupported_language", "low_confidence"]


def test_invalid_suites_list_every_problem() -> None:
    text = """
format = 2
extra = 1
[[case]]
id = "a"
turns = []
expect = []
[[case]]
id = "a"
turns = [{ speaker = "robot", text = "hi" }, { speaker = "customer", text = " " }]
expect = [{ after = 5, route = "bot", guardrail = "maybe", held = "yes", colour = "red" }, {}]
[[case]]
turns = [{ speaker = "customer", text = "hi" }]
"""
    with pytest.raises(SuiteError) as info:
        parse_suite(text)
    assert info.value.errors == [
        "field 'extra': unknown field (expected one of format, name, description, case, target)",
        "field 'format': this version reads format 1, got 2",
        "case 'a', field 'turns': must be a non-empty list of { speaker, text } tables",
        "case 'a', field 'expect': a case needs at least one expectation",
        "case 'a', field 'id': duplicate case id",
        "case 'a', field 'turns[0].speaker': must be one of customer, agent, bot, system",
        "case 'a', field 'turns[1].text': must be a non-empty string",
        "case 'a', field 'expect[0].colour': unknown field",
        "case 'a', field 'expect[0].after': must be a turn index from 0 to 1",
        "case 'a', field 'expect[0].route': must be one of self_serve_bot, specialist, retention_human, "
        "human",
        "case 'a', field 'expect[0].guardrail': must be one of human_request, unsupported_language, "
        "low_confidence, none",
        "case 'a', field 'expect[0].held': must be true or false",
        "case 'a', field 'expect[1]': expects nothing (give at least a route, queue or rule)",
        "case #3, field 'id': missing or not a string",
    ]
    with pytest.raises(SuiteError, match="not valid TOML"):
        parse_suite("[[case]")


def test_a_suite_naming_rules_or_queues_the_policy_lacks_is_caught(policy: Policy) -> None:
    suite = parse_suite(
        SUITE.replace('rule = "tier1-bot"', 'rule = "simple-question-bot"').replace('"cards"', '"vip"')
    )
    assert check_suite(suite, policy) == [
        "case 'balance', field 'expect[0].rule': policy has no rule 'simple-question-bot'",
        "case 'person', field 'expect[0].queue': policy has no queue 'vip'",
    ]


def test_the_committed_suite_covers_every_rule_and_guardrail_of_the_default_policy(policy: Policy) -> None:
    suite = parse_suite(COMMITTED.read_text(encoding="utf-8"))
    assert len(suite.cases) >= 150
    assert check_suite(suite, policy) == []
    # Every rule (default included) and guardrail is the expected deciding one of at least one case.
    assert expected_coverage(suite, policy) == ([], [])
    assert set(policy.guardrails) == set(GUARDRAILS)
    # The figures of `python -m bench routing` have conversations to count.
    tags = {tag for case in suite.cases for tag in case.tags}
    assert {"calm_simple", "negative", "complaint_opening", "human_request"} <= tags
    # Real utterances, each traceable to its source (train files only).
    for case in suite.cases:
        assert case.source, case.id
        assert "test" not in case.source.split(";")[0].split(":")[0], case.source


def test_soft_checks_count_towards_their_tag_s_rate_target(make_turn: MakeTurn, policy: Policy) -> None:
    soft = SUITE.replace(
        'expect = [{ route = "human", queue = ["general", "cards"], guardrail = "human_request" }]',
        'expect = [{ route = "self_serve_bot", soft = true }]',
    )
    text = soft + '\n[[target]]\ntag = "human_request"\nshare = 0.5\nnote = "half at least"\n'
    report, cases = _report(policy, make_turn, text)
    assert report.failures == [] and len(report.soft_failures) == 1
    (result,) = report.target_results
    assert (result.held, result.total, result.met) == (0, 1, False)
    assert report.passed is False
    out = format_report(report, cases)
    assert "MISS person after turn 0: route: expected self_serve_bot, got specialist" in out
    assert "target human_request: 0/1 soft checks held (0.0%; at least 50%): NOT MET - half at least" in out
    assert out.rstrip().endswith("-> FAILED")
    # Without a target the soft miss fails nothing.
    report, _ = _report(policy, make_turn, soft)
    assert report.passed is True
    with pytest.raises(SuiteError) as info:
        parse_suite(soft + '\n[[target]]\ntag = "nobody"\nshare = 1.5\ncolour = 1\n')
    assert info.value.errors == [
        "target #1, field 'colour': unknown field",
        "target #1, field 'share': must be a number greater than 0 and at most 1",
    ]
    with pytest.raises(SuiteError) as info:
        parse_suite(soft + '\n[[target]]\ntag = "nobody"\nshare = 0.9\n')
    assert info.value.errors == ["target 'nobody', field 'tag': no case has this tag"]


def test_suite_toml_nested_too_deeply_is_a_suite_error() -> None:
    with pytest.raises(SuiteError, match="nested too deeply"):
        parse_suite("x = " + "[" * 5000 + "]" * 5000)
