"""Journey insights, pure: what one conversation contributes to the counters, and the statistics.

A conversation contributes a fixed set of **cells** ``(dimension, value, metric) -> n`` to the
time bucket it started in: one cell per dimension (``all``, ``queue``, ``category``,
``variant``) for each metric it counts towards. The counter store keeps, per conversation, the
cells it last added; when the conversation changes (a new decision, a close, an outcome posted
or replaced) the store applies ``delta(old, new)``. Every counter therefore always equals the
sum over conversations of their *current* contribution, whatever order the updates arrived in,
and a query only adds up counters, never reads a conversation.

Metrics (per conversation, 0 or 1 unless noted):

* ``conversations``; ``closed``; ``reason:<category>`` (contact-reason mix);
* ``bot``: the current route is the bot; ``escalated``: it is a person, with
  ``cause:guardrail:<name>`` or ``cause:rule:<rule id>``;
* ``contained``: on the bot route and resolved: the outcome's ``resolved`` (and neither
  ``transferred`` nor ``abandoned``) when one was posted, else the decision's ``resolved``
  (the customer closed calmly);
* ``bot_loop`` (the bot-loop flag), ``repeat_contact`` (the customer's recent contacts reached
  the policy threshold), ``negative_exit`` (ended, i.e. closed or given an outcome, with the
  customer's last turn negative);
* with an outcome: ``outcomes``, ``resolved``, ``transferred``, ``abandoned``, ``churned``,
  ``recontact`` (``recontact_within_days`` given), ``csat_n``/``csat_sum``/``csat_sq`` and
  ``handle_n``/``handle_sum`` (whole seconds).

Statistics: Wilson score intervals for rates, Student-t intervals for the CSAT mean (from its
count, sum and sum of squares), a two-proportion z-test (pooled) and Welch's t-test against the
control, and the per-arm sample size that would detect the observed effect (two-sided
alpha 0.05, power 0.8). No I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from statistics import NormalDist
from typing import Annotated, TypeVar

import msgspec
from msgspec import Meta

from routing.decision import Decision
from routing.signals import ConversationSignals
from routing.types import BOT_ROUTE

__all__ = [
    "ALPHA",
    "BUCKET_S",
    "DIMENSIONS",
    "NO_VARIANT",
    "POWER",
    "RATES",
    "Cells",
    "Comparison",
    "ExperimentReport",
    "Facts",
    "GroupSummary",
    "Mean",
    "Outcome",
    "Rate",
    "VariantReport",
    "add_counts",
    "cells",
    "choose_control",
    "delta",
    "experiment_reports",
    "facts_from",
    "mean_interval",
    "proportion_sample_size",
    "summarize",
    "t_cdf",
    "t_quantile",
    "two_proportion_test",
    "variant_key",
    "welch_test",
    "wilson",
]

BUCKET_S = 3600
DIMENSIONS: tuple[str, ...] = ("all", "queue", "category", "variant")
ALL_KEY = "*"
NO_VARIANT = "none"
ALPHA = 0.05
POWER = 0.8
_Z95 = NormalDist().inv_cdf(0.975)

K = TypeVar("K")
Cell = tuple[str, str, str]
Cells = dict[Cell, int]

Label = Annotated[str, Meta(min_length=1, max_length=64)]


class Outcome(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """What the contact centre learnt after the conversation (``POST …/outcome`` body).

    Re-posting the same outcome changes nothing; a different one replaces it whole.
    """

    resolved: bool = False
    transferred: bool = False
    abandoned: bool = False
    churned: bool = False
    csat: Annotated[int, Meta(ge=1, le=5, description="Satisfaction score, 1 (worst) to 5.")] | None = None
    handle_time_s: (
        Annotated[float, Meta(ge=0, le=7 * 86400, description="Handle time in seconds.")] | None
    ) = None
    recontact_within_days: (
        Annotated[int, Meta(ge=0, le=365, description="The customer came back within this many days.")] | None
    ) = None
    labels: Annotated[list[Label], Meta(max_length=20)] = []


class Facts(msgspec.Struct, frozen=True):
    """What the counters need of a conversation's stored state (no text, no customer data)."""

    bucket: int
    queue: str
    category: str
    variant: str
    route: str
    cause: str | None = None
    resolved: bool = False
    bot_loop: bool = False
    repeat_contact: bool = False
    negative_last: bool = False
    closed: bool = False


def variant_key(experiment: str | None, variant: str | None) -> str:
    """The ``variant`` dimension's value: ``experiment/variant``, or ``none`` outside experiments."""
    if experiment is None or variant is None:
        return NO_VARIANT
    return f"{experiment}/{variant}"


def facts_from(
    decision: Decision | None,
    signals: ConversationSignals,
    created_at: float,
    closed: bool,
    bucket_s: int = BUCKET_S,
) -> Facts | None:
    """The facts of a conversation's state; ``None`` before its first decision (nothing to count)."""
    if decision is None:
        return None
    escalated = decision.route != BOT_ROUTE
    cause = None
    if escalated:
        cause = f"guardrail:{decision.guardrail}" if decision.guardrail else f"rule:{decision.rule}"
    return Facts(
        bucket=int(created_at // bucket_s) * bucket_s,
        queue=decision.queue,
        category=signals.reason.category,
        variant=variant_key(decision.experiment, decision.variant),
        route=decision.route,
        cause=cause,
        resolved=decision.resolved,
        bot_loop="bot_loop" in signals.flags,
        repeat_contact="repeat_contact" in decision.flags,
        negative_last=signals.customer.last_label == "negative",
        closed=closed,
    )


def _metrics(facts: Facts, outcome: Outcome | None) -> dict[str, int]:
    on_bot = facts.route == BOT_ROUTE
    ended = facts.closed or outcome is not None
    if outcome is not None:
        resolved = outcome.resolved and not outcome.transferred and not outcome.abandoned
    else:
        resolved = facts.resolved
    out = {
        "conversations": 1,
        f"reason:{facts.category}": 1,
        "closed": int(facts.closed),
        "bot": int(on_bot),
        "escalated": int(not on_bot),
        "contained": int(on_bot and resolved),
        "bot_loop": int(facts.bot_loop),
        "repeat_contact": int(facts.repeat_contact),
        "negative_exit": int(ended and facts.negative_last),
    }
    if facts.cause is not None:
        out[f"cause:{facts.cause}"] = 1
    if outcome is not None:
        out.update(
            outcomes=1,
            resolved=int(outcome.resolved),
            transferred=int(outcome.transferred),
            abandoned=int(outcome.abandoned),
            churned=int(outcome.churned),
            recontact=int(outcome.recontact_within_days is not None),
        )
        if outcome.csat is not None:
            out.update(csat_n=1, csat_sum=outcome.csat, csat_sq=outcome.csat * outcome.csat)
        if outcome.handle_time_s is not None:
            out.update(handle_n=1, handle_sum=round(outcome.handle_time_s))
    return {metric: n for metric, n in out.items() if n}


def cells(facts: Facts | None, outcome: Outcome | None) -> Cells:
    """The cells one conversation contributes to its bucket (empty without facts)."""
    if facts is None:
        return {}
    values = {"all": ALL_KEY, "queue": facts.queue, "category": facts.category, "variant": facts.variant}
    return {
        (dim, values[dim], metric): n for metric, n in _metrics(facts, outcome).items() for dim in DIMENSIONS
    }


def delta(old: Mapping[K, int], new: Mapping[K, int]) -> dict[K, int]:
    """``new - old``, without the zero entries: what to add to the counters for a change."""
    out = dict(new)
    for cell, n in old.items():
        out[cell] = out.get(cell, 0) - n
    return {cell: n for cell, n in out.items() if n}


# -- statistics ---------------------------------------------------------------------------------


class Rate(msgspec.Struct, frozen=True):
    """A proportion ``successes / n`` with its 95% Wilson score interval (``None`` when n = 0)."""

    successes: int
    n: int
    value: float | None
    low: float | None
    high: float | None


class Mean(msgspec.Struct, frozen=True):
    """A mean with its 95% Student-t interval (``low``/``high`` ``None`` below two observations)."""

    n: int
    value: float | None
    low: float | None
    high: float | None
    sd: float | None = None


class Comparison(msgspec.Struct, frozen=True):
    """A variant against the control: difference (variant - control), its 95% interval, the
    test's p-value, significance at 0.05, and the per-arm sample size that would detect the
    observed difference with 80% power (``None`` when there is no difference to detect)."""

    difference: float | None
    low: float | None
    high: float | None
    p_value: float | None
    significant: bool
    needed_per_arm: int | None


def wilson(successes: int, n: int, z: float = _Z95) -> Rate:
    """The Wilson score interval (95% by default) of ``successes`` out of ``n``."""
    if n <= 0:
        return Rate(successes=successes, n=n, value=None, low=None, high=None)
    p = successes / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if successes <= 0 else max(0.0, center - half)
    high = 1.0 if successes >= n else min(1.0, center + half)
    return Rate(successes=successes, n=n, value=p, low=low, high=high)


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularised incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1, a - 1
    c, d = 1.0, 1 - qab * x / qap
    d = 1 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1 + aa * d
        d = 1 / (d if abs(d) > tiny else tiny)
        c = 1 + aa / c if abs(1 + aa / c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1 + aa * d
        d = 1 / (d if abs(d) > tiny else tiny)
        c = 1 + aa / c if abs(1 + aa / c) > tiny else tiny
        step = d * c
        h *= step
        if abs(step - 1) < 1e-14:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    front = math.exp(
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1) / (a + b + 2):
        return front * _betacf(a, b, x) / a
    return 1 - front * _betacf(b, a, 1 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` (> 0) degrees of freedom."""
    tail = 0.5 * _betainc(df / 2, 0.5, df / (df + t * t))
    return 1 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile (0 < p < 1) of Student's t with ``df`` degrees of freedom.

    Newton's method on the CDF from the normal quantile: for p > 0.5 the CDF is concave beyond
    the start, so the iterates rise monotonically to the root (a few steps, no overshoot)."""
    if not 0 < p < 1:
        raise ValueError("p must be in (0, 1)")
    if p < 0.5:
        return -t_quantile(1 - p, df)
    if p == 0.5:
        return 0.0
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    t = NormalDist().inv_cdf(p)
    for _ in range(100):
        density = math.exp(log_norm - (df + 1) / 2 * math.log1p(t * t / df))
        step = (t_cdf(t, df) - p) / density
        t -= step
        if abs(step) < 1e-10 * max(1.0, abs(t)):
            break
    return t


def mean_interval(n: int, total: float, squares: float) -> Mean:
    """Mean and 95% t interval from a count, a sum and a sum of squares."""
    if n <= 0:
        return Mean(n=n, value=None, low=None, high=None)
    mean = total / n
    if n < 2:
        return Mean(n=n, value=mean, low=None, high=None)
    var = max(0.0, (squares - n * mean * mean) / (n - 1))
    sd = math.sqrt(var)
    half = t_quantile(0.975, n - 1) * sd / math.sqrt(n)
    return Mean(n=n, value=mean, low=mean - half, high=mean + half, sd=sd)


def proportion_sample_size(p1: float, p2: float, alpha: float = ALPHA, power: float = POWER) -> int | None:
    """Per-arm n for a two-sided two-proportion z-test to detect ``p1`` vs ``p2``; None if equal."""
    if p1 == p2:
        return None
    z_a = NormalDist().inv_cdf(1 - alpha / 2)
    z_b = NormalDist().inv_cdf(power)
    mean = (p1 + p2) / 2
    root = z_a * math.sqrt(2 * mean * (1 - mean)) + z_b * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return math.ceil(root * root / ((p1 - p2) ** 2))


def two_proportion_test(control: Rate, variant: Rate, alpha: float = ALPHA) -> Comparison:
    """Pooled two-proportion z-test of ``variant`` against ``control`` (two-sided), with the
    difference's 95% Wald interval and the sample size for the observed effect."""
    if not control.n or not variant.n or control.value is None or variant.value is None:
        return Comparison(None, None, None, None, False, None)
    diff = variant.value - control.value
    pooled = (control.successes + variant.successes) / (control.n + variant.n)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / control.n + 1 / variant.n))
    p_value = 1.0 if se0 == 0 else math.erfc(abs(diff) / se0 / math.sqrt(2))
    se = math.sqrt(
        control.value * (1 - control.value) / control.n + variant.value * (1 - variant.value) / variant.n
    )
    return Comparison(
        difference=diff,
        low=diff - _Z95 * se,
        high=diff + _Z95 * se,
        p_value=p_value,
        significant=p_value < alpha,
        needed_per_arm=proportion_sample_size(control.value, variant.value, alpha),
    )


def welch_test(control: Mean, variant: Mean, alpha: float = ALPHA) -> Comparison:
    """Welch's t-test of ``variant``'s mean against ``control``'s (two-sided), with the
    difference's 95% interval and the per-arm sample size for the observed effect."""
    if control.sd is None or variant.sd is None or control.value is None or variant.value is None:
        return Comparison(None, None, None, None, False, None)
    diff = variant.value - control.value
    v1, v2 = control.sd**2 / control.n, variant.sd**2 / variant.n
    se = math.sqrt(v1 + v2)
    if se == 0:
        return Comparison(diff, diff, diff, 1.0 if diff == 0 else 0.0, diff != 0, None)
    df = (v1 + v2) ** 2 / (v1 * v1 / (control.n - 1) + v2 * v2 / (variant.n - 1))
    p_value = 2 * (1 - t_cdf(abs(diff) / se, df))
    half = t_quantile(0.975, df) * se
    needed = None
    if diff != 0:
        z = NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(POWER)
        pooled_var = (control.sd**2 + variant.sd**2) / 2
        needed = math.ceil(2 * z * z * pooled_var / (diff * diff))
    return Comparison(diff, diff - half, diff + half, p_value, p_value < alpha, needed)


# -- summaries ----------------------------------------------------------------------------------

# rate name -> (numerator metric, denominator metric)
RATES: dict[str, tuple[str, str]] = {
    "containment": ("contained", "conversations"),
    "escalation": ("escalated", "conversations"),
    "bot_loop": ("bot_loop", "conversations"),
    "repeat_contact": ("repeat_contact", "conversations"),
    "negative_exit": ("negative_exit", "conversations"),
    "resolution": ("resolved", "outcomes"),
    "transfer": ("transferred", "outcomes"),
    "abandonment": ("abandoned", "outcomes"),
    "recontact": ("recontact", "outcomes"),
    "churn": ("churned", "outcomes"),
}


class GroupSummary(msgspec.Struct, frozen=True):
    """One group's aggregates: counts, rates with 95% intervals, reason mix, escalation causes,
    CSAT (mean, 95% t interval) and mean handle time."""

    key: str
    conversations: int
    closed: int
    outcomes: int
    rates: dict[str, Rate]
    reasons: dict[str, int]
    escalation_causes: dict[str, int]
    csat: Mean
    handle_time_s: float | None
    counts: dict[str, int]


def summarize(key: str, counts: Mapping[str, int]) -> GroupSummary:
    """The summary of one group's summed counters."""
    reasons = {m.removeprefix("reason:"): n for m, n in counts.items() if m.startswith("reason:") and n}
    causes = {m.removeprefix("cause:"): n for m, n in counts.items() if m.startswith("cause:") and n}
    plain = {m: n for m, n in counts.items() if ":" not in m}
    handle_n = plain.get("handle_n", 0)
    return GroupSummary(
        key=key,
        conversations=plain.get("conversations", 0),
        closed=plain.get("closed", 0),
        outcomes=plain.get("outcomes", 0),
        rates={name: wilson(plain.get(num, 0), plain.get(den, 0)) for name, (num, den) in RATES.items()},
        reasons=dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
        escalation_causes=dict(sorted(causes.items(), key=lambda kv: (-kv[1], kv[0]))),
        csat=mean_interval(plain.get("csat_n", 0), plain.get("csat_sum", 0), plain.get("csat_sq", 0)),
        handle_time_s=plain.get("handle_sum", 0) / handle_n if handle_n else None,
        counts=dict(sorted(plain.items())),
    )


class VariantReport(msgspec.Struct, frozen=True):
    """One arm: its summary and, except for the control, its comparison per rate and for CSAT."""

    variant: str
    control: bool
    summary: GroupSummary
    vs_control: dict[str, Comparison]


class ExperimentReport(msgspec.Struct, frozen=True):
    """One experiment: its control arm and every arm's outcome rates against it."""

    experiment: str
    control: str
    variants: list[VariantReport]


def choose_control(variants: Sequence[str], declared: Sequence[str] = ()) -> str:
    """The control arm: one named ``control`` or ``holdout`` (case-insensitive), else the first of
    the policy's variants (``declared``, file order) that has data, else the first by name."""
    for name in variants:
        if name.lower() in ("control", "holdout"):
            return name
    for name in declared:
        if name in variants:
            return name
    return sorted(variants)[0]


def experiment_reports(
    groups: Mapping[str, Mapping[str, int]], declared: Mapping[str, Sequence[str]] | None = None
) -> list[ExperimentReport]:
    """Reports for every experiment with data in the ``variant`` dimension's ``groups``
    (``experiment/variant`` -> counters). ``declared`` maps an experiment id to its variants in
    policy order (the control choice falls back to the first)."""
    declared = declared or {}
    arms: dict[str, dict[str, Mapping[str, int]]] = {}
    for key, counts in groups.items():
        if key == NO_VARIANT or "/" not in key:
            continue
        experiment, variant = key.split("/", 1)
        arms.setdefault(experiment, {})[variant] = counts
    reports = []
    for experiment in sorted(arms):
        by_variant = arms[experiment]
        order = list(declared.get(experiment, ()))
        names = [v for v in order if v in by_variant] + sorted(v for v in by_variant if v not in order)
        control = choose_control(names, order)
        summaries = {name: summarize(name, by_variant[name]) for name in names}
        base = summaries[control]
        variants = []
        for name in names:
            summary = summaries[name]
            versus: dict[str, Comparison] = {}
            if name != control:
                versus = {rate: two_proportion_test(base.rates[rate], summary.rates[rate]) for rate in RATES}
                versus["csat"] = welch_test(base.csat, summary.csat)
            variants.append(
                VariantReport(variant=name, control=name == control, summary=summary, vs_control=versus)
            )
        reports.append(ExperimentReport(experiment=experiment, control=control, variants=variants))
    return reports


def add_counts(target: dict[str, dict[str, int]], rows: Iterable[tuple[str, str, int]]) -> None:
    """Sum ``(value, metric, n)`` rows into ``target[value][metric]``."""
    for value, metric, n in rows:
        group = target.setdefault(value, {})
        group[metric] = group.get(metric, 0) + n
