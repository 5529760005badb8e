"""The journey report: aggregates from exported conversations and from the counter store agree
with counts made independently, and the HTML is self-contained, sectioned and quotes no turn."""

from __future__ import annotations

import asyncio
import random
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from routing.decision import Decision
from routing.insights import BUCKET_S, Outcome, facts_from
from routing.signals import ConversationSignals, CustomerSentiment, FlagHit, ReasonState
from routing.taxonomy import CATEGORIES
from service.insights import SqliteInsights, outcome_update, state_update
from service.report import (
    ReportBuilder,
    ReportData,
    periods_of,
    render_html,
    report_from_store,
    slo_rows,
    window_range,
)
from tests.routing.test_insights import decision as base_decision

# A fixed end of the report window: mid-hour, so no record sits on a bucket edge by accident.
END = 1_790_000_000 // BUCKET_S * BUCKET_S + 1800
TURN_MARKER = "TURN-TEXT-MUST-NOT-APPEAR"


@dataclass(frozen=True)
class Planted:
    """What the generator put into one conversation, for counting without routing.insights."""

    created_at: float
    category: str
    route: str
    cause: str | None
    variant: str
    closed: bool
    last_label: str | None
    decision_resolved: bool
    outcome: Outcome | None

    @property
    def on_bot(self) -> bool:
        return self.route == "self_serve_bot"

    @property
    def contained(self) -> bool:
        if self.outcome is not None:
            resolved = self.outcome.resolved and not self.outcome.transferred and not self.outcome.abandoned
        else:
            resolved = self.decision_resolved
        return self.on_bot and resolved

    @property
    def negative_exit(self) -> bool:
        return (self.closed or self.outcome is not None) and self.last_label == "negative"


def generate(n: int, seed: int = 15, hours: int = 48) -> Iterator[tuple[Planted, dict[str, Any]]]:
    """``n`` export records (as ``switchboard export`` writes them, plus an ``outcome``), spread
    over the ``hours`` before ``END``, with a 2-arm experiment whose treatment keeps 20 points
    more conversations on the bot."""
    rng = random.Random(seed)
    for i in range(n):
        variant = rng.choice(["control", "treatment"])
        on_bot = rng.random() < (0.5 if variant == "control" else 0.7)
        guardrail = None if on_bot or rng.random() < 0.5 else "human_request"
        rule = "faq-bot" if on_bot else rng.choice(["vip", "billing-specialist"])
        route = "self_serve_bot" if on_bot else rng.choice(["specialist", "retention_human"])
        last_label = rng.choice(["negative", "negative", "neutral", "neutral", "positive", None])
        outcome = None
        if rng.random() < 0.5:
            outcome = Outcome(
                resolved=rng.random() < 0.6,
                abandoned=rng.random() < 0.05,
                csat=rng.randint(1, 5),
                handle_time_s=rng.uniform(30, 900),
            )
        planted = Planted(
            created_at=END - rng.uniform(0, hours * 3600),
            category=rng.choice(CATEGORIES[:10]),
            route=route,
            cause=None if on_bot else (f"guardrail:{guardrail}" if guardrail else f"rule:{rule}"),
            variant=variant,
            closed=rng.random() < 0.8,
            last_label=last_label,
            decision_resolved=on_bot and rng.random() < 0.5,
            outcome=outcome,
        )
        decision = msgspec.structs.replace(
            base_decision(),
            route=route,
            queue="bot" if on_bot else f"queue-{rng.randrange(4)}",
            rule=rule,
            guardrail=guardrail,
            experiment="exp",
            variant=variant,
            resolved=planted.decision_resolved,
            flags=["repeat_contact"] if rng.random() < 0.1 else [],
        )
        signals = ConversationSignals(
            reason=ReasonState(category=planted.category),
            customer=CustomerSentiment(turns=2, last_label=last_label),
            flags={"bot_loop": FlagHit(turn=1, source="pattern", evidence="loop")}
            if rng.random() < 0.05
            else {},
        )
        record: dict[str, Any] = {
            "conversation_id": f"conv-{i}",
            "version": 3,
            "created_at": planted.created_at,
            "updated_at": planted.created_at + 60,
            "closed": planted.closed,
            "channel": "chat",
            "language": "en",
            "customer": None,
            "sources": [],
            "turns": [{"index": 0, "speaker": "customer", "text": f"{TURN_MARKER} [CARD_NUMBER]"}],
            "decision": msgspec.to_builtins(decision),
            "signals": msgspec.to_builtins(signals),
        }
        if outcome is not None:
            record["outcome"] = msgspec.to_builtins(outcome)
        yield planted, record


def write_export(path: Path, n: int, seed: int = 15) -> list[Planted]:
    """Write ``n`` generated records as JSONL; return what was planted."""
    planted = []
    encoder = msgspec.json.Encoder()
    with open(path, "wb") as handle:
        for truth, record in generate(n, seed):
            planted.append(truth)
            handle.write(encoder.encode(record) + b"\n")
    return planted


def in_window(planted: list[Planted], window_s: int) -> list[Planted]:
    """The planted conversations whose start hour is one of the window's hours before ``END``."""
    last = END // BUCKET_S * BUCKET_S
    first = last - (window_s // BUCKET_S - 1) * BUCKET_S
    return [p for p in planted if first <= p.created_at // BUCKET_S * BUCKET_S <= last]


async def fill_store(store: Any, n: int, seed: int = 15) -> None:
    """Record the generated conversations in a counter store as the service's listeners would:
    the head's facts, then the outcome when there is one."""
    gate = asyncio.Semaphore(32)

    async def one(i: int, record: dict[str, Any]) -> None:
        decision = msgspec.convert(record["decision"], Decision)
        signals = msgspec.convert(record["signals"], ConversationSignals)
        facts = facts_from(decision, signals, record["created_at"], record["closed"], BUCKET_S)
        async with gate:
            if "outcome" in record:
                outcome = msgspec.convert(record["outcome"], Outcome)
                await store.update(f"conv-{i}", outcome_update(1, facts, outcome))
            else:
                await store.update(f"conv-{i}", state_update(1, facts))

    await asyncio.gather(*(one(i, record) for i, (_, record) in enumerate(generate(n, seed))))


def build_from_export(path: Path, window: str, window_s: int, policy: Any = None) -> ReportData:
    builder = ReportBuilder(window, window_s, END)
    with open(path, "rb") as handle:
        builder.add_lines(handle)
    return builder.result({"exp": ["control", "treatment"]}, policy)


def summary_values(page: str) -> dict[str, str]:
    """``data-metric -> data-value`` of the summary table."""
    return dict(re.findall(r'data-metric="([a-z_]+)" data-value="([^"]*)"', page))


# -- tests ---------------------------------------------------------------------------------------


def test_window_range_and_periods() -> None:
    first, last = window_range(END, 24 * 3600)
    assert last == END // 3600 * 3600 and last - first == 23 * 3600
    assert len(periods_of(first, last, 24 * 3600)) == 24
    week_first, week_last = window_range(END, 7 * 86400)
    days = periods_of(week_first, week_last, 7 * 86400)
    assert len(days) == 7 and all(end - start == 86400 for start, end in days)
    assert days[-1][1] == week_last + 3600


def test_export_aggregates_match_independent_counts(tmp_path: Path) -> None:
    path = tmp_path / "export.jsonl"
    planted = write_export(path, 2000)
    for window, window_s in (("24h", 24 * 3600), ("48h", 48 * 3600)):
        data = build_from_export(path, window, window_s)
        expected = in_window(planted, window_s)
        total = data.total
        assert total.conversations == len(expected)
        assert total.counts["bot"] == sum(p.on_bot for p in expected)
        assert total.counts["contained"] == sum(p.contained for p in expected)
        assert total.counts["negative_exit"] == sum(p.negative_exit for p in expected)
        assert total.outcomes == sum(p.outcome is not None for p in expected)
        assert total.reasons == dict(Counter(p.category for p in expected))
        assert total.escalation_causes == dict(Counter(p.cause for p in expected if p.cause))
        # Every period's conversations add up to the total, and sentiment bands to the period.
        assert sum(p.counts.get("conversations", 0) for p in data.periods) == len(expected)
        for period in data.periods:
            assert sum(period.sentiment.values()) == period.counts.get("conversations", 0)
        assert sum(p.sentiment["negative"] for p in data.periods) == total.counts["negative_exit"]
    # The 24h window keeps only about half of 48 hours of conversations.
    assert 0.4 < len(in_window(planted, 86400)) / len(planted) < 0.6


def test_html_is_self_contained_sectioned_and_quotes_no_turn(tmp_path: Path) -> None:
    path = tmp_path / "export.jsonl"
    planted = write_export(path, 2000)
    page = render_html(build_from_export(path, "24h", 86400))
    assert page.startswith("<!doctype html>")
    assert TURN_MARKER not in page
    assert not re.search(r"""(src|href|url)\s*[=(]\s*["']?\s*(https?:)?//""", page, re.I)
    assert "<script" not in page and "<link" not in page and "@import" not in page
    for section in ("reasons", "sentiment", "funnel", "experiments"):
        body = page.split(f'<section id="{section}">', 1)[1].split("</section>", 1)[0]
        assert "<svg" in body, section
    slos = page.split('<section id="slos">', 1)[1].split("</section>", 1)[0]
    assert "No SLOs declared" in slos
    values = summary_values(page)
    expected = in_window(planted, 86400)
    assert values["conversations"] == str(len(expected))
    assert values["containment"] == f"{sum(p.contained for p in expected)}/{len(expected)}"
    assert values["negative_exit"] == f"{sum(p.negative_exit for p in expected)}/{len(expected)}"
    # The treatment keeps 20 points more on the bot: its escalation difference is significant.
    assert re.search(r'data-variant="treatment" data-rate="escalation" data-significant="true"', page)
    assert not re.search(r'data-variant="control"[^>]*data-significant="true"', page)


def test_store_and_export_agree(tmp_path: Path) -> None:
    path = tmp_path / "export.jsonl"
    write_export(path, 600)

    async def from_store() -> ReportData:
        store = SqliteInsights(tmp_path / "insights.sqlite3")
        try:
            await fill_store(store, 600)
            policy = {"slos": [_Slo("neg", "negative_exit_rate", "max", 0.15, 3600)]}
            declared = {"exp": ["control", "treatment"]}
            return await report_from_store(store, "24h", 86400, END, declared, policy)
        finally:
            await store.close()

    stored = asyncio.run(from_store())
    exported = build_from_export(path, "24h", 86400)
    assert stored.total == exported.total
    assert stored.queues == exported.queues
    assert stored.experiments == exported.experiments
    assert [p.counts for p in stored.periods] == [p.counts for p in exported.periods]
    assert [p.sentiment["negative"] for p in stored.periods] == [
        p.sentiment["negative"] for p in exported.periods
    ]
    assert summary_values(render_html(stored)) == summary_values(render_html(exported))
    # From the store, an SLO is observed over its own window (here the last hour).
    last_hour = stored.periods[-1].counts
    assert [(s.basis, s.observed) for s in stored.slos] == [
        ("its window", last_hour["negative_exit"] / last_hour["conversations"])
    ]


class _Slo(msgspec.Struct):
    id: str
    metric: str
    bound: str
    threshold: float
    window_s: int


def test_slo_rows_read_declared_slos_defensively(tmp_path: Path) -> None:
    path = tmp_path / "export.jsonl"
    write_export(path, 500)
    policy = {
        "slos": [
            _Slo("neg", "negative_exit_rate", "max", 0.15, 3600),
            {"id": "contain", "metric": "containment", "min": 5, "window": "24h"},
            {"id": "odd", "metric": "no_such_rate", "max": 0.5},
        ]
    }
    data = build_from_export(path, "24h", 86400, policy)
    negative = data.total.rates["negative_exit"].value
    assert negative is not None and negative > 0.15
    assert [(s.name, s.status, s.window) for s in data.slos] == [
        ("neg", "breached", "1h"),
        ("contain", "ok", "1d"),
        ("odd", "unknown", ""),
    ]
    assert data.slos_declared
    page = render_html(data)
    slos = page.split('<section id="slos">', 1)[1].split("</section>", 1)[0]
    assert "<svg" in slos and "breached" in slos and "No SLOs declared" not in slos
    assert slo_rows([], data.total) == []


def test_empty_window_renders() -> None:
    builder = ReportBuilder("24h", 86400, END)
    data = builder.result()
    page = render_html(data)
    assert data.total.conversations == 0 and summary_values(page)["conversations"] == "0"
    assert "No experiment has data" in page and "No escalations in the window" in page
