"""``switchboard policy test SUITE``: run a policy test suite through the model pack and the policy.

Every distinct text of the suite is scored once by the model pack (one batched
``Runtime.predict``; the runtime's per-text runs make each score independent of
its batch neighbours), turned into routing's ``TurnScores`` exactly as the
service does (``service.analysis.score_turn``, PII redaction included), and
each case is replayed turn by turn through the policy (``routing.suite``).
Nothing is stored and no HTTP is involved; 150 conversations take seconds.

Custom contact reasons are in force as in the service (``SWITCHBOARD_REASONS``,
the bundled default file unless set): the policy is validated against them and
customer turns are matched to them when the pack has a sentence embedding.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from models.runtime import Runtime, RuntimeConfig
from routing.policy import Policy, default_policy_text
from routing.suite import Case, Suite, SuiteReport, check_suite, parse_suite, run_case
from routing.types import TurnScores
from service.analysis import score_turn
from service.policy_source import validate_policy_text
from service.schemas import TurnIn

if TYPE_CHECKING:
    from service.reasons import ActiveReasons, ReasonSource


@dataclass(frozen=True)
class SuiteRun:
    """A suite, the policy and pack it ran with, and the report."""

    suite: Suite
    policy: Policy
    report: SuiteReport
    pack: dict[str, str]
    seconds: float


def load_suite(path: Path) -> Suite:
    """Read and parse a suite file (``SuiteError`` if invalid, ``OSError`` if unreadable)."""
    return parse_suite(path.read_text(encoding="utf-8"))


def load_runtime(pack_dir: Path | None = None) -> Runtime:
    """The model pack ``pack_dir`` (the bundled default pack when ``None``), ready to predict."""
    from models.packs import DEFAULT_PACK

    return Runtime.load(pack_dir or DEFAULT_PACK, RuntimeConfig())


def score_cases(
    cases: tuple[Case, ...], runtime: Runtime, reasons: ActiveReasons | None = None
) -> dict[str, list[TurnScores]]:
    """Score every turn of every case (each distinct text once), as the service would."""
    texts = list(dict.fromkeys(turn.text for case in cases for turn in case.turns))
    predictions = dict(zip(texts, runtime.predict(texts), strict=True))
    return {
        case.id: [
            score_turn(
                index,
                TurnIn(speaker=turn.speaker, text=turn.text),
                None,
                predictions[turn.text],
                redact_text=True,
                reasons=reasons,
            ).scores
            for index, turn in enumerate(case.turns)
        ]
        for case in cases
    }


def run_suite(
    suite: Suite, policy: Policy, runtime: Runtime, reasons: ActiveReasons | None = None
) -> SuiteRun:
    """Score and replay every case; raises ``ValueError`` if the suite names rules or queues the
    policy lacks."""
    problems = check_suite(suite, policy)
    if problems:
        raise ValueError("the suite does not fit the policy:\n" + "\n".join(f"- {p}" for p in problems))
    started = time.perf_counter()
    scored = score_cases(suite.cases, runtime, reasons)
    results = tuple(run_case(case, scored[case.id], policy) for case in suite.cases)
    info = runtime.info
    pack = {"name": str(info.get("pack")), "version": str(info.get("version"))}
    checks = sum(len(r.checks) for r in results)
    header = (
        f"policy {policy.version} (hash {policy.hash[:12]}), model pack {pack['name']} {pack['version']}: "
        f"{len(results)} conversations, {checks} checks"
    )
    report = SuiteReport(
        results=results,
        policy_version=policy.version,
        policy_hash=policy.hash,
        rule_ids=(*(rule.id for rule in policy.rules), policy.default.id),
        header=header,
        targets=suite.targets,
    )
    return SuiteRun(suite, policy, report, pack, time.perf_counter() - started)


def load_test_policy(path: Path | None, source: ReasonSource | None = None) -> Policy:
    """The policy file ``path``, or the bundled default policy, validated against the custom contact
    reasons of ``source`` (``PolicyError`` if invalid)."""
    text = path.read_text(encoding="utf-8") if path is not None else default_policy_text()
    return validate_policy_text(text, source.reasons if source is not None else None)


def reasons_source() -> ReasonSource:
    """The custom contact reasons the service would use (``SWITCHBOARD_REASONS``), not yet matched
    (``ReasonsError``/``SettingsError`` if the file is invalid)."""
    from service.metrics import Metrics
    from service.reasons import source_from_settings
    from service.settings import Settings

    settings = Settings.from_env({**os.environ, "SWITCHBOARD_AUTH_DISABLED": "true"})
    return source_from_settings(settings, Metrics())


def active_reasons(source: ReasonSource, runtime: Runtime) -> ActiveReasons:
    """``source`` matched with the pack's sentence embedding (none with a pack that has no embedding)."""
    from service.reasons import attach_runtime

    attach_runtime(source, runtime)
    return source.active
