"""``python -m bench routing``: decision quality of a policy and model pack, from the policy suite.

Replays the committed suite (``bench/suites/default_policy.toml``, built by
``python -m bench suite``) through the model pack and the policy, turn by turn
as a live conversation, and reports:

* **containment**: calm simple conversations (tag ``calm_simple``) the bot has
  at the first turn where the contact reason is confident (target >= 70%);
* **escalation recall**: negative conversations (tag ``negative``) that end with
  a person, and the share of complaint openings (tag ``complaint_opening``) the
  bot keeps (target <= 5%);
* **human-request safety**: conversations where the customer asked for a person
  (tag ``human_request``) that the bot still has afterwards (target 0);
* **flip-flops**: conversations whose route and queue return to a place they had
  left (A -> B -> A), and decision changes per conversation.

The suite's own pass/fail lives in ``switchboard policy test``; this is the
summary a product owner reads. ``--json PATH`` also writes the figures.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.build_suite import SUITE
from routing.suite import CaseResult, SuiteReport
from routing.types import BOT_ROUTE

TARGETS = {
    "containment": (">=", 0.70),
    "complaint_openings_kept_by_bot": ("<=", 0.05),
    "human_requests_kept_by_bot": ("<=", 0.0),
}


@dataclass(frozen=True)
class Rate:
    """``hits`` of ``total`` conversations."""

    hits: int
    total: int

    @property
    def value(self) -> float | None:
        """The share (None when there is nothing to count)."""
        return self.hits / self.total if self.total else None


@dataclass(frozen=True)
class Quality:
    """The decision-quality figures of one suite run."""

    containment: Rate
    escalation_recall: Rate
    complaint_openings_kept_by_bot: Rate
    human_requests_kept_by_bot: Rate
    flip_flops: Rate
    changes_per_conversation: float
    conversations: int


def _first_confident_route(result: CaseResult) -> str | None:
    for step in result.steps:
        if step.speaker == "customer" and step.reason_status == "confident":
            return step.route
    return None


def _changes_after_first_customer_turn(result: CaseResult) -> int:
    first = next((n for n, step in enumerate(result.steps) if step.speaker == "customer"), len(result.steps))
    return sum(1 for step in result.steps[first + 1 :] if step.changed)


def _flip_flops(result: CaseResult) -> bool:
    """True when the route and queue come back to a place they had left."""
    places: list[tuple[str, str]] = []
    for step in result.steps:
        place = (step.route, step.queue)
        if places and place == places[-1]:
            continue
        if place in places:
            return True
        places.append(place)
    return False


def quality(report: SuiteReport) -> Quality:
    """The figures from a suite run (see the module doc for each)."""
    results = report.results

    def tagged(tag: str) -> list[CaseResult]:
        return [r for r in results if tag in r.tags]

    calm = tagged("calm_simple")
    negative = tagged("negative")
    openings = tagged("complaint_opening")
    asked = tagged("human_request")
    changes = [_changes_after_first_customer_turn(r) for r in results]
    return Quality(
        containment=Rate(sum(_first_confident_route(r) == BOT_ROUTE for r in calm), len(calm)),
        escalation_recall=Rate(sum(r.steps[-1].route != BOT_ROUTE for r in negative), len(negative)),
        complaint_openings_kept_by_bot=Rate(
            sum(r.steps[-1].route == BOT_ROUTE for r in openings), len(openings)
        ),
        human_requests_kept_by_bot=Rate(sum(r.steps[-1].route == BOT_ROUTE for r in asked), len(asked)),
        flip_flops=Rate(sum(_flip_flops(r) for r in results), len(results)),
        changes_per_conversation=sum(changes) / len(changes) if changes else 0.0,
        conversations=len(results),
    )


def _pct(rate: Rate) -> str:
    value = rate.value
    return "n/a" if value is None else f"{100 * value:.1f}% ({rate.hits}/{rate.total})"


def _met(name: str, rate: Rate) -> str:
    op, bound = TARGETS[name]
    value = rate.value
    if value is None:
        return "n/a"
    ok = value >= bound if op == ">=" else value <= bound
    return f"{op} {bound:.0%}: {'met' if ok else 'NOT met'}"


def format_quality(q: Quality, header: str = "") -> str:
    """The table ``python -m bench routing`` prints."""
    rows = [
        ("containment: calm simple conversations with the bot at the first confident reason", q.containment,
         _met("containment", q.containment)),
        ("escalation recall: negative conversations that end with a person", q.escalation_recall, ""),
        ("complaint openings kept by the bot", q.complaint_openings_kept_by_bot,
         _met("complaint_openings_kept_by_bot", q.complaint_openings_kept_by_bot)),
        ("explicit requests for a person kept by the bot", q.human_requests_kept_by_bot,
         _met("human_requests_kept_by_bot", q.human_requests_kept_by_bot)),
        ("flip-flops: conversations whose route returns to a place it left", q.flip_flops, ""),
    ]  # fmt: skip
    lines = [header, ""] if header else []
    lines += ["| figure | value | target |", "| --- | ---: | --- |"]
    lines += [f"| {label} | {_pct(rate)} | {target} |" for label, rate, target in rows]
    lines.append(
        "| decision changes per conversation after the first customer turn | "
        f"{q.changes_per_conversation:.2f} | |"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suite through the pack and the policy; print (and optionally write) the figures."""
    from service.policy_test import (
        active_reasons,
        load_runtime,
        load_suite,
        load_test_policy,
        reasons_source,
        run_suite,
    )

    parser = argparse.ArgumentParser(prog="python -m bench routing", description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", type=Path, default=SUITE, help=f"policy suite (default {SUITE})")
    parser.add_argument("--policy", type=Path, help="policy TOML (default: the bundled default policy)")
    parser.add_argument("--pack", type=Path, help="model pack folder (default: the bundled pack)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    reasons = reasons_source()
    policy = load_test_policy(args.policy, reasons)
    runtime = load_runtime(args.pack)
    run = run_suite(load_suite(args.suite), policy, runtime, active_reasons(reasons, runtime))
    q = quality(run.report)
    header = (
        f"Decision quality on {args.suite} ({q.conversations} conversations): policy {run.policy.version}, "
        f"model pack {run.pack['name']} {run.pack['version']}; {len(run.report.failures)} suite checks failed"
    )
    print(format_quality(q, header))
    if args.json is not None:
        figures: dict[str, dict[str, float | int | None]] = {}
        for name, value in vars(q).items():
            if isinstance(value, Rate):
                figures[name] = {**asdict(value), "value": value.value}
        payload = {
            "suite": str(args.suite),
            "policy": {"version": run.policy.version, "hash": run.policy.hash},
            "pack": run.pack,
            "conversations": q.conversations,
            "changes_per_conversation": round(q.changes_per_conversation, 4),
            "figures": figures,
            "failed_checks": len(run.report.failures),
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0
