"""Handoff context: what the human sees so the customer never repeats themselves.

``build_context`` turns the signals, the customer metadata and the decision
into one ``HandoffContext``: the contact reason with its alternatives, a short
*extractive* summary (the turn that stated the reason, the most negative turn,
the last customer turn; quoted, never paraphrased), the sentiment trajectory,
emotion peaks, escalation flags with their evidence, churn risk and its
drivers, the customer attributes echoed back, turn counts and duration, and
the routing, policy and model-pack versions.

Everything textual is redacted (typed placeholders, ``routing.redact``) unless
the caller asks for ``redact=False``. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import msgspec

from routing.decision import Decision
from routing.redact import redact as redact_text
from routing.redact import safe_truncate
from routing.signals import (
    FLAG_NAMES,
    ConversationSignals,
    IntentEvidence,
    SpeakerSentiment,
    TurnCounts,
    TurnRef,
    evidence_category,
)
from routing.taxonomy import OUT_OF_SCOPE
from routing.types import CustomerInfo, Route, Speaker

# Emotions whose peak never reached this are left out of the handoff: noise to a human.
PEAK_FLOOR = 0.3
# Longest quoted turn in the summary (redacted first, then cut).
SUMMARY_CHARS = 300
# A "most negative" turn that is not negative is not worth quoting.
_NEGATIVE_QUOTE = -0.2


class ReasonAlternative(msgspec.Struct, frozen=True):
    """A contact reason the evidence also supports, with its share.

    ``source`` is ``reasons`` for a custom contact reason (the reasons file),
    ``model`` for the intent head's.
    """

    intent: str
    category: str
    confidence: float
    source: str = "model"


class ContactReason(msgspec.Struct, frozen=True):
    """The contact reason (``out_of_scope`` unless ``status`` is ``confident``),
    the turns that stated it and the alternatives the evidence also supports.
    ``source`` is ``reasons`` when the reason is a custom one (the reasons file)."""

    intent: str
    category: str
    confidence: float
    status: str
    stated_in_turns: list[int]
    alternatives: list[ReasonAlternative]
    source: str = "model"
    # The level the reason is confident at (intent, family, category; "" when not) and its family.
    level: str = ""
    family: str | None = None


class SummaryLine(msgspec.Struct, frozen=True):
    """One quoted turn and why it is quoted (``reason``, ``most_negative``, ``last_customer``)."""

    turn: int
    speaker: Speaker
    roles: list[str]
    text: str
    ts: datetime | None
    sentiment_label: str
    sentiment_score: float


class Trajectory(msgspec.Struct, frozen=True):
    """The customer's sentiment trajectory (see ``routing.signals.CustomerSentiment``)."""

    current_label: str | None
    current_score: float | None
    level: float | None
    start: float | None
    recent: float | None
    trend: str
    trend_value: float | None
    most_negative_turn: int | None
    most_negative_score: float | None
    negative_turns: int
    negative_run: int
    max_negative_run: int


class EmotionPeakView(msgspec.Struct, frozen=True):
    """An emotion's highest score in a customer turn, and the turn."""

    emotion: str
    score: float
    turn: int


class Escalation(msgspec.Struct, frozen=True):
    """A raised escalation flag: the first turn that raised it (``None`` for
    metadata flags) and the evidence (intent, phrase, emotion or pattern)."""

    flag: str
    turn: int | None
    source: str
    evidence: str


class RoutingSummary(msgspec.Struct, frozen=True):
    """The decision in brief, so the human knows why the conversation reached them."""

    route: Route
    queue: str
    priority: int
    rule: str
    guardrail: str | None
    variant: str | None
    summary: str


class Versions(msgspec.Struct, frozen=True):
    """Which policy and which model pack produced this context."""

    policy_version: str
    policy_hash: str
    model_pack: dict[str, Any]


class HandoffContext(msgspec.Struct, frozen=True):
    """Everything a human needs to take over the conversation. See the module doc."""

    contact_reason: ContactReason
    summary: list[SummaryLine]
    sentiment: Trajectory
    agent_sentiment: SpeakerSentiment
    bot_sentiment: SpeakerSentiment
    emotion_peaks: list[EmotionPeakView]
    escalations: list[Escalation]
    churn_risk: float
    churn_drivers: list[tuple[str, float]]
    customer: CustomerInfo
    turns: TurnCounts
    started_at: datetime | None
    last_at: datetime | None
    duration_s: float | None
    routing: RoutingSummary
    versions: Versions
    redacted: bool


def build_context(
    signals: ConversationSignals,
    customer: CustomerInfo,
    decision: Decision,
    *,
    models_info: dict[str, Any],
    redact: bool = True,
    quotes_redacted: bool = False,
) -> HandoffContext:
    """Return the handoff context for a human taking over this conversation.

    ``models_info`` (the model pack's name, version, hashes...) is echoed
    under ``versions.model_pack``. With ``redact`` (the default) every quoted
    text, every phrase quoted as evidence and every string customer attribute
    has its PII replaced by typed placeholders; ``quotes_redacted`` says the
    turn texts behind the signals were redacted already, so only customer
    attributes are redacted here. Pure and deterministic.
    """
    clean = redact_text if redact else _identity
    # Quoted turn text and evidence come from the scored turns, which the caller may have redacted
    # already (the service does, once per turn); customer attributes never were.
    clean_quotes = _identity if quotes_redacted else clean
    duration = (
        (signals.last_ts - signals.first_ts).total_seconds()
        if signals.first_ts is not None and signals.last_ts is not None
        else None
    )
    return HandoffContext(
        contact_reason=_reason(signals),
        summary=_summary(signals, clean_quotes),
        sentiment=_trajectory(signals),
        agent_sentiment=signals.agent,
        bot_sentiment=signals.bot,
        emotion_peaks=_peaks(signals),
        escalations=_escalations(signals, customer, decision, clean_quotes),
        churn_risk=decision.churn_risk,
        churn_drivers=list(decision.churn_drivers),
        customer=_customer(customer, clean),
        turns=signals.turns,
        started_at=signals.first_ts,
        last_at=signals.last_ts,
        duration_s=duration,
        routing=RoutingSummary(
            route=decision.route,
            queue=decision.queue,
            priority=decision.priority,
            rule=decision.rule,
            guardrail=decision.guardrail,
            variant=decision.variant,
            summary=decision.summary,
        ),
        versions=Versions(
            policy_version=decision.policy_version,
            policy_hash=decision.policy_hash,
            model_pack=dict(models_info),
        ),
        redacted=redact,
    )


def _identity(text: str) -> str:
    return text


def _backing(signals: ConversationSignals) -> list[str]:
    """The intents behind a reason confident as a family or category (those of its category), best first."""
    reason = signals.reason
    if reason.status != "confident" or reason.level in ("intent", ""):
        return []
    return [
        intent
        for intent, _ in reason.ranked
        if evidence_category(intent, signals.evidence.get(intent)) == reason.category
    ]


def _reason(signals: ConversationSignals) -> ContactReason:
    reason = signals.reason
    evidence = signals.evidence.get(reason.intent) if reason.status == "confident" else None
    backing = _backing(signals)
    turns = list(evidence.turns) if evidence is not None else []
    if backing:
        evidence = signals.evidence.get(backing[0])
        turns = sorted({t for intent in backing for t in getattr(signals.evidence.get(intent), "turns", ())})[
            :3
        ]
    alternatives = [
        ReasonAlternative(
            intent=intent,
            category=evidence_category(intent, signals.evidence.get(intent)),
            confidence=share,
            source=_source(signals.evidence.get(intent)),
        )
        for intent, share in reason.ranked
        if intent != reason.intent and intent != OUT_OF_SCOPE
    ]
    return ContactReason(
        intent=reason.intent,
        category=reason.category,
        confidence=reason.confidence,
        status=reason.status,
        stated_in_turns=turns,
        alternatives=alternatives[:3],
        source=_source(evidence),
        level=reason.level,
        family=reason.family,
    )


def _source(evidence: IntentEvidence | None) -> str:
    """``reasons`` for a custom contact reason (it carries its own category), else ``model``."""
    return "reasons" if evidence is not None and evidence.category else "model"


def _reason_ref(signals: ConversationSignals) -> TurnRef | None:
    reason = signals.reason
    if reason.status == "confident" and reason.level in ("intent", ""):
        evidence = signals.evidence.get(reason.intent)
        return evidence.ref if evidence is not None else None
    # A family or category: the turn behind its leading intent. Not confident: the turn behind the
    # leading candidate, the best guess a human can check.
    for intent in _backing(signals) or [intent for intent, _ in reason.ranked]:
        evidence = signals.evidence.get(intent)
        if evidence is not None and evidence.ref is not None:
            return evidence.ref
    return None


def _summary(signals: ConversationSignals, clean: Callable[[str], str]) -> list[SummaryLine]:
    picks: list[tuple[str, TurnRef | None]] = [
        ("reason", _reason_ref(signals)),
        ("most_negative", _negative_enough(signals.most_negative)),
        ("last_customer", signals.last_customer),
    ]
    by_turn: dict[int, tuple[TurnRef, list[str]]] = {}
    for role, ref in picks:
        if ref is None:
            continue
        by_turn.setdefault(ref.index, (ref, []))[1].append(role)
    return [
        SummaryLine(
            turn=ref.index,
            speaker=ref.speaker,
            roles=roles,
            text=safe_truncate(clean(ref.text), SUMMARY_CHARS),
            ts=ref.ts,
            sentiment_label=ref.sentiment_label,
            sentiment_score=ref.sentiment_score,
        )
        for ref, roles in (by_turn[index] for index in sorted(by_turn))
    ]


def _negative_enough(ref: TurnRef | None) -> TurnRef | None:
    if ref is None or (ref.sentiment_label != "negative" and ref.sentiment_score > _NEGATIVE_QUOTE):
        return None
    return ref


def _trajectory(signals: ConversationSignals) -> Trajectory:
    track = signals.customer
    most_negative = signals.most_negative
    return Trajectory(
        current_label=track.last_label,
        current_score=track.last_score,
        level=track.level,
        start=track.start_sum / track.start_n if track.start_n else None,
        recent=sum(track.recent) / len(track.recent) if track.recent else None,
        trend=track.trend,
        trend_value=track.trend_value,
        most_negative_turn=most_negative.index if most_negative else None,
        most_negative_score=most_negative.sentiment_score if most_negative else None,
        negative_turns=track.negative_turns,
        negative_run=track.negative_run,
        max_negative_run=track.max_negative_run,
    )


def _peaks(signals: ConversationSignals) -> list[EmotionPeakView]:
    peaks = [
        EmotionPeakView(emotion=emotion, score=peak.score, turn=peak.turn)
        for emotion, peak in signals.emotion_peaks.items()
        if peak.score >= PEAK_FLOOR
    ]
    return sorted(peaks, key=lambda p: (-p.score, p.emotion))


def _escalations(
    signals: ConversationSignals, customer: CustomerInfo, decision: Decision, clean: Callable[[str], str]
) -> list[Escalation]:
    out = [
        Escalation(flag=flag, turn=hit.turn, source=hit.source, evidence=clean(hit.evidence))
        for flag in FLAG_NAMES
        if (hit := signals.flags.get(flag)) is not None
    ]
    if "repeat_contact" in decision.flags:
        out.append(
            Escalation(
                flag="repeat_contact",
                turn=None,
                source="metadata",
                evidence=f"{customer.contacts_last_30d} contacts in the last 30 days",
            )
        )
    return out


def _customer(customer: CustomerInfo, clean: Callable[[str], str]) -> CustomerInfo:
    attributes = {
        key: clean(value) if isinstance(value, str) else value for key, value in customer.attributes.items()
    }
    return msgspec.structs.replace(customer, attributes=attributes)
