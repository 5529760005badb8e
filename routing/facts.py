"""The signal vocabulary of the policy language, and the observed values.

``SIGNALS`` names every value a policy condition can test, with its type and,
for labels, the closed set of values it can take, so the policy validator can
reject ``sentiment.label = "angry"`` at load time. ``observe`` computes all of
them for one conversation, once per decision. ``customer.attributes.<name>``
reaches the free-form customer attributes (any name, any scalar).
"""

from __future__ import annotations

from typing import Literal

import msgspec

from routing.churn import ChurnAssessment
from routing.signals import FLAG_NAMES, UNKNOWN, ConversationSignals, SignalConfig
from routing.taxonomy import (
    CATEGORIES,
    CONVERSATION_ACTS,
    EMOTION_LABELS,
    INTENT_LABELS,
    SENTIMENT_LABELS,
    category_of,
)
from routing.types import CustomerInfo

Value = str | int | float | bool | list[str] | None
SignalType = Literal["number", "bool", "string", "labels"]
ATTRIBUTE_PREFIX = "customer.attributes."

ESCALATION_FLAGS: tuple[str, ...] = (*FLAG_NAMES, "repeat_contact")
REASON_STATUSES: tuple[str, ...] = ("none", "low_confidence", "ambiguous", "confident")
REASON_LEVELS: tuple[str, ...] = ("none", "intent", "family", "category")
TREND_BANDS: tuple[str, ...] = ("unknown", "improving", "steady", "declining")
PEAK_LABELS: tuple[str, ...] = tuple(label for label in EMOTION_LABELS if label != "neutral")
TURN_ACTS: tuple[str, ...] = (*CONVERSATION_ACTS, UNKNOWN)


class SignalSpec(msgspec.Struct, frozen=True):
    """What a signal is: ``number``, ``bool``, ``string`` (one of ``domain`` if
    set) or ``labels`` (a list of ``domain`` values, tested with ``contains``)."""

    type: SignalType
    doc: str
    domain: tuple[str, ...] | None = None


def _specs() -> dict[str, SignalSpec]:
    s: dict[str, SignalSpec] = {
        "reason.intent": SignalSpec(
            "string", "contact-reason intent; out_of_scope unless confident", INTENT_LABELS
        ),
        "reason.category": SignalSpec(
            "string", "contact-reason category; out_of_scope unless confident", CATEGORIES
        ),
        "reason.confidence": SignalSpec("number", "share of the evidence behind the reason (0..1)"),
        "reason.status": SignalSpec(
            "string", "none | low_confidence | ambiguous | confident", REASON_STATUSES
        ),
        "reason.confident": SignalSpec(
            "bool",
            "the contact reason passed the threshold and ambiguity gap (at its intent, family or category)",
        ),
        "reason.level": SignalSpec(
            "string",
            "level the contact reason is confident at: none | intent | family | category",
            REASON_LEVELS,
        ),
        # Family names come from the policy's [families]; the policy loader checks the values.
        "reason.family": SignalSpec(
            "string", "intent family of the contact reason (the confident family, or the confident intent's)"
        ),
        "intent.current": SignalSpec("string", "top intent of the last customer turn", INTENT_LABELS),
        "intent.current_confidence": SignalSpec("number", "its probability"),
        "intent.current_category": SignalSpec("string", "its category", CATEGORIES),
        "turn.act": SignalSpec(
            "string",
            "conversation act of the last customer turn (unknown when the pack has no act head)",
            TURN_ACTS,
        ),
        "turn.words": SignalSpec(
            "number", "words in the last customer turn (a greeting is short, a story is not)"
        ),
        "conversation.closing": SignalSpec(
            "bool", "the customer's last lexical turn closes the conversation calmly (\"thanks, that's all\")"
        ),
        "language.code": SignalSpec(
            "string",
            "conversation language: ISO 639-1 code with the most letters in the customer's judged turns, "
            "und until one is judged",
        ),
        "language.supported": SignalSpec("bool", "the model pack supports the conversation language"),
        "sentiment.label": SignalSpec("string", "sentiment of the last customer turn", SENTIMENT_LABELS),
        "sentiment.score": SignalSpec("number", "p(positive) - p(negative) of the last customer turn"),
        "sentiment.level": SignalSpec("number", "exponentially weighted customer sentiment (-1..1)"),
        "sentiment.trend": SignalSpec("string", "unknown | improving | steady | declining", TREND_BANDS),
        "sentiment.trend_value": SignalSpec("number", "(recent - start) / 2, -1..1"),
        "sentiment.min": SignalSpec("number", "score of the most negative customer turn"),
        "sentiment.negative_run": SignalSpec("number", "consecutive negative customer turns up to now"),
        "sentiment.max_negative_run": SignalSpec("number", "longest run of negative customer turns"),
        "sentiment.negative_turns": SignalSpec("number", "negative customer turns in total"),
        "emotion.current": SignalSpec(
            "labels", "emotions over threshold in the last customer turn", EMOTION_LABELS
        ),
        "emotion.peaks": SignalSpec(
            "labels", "emotions that peaked at or over emotion_peak_threshold", PEAK_LABELS
        ),
        "escalation.flags": SignalSpec("labels", "escalation flags raised so far", ESCALATION_FLAGS),
        "escalation.any": SignalSpec("bool", "any escalation flag raised"),
        "churn_risk": SignalSpec("number", "churn-risk heuristic, 0..1 (see POLICY.md)"),
        "bot.loop_count": SignalSpec("number", "same customer intent in a row, each after a bot reply"),
        "bot.sentiment_level": SignalSpec("number", "exponentially weighted sentiment of the bot's turns"),
        "agent.sentiment_level": SignalSpec(
            "number", "exponentially weighted sentiment of the agent's turns"
        ),
        "agent.negative_turns": SignalSpec("number", "negative agent turns"),
        "turns.total": SignalSpec("number", "turns so far, every speaker"),
        "turns.customer": SignalSpec("number", "customer turns"),
        "turns.customer_lexical": SignalSpec(
            "number", "customer turns with lexical content (not [noise], um, okay, digits)"
        ),
        "turns.bot": SignalSpec("number", "bot turns"),
        "turns.agent": SignalSpec("number", "agent turns"),
        "conversation.duration_s": SignalSpec(
            "number", "seconds from the first to the last timestamped turn"
        ),
        "customer.id": SignalSpec("string", "customer id from metadata"),
        "customer.tier": SignalSpec("string", "customer tier from metadata (your own names)"),
        "customer.tenure_months": SignalSpec("number", "months as a customer"),
        "customer.lifetime_value": SignalSpec("number", "lifetime value"),
        "customer.contacts_last_30d": SignalSpec("number", "contacts in the last 30 days"),
    }
    for label in PEAK_LABELS:
        s[f"emotion.peak.{label}"] = SignalSpec("number", f"highest {label} score in a customer turn")
    for flag in ESCALATION_FLAGS:
        s[f"escalation.{flag}"] = SignalSpec("bool", f"escalation flag {flag} raised")
    return s


SIGNALS: dict[str, SignalSpec] = _specs()


def signal_spec(name: str) -> SignalSpec | None:
    """Return the spec of signal ``name``; ``customer.attributes.<x>`` has a
    free-form spec (``type`` ``string`` with no domain, compared dynamically);
    ``None`` if the name is unknown."""
    if name.startswith(ATTRIBUTE_PREFIX) and len(name) > len(ATTRIBUTE_PREFIX):
        return _ATTRIBUTE_SPEC
    return SIGNALS.get(name)


_ATTRIBUTE_SPEC = SignalSpec("string", "free-form customer attribute")


def observe(
    signals: ConversationSignals, customer: CustomerInfo, churn: ChurnAssessment, config: SignalConfig
) -> dict[str, Value]:
    """Return the value of every signal for this conversation (``None`` where unknown)."""
    reason = signals.reason
    track = signals.customer
    flags: list[str] = [flag for flag in FLAG_NAMES if flag in signals.flags]
    contacts = customer.contacts_last_30d
    if contacts is not None and contacts >= config.repeat_contact_threshold:
        flags.append("repeat_contact")
    peaks = signals.emotion_peaks
    duration = (
        (signals.last_ts - signals.first_ts).total_seconds()
        if signals.first_ts is not None and signals.last_ts is not None
        else None
    )
    intent = signals.current_intent
    facts: dict[str, Value] = {
        "reason.intent": reason.intent,
        "reason.category": reason.category,
        "reason.confidence": reason.confidence,
        "reason.status": reason.status,
        "reason.confident": reason.status == "confident",
        "reason.level": reason.level or "none",
        "reason.family": reason.family,
        "intent.current": intent,
        "intent.current_confidence": signals.current_intent_confidence,
        "intent.current_category": _category(intent, signals.current_intent_category),
        "turn.act": (signals.last_act or UNKNOWN) if signals.turns.customer else None,
        "turn.words": len(signals.last_customer.text.split()) if signals.last_customer is not None else None,
        "conversation.closing": signals.closing,
        "language.code": signals.language,
        "language.supported": signals.language_supported,
        "sentiment.label": track.last_label,
        "sentiment.score": track.last_score,
        "sentiment.level": track.level,
        "sentiment.trend": track.trend,
        "sentiment.trend_value": track.trend_value,
        "sentiment.min": signals.most_negative.sentiment_score if signals.most_negative else None,
        "sentiment.negative_run": track.negative_run,
        "sentiment.max_negative_run": track.max_negative_run,
        "sentiment.negative_turns": track.negative_turns,
        "emotion.current": list(signals.current_emotions),
        "emotion.peaks": [
            e for e in PEAK_LABELS if e in peaks and peaks[e].score >= config.emotion_peak_threshold
        ],
        "escalation.flags": flags,
        "escalation.any": bool(flags),
        "churn_risk": churn.score,
        "bot.loop_count": signals.loop_count,
        "bot.sentiment_level": signals.bot.level,
        "agent.sentiment_level": signals.agent.level,
        "agent.negative_turns": signals.agent.negative_turns,
        "turns.total": signals.turns.total,
        "turns.customer": signals.turns.customer,
        "turns.customer_lexical": signals.turns.customer - signals.turns.customer_non_lexical,
        "turns.bot": signals.turns.bot,
        "turns.agent": signals.turns.agent,
        "conversation.duration_s": duration,
        "customer.id": customer.id,
        "customer.tier": customer.tier,
        "customer.tenure_months": customer.tenure_months,
        "customer.lifetime_value": customer.lifetime_value,
        "customer.contacts_last_30d": contacts,
    }
    for label in PEAK_LABELS:
        facts[f"emotion.peak.{label}"] = peaks[label].score if label in peaks else 0.0
    for flag in ESCALATION_FLAGS:
        facts[f"escalation.{flag}"] = flag in flags
    for key, value in customer.attributes.items():
        facts[ATTRIBUTE_PREFIX + key] = value
    return facts


def _category(intent: str | None, custom: str = "") -> str | None:
    # A custom contact reason carries its own category; the intent head's labels have the taxonomy's.
    return None if intent is None else (custom or category_of(intent))
