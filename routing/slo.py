"""Friction SLOs, pure: declarations, multi-window multi-burn-rate evaluation, alert rules.

An SLO bounds one journey rate of the insights counters (``routing.insights.RATES``) over a
window: ``negative_exit_rate <= 0.15`` over ``1h``, ``containment_rate >= 0.50`` over ``24h``.
Its **error budget** is the share of conversations allowed to be "bad": ``max`` for an upper
bound, ``1 - min`` for a lower one (a conversation that was *not* contained is bad). The
**burn rate** over a window is the bad share there divided by the budget: 1 means exactly at
the bound, 2 means twice the allowed friction.

Alerting follows the Google SRE workbook's multi-window, multi-burn-rate scheme, scaled to the
SLO's own window ``W`` (the workbook's is 30 days): a tier fires when the burn rate exceeds its
factor over *both* a long window and a short one (long / 12), so it fires fast on a real
problem and stops soon after the problem does. The tiers are the workbook's:

=========  ===========  ============  ======
severity   long window  short window  factor
=========  ===========  ============  ======
page       W / 720      long / 12     14.4
page       W / 120      long / 12     6
ticket     W / 10       long / 12     1
=========  ===========  ============  ======

adapted in two ways. Windows are rounded *up* to whole counter buckets (an hour: the counters'
resolution) and never exceed ``W``; a longer window at the same factor only fires later, never
sooner. A tier whose factor no rate can reach (the bad share is at most 1, so the burn rate at
most ``1 / budget``) is left out: with ``max = 0.15`` the 14.4x tier would never fire. The
ticket tier (factor 1) is always there: the SLO is breached when its bound is crossed over a
tenth of its window and still crossed now.

State: an SLO is ``ok`` or ``breached``. It becomes breached when any tier fires, and
recovers only when no tier is still burning at ``RECOVERY_RATIO`` (90%) of its factor over
both its windows (hysteresis), so a rate hovering at the bound emits one breach, not a
flapping series. Each transition increments ``seq``; odd numbers are breaches, even ones
recoveries, so ``(slo, seq)`` names an event exactly once. No I/O.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

import msgspec

from routing.conditions import describe_kind

__all__ = [
    "BUCKET_S",
    "EVENT_BREACHED",
    "EVENT_RECOVERED",
    "METRICS",
    "MIN_EVENTS",
    "RECOVERY_RATIO",
    "SLO",
    "WORKBOOK_TIERS",
    "Evaluation",
    "SloState",
    "Tier",
    "TierResult",
    "Transition",
    "WindowBurn",
    "alert_rules",
    "alert_rules_yaml",
    "evaluate",
    "format_window",
    "next_state",
    "parse_slos",
    "parse_window",
    "tiers",
    "windows",
]

EVENT_BREACHED = "slo.breached"
EVENT_RECOVERED = "slo.recovered"
# Below this many conversations in the long window a tier does not fire: one angry customer
# at 3 a.m. is not a 100% negative-exit rate worth paging for.
MIN_EVENTS = 10
RECOVERY_RATIO = 0.9
MAX_WINDOW_S = 90 * 86400
# (severity, long window as a fraction of the SLO window, burn-rate factor); short = long / 12.
WORKBOOK_TIERS: tuple[tuple[str, float, float], ...] = (
    ("page", 1 / 720, 14.4),
    ("page", 1 / 120, 6.0),
    ("ticket", 1 / 10, 1.0),
)
_SEVERITY_RANK = {"ticket": 1, "page": 2}

# The policy schema imports this module and routing.insights imports the policy, so the names are
# repeated here (a test keeps them equal to routing.insights.RATES and BUCKET_S).
BUCKET_S = 3600
# metric name -> (numerator counter, denominator counter): ``<rate>_rate`` for every insights rate.
METRICS: dict[str, tuple[str, str]] = {
    "containment_rate": ("contained", "conversations"),
    "escalation_rate": ("escalated", "conversations"),
    "bot_loop_rate": ("bot_loop", "conversations"),
    "repeat_contact_rate": ("repeat_contact", "conversations"),
    "negative_exit_rate": ("negative_exit", "conversations"),
    "resolution_rate": ("resolved", "outcomes"),
    "transfer_rate": ("transferred", "outcomes"),
    "abandonment_rate": ("abandoned", "outcomes"),
    "recontact_rate": ("recontact", "outcomes"),
    "churn_rate": ("churned", "outcomes"),
}
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_WINDOW = re.compile(r"^([1-9][0-9]{0,4})([hd])$")
_OBJECTIVE = re.compile(r"^\s*([a-z_]+)\s*(<=|>=)\s*([0-9]*\.?[0-9]+)\s*(%?)\s*$")
_KEYS = ("id", "description", "objective", "metric", "max", "min", "window", "min_events")


class SLO(msgspec.Struct, frozen=True):
    """One friction SLO: ``metric`` (a key of ``METRICS``) must stay at most (``bound = "max"``)
    or at least (``"min"``) ``threshold`` over ``window_s``, judged once the long window holds
    ``min_events`` conversations."""

    id: str
    metric: str
    bound: Literal["max", "min"]
    threshold: float
    window_s: int
    min_events: int = MIN_EVENTS
    description: str = ""

    @property
    def budget(self) -> float:
        """The allowed bad share: ``threshold`` for a maximum, ``1 - threshold`` for a minimum."""
        return self.threshold if self.bound == "max" else 1.0 - self.threshold

    @property
    def objective(self) -> str:
        """The SLO as text, e.g. ``negative_exit_rate <= 0.15``."""
        return f"{self.metric} {'<=' if self.bound == 'max' else '>='} {self.threshold:g}"

    def bad_and_total(self, counts: Mapping[str, int]) -> tuple[int, int]:
        """Bad conversations and all of them in summed counters (``metric -> n``)."""
        numerator, denominator = METRICS[self.metric]
        total = max(0, counts.get(denominator, 0))
        hits = min(total, max(0, counts.get(numerator, 0)))
        return (hits if self.bound == "max" else total - hits), total


class Tier(msgspec.Struct, frozen=True):
    """One alert condition: burn rate above ``factor`` over both ``long_s`` and ``short_s``."""

    severity: str
    long_s: int
    short_s: int
    factor: float


def format_window(seconds: int) -> str:
    """``3600`` -> ``1h``, ``172800`` -> ``2d`` (whole days as days, else hours, else seconds)."""
    if seconds % 86400 == 0:
        return f"{seconds // 86400}d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    return f"{seconds}s"


def parse_window(text: str) -> int | None:
    """Seconds in ``<n>h`` / ``<n>d`` (at most 90 days); None when malformed or too long."""
    match = _WINDOW.match(text)
    if not match:
        return None
    seconds = int(match.group(1)) * (3600 if match.group(2) == "h" else 86400)
    return seconds if seconds <= MAX_WINDOW_S else None


def _round_up(seconds: float, bucket_s: int) -> int:
    return max(1, math.ceil(seconds / bucket_s - 1e-9)) * bucket_s


def tiers(slo: SLO, bucket_s: int = BUCKET_S) -> tuple[Tier, ...]:
    """The SLO's alert tiers (module docstring): reachable ones only, windows in whole buckets."""
    out: list[Tier] = []
    reachable = 1.0 / slo.budget
    for severity, fraction, factor in WORKBOOK_TIERS:
        if factor >= reachable:
            continue
        long_s = min(slo.window_s, _round_up(slo.window_s * fraction, bucket_s))
        short_s = min(long_s, _round_up(long_s / 12, bucket_s))
        tier = Tier(severity=severity, long_s=long_s, short_s=short_s, factor=factor)
        if tier not in out:
            out.append(tier)
    return tuple(out)


def windows(slos: Iterable[SLO], bucket_s: int = BUCKET_S) -> list[int]:
    """Every window (seconds, ascending) the SLOs' tiers read: what to query once per evaluation."""
    return sorted({w for slo in slos for t in tiers(slo, bucket_s) for w in (t.long_s, t.short_s)})


class WindowBurn(msgspec.Struct, frozen=True):
    """One window's bad and total conversations and burn rate (None without conversations)."""

    window: str
    window_s: int
    bad: int
    total: int
    burn_rate: float | None


class TierResult(msgspec.Struct, frozen=True):
    """A tier's verdict: ``firing`` over its factor, ``holding`` over ``RECOVERY_RATIO`` of it."""

    tier: Tier
    firing: bool
    holding: bool


class Evaluation(msgspec.Struct, frozen=True):
    """An SLO at one instant: the burn rate per window and each tier's verdict."""

    slo: str
    burns: dict[str, WindowBurn]
    tiers: tuple[TierResult, ...]

    @property
    def firing(self) -> bool:
        """Some tier fires: an ok SLO becomes breached."""
        return any(t.firing for t in self.tiers)

    @property
    def holding(self) -> bool:
        """Some tier still burns near its factor: a breached SLO stays breached."""
        return any(t.holding for t in self.tiers)

    @property
    def severity(self) -> str | None:
        """The highest severity firing (``page`` over ``ticket``), None when none fires."""
        firing = [t.tier.severity for t in self.tiers if t.firing]
        return max(firing, key=lambda s: _SEVERITY_RANK.get(s, 0)) if firing else None


def evaluate(slo: SLO, counts: Mapping[int, Mapping[str, int]], bucket_s: int = BUCKET_S) -> Evaluation:
    """Judge ``slo`` from ``counts``: window seconds -> summed ``all``-dimension counters over the
    last that many seconds (every window of ``windows([slo])`` must be present)."""
    burns: dict[int, WindowBurn] = {}
    slo_tiers = tiers(slo, bucket_s)
    for window_s in sorted({w for t in slo_tiers for w in (t.long_s, t.short_s)}):
        bad, total = slo.bad_and_total(counts[window_s])
        burn = bad / total / slo.budget if total else None
        burns[window_s] = WindowBurn(format_window(window_s), window_s, bad, total, burn)

    def above(tier: Tier, ratio: float) -> bool:
        long, short = burns[tier.long_s], burns[tier.short_s]
        if long.total < slo.min_events or long.burn_rate is None or short.burn_rate is None:
            return False
        return long.burn_rate > tier.factor * ratio and short.burn_rate > tier.factor * ratio

    results = tuple(
        TierResult(tier=t, firing=above(t, 1.0), holding=above(t, RECOVERY_RATIO)) for t in slo_tiers
    )
    return Evaluation(slo=slo.id, burns={b.window: b for b in burns.values()}, tiers=results)


class SloState(msgspec.Struct, frozen=True):
    """What is shared between replicas per SLO: ``ok``/``breached``, the transition count, since
    when, and whether the last transition's event is stored yet (``announced``: the service
    claims a transition first, then stores its event, so exactly one replica announces it)."""

    state: Literal["ok", "breached"] = "ok"
    seq: int = 0
    since: float = 0.0
    severity: str | None = None
    announced: bool = True


class Transition(msgspec.Struct, frozen=True):
    """A state change to announce once: ``event`` is ``slo.breached`` or ``slo.recovered``."""

    slo: str
    event: str
    seq: int
    at: float
    severity: str | None


def next_state(state: SloState, evaluation: Evaluation, now: float) -> tuple[SloState, Transition | None]:
    """The state after ``evaluation`` and the transition to announce (None: nothing changed).

    ok -> breached when a tier fires; breached -> ok (``slo.recovered``) only once no tier holds
    at ``RECOVERY_RATIO`` of its factor; anything else keeps the state (and its ``since``)."""
    if state.state == "ok" and evaluation.firing:
        seq = state.seq + 1
        new = SloState(state="breached", seq=seq, since=now, severity=evaluation.severity)
        return new, Transition(evaluation.slo, EVENT_BREACHED, seq, now, evaluation.severity)
    if state.state == "breached" and not evaluation.holding:
        seq = state.seq + 1
        recovered = Transition(evaluation.slo, EVENT_RECOVERED, seq, now, None)
        return SloState(state="ok", seq=seq, since=now), recovered
    return state, None


# -- declarations ---------------------------------------------------------------------------------


def _metric_name(name: str) -> str | None:
    """``negative_exits``, ``negative_exit`` and ``negative_exit_rate`` all name one metric."""
    for candidate in (name, f"{name}_rate", f"{name.removesuffix('s')}_rate"):
        if candidate in METRICS:
            return candidate
    return None


def _fraction(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if 0 < value < 1 else None


def parse_slos(raw: object, err: Callable[[str, str, str], None]) -> tuple[SLO, ...]:
    """The policy's ``[[slos]]`` array; every problem goes to ``err(where, field, problem)`` with
    ``where`` naming the SLO (``slo 'id'``, or ``slo #n`` before its id is known).

    Each SLO has an ``id``, a ``window`` (``<n>h``/``<n>d``, at most 90d), an optional
    ``description`` and ``min_events`` (default 10), and either ``objective = "metric <= 0.15"``
    (``>=`` for a minimum; ``15%`` also reads as 0.15) or ``metric`` with exactly one of
    ``max``/``min``, a number strictly between 0 and 1."""
    if not isinstance(raw, list):
        err("", "slos", f"must be an array of tables ([[slos]]), got {describe_kind(raw)}")
        return ()
    out: list[SLO] = []
    seen: set[str] = set()
    known = ", ".join(sorted(METRICS))
    for number, body in enumerate(raw, start=1):
        where = f"slo #{number}"
        if not isinstance(body, dict):
            err(where, "slos", f"each SLO must be a table, got {describe_kind(body)}")
            continue
        slo_id = body.get("id")
        ok = True
        if isinstance(slo_id, str) and _ID.match(slo_id):
            where = f"slo '{slo_id}'"
            if slo_id in seen:
                err(where, "id", "duplicate SLO id")
                ok = False
            seen.add(slo_id)
        else:
            err(where, "id", "missing required field" if slo_id is None else f"invalid id {slo_id!r}")
            ok = False
        for key in body:
            if key not in _KEYS:
                err(where, key, f"unknown field (expected one of {', '.join(_KEYS)})")
                ok = False
        metric, bound, threshold = _target(body, where, err, known)
        window = body.get("window")
        window_s = parse_window(window) if isinstance(window, str) else None
        if window is None:
            err(where, "window", "missing required field")
        elif window_s is None:
            err(where, "window", f"must be <n>h or <n>d, at most 90d, got {window!r}")
        min_events = body.get("min_events", MIN_EVENTS)
        if not isinstance(min_events, int) or isinstance(min_events, bool) or not 0 < min_events <= 10**6:
            err(where, "min_events", f"must be an integer from 1 to 1000000, got {min_events!r}")
            ok = False
        description = body.get("description", "")
        if not isinstance(description, str):
            err(where, "description", f"must be a string, got {describe_kind(description)}")
            ok = False
        if ok and metric is not None and bound is not None and threshold is not None and window_s is not None:
            assert isinstance(slo_id, str) and isinstance(description, str)
            out.append(SLO(slo_id, metric, bound, threshold, window_s, min_events, description))
    return tuple(out)


def _target(
    body: Mapping[str, Any], where: str, err: Callable[[str, str, str], None], known: str
) -> tuple[str | None, Literal["max", "min"] | None, float | None]:
    """The metric, bound and threshold from ``objective`` or ``metric`` + ``max``/``min``."""
    if "objective" in body:
        if any(k in body for k in ("metric", "max", "min")):
            err(where, "objective", "give either objective or metric with max/min, not both")
            return None, None, None
        text = body["objective"]
        match = _OBJECTIVE.match(text) if isinstance(text, str) else None
        if match is None:
            err(where, "objective", f"must read '<metric> <= <number>' or '>=', got {text!r}")
            return None, None, None
        name, op, number, percent = match.groups()
        metric = _metric_name(name)
        if metric is None:
            err(where, "objective", f"unknown metric {name!r} (known: {known})")
        value = float(number) / (100 if percent else 1)
        threshold = _fraction(value)
        if threshold is None:
            err(where, "objective", f"the bound must be strictly between 0 and 1, got {number}{percent}")
        bound: Literal["max", "min"] = "max" if op == "<=" else "min"
        return metric, bound, threshold
    raw_metric = body.get("metric")
    metric = None
    if raw_metric is None:
        err(where, "metric", "missing required field (or give objective)")
    elif not isinstance(raw_metric, str) or (metric := _metric_name(raw_metric)) is None:
        err(where, "metric", f"unknown metric {raw_metric!r} (known: {known})")
    bounds = [k for k in ("max", "min") if k in body]
    if len(bounds) != 1:
        err(where, "max", "give exactly one of max or min" if bounds else "missing max or min")
        return metric, None, None
    key = bounds[0]
    threshold = _fraction(body[key])
    if threshold is None:
        err(where, key, f"must be a number strictly between 0 and 1, got {body[key]!r}")
    return metric, ("max" if key == "max" else "min"), threshold


# -- Prometheus alert rules -----------------------------------------------------------------------

BURN_METRIC = "switchboard_slo_burn_rate"


def _selector(slo: SLO, window_s: int) -> str:
    labels = f'slo={json.dumps(slo.id)},window="{format_window(window_s)}"'
    # Every replica exports the same burn rates (read from the shared store): max folds them.
    return f"max by (slo) ({BURN_METRIC}{{{labels}}})"


def alert_rules(slos: Sequence[SLO], *, for_: str = "2m", bucket_s: int = BUCKET_S) -> dict[str, Any]:
    """A Prometheus rule file (``groups[].rules[]``) alerting on the service's
    ``switchboard_slo_burn_rate{slo,window}`` gauges: one rule per SLO tier, ``alert``,
    ``expr``, ``for``, ``labels`` (``severity``, ``slo``) and ``annotations``."""
    rules: list[dict[str, Any]] = []
    for slo in slos:
        for tier in tiers(slo, bucket_s):
            long_w, short_w = format_window(tier.long_s), format_window(tier.short_s)
            expr = f"{_selector(slo, tier.long_s)} > {tier.factor:g}"
            if tier.short_s != tier.long_s:
                expr += f" and {_selector(slo, tier.short_s)} > {tier.factor:g}"
            rules.append(
                {
                    "alert": "SwitchboardSLOBurnRate",
                    "expr": expr,
                    "for": for_,
                    "labels": {"severity": tier.severity, "slo": slo.id},
                    "annotations": {
                        "summary": f"SLO {slo.id} ({slo.objective} over {format_window(slo.window_s)}): "
                        f"error budget burning over {tier.factor:g}x",
                        "description": f"Burn rate above {tier.factor:g} over {long_w}"
                        + (f" and {short_w}. " if short_w != long_w else ". ")
                        + (slo.description or "See GET /v1/insights for the breakdown."),
                    },
                }
            )
    return {"groups": [{"name": "switchboard-slos", "rules": rules}]}


def _yaml(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                lines.append(f"{pad}{key}:")
                lines.extend(_yaml(item, indent + 2))
            else:
                lines.append(f"{pad}{key}: {_scalar(item)}")
    else:
        for item in value:
            nested = _yaml(item, indent + 2)
            lines.append(f"{pad}- {nested[0].lstrip()}" if nested else f"{pad}- []")
            lines.extend(nested[1:])
    return lines


def _scalar(value: Any) -> str:
    # JSON strings are valid YAML double-quoted scalars; numbers and booleans read the same.
    return json.dumps(value, ensure_ascii=False)


def alert_rules_yaml(slos: Sequence[SLO], *, for_: str = "2m", bucket_s: int = BUCKET_S) -> str:
    """``alert_rules`` as YAML text (a Prometheus ``rule_files`` entry), stable for review diffs."""
    header = "# Generated by `switchboard slo rules` from the policy's [[slos]]; do not edit.\n"
    return header + "\n".join(_yaml(alert_rules(slos, for_=for_, bucket_s=bucket_s), 0)) + "\n"
