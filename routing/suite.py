"""Policy test suites: conversations and the decisions a policy must make for them (like ``rasa test``).

A suite is a TOML file of labelled conversations::

    format = 1
    name = "default policy"

    [[case]]
    id = "tier1-balance-001"
    tags = ["calm_simple"]                 # free labels; reports group by them
    source = "sgd/train_user_turns.jsonl:1_00012#0"
    customer = { lifetime_value = 1200.0 } # optional, as CustomerInfo
    turns = [
      { speaker = "bot", text = "Hi, how can I help you today?" },
      { speaker = "customer", text = "I'd like to check my balance" },
    ]
    expect = [
      { after = 1, route = "self_serve_bot", queue = "bot", rule = "tier1-bot" },
    ]

Each expectation is checked on the decision right after turn ``after`` (the
last turn when left out), with the conversation replayed turn by turn as a live
conversation receives it (``routing.replay.replay_steps``: each decision sees
the one before). ``route`` may be a route or ``human`` (any route but the bot);
``queue`` and ``rule`` may be one value or a list of acceptable ones;
``guardrail`` names the guardrail that must have overridden the bot (``none``:
no guardrail did); ``resolved``, ``held`` and ``changed`` compare the
decision's flags.

Some classes of conversation are judged by a rate, not one by one (real
complaint tweets include borderline ones): an expectation with ``soft = true``
does not fail the suite by itself; it counts towards the ``[[target]]`` for its
case's tag, which fails the suite when fewer than ``share`` of its soft checks
hold::

    [[target]]
    tag = "complaint_opening"
    share = 0.95
    note = "complaint openings kept by the bot: at most 5%"

This module is pure: it parses suites, replays already-scored turns and
reports. Scoring the texts with a model pack is the caller's job
(``service.policy_test`` for ``switchboard policy test``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from routing.decision import Decision
from routing.errors import RoutingError
from routing.policy import DEFAULT_RULE_ID, GUARDRAILS, Policy
from routing.replay import replay_steps
from routing.types import BOT_ROUTE, ROUTES, SPEAKERS, CustomerInfo, Speaker, TurnScores

__all__ = [
    "HUMAN",
    "Case",
    "CaseResult",
    "Check",
    "Expectation",
    "RateTarget",
    "StepView",
    "Suite",
    "SuiteError",
    "SuiteReport",
    "SuiteTurn",
    "TargetResult",
    "check_suite",
    "confusion",
    "coverage",
    "expected_coverage",
    "format_report",
    "parse_suite",
    "run_case",
    "summarise",
]

SUITE_FORMAT = 1
HUMAN = "human"
"""Expected route meaning "a person": any route but the bot."""
EXPECTED_ROUTES: tuple[str, ...] = (*ROUTES, HUMAN)
_CASE_KEYS = ("id", "tags", "source", "note", "customer", "turns", "expect")
_EXPECT_KEYS = ("after", "route", "queue", "rule", "guardrail", "resolved", "held", "changed", "soft", "note")
_TOP_KEYS = ("format", "name", "description", "case", "target")
_TARGET_KEYS = ("tag", "share", "note")


class SuiteError(RoutingError):
    """A suite file failed to parse or validate; ``errors`` lists every problem (case id and field)."""

    def __init__(self, errors: list[str]) -> None:
        count = len(errors)
        head = f"invalid policy suite ({count} error{'s' if count != 1 else ''})"
        super().__init__(head + ":\n" + "\n".join(f"- {e}" for e in errors), errors)


class SuiteTurn(msgspec.Struct, frozen=True):
    """One turn of a suite conversation."""

    speaker: Speaker
    text: str


class Expectation(msgspec.Struct, frozen=True, omit_defaults=True):
    """What must hold right after turn ``after`` (``None``: the last turn)."""

    after: int | None = None
    route: str | None = None
    queue: tuple[str, ...] = ()
    rule: tuple[str, ...] = ()
    guardrail: str | None = None
    resolved: bool | None = None
    held: bool | None = None
    changed: bool | None = None
    soft: bool = False
    note: str = ""


class RateTarget(msgspec.Struct, frozen=True):
    """At least ``share`` of the soft checks of the cases tagged ``tag`` must hold."""

    tag: str
    share: float
    note: str = ""


class Case(msgspec.Struct, frozen=True):
    """One labelled conversation."""

    id: str
    turns: tuple[SuiteTurn, ...]
    expect: tuple[Expectation, ...]
    tags: tuple[str, ...] = ()
    source: str = ""
    note: str = ""
    customer: CustomerInfo = msgspec.field(default_factory=CustomerInfo)


class Suite(msgspec.Struct, frozen=True):
    """A parsed suite."""

    cases: tuple[Case, ...]
    name: str = ""
    description: str = ""
    targets: tuple[RateTarget, ...] = ()


class StepView(msgspec.Struct, frozen=True):
    """The decision after one turn, as reports need it."""

    index: int
    speaker: str
    route: str
    queue: str
    priority: int
    rule: str
    guardrail: str | None
    changed: bool
    held: bool
    resolved: bool
    reason_status: str
    reason_level: str
    flags: tuple[str, ...]
    summary: str


class Check(msgspec.Struct, frozen=True):
    """One expectation checked: ``problems`` is empty when it held."""

    case: str
    after: int
    expected: Expectation
    route: str
    queue: str
    rule: str
    guardrail: str | None
    problems: tuple[str, ...]
    summary: str
    explanation: tuple[str, ...]

    @property
    def passed(self) -> bool:
        """True when every part of the expectation held."""
        return not self.problems


class CaseResult(msgspec.Struct, frozen=True):
    """A case replayed: every step's decision and every checked expectation."""

    case: str
    tags: tuple[str, ...]
    steps: tuple[StepView, ...]
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        """True when every expectation of the case held."""
        return all(check.passed for check in self.checks)


class TargetResult(msgspec.Struct, frozen=True):
    """A rate target checked: ``held`` of ``total`` soft checks."""

    target: RateTarget
    held: int
    total: int

    @property
    def met(self) -> bool:
        """True when the share of soft checks that held reaches the target (or there are none)."""
        return self.total == 0 or self.held >= self.target.share * self.total - 1e-9


class SuiteReport(msgspec.Struct, frozen=True):
    """A whole suite run."""

    results: tuple[CaseResult, ...]
    policy_version: str
    policy_hash: str
    rule_ids: tuple[str, ...]
    header: str = ""
    targets: tuple[RateTarget, ...] = ()

    @property
    def checks(self) -> list[Check]:
        """Every checked expectation, case by case."""
        return [check for result in self.results for check in result.checks]

    @property
    def failures(self) -> list[Check]:
        """The (hard) expectations that did not hold."""
        return [check for check in self.checks if not check.passed and not check.expected.soft]

    @property
    def soft_failures(self) -> list[Check]:
        """Soft expectations that did not hold (they count towards their tag's target)."""
        return [check for check in self.checks if not check.passed and check.expected.soft]

    @property
    def target_results(self) -> list[TargetResult]:
        """Every rate target with the soft checks of its tagged cases."""
        out = []
        for target in self.targets:
            soft = [
                check
                for result in self.results
                if target.tag in result.tags
                for check in result.checks
                if check.expected.soft
            ]
            out.append(TargetResult(target, sum(check.passed for check in soft), len(soft)))
        return out

    @property
    def passed(self) -> bool:
        """No hard expectation failed and every rate target is met."""
        return not self.failures and all(t.met for t in self.target_results)


# --- parsing -------------------------------------------------------------------------------------


def parse_suite(text: str) -> Suite:
    """Parse and validate suite TOML ``text``; raise ``SuiteError`` listing every problem."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SuiteError([f"not valid TOML: {exc}"]) from None
    except RecursionError:
        # tomllib recurses once per nested array or inline table: a hostile file is a bad file.
        raise SuiteError(["not valid TOML: arrays or inline tables nested too deeply"]) from None
    errors: list[str] = []
    for key in document:
        if key not in _TOP_KEYS:
            errors.append(f"field '{key}': unknown field (expected one of {', '.join(_TOP_KEYS)})")
    if document.get("format", SUITE_FORMAT) != SUITE_FORMAT:
        errors.append(f"field 'format': this version reads format {SUITE_FORMAT}, got {document['format']!r}")
    raw_cases = document.get("case", [])
    if not isinstance(raw_cases, list) or not raw_cases:
        errors.append("field 'case': a suite needs at least one [[case]]")
        raw_cases = []
    cases: list[Case] = []
    seen: set[str] = set()
    for number, raw in enumerate(raw_cases, start=1):
        case = _case(number, raw, errors, seen)
        if case is not None:
            cases.append(case)
    targets = [_target(n, raw, errors) for n, raw in enumerate(_list(document.get("target")), start=1)]
    tags = {tag for case in cases for tag in case.tags}
    for target in targets:
        if target is not None and target.tag not in tags:
            errors.append(f"target '{target.tag}', field 'tag': no case has this tag")
    if errors:
        raise SuiteError(errors)
    return Suite(
        cases=tuple(cases),
        name=str(document.get("name", "")),
        description=str(document.get("description", "")),
        targets=tuple(t for t in targets if t is not None),
    )


def _target(number: int, raw: object, errors: list[str]) -> RateTarget | None:
    where = f"target #{number}"
    if not isinstance(raw, dict):
        errors.append(f"{where}: each target must be a table")
        return None
    before = len(errors)
    for key in raw:
        if key not in _TARGET_KEYS:
            errors.append(f"{where}, field '{key}': unknown field")
    tag, share = raw.get("tag"), raw.get("share")
    if not isinstance(tag, str) or not tag:
        errors.append(f"{where}, field 'tag': missing or not a string")
    if not isinstance(share, int | float) or isinstance(share, bool) or not 0.0 < share <= 1.0:
        errors.append(f"{where}, field 'share': must be a number greater than 0 and at most 1")
    if len(errors) != before or not isinstance(tag, str) or not isinstance(share, int | float):
        return None
    return RateTarget(tag=tag, share=float(share), note=str(raw.get("note", "")))


def _case(number: int, raw: object, errors: list[str], seen: set[str]) -> Case | None:
    where = f"case #{number}"
    if not isinstance(raw, dict):
        errors.append(f"{where}: each case must be a table")
        return None
    case_id = raw.get("id")
    if not isinstance(case_id, str) or not case_id.strip():
        errors.append(f"{where}, field 'id': missing or not a string")
        return None
    where = f"case '{case_id}'"
    before = len(errors)
    if case_id in seen:
        errors.append(f"{where}, field 'id': duplicate case id")
    seen.add(case_id)
    for key in raw:
        if key not in _CASE_KEYS:
            errors.append(f"{where}, field '{key}': unknown field")
    turns = _turns(where, raw.get("turns"), errors)
    count = len(raw["turns"]) if isinstance(raw.get("turns"), list) else 0
    expect = [_expectation(where, i, item, count, errors) for i, item in enumerate(_list(raw.get("expect")))]
    if not expect:
        errors.append(f"{where}, field 'expect': a case needs at least one expectation")
    tags = raw.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        errors.append(f"{where}, field 'tags': must be a list of strings")
        tags = []
    try:
        customer = msgspec.convert(raw.get("customer", {}), CustomerInfo)
    except msgspec.ValidationError as exc:
        errors.append(f"{where}, field 'customer': {exc}")
        customer = CustomerInfo()
    if len(errors) != before:
        return None
    return Case(
        id=case_id,
        turns=tuple(turns),
        expect=tuple(e for e in expect if e is not None),
        tags=tuple(tags),
        source=str(raw.get("source", "")),
        note=str(raw.get("note", "")),
        customer=customer,
    )


def _list(raw: object) -> list[Any]:
    if raw is None:
        return []
    return raw if isinstance(raw, list) else [raw]


def _turns(where: str, raw: object, errors: list[str]) -> list[SuiteTurn]:
    if not isinstance(raw, list) or not raw:
        errors.append(f"{where}, field 'turns': must be a non-empty list of {{ speaker, text }} tables")
        return []
    turns: list[SuiteTurn] = []
    for i, item in enumerate(raw):
        path = f"turns[{i}]"
        if not isinstance(item, dict) or set(item) - {"speaker", "text"}:
            errors.append(f"{where}, field '{path}': must be a table with speaker and text only")
            continue
        speaker, text = item.get("speaker"), item.get("text")
        if speaker not in SPEAKERS:
            errors.append(f"{where}, field '{path}.speaker': must be one of {', '.join(SPEAKERS)}")
            continue
        if not isinstance(text, str) or not text.strip():
            errors.append(f"{where}, field '{path}.text': must be a non-empty string")
            continue
        turns.append(SuiteTurn(speaker=speaker, text=text))
    return turns


def _expectation(where: str, i: int, raw: object, turns: int, errors: list[str]) -> Expectation | None:
    path = f"expect[{i}]"
    if not isinstance(raw, dict):
        errors.append(f"{where}, field '{path}': must be a table")
        return None
    before = len(errors)
    for key in raw:
        if key not in _EXPECT_KEYS:
            errors.append(f"{where}, field '{path}.{key}': unknown field")
    after = raw.get("after")
    if after is not None and (
        not isinstance(after, int) or isinstance(after, bool) or not 0 <= after < turns
    ):
        span = f"from 0 to {turns - 1}" if turns else "of a turn (there are none)"
        errors.append(f"{where}, field '{path}.after': must be a turn index {span}")
    route = raw.get("route")
    if route is not None and route not in EXPECTED_ROUTES:
        errors.append(f"{where}, field '{path}.route': must be one of {', '.join(EXPECTED_ROUTES)}")
    names: dict[str, tuple[str, ...]] = {}
    for key in ("queue", "rule"):
        value = raw.get(key, [])
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            errors.append(f"{where}, field '{path}.{key}': must be a string or a list of strings")
            values = []
        names[key] = tuple(values)
    guardrail = raw.get("guardrail")
    if guardrail is not None and guardrail not in (*GUARDRAILS, "none"):
        errors.append(f"{where}, field '{path}.guardrail': must be one of {', '.join((*GUARDRAILS, 'none'))}")
    soft = raw.get("soft", False)
    if not isinstance(soft, bool):
        errors.append(f"{where}, field '{path}.soft': must be true or false")
    flags: dict[str, bool | None] = {}
    for key in ("resolved", "held", "changed"):
        value = raw.get(key)
        if value is not None and not isinstance(value, bool):
            errors.append(f"{where}, field '{path}.{key}': must be true or false")
        flags[key] = value if isinstance(value, bool) else None
    if not any(k in raw for k in ("route", "queue", "rule", "guardrail", "resolved", "held", "changed")):
        errors.append(f"{where}, field '{path}': expects nothing (give at least a route, queue or rule)")
    if len(errors) != before:
        return None
    return Expectation(
        after=after,
        route=route,
        queue=names["queue"],
        rule=names["rule"],
        guardrail=guardrail,
        resolved=flags["resolved"],
        held=flags["held"],
        changed=flags["changed"],
        soft=soft is True,
        note=str(raw.get("note", "")),
    )


def check_suite(suite: Suite, policy: Policy) -> list[str]:
    """Problems of a valid suite against a policy: rules, queues it expects that the policy lacks."""
    rules = {rule.id for rule in _all_rules(policy)} | {DEFAULT_RULE_ID}
    problems: list[str] = []
    for case in suite.cases:
        for i, exp in enumerate(case.expect):
            for rule in exp.rule:
                if rule not in rules:
                    problems.append(
                        f"case '{case.id}', field 'expect[{i}].rule': policy has no rule {rule!r}"
                    )
            for queue in exp.queue:
                if queue not in policy.queues:
                    problems.append(
                        f"case '{case.id}', field 'expect[{i}].queue': policy has no queue {queue!r}"
                    )
    return problems


def _all_rules(policy: Policy) -> list[Any]:
    rules = list(policy.rules)
    for variant in policy.variants:
        rules.extend(variant.rules)
    return rules


# --- running -------------------------------------------------------------------------------------


def run_case(case: Case, scored: Sequence[TurnScores], policy: Policy) -> CaseResult:
    """Replay ``case`` (its turns already scored, in order) turn by turn and check its expectations."""
    steps: list[StepView] = []
    decisions: list[Decision] = []
    for step in replay_steps(scored, case.customer, policy, case.id):
        decision = step.decision
        decisions.append(decision)
        steps.append(
            StepView(
                index=step.index,
                speaker=case.turns[len(steps)].speaker,
                route=decision.route,
                queue=decision.queue,
                priority=decision.priority,
                rule=decision.rule,
                guardrail=decision.guardrail,
                changed=decision.changed,
                held=decision.held,
                resolved=decision.resolved,
                reason_status=step.signals.reason.status,
                reason_level=step.signals.reason.level,
                flags=tuple(decision.flags),
                summary=decision.summary,
            )
        )
    checks = tuple(_check(case, exp, decisions) for exp in case.expect)
    return CaseResult(case=case.id, tags=case.tags, steps=tuple(steps), checks=checks)


def _check(case: Case, exp: Expectation, decisions: list[Decision]) -> Check:
    after = exp.after if exp.after is not None else len(decisions) - 1
    d = decisions[after]
    problems: list[str] = []
    if exp.route is not None:
        ok = d.route != BOT_ROUTE if exp.route == HUMAN else d.route == exp.route
        if not ok:
            problems.append(f"route: expected {exp.route}, got {d.route}")
    if exp.queue and d.queue not in exp.queue:
        problems.append(f"queue: expected {' or '.join(exp.queue)}, got {d.queue}")
    if exp.rule and d.rule not in exp.rule:
        problems.append(f"rule: expected {' or '.join(exp.rule)}, got {d.rule}")
    if exp.guardrail is not None:
        want = None if exp.guardrail == "none" else exp.guardrail
        if d.guardrail != want:
            problems.append(f"guardrail: expected {exp.guardrail}, got {d.guardrail or 'none'}")
    for key in ("resolved", "held", "changed"):
        want_flag = getattr(exp, key)
        if want_flag is not None and getattr(d, key) is not want_flag:
            problems.append(f"{key}: expected {str(want_flag).lower()}, got {str(getattr(d, key)).lower()}")
    return Check(
        case=case.id,
        after=after,
        expected=exp,
        route=d.route,
        queue=d.queue,
        rule=d.rule,
        guardrail=d.guardrail,
        problems=tuple(problems),
        summary=d.summary,
        explanation=tuple(item.text for item in d.explanation),
    )


# --- reporting -----------------------------------------------------------------------------------


def confusion(checks: Iterable[Check]) -> dict[str, dict[str, int]]:
    """Expected route (rows, ``human`` included) by actual route (columns), over checks with a route."""
    table: dict[str, dict[str, int]] = {}
    for check in checks:
        if check.expected.route is None:
            continue
        row = table.setdefault(check.expected.route, {route: 0 for route in ROUTES})
        row[check.route] += 1
    return {route: table[route] for route in EXPECTED_ROUTES if route in table}


def expected_coverage(suite: Suite, policy: Policy) -> tuple[list[str], list[str]]:
    """Rules (``default`` included) and guardrails that no expectation names as the deciding one.

    A rule counts when an expectation names it alone (``rule = "x"``), a guardrail
    when an expectation says it overrode the bot (``guardrail = "x"``)."""
    rules = {exp.rule[0] for case in suite.cases for exp in case.expect if len(exp.rule) == 1}
    guardrails = {exp.guardrail for case in suite.cases for exp in case.expect}
    missing_rules = [r.id for r in (*policy.rules, policy.default) if r.id not in rules]
    missing_guardrails = [g for g in policy.guardrails if g not in guardrails]
    return missing_rules, missing_guardrails


def coverage(report: SuiteReport) -> tuple[list[str], list[str]]:
    """Rules and guardrails that decided none of the checked decisions of a run."""
    rules = {check.rule for check in report.checks}
    guardrails = {check.guardrail for check in report.checks}
    return (
        [rule for rule in report.rule_ids if rule not in rules],
        [name for name in GUARDRAILS if name not in guardrails],
    )


def summarise(report: SuiteReport) -> str:
    """One line: checks, soft checks and rate targets, and cases passed."""
    checks = report.checks
    hard = [check for check in checks if not check.expected.soft]
    soft = [check for check in checks if check.expected.soft]
    failures, soft_failures = report.failures, report.soft_failures
    failed_cases = sum(1 for result in report.results if not result.passed)
    line = f"{len(hard) - len(failures)}/{len(hard)} checks passed"
    if soft:
        targets = report.target_results
        met = sum(target.met for target in targets)
        line += (
            f"; {len(soft) - len(soft_failures)}/{len(soft)} soft checks held, "
            f"{met}/{len(targets)} rate target{'s' if len(targets) != 1 else ''} met"
        )
    line += f"; {len(report.results) - failed_cases}/{len(report.results)} cases passed every check"
    return line + ("" if report.passed else " -> FAILED")


def _describe(check: Check, case: Case | None, label: str, explain: bool) -> list[str]:
    lines = ["", f"{label} {check.case} after turn {check.after}: " + "; ".join(check.problems)]
    if case is not None:
        if case.source:
            lines.append(f"  source: {case.source}")
        lines += [f"  {turn.speaker:>8}: {turn.text}" for turn in case.turns[: check.after + 1]]
    lines.append(f"  decision: {check.summary}")
    if explain:
        lines += [f"    {text}" for text in check.explanation]
    return lines


def format_report(report: SuiteReport, cases: Sequence[Case] = (), *, explain: bool = True) -> str:
    """The text ``switchboard policy test`` prints: confusion table, failures with explanations, rate
    targets, coverage."""
    lines: list[str] = []
    if report.header:
        lines += [report.header, ""]
    lines += _table(confusion(report.checks))
    by_id = {case.id: case for case in cases}
    failures, soft = report.failures, report.soft_failures
    if failures:
        lines += ["", f"{len(failures)} failed check{'s' if len(failures) != 1 else ''}:"]
    for check in failures:
        lines += _describe(check, by_id.get(check.case), "FAIL", explain)
    if soft:
        lines += [
            "",
            f"{len(soft)} soft check{'s' if len(soft) != 1 else ''} did not hold (counted in the targets):",
        ]
    for check in soft:
        lines += _describe(check, by_id.get(check.case), "MISS", explain)
    targets = report.target_results
    if targets:
        lines.append("")
    for result in targets:
        share = result.held / result.total if result.total else 1.0
        lines.append(
            f"target {result.target.tag}: {result.held}/{result.total} soft checks held ({share:.1%}; "
            f"at least {result.target.share:.0%}): {'met' if result.met else 'NOT MET'}"
            + (f" - {result.target.note}" if result.target.note else "")
        )
    missing_rules, missing_guardrails = coverage(report)
    total_rules = len(report.rule_ids)
    lines += [
        "",
        f"coverage: {total_rules - len(missing_rules)}/{total_rules} rules (default included) and "
        f"{len(GUARDRAILS) - len(missing_guardrails)}/{len(GUARDRAILS)} guardrails decided a checked decision"
        + (
            f"; never: {', '.join(missing_rules + missing_guardrails)}"
            if missing_rules or missing_guardrails
            else ""
        ),
        summarise(report),
    ]
    return "\n".join(lines)


def _table(table: dict[str, dict[str, int]]) -> list[str]:
    if not table:
        return ["(no expectation names a route)"]
    labels = {route: f"{route} (any person)" if route == HUMAN else route for route in table}
    head = "expected \\ actual"
    width = max(len(head), *(len(label) for label in labels.values()))
    cols = [max(len(route), 5) for route in ROUTES]
    lines = [f"{head:<{width}}  " + "  ".join(f"{r:>{w}}" for r, w in zip(ROUTES, cols, strict=True))]
    for expected, row in table.items():
        cells = "  ".join(f"{row[r]:>{w}}" for r, w in zip(ROUTES, cols, strict=True))
        lines.append(f"{labels[expected]:<{width}}  {cells}")
    return lines
