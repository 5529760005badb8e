"""The journey report: aggregates over a window, rendered as one self-contained HTML page.

``switchboard report`` builds a ``ReportData`` from one of two sources, with the same
arithmetic (``routing.insights``):

* the configured store's insights counters (``report_from_store``): the hourly counter rows of
  the window, summed per period and per queue / variant, never a conversation;
* exported conversations (``ReportBuilder``, fed JSONL lines of ``switchboard export``): each
  record becomes ``facts_from`` → ``cells`` exactly as the service's listeners count it, so the
  two sources agree on the same conversations. An ``outcome`` object on a record is used when
  present (the export may carry one); records without a decision count nowhere, as in the store.

``render_html`` turns a ``ReportData`` into one HTML document with inline CSS and inline SVG
charts drawn here (no script, no font, no image, no network): a summary table, contact-reason
mix over time, sentiment bands, the containment and escalation funnel, SLO status and the
experiment comparison with 95% intervals. It never quotes a turn: only counts, labels
(queue, category, rule and guardrail ids) and statistics reach the page.
"""

from __future__ import annotations

import asyncio
import html
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from routing.decision import Decision
from routing.insights import (
    BUCKET_S,
    NO_VARIANT,
    RATES,
    Comparison,
    ExperimentReport,
    GroupSummary,
    Outcome,
    Rate,
    cells,
    experiment_reports,
    facts_from,
    summarize,
)
from routing.signals import ConversationSignals

__all__ = [
    "HOURLY_UP_TO_S",
    "Period",
    "ReportBuilder",
    "ReportData",
    "SloRow",
    "periods_of",
    "render_html",
    "report_from_store",
    "slo_rows",
    "window_range",
]

# Windows up to two days are drawn per hour, longer ones per day.
HOURLY_UP_TO_S = 48 * 3600
SENTIMENT_BANDS: tuple[str, ...] = ("negative", "neutral", "positive", "other")
# Rates shown in the experiment charts (the tables list every rate).
EXPERIMENT_CHART_RATES: tuple[str, ...] = ("containment", "escalation", "negative_exit", "resolution")
TOP_REASONS = 8


class Period(msgspec.Struct):
    """One period of the time charts: ``[start, end)`` (epoch seconds), its summed counters and
    its sentiment bands (``negative`` = ended negative; the rest split by the customer's last
    label where the source knows it, else all in ``other``)."""

    start: int
    end: int
    counts: dict[str, int]
    sentiment: dict[str, int]


class SloRow(msgspec.Struct):
    """One declared SLO as the report shows it: ``status`` is ``ok``, ``breached`` or ``unknown``
    (a metric the report cannot compute, or no data); ``observed`` is over ``basis``: the SLO's
    own window ending with the report's (from the store), or the report window."""

    name: str
    metric: str
    objective: str
    window: str
    observed: float | None
    status: str
    basis: str = "report window"


class ReportData(msgspec.Struct):
    """Everything the page shows (epoch seconds; ``end`` exclusive)."""

    source: str
    window: str
    start: int
    end: int
    period_s: int
    generated_at: float
    total: GroupSummary
    queues: list[GroupSummary]
    periods: list[Period]
    sentiment_split: bool
    experiments: list[ExperimentReport]
    slos: list[SloRow]
    slos_declared: bool


def window_range(end_ts: float, window_s: int, bucket_s: int = BUCKET_S) -> tuple[int, int]:
    """First and last bucket start of the window of ``window_s`` seconds ending in the bucket of
    ``end_ts`` (whole buckets, as ``GET /v1/insights`` sums them)."""
    last = int(end_ts // bucket_s) * bucket_s
    first = last - (max(1, window_s // bucket_s) - 1) * bucket_s
    return first, last


def periods_of(first: int, last: int, window_s: int, bucket_s: int = BUCKET_S) -> list[tuple[int, int]]:
    """The chart periods ``(start, end)`` covering buckets ``first..last``: one per bucket up to
    ``HOURLY_UP_TO_S``, else one per day (the last one may be shorter)."""
    step = bucket_s if window_s <= HOURLY_UP_TO_S else 86400
    end = last + bucket_s
    return [(start, min(start + step, end)) for start in range(first, end, step)]


# -- building from exported conversations -----------------------------------------------------------


class _Exported(msgspec.Struct):
    """The fields of an export record the report needs (turns and customer are never decoded)."""

    created_at: float
    closed: bool = False
    decision: Decision | None = None
    signals: ConversationSignals = msgspec.field(default_factory=ConversationSignals)
    outcome: Outcome | None = None


_record_decoder = msgspec.json.Decoder(_Exported)


class ReportBuilder:
    """Aggregates exported conversations (JSONL lines) over a window, as the counters would."""

    def __init__(self, window: str, window_s: int, end_ts: float, bucket_s: int = BUCKET_S) -> None:
        self.window = window
        self.window_s = window_s
        self.bucket_s = bucket_s
        self.first, self.last = window_range(end_ts, window_s, bucket_s)
        self.spans = periods_of(self.first, self.last, window_s, bucket_s)
        self._step = self.spans[0][1] - self.spans[0][0]
        self._groups: dict[str, dict[str, dict[str, int]]] = {}
        self._periods = [_empty_period(start, end) for start, end in self.spans]
        self.read = 0
        self.counted = 0

    def add_line(self, line: bytes) -> None:
        """Count one JSONL line (``msgspec.DecodeError``/``ValidationError`` if it is not a record)."""
        self.read += 1
        record = _record_decoder.decode(line)
        facts = facts_from(record.decision, record.signals, record.created_at, record.closed, self.bucket_s)
        if facts is None or not self.first <= facts.bucket <= self.last:
            return
        self.counted += 1
        contribution = cells(facts, record.outcome)
        for (dim, value, metric), n in contribution.items():
            group = self._groups.setdefault(dim, {}).setdefault(value, {})
            group[metric] = group.get(metric, 0) + n
        period = self._periods[(facts.bucket - self.first) // self._step]
        for (dim, _value, metric), n in contribution.items():
            if dim == "all":
                period.counts[metric] = period.counts.get(metric, 0) + n
        if contribution.get(("all", "*", "negative_exit")):
            band = "negative"
        elif record.closed or record.outcome is not None:
            label = record.signals.customer.last_label
            band = label if label in ("neutral", "positive") else "other"
        else:
            band = "other"
        period.sentiment[band] += 1

    def add_lines(self, lines: Iterable[bytes]) -> None:
        """``add_line`` for every non-blank line."""
        for line in lines:
            if line.strip():
                self.add_line(line)

    def result(self, declared: Mapping[str, Sequence[str]] | None = None, policy: Any = None) -> ReportData:
        """The report data of everything added (``policy``: for SLOs, read defensively)."""
        total = summarize("*", self._groups.get("all", {}).get("*", {}))
        return _assemble(
            source="export",
            window=self.window,
            first=self.first,
            last=self.last,
            bucket_s=self.bucket_s,
            total=total,
            queue_groups=self._groups.get("queue", {}),
            variant_groups=self._groups.get("variant", {}),
            periods=self._periods,
            sentiment_split=True,
            declared=declared,
            policy=policy,
        )


def _empty_period(start: int, end: int) -> Period:
    return Period(start=start, end=end, counts={}, sentiment=dict.fromkeys(SENTIMENT_BANDS, 0))


# -- building from the counter store ----------------------------------------------------------------


async def report_from_store(
    store: Any,
    window: str,
    window_s: int,
    end_ts: float,
    declared: Mapping[str, Sequence[str]] | None = None,
    policy: Any = None,
) -> ReportData:
    """The report of an ``InsightsStore``'s counters: one ``groups`` query per period (dimension
    ``all``) and one each for queues and variants over the whole window."""
    bucket_s = int(store.bucket_s)
    first, last = window_range(end_ts, window_s, bucket_s)
    spans = periods_of(first, last, window_s, bucket_s)
    found = await asyncio.gather(
        store.groups("all", first, last),
        store.groups("queue", first, last),
        store.groups("variant", first, last),
        *(store.groups("all", start, end - bucket_s) for start, end in spans),
    )
    periods = []
    for (start, end), groups in zip(spans, found[3:], strict=True):
        counts = dict(groups.get("*", {}))
        period = _empty_period(start, end)
        period.counts = counts
        negative = counts.get("negative_exit", 0)
        period.sentiment["negative"] = negative
        period.sentiment["other"] = counts.get("conversations", 0) - negative
        periods.append(period)
    own: list[GroupSummary | None] = []
    for slo in _declared_slos(policy):
        seconds = slo_window_s(slo)
        if seconds is None:
            own.append(None)
            continue
        counts = await store.groups("all", *window_range(end_ts, seconds, bucket_s))
        own.append(summarize("*", counts.get("*", {})))
    return _assemble(
        source="store",
        window=window,
        first=first,
        last=last,
        bucket_s=bucket_s,
        total=summarize("*", found[0].get("*", {})),
        queue_groups=found[1],
        variant_groups=found[2],
        periods=periods,
        sentiment_split=False,
        declared=declared,
        policy=policy,
        slo_summaries=own,
    )


def _assemble(
    *,
    source: str,
    window: str,
    first: int,
    last: int,
    bucket_s: int,
    total: GroupSummary,
    queue_groups: Mapping[str, Mapping[str, int]],
    variant_groups: Mapping[str, Mapping[str, int]],
    periods: list[Period],
    sentiment_split: bool,
    declared: Mapping[str, Sequence[str]] | None,
    policy: Any,
    slo_summaries: Sequence[GroupSummary | None] | None = None,
) -> ReportData:
    queues = sorted(
        (summarize(key, counts) for key, counts in queue_groups.items()),
        key=lambda g: (-g.conversations, g.key),
    )
    declared_slos = _declared_slos(policy)
    return ReportData(
        source=source,
        window=window,
        start=first,
        end=last + bucket_s,
        period_s=periods[0].end - periods[0].start if periods else bucket_s,
        generated_at=time.time(),
        total=total,
        queues=queues,
        periods=periods,
        sentiment_split=sentiment_split,
        experiments=experiment_reports(
            {k: v for k, v in variant_groups.items() if k != NO_VARIANT}, declared
        ),
        slos=slo_rows(declared_slos, total, slo_summaries),
        slos_declared=bool(declared_slos),
    )


# -- SLOs (declared by the policy; read defensively: the schema is not ours) -------------------------

_METRIC_ALIASES = {
    "negative_exits": "negative_exit",
    "bot_loops": "bot_loop",
    "repeat_contacts": "repeat_contact",
    "escalations": "escalation",
    "contained": "containment",
    "resolved": "resolution",
    "abandoned": "abandonment",
    "churned": "churn",
    "transferred": "transfer",
}
_UPPER = ("max", "le", "at_most", "maximum", "below")
_LOWER = ("min", "ge", "at_least", "minimum", "above")


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _declared_slos(policy: Any) -> list[Any]:
    found = _get(policy, "slos") if policy is not None else None
    if found is None or isinstance(found, str | bytes):
        return []
    try:
        return list(found)
    except TypeError:
        return []


def _fraction(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number / 100 if number > 1 else number


def _slo_bounds(slo: Any) -> tuple[float | None, float | None]:
    """(upper, lower) bound of an SLO as fractions: ``bound``+``threshold`` (``routing.slo``), or
    ``max``/``min`` and their synonyms."""
    threshold = _fraction(_get(slo, "threshold"))
    bound = _get(slo, "bound")
    if threshold is not None and bound in ("max", "min"):
        return (threshold, None) if bound == "max" else (None, threshold)
    upper = next((f for f in (_fraction(_get(slo, key)) for key in _UPPER) if f is not None), None)
    lower = next((f for f in (_fraction(_get(slo, key)) for key in _LOWER) if f is not None), None)
    return upper, lower


def slo_window_s(slo: Any) -> int | None:
    """An SLO's window in seconds (``window_s``, or a ``window`` like ``1h``/``7d``), else None."""
    seconds = _get(slo, "window_s")
    if isinstance(seconds, int) and not isinstance(seconds, bool) and seconds > 0:
        return seconds
    window = _get(slo, "window")
    if isinstance(window, str) and window[:-1].isdigit() and window[-1:] in ("h", "d"):
        return int(window[:-1]) * (3600 if window.endswith("h") else 86400)
    return None


def _format_window(seconds: int | None) -> str:
    if seconds is None:
        return ""
    return f"{seconds // 86400}d" if seconds % 86400 == 0 else f"{math.ceil(seconds / 3600)}h"


def slo_rows(
    slos: Sequence[Any], total: GroupSummary, own: Sequence[GroupSummary | None] | None = None
) -> list[SloRow]:
    """One row per declared SLO: its rate against its bound, observed over the SLO's own window
    when ``own[i]`` holds that window's summary, else over the report window (``total``).

    Accepts objects or mappings with a ``metric`` (a rate of ``routing.insights.RATES``; the
    ``_rate`` and plural forms too) and a bound as ``bound`` (``max``/``min``) with
    ``threshold``, or as ``max``/``min`` (``le``/``ge``/``at_most``/``at_least``); a number
    above 1 is read as a percentage. ``id``/``name`` and ``window_s``/``window`` are optional.
    Anything the report cannot judge shows as ``unknown`` rather than failing the report."""
    rows = []
    for i, slo in enumerate(slos):
        raw_metric = str(_get(slo, "metric") or "")
        metric = raw_metric.removesuffix("_rate")
        metric = _METRIC_ALIASES.get(metric, metric)
        name = str(_get(slo, "id") or _get(slo, "name") or raw_metric or "slo")
        upper, lower = _slo_bounds(slo)
        parts = []
        if upper is not None:
            parts.append(f"≤ {upper:.1%}")
        if lower is not None:
            parts.append(f"≥ {lower:.1%}")
        summary = own[i] if own is not None and i < len(own) else None
        basis = "its window" if summary is not None else "report window"
        rate = (summary or total).rates.get(metric)
        observed = rate.value if rate is not None else None
        status = "unknown"
        if observed is not None and (upper is not None or lower is not None):
            breached = (upper is not None and observed > upper) or (lower is not None and observed < lower)
            status = "breached" if breached else "ok"
        rows.append(
            SloRow(
                name=name,
                metric=raw_metric or "?",
                objective=" and ".join(parts) or "?",
                window=_format_window(slo_window_s(slo)),
                observed=observed,
                status=status,
                basis=basis,
            )
        )
    return rows


# -- rendering ----------------------------------------------------------------------------------

_PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#59a14f",
    "#e15759",
    "#76b7b2",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)
_BAND_COLOURS = {"negative": "#e15759", "neutral": "#bab0ac", "positive": "#59a14f", "other": "#dfe3e8"}
_W = 760
_H = 240

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2933;margin:0;
background:#f5f7fa}
main{max-width:980px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:0 0 10px}
section{background:#fff;border:1px solid #e4e7eb;border-radius:8px;padding:16px 20px;margin:16px 0}
.meta{color:#616e7c;margin:0 0 8px}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #e4e7eb}
td.n,th.n{text-align:right}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;margin:6px 0;color:#3e4c59;font-size:12px}
.sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px;vertical-align:-1px}
.ok{color:#2f8132;font-weight:600}.breached{color:#c62828;font-weight:600}.unknown{color:#7b8794}
.sig{font-weight:600}.note{color:#616e7c;font-size:12px}
svg{display:block;max-width:100%;height:auto}
svg text{font:11px system-ui,sans-serif;fill:#3e4c59}
@media print{body{background:#fff}section{break-inside:avoid;border:none}}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _pct(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value * 100:.{digits}f}%"


def _rate_cell(rate: Rate) -> str:
    if rate.value is None:
        return "–"
    return f"{_pct(rate.value)} <span class=note>[{_pct(rate.low)}, {_pct(rate.high)}] n={rate.n}</span>"


def _ts(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _period_label(start: int, period_s: int) -> str:
    moment = datetime.fromtimestamp(start, UTC)
    return moment.strftime("%H:%M") if period_s < 86400 else moment.strftime("%m-%d")


def _legend(items: Sequence[tuple[str, str]]) -> str:
    spans = "".join(f'<span><i class=sw style="background:{c}"></i>{_e(label)}</span>' for label, c in items)
    return f"<div class=legend>{spans}</div>"


def _svg(body: str, height: int, label: str) -> str:
    return (
        f'<svg viewBox="0 0 {_W} {height}" width="{_W}" '
        f'height="{height}" role="img" aria-label="{_e(label)}">{body}</svg>'
    )


def _axis_ticks(periods: Sequence[Period], period_s: int, x0: float, step: float, y: float) -> str:
    every = max(1, math.ceil(len(periods) / 12))
    return "".join(
        f'<text x="{x0 + (i + 0.5) * step:.1f}" y="{y:.1f}" text-anchor="middle">'
        f"{_e(_period_label(p.start, period_s))}</text>"
        for i, p in enumerate(periods)
        if i % every == 0
    )


def _stacked_bars(
    periods: Sequence[Period],
    period_s: int,
    series: Sequence[tuple[str, str, Sequence[int]]],
    label: str,
    share: bool = False,
) -> str:
    """Stacked bars per period; ``share``: each bar scaled to 100% of its own total."""
    left, top, bottom = 48, 10, 24
    plot_h = _H - top - bottom
    totals = [sum(values[i] for _, _, values in series) for i in range(len(periods))]
    scale_max = 1.0 if share else float(max(totals, default=0) or 1)
    step = (_W - left - 8) / max(1, len(periods))
    width = max(1.0, step * 0.8)
    parts = [f'<line x1="{left}" y1="{top + plot_h}" x2="{_W - 8}" y2="{top + plot_h}" stroke="#9aa5b1"/>']
    for fraction in (0.5, 1.0):
        y = top + plot_h * (1 - fraction)
        tick = f"{fraction:.0%}" if share else f"{scale_max * fraction:.0f}"
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{_W - 8}" y2="{y:.1f}" stroke="#e4e7eb"/>'
            f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{tick}</text>'
        )
    for i, total in enumerate(totals):
        if not total:
            continue
        y = float(top + plot_h)
        x = left + i * step + (step - width) / 2
        for name, colour, values in series:
            value = values[i]
            if not value:
                continue
            h = plot_h * (value / total if share else value / scale_max)
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{h:.1f}" fill="{colour}">'
                f"<title>{_e(name)}: {value}{f' ({value / total:.0%})' if share else ''}</title></rect>"
            )
    parts.append(_axis_ticks(periods, period_s, left, step, _H - 8))
    return _svg("".join(parts), _H, label)


def _hbars(rows: Sequence[tuple[str, int, str]], label: str, of: int | None = None) -> str:
    """Horizontal bars (a funnel when each row is a subset of the previous), labelled with the
    count and its share of ``of`` (default the first row)."""
    left, row_h = 190, 28
    height = max(1, len(rows)) * row_h + 8
    base = of if of is not None else (rows[0][1] if rows else 0)
    top_value = max((n for _, n, _ in rows), default=0) or 1
    parts = []
    for i, (name, n, colour) in enumerate(rows):
        y = 4 + i * row_h
        w = (_W - left - 130) * n / top_value
        share = f" ({n / base:.1%})" if base else ""
        parts.append(
            f'<text x="{left - 8}" y="{y + 17}" text-anchor="end">{_e(name)}</text>'
            f'<rect x="{left}" y="{y + 4}" width="{w:.1f}" height="{row_h - 8}" fill="{colour}" rx="2"/>'
            f'<text x="{left + w + 6:.1f}" y="{y + 17}">{n}{share}</text>'
        )
    return _svg("".join(parts), height, label)


def _interval_chart(report: ExperimentReport, rate: str) -> str:
    """Each arm's rate as a dot with its 95% Wilson interval as an error bar, on a 0–100% axis."""
    left, row_h = 150, 26
    height = len(report.variants) * row_h + 30
    span = _W - left - 20

    def x(value: float) -> float:
        return left + span * value

    parts = [f'<text x="4" y="14">{_e(rate)}</text>']
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        parts.append(
            f'<line x1="{x(tick):.1f}" y1="18" x2="{x(tick):.1f}" y2="{height - 12}" stroke="#e4e7eb"/>'
            f'<text x="{x(tick):.1f}" y="{height - 1}" text-anchor="middle">{tick:.0%}</text>'
        )
    for i, arm in enumerate(report.variants):
        r = arm.summary.rates[rate]
        y = 30 + i * row_h
        name = f"{arm.variant} (control)" if arm.control else arm.variant
        parts.append(f'<text x="{left - 8}" y="{y + 4}" text-anchor="end">{_e(name)}</text>')
        if r.value is None or r.low is None or r.high is None:
            continue
        colour = "#7b8794" if arm.control else "#4e79a7"
        parts.append(
            f'<line x1="{x(r.low):.1f}" y1="{y}" x2="{x(r.high):.1f}" y2="{y}" '
            f'stroke="{colour}" stroke-width="2"/>'
            f'<line x1="{x(r.low):.1f}" y1="{y - 5}" x2="{x(r.low):.1f}" y2="{y + 5}" stroke="{colour}"/>'
            f'<line x1="{x(r.high):.1f}" y1="{y - 5}" x2="{x(r.high):.1f}" y2="{y + 5}" stroke="{colour}"/>'
            f'<circle cx="{x(r.value):.1f}" cy="{y}" r="4" fill="{colour}">'
            f"<title>{_e(name)}: {_pct(r.value)} [{_pct(r.low)}, {_pct(r.high)}]</title></circle>"
        )
    return _svg("".join(parts), height, f"{report.experiment}: {rate} per arm with 95% intervals")


def _summary_section(data: ReportData) -> str:
    t = data.total
    csat = t.csat
    csat_text = "–" if csat.value is None else f"{csat.value:.2f}"
    if csat.low is not None and csat.high is not None:
        csat_text += f" <span class=note>[{csat.low:.2f}, {csat.high:.2f}] n={csat.n}</span>"
    top_reason = next(iter(t.reasons.items()), None)
    rows = [
        ("conversations", "Conversations", str(t.conversations)),
        ("closed", "Closed", str(t.closed)),
        ("outcomes", "With an outcome", str(t.outcomes)),
        (
            "top_reason",
            "Top contact reason",
            "–" if top_reason is None else f"{_e(top_reason[0])} ({top_reason[1]})",
        ),
    ]
    rows += [(name, name.replace("_", " ").capitalize(), _rate_cell(t.rates[name])) for name in RATES]
    rows.append(("csat", "CSAT (1–5)", csat_text))
    handle = "–" if t.handle_time_s is None else f"{t.handle_time_s:.0f} s"
    rows.append(("handle_time_s", "Mean handle time", handle))
    body = "".join(
        f'<tr><th>{_e(label)}</th><td data-metric="{key}" '
        f'data-value="{_e(_raw_value(data, key))}">{value}</td></tr>'
        for key, label, value in rows
    )
    queue_rows = "".join(
        f"<tr><td>{_e(q.key)}</td><td class=n>{q.conversations}</td>"
        f"<td class=n>{_pct(q.rates['containment'].value)}</td>"
        f"<td class=n>{_pct(q.rates['escalation'].value)}</td>"
        f"<td class=n>{_pct(q.rates['negative_exit'].value)}</td></tr>"
        for q in data.queues
    )
    queues = (
        "<h2>Per queue</h2><table><tr><th>Queue</th><th class=n>Conversations</th>"
        "<th class=n>Containment</th><th class=n>Escalation</th><th class=n>Negative exits</th></tr>"
        f"{queue_rows}</table>"
        if data.queues
        else ""
    )
    return (
        '<section id="summary"><h2>Summary</h2><p class=note>Rates with 95% Wilson intervals; CSAT '
        "with a 95% t interval. Outcome rates (resolution … churn) are over conversations with an "
        f'outcome.</p><table class="summary">{body}</table>{queues}</section>'
    )


def _raw_value(data: ReportData, key: str) -> str:
    t = data.total
    if key in ("conversations", "closed", "outcomes"):
        return str(getattr(t, key))
    if key in t.rates:
        rate = t.rates[key]
        return f"{rate.successes}/{rate.n}"
    if key == "csat":
        return "" if t.csat.value is None else f"{t.csat.value:.4f}"
    if key == "handle_time_s":
        return "" if t.handle_time_s is None else f"{t.handle_time_s:.1f}"
    if key == "top_reason":
        return next(iter(t.reasons), "")
    return ""


def _reasons_section(data: ReportData) -> str:
    top = list(data.total.reasons)[:TOP_REASONS]
    series: list[tuple[str, str, list[int]]] = [
        (name, _PALETTE[i % len(_PALETTE)], [p.counts.get(f"reason:{name}", 0) for p in data.periods])
        for i, name in enumerate(top)
    ]
    if len(data.total.reasons) > len(top):
        rest = [
            sum(n for m, n in p.counts.items() if m.startswith("reason:") and m[7:] not in top)
            for p in data.periods
        ]
        series.append(("other", _PALETTE[-1], rest))
    unit = "hour" if data.period_s < 86400 else "day"
    return (
        f'<section id="reasons"><h2>Contact-reason mix per {unit}</h2>'
        f"{_legend([(name, colour) for name, colour, _ in series])}"
        f"{_stacked_bars(data.periods, data.period_s, series, 'contact-reason mix over time')}</section>"
    )


def _sentiment_section(data: ReportData) -> str:
    bands = SENTIMENT_BANDS if data.sentiment_split else ("negative", "other")
    names = {
        "negative": "ended negative",
        "neutral": "ended neutral",
        "positive": "ended positive",
        "other": "open or no customer sentiment" if data.sentiment_split else "did not end negative",
    }
    series = [(names[b], _BAND_COLOURS[b], [p.sentiment.get(b, 0) for p in data.periods]) for b in bands]
    note = (
        ""
        if data.sentiment_split
        else "<p class=note>The counters keep negative exits only; an export (--input) splits the rest.</p>"
    )
    unit = "hour" if data.period_s < 86400 else "day"
    return (
        f'<section id="sentiment"><h2>How conversations ended, share per {unit}</h2>{note}'
        f"{_legend([(name, colour) for name, colour, _ in series])}"
        f"{_stacked_bars(data.periods, data.period_s, series, 'sentiment bands', share=True)}</section>"
    )


def _funnel_section(data: ReportData) -> str:
    t = data.total
    counts = t.counts
    funnel = _hbars(
        [
            ("conversations", t.conversations, "#4e79a7"),
            ("stayed with the bot", counts.get("bot", 0), "#76b7b2"),
            ("resolved by the bot", counts.get("contained", 0), "#59a14f"),
        ],
        "containment funnel",
    )
    escalated = counts.get("escalated", 0)
    causes = [(cause, n, "#e15759") for cause, n in t.escalation_causes.items()]
    causes_svg = (
        _hbars(causes[:12], "escalations by cause", of=escalated)
        if causes
        else "<p class=note>No escalations in the window.</p>"
    )
    return (
        '<section id="funnel"><h2>Containment and escalation</h2>'
        f"{funnel}<h2>Escalations by cause ({escalated})</h2>{causes_svg}</section>"
    )


def _slo_section(data: ReportData) -> str:
    if not data.slos_declared:
        return '<section id="slos"><h2>SLO status</h2><p>No SLOs declared in the policy.</p></section>'
    rows = "".join(
        f"<tr><td>{_e(s.name)}</td><td>{_e(s.metric)}</td><td>{_e(s.objective)}</td>"
        f"<td>{_e(s.window)}</td><td class=n>{_pct(s.observed)} <span class=note>{_e(s.basis)}</span></td>"
        f'<td class="{_e(s.status)}">{_e(s.status)}</td></tr>'
        for s in data.slos
    )
    tiles = "".join(
        f'<rect x="{8 + i * 94}" y="4" width="86" height="28" rx="4" '
        f'fill="{ {"ok": "#59a14f", "breached": "#e15759"}.get(s.status, "#bab0ac") }">'
        f"<title>{_e(s.name)}: {_e(s.status)}</title></rect>"
        f'<text x="{51 + i * 94}" y="22" text-anchor="middle" style="fill:#fff">{_e(s.name[:12])}</text>'
        for i, s in enumerate(data.slos[:8])
    )
    return (
        '<section id="slos"><h2>SLO status</h2><p class=note>The rate over each SLO\'s window ending '
        "with the report (from the store) or over the report window (from an export); the service "
        "alerts on burn rates, which this snapshot does not replace.</p>"
        f"{_svg(tiles, 36, 'SLO status')}<table><tr><th>SLO</th><th>Metric</th><th>Objective</th>"
        f"<th>Window</th><th class=n>Observed</th><th>Status</th></tr>{rows}</table></section>"
    )


def _comparison_cell(c: Comparison | None, as_pct: bool = True) -> str:
    if c is None or c.difference is None:
        return "<td class=n>–</td><td class=n>–</td><td>–</td><td class=n>–</td>"

    def fmt(v: float | None) -> str:
        if v is None:
            return "–"
        return f"{v * 100:+.1f} pt" if as_pct else f"{v:+.2f}"

    p = "–" if c.p_value is None else f"{c.p_value:.3g}"
    significant = '<span class="sig">yes</span>' if c.significant else "no"
    needed = "–" if c.needed_per_arm is None else str(c.needed_per_arm)
    return (
        f"<td class=n>{fmt(c.difference)} <span class=note>[{fmt(c.low)}, {fmt(c.high)}]</span></td>"
        f"<td class=n>{p}</td><td>{significant}</td><td class=n>{needed}</td>"
    )


def _experiments_section(data: ReportData) -> str:
    if not data.experiments:
        return (
            '<section id="experiments"><h2>Experiments</h2>'
            "<p>No experiment has data in the window.</p></section>"
        )
    parts = ['<section id="experiments"><h2>Experiments</h2>']
    for report in data.experiments:
        parts.append(
            f"<h2>{_e(report.experiment)} <span class=note>control: {_e(report.control)}</span></h2>"
        )
        parts.extend(_interval_chart(report, rate) for rate in EXPERIMENT_CHART_RATES)
        rows = []
        for arm in report.variants:
            for rate in (*RATES, "csat"):
                if rate == "csat":
                    m = arm.summary.csat
                    value = "–" if m.value is None else f"{m.value:.2f}"
                    if m.low is not None and m.high is not None:
                        value += f" <span class=note>[{m.low:.2f}, {m.high:.2f}]</span>"
                    n = m.n
                else:
                    r = arm.summary.rates[rate]
                    value = _rate_cell(r)
                    n = r.n
                if not n:
                    continue
                versus = None if arm.control else arm.vs_control.get(rate)
                significant = str(bool(versus and versus.significant)).lower()
                rows.append(
                    f'<tr data-experiment="{_e(report.experiment)}" data-variant="{_e(arm.variant)}" '
                    f'data-rate="{rate}" data-significant="{significant}">'
                    f"<td>{_e(arm.variant)}{' (control)' if arm.control else ''}</td><td>{rate}</td>"
                    f"<td>{value}</td>{_comparison_cell(versus, rate != 'csat')}</tr>"
                )
        parts.append(
            "<table><tr><th>Arm</th><th>Measure</th><th>Value [95% CI]</th><th class=n>vs control "
            "[95% CI]</th><th class=n>p</th><th>Significant</th><th class=n>n per arm needed</th></tr>"
            f"{''.join(rows)}</table>"
        )
    parts.append("</section>")
    return "".join(parts)


def render_html(data: ReportData) -> str:
    """The whole report as one self-contained HTML document (inline CSS and SVG, nothing fetched)."""
    source = (
        "insights counters of the configured store" if data.source == "store" else "exported conversations"
    )
    sections = "".join(
        (
            _summary_section(data),
            _reasons_section(data),
            _sentiment_section(data),
            _funnel_section(data),
            _slo_section(data),
            _experiments_section(data),
        )
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Switchboard journey report, {_e(data.window)}</title><style>{_CSS}</style></head>"
        f"<body><main><h1>Switchboard journey report</h1>"
        f'<p class="meta">Window {_e(data.window)}: {_ts(data.start)} – {_ts(data.end)} · from the '
        f"{source} · generated {_ts(data.generated_at)}</p>{sections}"
        "</main></body></html>\n"
    )
