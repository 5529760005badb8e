"""Churn risk: a documented heuristic, not a trained or calibrated model.

The score ranks conversations by how likely they are to end with a lost
customer worth keeping. It combines the conversation's behavioural signals
with a noisy-OR (each signal alone can raise the risk, several together raise
it further but never past 1) and then scales by tenure and customer value::

    behaviour = 1 - prod_i (1 - w_i * x_i)
    risk      = min(1, behaviour * tenure_factor * value_factor)

``x_i`` in [0, 1]: churn intent (0/1), legal or regulator threat (0/1),
complaint (0/1), negative sentiment level ``max(0, -level)``, the anger /
frustration peak score, repeat contact ``min(1, contacts_last_30d /
repeat_contact_saturation)``, bot loop (0/1), declining trend (0/1).
``tenure_factor`` is ``new_customer_factor`` below ``new_customer_months``
(new customers leave more easily), ``loyal_customer_factor`` from
``loyal_customer_months`` on, else 1. ``value_factor`` is ``1 + value_weight *
min(1, lifetime_value / high_value)``: the same behaviour from a valuable
customer is a bigger risk to the business. Weights live in the policy's
``[churn]`` section so operators can tune them; they are starting points, not
fitted values. Pure functions, no I/O.
"""

from __future__ import annotations

import msgspec

from routing.signals import ConversationSignals
from routing.types import CustomerInfo


class ChurnConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Weights and factors of the churn-risk heuristic (the policy's ``[churn]`` section)."""

    churn_intent: float = 0.6
    legal_threat: float = 0.35
    complaint: float = 0.25
    negative_sentiment: float = 0.3
    anger_peak: float = 0.2
    repeat_contact: float = 0.15
    bot_loop: float = 0.1
    declining_trend: float = 0.1
    repeat_contact_saturation: int = 5
    new_customer_months: int = 6
    new_customer_factor: float = 1.15
    loyal_customer_months: int = 36
    loyal_customer_factor: float = 0.9
    high_value: float = 5000.0
    value_weight: float = 0.25

    def problems(self) -> list[tuple[str, str]]:
        """Return ``(field, problem)`` for every out-of-range value."""
        out: list[tuple[str, str]] = []
        for name in (
            "churn_intent",
            "legal_threat",
            "complaint",
            "negative_sentiment",
            "anger_peak",
            "repeat_contact",
            "bot_loop",
            "declining_trend",
            "value_weight",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                out.append((name, f"must be between 0 and 1, got {value}"))
        for name in ("new_customer_factor", "loyal_customer_factor"):
            value = getattr(self, name)
            if not 0.0 < value <= 2.0:
                out.append((name, f"must be greater than 0 and at most 2, got {value}"))
        for name in ("repeat_contact_saturation", "loyal_customer_months"):
            if getattr(self, name) < 1:
                out.append((name, f"must be at least 1, got {getattr(self, name)}"))
        if self.new_customer_months < 0:
            out.append(("new_customer_months", f"must be at least 0, got {self.new_customer_months}"))
        if self.high_value <= 0:
            out.append(("high_value", f"must be greater than 0, got {self.high_value}"))
        return out


class ChurnAssessment(msgspec.Struct, frozen=True):
    """The churn-risk score and how it came about.

    ``drivers`` are the behavioural inputs that contributed, strongest first,
    as ``(name, contribution w_i * x_i)``.
    """

    score: float
    behaviour: float
    tenure_factor: float
    value_factor: float
    drivers: list[tuple[str, float]]


def assess_churn(
    signals: ConversationSignals, customer: CustomerInfo, config: ChurnConfig, peak_emotions: tuple[str, ...]
) -> ChurnAssessment:
    """Return the churn-risk heuristic for this conversation and customer (see the module doc)."""
    flags = signals.flags
    level = signals.customer.level
    peak = max(
        (signals.emotion_peaks[e].score for e in peak_emotions if e in signals.emotion_peaks), default=0.0
    )
    contacts = customer.contacts_last_30d or 0
    inputs = (
        ("churn_intent", config.churn_intent, 1.0 if "churn_intent" in flags else 0.0),
        ("legal_threat", config.legal_threat, 1.0 if "legal_threat" in flags else 0.0),
        ("complaint", config.complaint, 1.0 if "complaint" in flags else 0.0),
        ("negative_sentiment", config.negative_sentiment, max(0.0, -level) if level is not None else 0.0),
        ("anger_peak", config.anger_peak, peak),
        (
            "repeat_contact",
            config.repeat_contact,
            min(1.0, max(0, contacts) / config.repeat_contact_saturation),
        ),
        ("bot_loop", config.bot_loop, 1.0 if "bot_loop" in flags else 0.0),
        ("declining_trend", config.declining_trend, 1.0 if signals.customer.trend == "declining" else 0.0),
    )
    keep = 1.0
    drivers: list[tuple[str, float]] = []
    for name, weight, x in inputs:
        contribution = weight * min(1.0, max(0.0, x))
        keep *= 1.0 - contribution
        if contribution > 0.0:
            drivers.append((name, contribution))
    drivers.sort(key=lambda d: (-d[1], d[0]))
    behaviour = 1.0 - keep
    tenure_factor = _tenure_factor(customer.tenure_months, config)
    value = customer.lifetime_value
    value_factor = 1.0 + config.value_weight * (
        min(1.0, value / config.high_value) if value and value > 0 else 0.0
    )
    score = min(1.0, max(0.0, behaviour * tenure_factor * value_factor))
    return ChurnAssessment(
        score=score,
        behaviour=behaviour,
        tenure_factor=tenure_factor,
        value_factor=value_factor,
        drivers=drivers,
    )


def _tenure_factor(tenure_months: int | None, config: ChurnConfig) -> float:
    if tenure_months is None:
        return 1.0
    if tenure_months < config.new_customer_months:
        return config.new_customer_factor
    if tenure_months >= config.loyal_customer_months:
        return config.loyal_customer_factor
    return 1.0
