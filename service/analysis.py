"""From turns to an ``AnalysisResponse``: score, fold into signals, decide, describe.

The same steps serve ``POST /v1/analyze`` (all turns, stateless), live
conversations (only new turns, folded into stored signals) and the
``switchboard analyze`` CLI, so a transcript gets the same decision whichever
way it arrives:

1. ``check_turns``: validate against the configured limits;
2. predict every text with the model pack (one ``submit``: the runtime batches);
3. ``score_turn``: model output + turn -> routing's ``TurnScores`` and the API's
   ``TurnOut``. The text kept in both is redacted (when redaction is on), so
   PII never reaches the store or the handoff context. Custom contact reasons
   (``service.reasons``) join a customer turn's intents here;
4. ``fold``: ``update_signals`` per turn, in order (O(1) each);
5. ``decide`` with the active policy, ``build_context``, and the response.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import msgspec

from models.types import UNKNOWN, ActResult, TextPrediction
from routing.churn import assess_churn
from routing.context import build_context
from routing.decision import Decision, decide_with_facts
from routing.facts import Value, observe
from routing.policy import Policy
from routing.reasons import MergedIntents
from routing.redact import redact, redact_across
from routing.signals import ConversationSignals, SignalConfig, new_signals, update_signals
from routing.taxonomy import ACT_LABELS, category_of
from routing.types import CustomerInfo, TurnScores
from service import tracing
from service.logs import transcript_field
from service.metrics import Metrics
from service.policy_source import PolicySource
from service.reasons import ActiveReasons, ReasonSource
from service.schemas import (
    AnalysisResponse,
    AnalyzeRequest,
    ConversationLanguage,
    ConversationSentiment,
    CustomerIn,
    DecisionOut,
    ExplanationLine,
    PolicyRef,
    TurnAct,
    TurnIn,
    TurnIntent,
    TurnLanguage,
    TurnOut,
    TurnSentiment,
)
from service.settings import Settings
from service.validation import check_turns


class Inference(Protocol):
    """What the analyzer needs from the model side (``service.inference.ModelGate``)."""

    async def predict(self, texts: list[str]) -> list[TextPrediction]:
        """Predictions for ``texts``, in order."""
        ...


_log = logging.getLogger("switchboard.analysis")


@dataclass(frozen=True)
class ScoredTurn:
    """One turn as routing sees it and as the API returns it."""

    scores: TurnScores
    out: TurnOut


def customer_info(customer: CustomerIn | None) -> CustomerInfo:
    """The routing view of the request's customer block."""
    if customer is None:
        return CustomerInfo()
    return CustomerInfo(
        id=customer.id,
        tier=customer.tier,
        tenure_months=customer.tenure_months,
        lifetime_value=customer.lifetime_value,
        contacts_last_30d=customer.contacts_last_30d,
        attributes=dict(customer.attributes),
    )


def merge_customer(stored: CustomerIn | None, update: CustomerIn | None) -> CustomerIn | None:
    """Later requests refine the customer: set fields override, unset ones keep the stored value."""
    if update is None:
        return stored
    if stored is None:
        return update
    changes: dict[str, Any] = {
        name: getattr(update, name)
        for name in ("id", "tier", "tenure_months", "lifetime_value", "contacts_last_30d")
        if getattr(update, name) is not None
    }
    changes["attributes"] = {**stored.attributes, **update.attributes}
    return msgspec.structs.replace(stored, **changes)


def score_turn(
    index: int,
    turn: TurnIn,
    stamp: datetime | None,
    prediction: TextPrediction,
    *,
    redact_text: bool,
    reasons: ActiveReasons | None = None,
    clean_text: str | None = None,
) -> ScoredTurn:
    """Combine a turn and its prediction. Only customer turns carry an intent.

    The act, whether the turn is lexical and its language go to routing too: a
    non-lexical turn weighs nothing there, a turn in an unsupported language
    carries no sentiment, emotion or intent evidence, and only reason-bearing
    acts are contact-reason evidence. With ``reasons``, a customer turn's
    intents are merged with its custom contact-reason match
    (``routing.reasons.merge_intents``); the turn's intent then shows the
    custom reason like a built-in one, with ``source`` ``reasons``. ``clean_text``
    is the turn's text already redacted by the caller (redaction runs once).
    """
    text = clean_text if clean_text is not None else redact(turn.text) if redact_text else turn.text
    customer = turn.speaker == "customer"
    intent = prediction.intent
    act, language = prediction.act, prediction.language
    if not customer and act.label in ACT_LABELS:
        # The act head learned from customer turns only: on a bot or agent turn its label
        # would be a guess ("how can I help?" reads as a stated need). Rule acts stay.
        act = ActResult(label=UNKNOWN, confidence=0.0, probs={})
    merged = reasons.merge(prediction) if customer and reasons is not None else None
    intents = merged.intents if merged is not None else list(intent.alternatives)
    custom = merged.categories if merged is not None else {}
    scores = TurnScores(
        index=index,
        speaker=turn.speaker,
        text=text,
        ts=stamp,
        sentiment_label=prediction.sentiment.label,
        sentiment_score=prediction.sentiment.score,
        emotions=dict(prediction.emotion.scores),
        emotion_labels=list(prediction.emotion.labels),
        intent=[(label, prob) for label, prob in intents] if customer else None,
        act=act.label,
        lexical=prediction.lexical,
        language=language.code,
        language_supported=language.supported,
        custom_categories=dict(custom),
        custom_example=_matched_example(merged),
    )
    out = TurnOut(
        index=index,
        speaker=turn.speaker,
        text=text,
        ts=turn.ts,
        id=turn.id,
        sentiment=TurnSentiment(
            label=prediction.sentiment.label,
            score=round(prediction.sentiment.score, 4),
            probs={k: round(v, 4) for k, v in prediction.sentiment.probs.items()},
        ),
        emotions=list(prediction.emotion.labels),
        emotion_scores={k: round(v, 4) for k, v in prediction.emotion.scores.items()},
        intent=_turn_intent(intent.label, intent.confidence, intents, custom, merged) if customer else None,
        act=TurnAct(label=act.label, confidence=round(act.confidence, 4)),
        language=TurnLanguage(
            code=language.code, confidence=round(language.confidence, 4), supported=language.supported
        ),
        lexical=prediction.lexical,
    )
    return ScoredTurn(scores=scores, out=out)


def redact_turns(turns: Sequence[TurnIn]) -> list[str]:
    """Each turn's text redacted together with its speaker's previous turn (``redact_across``),
    so a number read out over two turns is redacted in both."""
    texts: list[str] = []
    latest: dict[str, int] = {}
    for n, turn in enumerate(turns):
        previous = latest.get(turn.speaker)
        if previous is None:
            texts.append(redact(turn.text))
        else:
            rewritten, text = redact_across(texts[previous], turn.text)
            if rewritten is not None:
                texts[previous] = rewritten
            texts.append(text)
        latest[turn.speaker] = n
    return texts


def _matched_example(merged: MergedIntents | None) -> tuple[str, str, float] | None:
    """``(reason, closest example, similarity)`` when a custom reason matched the turn."""
    if merged is None or merged.matched is None or merged.example is None:
        return None
    return merged.matched, merged.example, float(merged.example_similarity or 0.0)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _turn_intent(
    label: str,
    confidence: float,
    intents: list[tuple[str, float]],
    custom: dict[str, str],
    merged: MergedIntents | None,
) -> TurnIntent:
    """The turn's intent as the API shows it: the top of the merged intents (custom reasons included)."""
    if intents:
        label, confidence = intents[0]
    if label in custom:
        own = merged if merged is not None and merged.matched == label else None
        return TurnIntent(
            label=label,
            confidence=round(confidence, 4),
            category=custom[label],
            source="reasons",
            similarity=_rounded(own.similarity if own else None),
            atypicality=_rounded(own.atypicality if own else None),
            closest_example=own.example if own else None,
            closest_example_similarity=_rounded(own.example_similarity if own else None),
        )
    return TurnIntent(label=label, confidence=round(confidence, 4), category=category_of(label))


def log_scored(turns: Sequence[ScoredTurn], *, log_transcripts: bool) -> None:
    """DEBUG line per scored turn; its text only with ``SWITCHBOARD_LOG_TRANSCRIPTS=true``."""
    if not _log.isEnabledFor(logging.DEBUG):
        return
    for turn in turns:
        out = turn.out
        _log.debug(
            "turn scored",
            extra={
                "index": out.index,
                "speaker": out.speaker,
                "sentiment": out.sentiment.label,
                "emotions": out.emotions,
                "intent": out.intent.label if out.intent else None,
                "text": transcript_field(out.text, log_transcripts),
            },
        )


def fold(
    signals: ConversationSignals, turns: Sequence[ScoredTurn], config: SignalConfig
) -> ConversationSignals:
    """Advance the signals by each turn, in order."""
    for turn in turns:
        signals = update_signals(signals, turn.scores, config)
    return signals


def decision_out(decision: Decision) -> DecisionOut:
    """The API shape of routing's decision."""
    return DecisionOut(
        route=decision.route,
        queue=decision.queue,
        priority=decision.priority,
        rule=decision.rule,
        # Same fields as routing's ExplanationItem (see ExplanationLine for why it is its own type).
        explanation=[ExplanationLine(**msgspec.structs.asdict(item)) for item in decision.explanation],
        policy=PolicyRef(version=decision.policy_version, hash=decision.policy_hash),
        variant=decision.variant,
        guardrail=decision.guardrail,
        fallback=decision.fallback,
        fallback_queue=decision.fallback_queue,
        experiment=decision.experiment,
        summary=decision.summary,
        churn_risk=round(decision.churn_risk, 4),
        flags=list(decision.flags),
        guardrails_active=list(decision.guardrails_active),
        resolved=decision.resolved,
    )


def sentiment_out(signals: ConversationSignals) -> ConversationSentiment:
    """The customer's sentiment as the policy sees it: last turn's label and score, EWM level, trend."""
    track = signals.customer
    return ConversationSentiment(
        label=track.last_label,
        score=None if track.last_score is None else round(track.last_score, 4),
        level=None if track.level is None else round(track.level, 4),
        trend=track.trend,
    )


def language_out(signals: ConversationSignals) -> ConversationLanguage:
    """The conversation language as the policy sees it (``und`` until a customer turn is judged)."""
    return ConversationLanguage(code=signals.language, supported=signals.language_supported)


def policy_facts(signals: ConversationSignals, customer: CustomerInfo, policy: Policy) -> dict[str, Any]:
    """Every signal's value exactly as the policy's conditions see it (``None`` where unknown)."""
    churn = assess_churn(signals, customer, policy.churn, policy.signals.peak_emotions)
    return dict(observe(signals, customer, churn, policy.signals))


def emotions_out(signals: ConversationSignals) -> list[str]:
    """Emotions over their threshold in the customer's latest turn, strongest first."""
    return list(signals.current_emotions)


def build_response(
    conversation_id: str,
    *,
    signals: ConversationSignals,
    customer: CustomerIn | None,
    decision: Decision,
    policy: Policy,
    turns: list[TurnOut],
    models: dict[str, Any],
    timing_ms: dict[str, float],
    redact_text: bool,
    channel: str | None = None,
    version: int | None = None,
    closed: bool = False,
    appended: list[int] | None = None,
    duplicates: int = 0,
    facts: dict[str, Value] | None = None,
    turn_count: int | None = None,
    next_after: int | None = None,
    info: CustomerInfo | None = None,
) -> AnalysisResponse:
    """Assemble the response (same shape for every endpoint).

    ``facts`` are the policy facts ``decide_with_facts`` returned with ``decision``
    (computed here when None, e.g. for a decision read back from the store);
    ``info`` the routing view of ``customer`` the decision used, if the caller has it.
    Turn texts were redacted when scored, so the context redacts only customer attributes.
    """
    if info is None:
        info = customer_info(customer)
    if facts is None:
        facts = policy_facts(signals, info, policy)
    context = build_context(
        signals, info, decision, models_info=models, redact=redact_text, quotes_redacted=redact_text
    )
    return AnalysisResponse(
        conversation_id=conversation_id,
        decision=decision_out(decision),
        contact_reason=context.contact_reason,
        sentiment=sentiment_out(signals),
        emotions=emotions_out(signals),
        signals=dict(facts),
        context=context,
        turns=turns,
        models=models,
        timing_ms=timing_ms,
        language=language_out(signals),
        channel=channel,
        version=version,
        closed=closed,
        appended=appended if appended is not None else [t.index for t in turns],
        duplicates=duplicates,
        turn_count=turn_count,
        next_after=next_after,
    )


def models_summary(info: dict[str, Any]) -> dict[str, Any]:
    """What every response says about the models: pack name, version, and the (short) sha256 of the
    files that determine predictions: the ONNX graphs and tokenizers (not the model card)."""
    files = info.get("files", {})
    return {
        "pack": info.get("pack"),
        "version": info.get("version"),
        "files": {
            name: digest[:16]
            for name, digest in sorted(files.items())
            if name.endswith(".onnx") or name.endswith("tokenizer.json")
        },
    }


class Analyzer:
    """Scores and decides; shared by the HTTP API, live conversations and the CLI."""

    def __init__(
        self,
        settings: Settings,
        policies: PolicySource,
        inference: Inference,
        models: dict[str, Any],
        metrics: Metrics,
        reasons: ReasonSource | None = None,
    ) -> None:
        self.settings = settings
        self.policies = policies
        self.inference = inference
        self.models = models
        self.metrics = metrics
        self.reasons = reasons

    async def predict(self, texts: list[str]) -> list[TextPrediction]:
        """Model predictions for ``texts`` through the injected inference."""
        return await self.inference.predict(texts)

    @property
    def policy(self) -> Policy:
        """The active policy (read once per request)."""
        return self.policies.policy

    @property
    def active_reasons(self) -> ActiveReasons | None:
        """The custom contact reasons in force (read once per scoring pass), if any."""
        return self.reasons.active if self.reasons is not None else None

    async def score(self, turns: Sequence[TurnIn], first_index: int) -> tuple[list[ScoredTurn], float]:
        """Validate and score ``turns`` numbered from ``first_index``; returns (turns, inference ms)."""
        with tracing.span("switchboard.validate", {"switchboard.turns": len(turns)}):
            stamps = check_turns(turns, self.settings.limits)
        started = time.perf_counter()
        predictions = await self.predict([turn.text for turn in turns])
        elapsed = (time.perf_counter() - started) * 1000
        reasons = self.active_reasons
        redact_text = self.settings.redact
        texts = redact_turns(turns) if redact_text else [turn.text for turn in turns]
        scored = [
            score_turn(
                first_index + n,
                turn,
                stamp,
                prediction,
                redact_text=redact_text,
                reasons=reasons,
                clean_text=texts[n],
            )
            for n, (turn, stamp, prediction) in enumerate(zip(turns, stamps, predictions, strict=True))
        ]
        for turn in turns:
            self.metrics.turns_scored.labels(speaker=turn.speaker).inc()
        log_scored(scored, log_transcripts=self.settings.log_transcripts)
        return scored, elapsed

    def count_decision(self, decision: Decision, signals: ConversationSignals) -> None:
        """Count a returned decision by route, rule and category."""
        self.metrics.decisions.labels(
            route=decision.route, rule=decision.rule, category=signals.reason.category
        ).inc()

    async def analyze(self, request: AnalyzeRequest) -> AnalysisResponse:
        """``POST /v1/analyze``: every turn of a transcript, nothing stored."""
        started = time.perf_counter()
        conversation_id = request.conversation_id or f"anon-{uuid.uuid4().hex}"
        scored, inference_ms = await self.score(request.turns, 0)
        routing_started = time.perf_counter()
        policy = self.policy
        signals = fold(new_signals(), scored, policy.signals)
        customer = customer_info(request.customer)
        with tracing.span("switchboard.route") as route_span:
            decision, facts = decide_with_facts(signals, customer, policy, conversation_id)
            tracing.describe_decision(route_span, decision)
        routing_ms = (time.perf_counter() - routing_started) * 1000
        self.count_decision(decision, signals)
        return build_response(
            conversation_id,
            signals=signals,
            customer=request.customer,
            decision=decision,
            policy=policy,
            turns=[turn.out for turn in scored],
            models=self.models,
            timing_ms={
                "inference": round(inference_ms, 3),
                "routing": round(routing_ms, 3),
                "total": round((time.perf_counter() - started) * 1000, 3),
            },
            redact_text=self.settings.redact,
            channel=request.channel,
            facts=facts,
            info=customer,
        )
