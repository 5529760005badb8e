"""Conversation signals, updated incrementally one scored turn at a time.

``update_signals`` folds one ``TurnScores`` into a ``ConversationSignals`` in
O(1): it never re-reads earlier turns. Everything the decision and the handoff
context need later is kept in bounded form: running sums and levels, the few
turns worth quoting (reason-stating, most negative, last customer turn), at
most ``max_tracked_intents`` contact-reason candidates, one peak per emotion,
one hit per escalation flag. The state is a tree of msgspec Structs and
round-trips through ``msgspec.json`` exactly, so the service can store it
between requests.

Who says what matters: customer turns drive the contact reason, sentiment
trajectory, emotions and escalation flags; agent and bot turns only feed their
own sentiment track (a rude agent is a signal too) and the bot-loop detector.

What a turn is matters too. A turn with no lexical content (``[noise]``,
"um", "okay", a spoken digit run) is counted and nothing else: it weighs
nothing in the sentiment level and trend, the most negative turn, emotion
peaks, flags, the contact reason or the loop detector. Only reason-bearing
turns (act ``reason`` or ``question``, or an unknown act) are contact-reason
evidence: "yes", "my account number is 1234" or "thanks, that's all" state
no reason. A turn in a language the model pack does not support carries no
sentiment, emotion or intent evidence (its scores are not judgements), but it
still counts towards the conversation language and may raise phrase flags.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Literal

import msgspec

from routing.errors import TurnError
from routing.phrases import (
    churn_phrase,
    closing_phrase,
    complaint_phrase,
    human_request_phrase,
    legal_threat_phrase,
)
from routing.redact import safe_truncate
from routing.taxonomy import CONVERSATION_ACTS, EMOTION_LABELS, OUT_OF_SCOPE, SENTIMENT_LABELS, category_of
from routing.types import SPEAKERS, Speaker, TurnScores

ReasonStatus = Literal["none", "low_confidence", "ambiguous", "confident"]
# The level at which the contact reason is confident: its intent, its intent family (a named group
# of intents from the policy's [families]) or its category; "" while it is not confident.
ReasonLevel = Literal["", "intent", "family", "category"]
TrendBand = Literal["unknown", "improving", "steady", "declining"]
FlagName = Literal["human_request", "churn_intent", "complaint", "legal_threat", "bot_loop", "anger_peak"]
FLAG_NAMES: tuple[FlagName, ...] = (
    "human_request",
    "churn_intent",
    "complaint",
    "legal_threat",
    "bot_loop",
    "anger_peak",
)
# Tolerance for probabilities that float arithmetic pushed a hair outside [0, 1].
_EPS = 1e-6
# The act (and sentiment label) of a turn the models could not judge; "" in turns stored before acts.
UNKNOWN = "unknown"
UNDETERMINED_LANGUAGE = "und"
NON_LEXICAL = "non_lexical"
REPEAT_REQUEST = "repeat_request"
CLOSING_ACT = "thanks_or_closing"
# Acts that state why the customer came; an unknown act counts too (packs without an act head).
REASON_ACTS: frozenset[str] = frozenset({"reason", "question", UNKNOWN})
# Emotions that make a "thanks, that's all" anything but a calm closing.
_UPSET_EMOTIONS: tuple[str, ...] = ("anger", "frustration")
# Languages tracked per conversation (the lightest is dropped beyond this): keeps the state O(1).
MAX_TRACKED_LANGUAGES = 8
# Version of the stored form of ConversationSignals (see its doc).
SCHEMA = 2


class SignalConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Thresholds of the signal layer (the policy's ``[signals]`` section).

    Contact reason (Rasa-style "not sure"): the reason is confident when its
    share of the evidence is at least ``confidence_threshold`` and leads the
    runner-up by at least ``ambiguity_gap``. Once confident it only switches to
    a rival that leads it by ``switch_margin`` (hysteresis). The k-th customer
    turn that states a reason weighs ``early_turn_decay ** k``; a turn whose top
    intent is below ``min_turn_confidence``, ``out_of_scope`` or a
    ``meta_intents`` one ("get me a human") states no reason.

    ``families`` are named groups of intents (the policy's ``[families]``; no
    intent in two). When no intent is confident, the evidence is summed per
    family and then per category, with the same threshold and gap: near-synonym
    intents ("card_arrival", "card_delivery_estimate") that split the evidence
    still make a confident family or category.
    """

    confidence_threshold: float = 0.5
    ambiguity_gap: float = 0.1
    switch_margin: float = 0.15
    early_turn_decay: float = 0.6
    min_turn_confidence: float = 0.3
    meta_intents: tuple[str, ...] = ("contact_human_agent", "contact_customer_service")
    # Escalation by intent: the turn's top intent is one of these with at least intent_flag_threshold.
    human_intents: tuple[str, ...] = ("contact_human_agent",)
    churn_intents: tuple[str, ...] = ("terminate_account",)
    complaint_intents: tuple[str, ...] = ("complaint",)
    intent_flag_threshold: float = 0.5
    # Sentiment trajectory: EWM level, and (recent - start) / 2 banded at +-trend_band.
    ewm_alpha: float = 0.4
    trend_window: int = 2
    trend_min_turns: int = 3
    trend_band: float = 0.2
    # Emotion peaks that raise the anger_peak flag.
    peak_emotions: tuple[str, ...] = ("anger", "frustration")
    emotion_peak_threshold: float = 0.6
    # Same top intent this many customer turns in a row, each after a bot reply.
    bot_loop_turns: int = 3
    # contacts_last_30d at or above this raises repeat_contact (customer metadata).
    repeat_contact_threshold: int = 3
    # Bounds that keep the state O(1).
    max_tracked_intents: int = 8
    max_excerpt_chars: int = 1000
    # Named groups of intents (the policy's top-level [families] table).
    families: dict[str, tuple[str, ...]] = {}

    def problems(self) -> list[tuple[str, str]]:
        """Return ``(field, problem)`` for every out-of-range value (labels are checked by the policy)."""
        out: list[tuple[str, str]] = []
        for name in (
            "confidence_threshold",
            "ambiguity_gap",
            "switch_margin",
            "min_turn_confidence",
            "intent_flag_threshold",
            "trend_band",
            "emotion_peak_threshold",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                out.append((name, f"must be between 0 and 1, got {value}"))
        for name in ("early_turn_decay", "ewm_alpha"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                out.append((name, f"must be greater than 0 and at most 1, got {value}"))
        for name, low in (
            ("trend_window", 1),
            ("trend_min_turns", 1),
            ("bot_loop_turns", 2),
            ("repeat_contact_threshold", 1),
            ("max_tracked_intents", 2),
            ("max_excerpt_chars", 40),
        ):
            value = getattr(self, name)
            if value < low:
                out.append((name, f"must be at least {low}, got {value}"))
        return out


# --- the state ---------------------------------------------------------------


class TurnRef(msgspec.Struct, frozen=True):
    """A turn kept for quoting: its index, speaker, text (clipped, not redacted), time and sentiment."""

    index: int
    speaker: Speaker
    text: str
    ts: datetime | None
    sentiment_label: str
    sentiment_score: float


class TurnCounts(msgspec.Struct, frozen=True):
    """How many turns each speaker had; ``customer_non_lexical`` of the customer's had no lexical content."""

    total: int = 0
    customer: int = 0
    agent: int = 0
    bot: int = 0
    system: int = 0
    customer_non_lexical: int = 0


class IntentEvidence(msgspec.Struct, frozen=True):
    """Weighted evidence for one contact-reason candidate.

    ``weight`` is the decayed sum of the candidate's probability over the
    reason-stating turns; ``turns`` the first few turns where it was the top
    intent; ``ref`` the turn to quote (first top-1 turn, else the strongest).
    ``category`` is set for a custom contact reason (from the reasons file);
    empty for the intent head's labels, which the taxonomy categorises.
    ``example``/``example_similarity``: for a custom reason, the example from
    the reasons file closest to any of its turns (the evidence explanations quote).
    """

    weight: float = 0.0
    turns: tuple[int, ...] = ()
    ref: TurnRef | None = None
    ref_prob: float = 0.0
    ref_top: bool = False
    category: str = ""
    example: str | None = None
    example_similarity: float = 0.0


class ReasonState(msgspec.Struct, frozen=True):
    """The contact reason as of the last customer turn.

    ``status`` is ``confident`` when the reason is confident at some ``level``:
    its intent, else its intent family, else its category (see ``SignalConfig``).
    ``intent`` is ``out_of_scope`` unless the intent itself is confident;
    ``family`` is the confident family, or the family of the confident intent
    (``None`` when neither); ``category`` is ``out_of_scope`` unless the reason is
    confident at some level. ``confidence`` is the deciding level's share of the
    evidence (the top intent's share while not confident). ``ranked`` lists the
    leading intents with their shares, best first. ``group``/``group_level``/
    ``group_since`` remember a family or category that became confident (it
    sticks, as a confident intent does, unless a rival leads it by ``switch_margin``).
    """

    intent: str = OUT_OF_SCOPE
    category: str = OUT_OF_SCOPE
    confidence: float = 0.0
    status: ReasonStatus = "none"
    locked: str | None = None
    since_turn: int | None = None
    ranked: tuple[tuple[str, float], ...] = ()
    level: ReasonLevel = ""
    family: str | None = None
    group: str | None = None
    group_level: ReasonLevel = ""
    group_since: int | None = None


class CustomerSentiment(msgspec.Struct, frozen=True):
    """The customer's sentiment trajectory.

    ``level`` is the exponentially weighted score; ``trend_value`` is
    ``(mean of the last trend_window scores - mean of the first trend_window) / 2``
    (as Genesys computes its trend), banded into ``trend``.
    """

    turns: int = 0
    last_label: str | None = None
    last_score: float | None = None
    level: float | None = None
    start_sum: float = 0.0
    start_n: int = 0
    recent: tuple[float, ...] = ()
    trend: TrendBand = "unknown"
    trend_value: float | None = None
    negative_turns: int = 0
    negative_run: int = 0
    max_negative_run: int = 0


class SpeakerSentiment(msgspec.Struct, frozen=True):
    """Sentiment of the agent's or the bot's turns, kept apart from the customer's."""

    turns: int = 0
    last_label: str | None = None
    level: float | None = None
    min_score: float | None = None
    negative_turns: int = 0


class EmotionPeak(msgspec.Struct, frozen=True):
    """The highest score an emotion reached in a customer turn, and where."""

    score: float
    turn: int


class FlagHit(msgspec.Struct, frozen=True):
    """The first turn that raised an escalation flag, and why (intent, phrase, emotion or pattern)."""

    turn: int
    source: Literal["intent", "phrase", "emotion", "pattern"]
    evidence: str


class LanguageTally(msgspec.Struct, frozen=True):
    """The customer's judged turns in one language (``und`` turns are not tallied).

    ``weight`` is their number of letters (a long sentence says more about the
    language than "ok thanks"); ``unsupported`` is True once one of them was
    reported as a language the model pack does not support (a language is
    reported supported only out of doubt, on a low-confidence detection).
    """

    weight: float = 0.0
    turns: int = 0
    unsupported: bool = False


def _turn_counts() -> TurnCounts:
    return TurnCounts()


def _reason() -> ReasonState:
    return ReasonState()


def _customer() -> CustomerSentiment:
    return CustomerSentiment()


def _speaker() -> SpeakerSentiment:
    return SpeakerSentiment()


class ConversationSignals(msgspec.Struct, frozen=True):
    """Everything routing knows about a conversation, in O(1) space.

    Build with ``new_signals()``, advance with ``update_signals``. Flags are
    sticky: once a customer asked for a person, the conversation keeps that
    flag. ``schema`` versions the stored form (2 added acts, ``closing`` and
    the conversation language; every field has a default, so a schema-1 state
    still decodes, and its next update writes schema 2).

    ``last_act`` is the act of the customer's last turn (``""`` before any, or
    ``unknown``); ``closing`` is True while the customer's last lexical turn
    closes the conversation calmly (act ``thanks_or_closing``, sentiment not
    negative, no anger or frustration). ``language`` is the language with the
    most letters in the customer's judged turns (``und`` until one is judged),
    ``language_supported`` False when that language is one the pack does not
    support; ``languages`` holds the tallies behind them.
    """

    schema: int = SCHEMA
    turns: TurnCounts = msgspec.field(default_factory=_turn_counts)
    last_index: int = -1
    first_ts: datetime | None = None
    last_ts: datetime | None = None
    reason: ReasonState = msgspec.field(default_factory=_reason)
    evidence: dict[str, IntentEvidence] = {}
    evidence_total: float = 0.0
    reason_turns: int = 0
    current_intent: str | None = None
    current_intent_confidence: float | None = None
    # Category of current_intent when it is a custom contact reason ("" for the intent head's labels).
    current_intent_category: str = ""
    customer: CustomerSentiment = msgspec.field(default_factory=_customer)
    most_negative: TurnRef | None = None
    last_customer: TurnRef | None = None
    agent: SpeakerSentiment = msgspec.field(default_factory=_speaker)
    bot: SpeakerSentiment = msgspec.field(default_factory=_speaker)
    emotion_peaks: dict[str, EmotionPeak] = {}
    current_emotions: tuple[str, ...] = ()
    flags: dict[str, FlagHit] = {}
    loop_intent: str | None = None
    loop_count: int = 0
    bot_answered: bool = False
    # The customer's requests that the bot repeat itself, each right after a bot turn
    # (``after_bot``: the bot spoke since the customer's last turn that said something).
    repeat_requests: int = 0
    after_bot: bool = False
    last_act: str = ""
    closing: bool = False
    languages: dict[str, LanguageTally] = {}
    language: str = UNDETERMINED_LANGUAGE
    language_supported: bool = True


def new_signals() -> ConversationSignals:
    """Return the signals of a conversation with no turns yet."""
    return ConversationSignals()


def requote(signals: ConversationSignals, index: int, text: str, config: SignalConfig) -> ConversationSignals:
    """The signals with every quote of turn ``index`` replaced by ``text`` (clipped as quotes are).

    For a turn whose stored text changed after it was folded in: a number the
    customer read out over two turns is redacted in the earlier one only once
    the later one arrives, and the quotes must not keep the earlier form.
    """

    def fix(ref: TurnRef | None) -> TurnRef | None:
        if ref is None or ref.index != index:
            return ref
        return msgspec.structs.replace(ref, text=safe_truncate(text, config.max_excerpt_chars))

    evidence = {
        intent: msgspec.structs.replace(item, ref=fix(item.ref)) if item.ref is not None else item
        for intent, item in signals.evidence.items()
    }
    return msgspec.structs.replace(
        signals,
        evidence=evidence,
        most_negative=fix(signals.most_negative),
        last_customer=fix(signals.last_customer),
    )


# --- validation --------------------------------------------------------------


def _check_prob(value: float, where: str, field: str, key: object = None, low: float = 0.0) -> float:
    """``value`` clamped to ``[low, 1]``; TurnError naming ``where: field`` (``field`` formatted with
    ``key``) unless it is a finite number within ``_EPS`` of that range. The name is only built
    for the error: a turn checks a score per emotion and intent on every append."""
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise TurnError(f"{where}: {field.format(key)} must be a finite number, got {value!r}")
    if not low - _EPS <= value <= 1.0 + _EPS:
        raise TurnError(f"{where}: {field.format(key)} must be between {low:g} and 1, got {value!r}")
    return min(1.0, max(low, float(value)))


def _validated(turn: TurnScores) -> tuple[float, dict[str, float], list[tuple[str, float]]]:
    """Check ``turn`` and return its clamped sentiment score, emotions and intents."""
    where = f"turn {turn.index}"
    if turn.speaker not in SPEAKERS:
        raise TurnError(f"{where}: speaker must be one of {', '.join(SPEAKERS)}, got {turn.speaker!r}")
    # A turn in an unsupported language may say so: its sentiment is not a judgement and is not used.
    labels = SENTIMENT_LABELS if turn.language_supported else (*SENTIMENT_LABELS, UNKNOWN)
    if turn.sentiment_label not in labels:
        raise TurnError(
            f"{where}: sentiment_label must be one of {', '.join(labels)}, got {turn.sentiment_label!r}"
        )
    score = _check_prob(turn.sentiment_score, where, "sentiment_score", low=-1.0)
    emotions = {k: _check_prob(v, where, "emotions[{!r}]", k) for k, v in turn.emotions.items()}
    intents = [(label, _check_prob(p, where, "intent {!r}", label)) for label, p in (turn.intent or [])]
    return score, emotions, intents


def _act(turn: TurnScores) -> str:
    """The act of a lexical turn: one of ``CONVERSATION_ACTS``, else ``unknown``."""
    return turn.act if turn.act in CONVERSATION_ACTS else UNKNOWN


def _aware(ts: datetime | None) -> datetime | None:
    # Naive timestamps are taken as UTC so that durations never mix naive and aware.
    if ts is None:
        return None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


# --- the update --------------------------------------------------------------


def update_signals(state: ConversationSignals, turn: TurnScores, config: SignalConfig) -> ConversationSignals:
    """Return ``state`` advanced by one scored ``turn`` (``state`` is not modified).

    O(1) in the length of the conversation. Feed each turn once, in order.
    Raises ``TurnError`` if the turn's scores are not usable (unknown speaker
    or sentiment label, non-finite or out-of-range numbers).

    A non-lexical turn only advances the turn counts, the timestamps and (for
    the customer) ``last_act``. A turn in an unsupported language moves no
    sentiment, emotion or intent signal (see the module doc).
    """
    score, emotions, intents = _validated(turn)
    ts = _aware(turn.ts)
    ref = TurnRef(
        index=turn.index,
        speaker=turn.speaker,
        text=safe_truncate(turn.text, config.max_excerpt_chars),
        ts=ts,
        sentiment_label=turn.sentiment_label,
        sentiment_score=score,
    )
    lexical = turn.lexical and turn.act not in (NON_LEXICAL, REPEAT_REQUEST)
    new = msgspec.structs.replace(
        state,
        schema=SCHEMA,
        turns=_count(state.turns, turn.speaker, lexical=lexical),
        last_index=max(state.last_index, turn.index),
        first_ts=ts if state.first_ts is None or (ts is not None and ts < state.first_ts) else state.first_ts,
        last_ts=ts if state.last_ts is None or (ts is not None and ts > state.last_ts) else state.last_ts,
    )
    if not lexical:
        # "[noise]", "um", "okay", "sorry, say that again?": counted, and (but for the last
        # act and a request to repeat the bot) nothing else.
        if turn.speaker != "customer":
            return new
        if turn.act == REPEAT_REQUEST:
            return _repeat_update(new, turn.index, config)
        return msgspec.structs.replace(new, last_act=NON_LEXICAL)
    judged = turn.language_supported
    if turn.speaker == "agent":
        # A person has the conversation: whatever the bot did is no longer a loop.
        agent = _speaker_update(new.agent, turn.sentiment_label, score, config) if judged else new.agent
        return msgspec.structs.replace(new, agent=agent, loop_count=0, repeat_requests=0, after_bot=False)
    if turn.speaker == "bot":
        bot = _speaker_update(new.bot, turn.sentiment_label, score, config) if judged else new.bot
        # A bot turn that only asks ("Which account?") is slot filling: the customer's answer about
        # the same request is not a repeat. One that answers something counts, whatever follows.
        answered = new.bot_answered or not _only_asks(turn.text)
        return msgspec.structs.replace(new, bot=bot, bot_answered=answered, after_bot=True)
    if turn.speaker == "system":
        return new
    labels = tuple(label for label in turn.emotion_labels if label in EMOTION_LABELS)
    act = _act(turn)
    languages = _languages_update(new.languages, turn)
    language, supported = _conversation_language(languages)
    new = msgspec.structs.replace(
        new,
        last_act=act,
        after_bot=False,
        closing=judged and _closes_calmly(act, turn.sentiment_label, labels, turn.text),
        languages=languages,
        language=language,
        language_supported=supported,
    )
    if not judged:
        return _unjudged_update(new, ref, config)
    return _customer_update(
        new,
        ref,
        emotions,
        labels,
        intents,
        config,
        reason_bearing=act in REASON_ACTS,
        custom=turn.custom_categories,
        example=turn.custom_example,
    )


def _only_asks(text: str) -> bool:
    """True for a turn that is one question and nothing else ("Which account?")."""
    body = text.strip()
    return body.endswith("?") and not any(mark in body[:-1].rstrip("?") for mark in ".!?")


def _count(counts: TurnCounts, speaker: Speaker, *, lexical: bool = True) -> TurnCounts:
    changes: dict[str, int] = {speaker: getattr(counts, speaker) + 1}
    if speaker == "customer" and not lexical:
        changes["customer_non_lexical"] = counts.customer_non_lexical + 1
    return msgspec.structs.replace(counts, total=counts.total + 1, **changes)


def _closes_calmly(act: str, sentiment_label: str, emotion_labels: tuple[str, ...], text: str = "") -> bool:
    """True for a "thanks, that's all" said without negative sentiment, anger or frustration.

    The act head says so (``thanks_or_closing``), or, unless it heard a reason or a
    question, the whole turn is closing phrasing (``routing.phrases.closing_phrase``):
    packs without an act head close conversations too.
    """
    closes = act == CLOSING_ACT or (act not in ("reason", "question") and closing_phrase(text) is not None)
    return (
        closes
        and sentiment_label != "negative"
        and not any(label in _UPSET_EMOTIONS for label in emotion_labels)
    )


def _letters(text: str) -> int:
    return sum(map(str.isalpha, text))


def _languages_update(tallies: dict[str, LanguageTally], turn: TurnScores) -> dict[str, LanguageTally]:
    """Add one lexical customer turn to the language tallies (``und`` turns add nothing)."""
    code = turn.language
    if not code or code == UNDETERMINED_LANGUAGE:
        return tallies
    old = tallies.get(code, LanguageTally())
    out = dict(tallies)
    out[code] = LanguageTally(
        weight=old.weight + max(1, _letters(turn.text)),
        turns=old.turns + 1,
        unsupported=old.unsupported or not turn.language_supported,
    )
    if len(out) > MAX_TRACKED_LANGUAGES:
        lightest = min((kv for kv in out.items() if kv[0] != code), key=lambda kv: (kv[1].weight, kv[0]))
        del out[lightest[0]]
    return out


def _conversation_language(tallies: dict[str, LanguageTally]) -> tuple[str, bool]:
    """The heaviest language and whether the pack supports it (a tie goes to a supported language)."""
    if not tallies:
        return UNDETERMINED_LANGUAGE, True
    code, tally = min(tallies.items(), key=lambda kv: (-kv[1].weight, kv[1].unsupported, kv[0]))
    return code, not tally.unsupported


def _unjudged_update(state: ConversationSignals, ref: TurnRef, config: SignalConfig) -> ConversationSignals:
    """A customer turn in a language the pack does not support: quoted, but no sentiment, emotion or
    intent evidence; only phrase flags (a request for a person is honoured in any wording we know)."""
    state = msgspec.structs.replace(
        state,
        last_customer=ref,
        current_intent=None,
        current_intent_confidence=None,
        current_intent_category="",
        current_emotions=(),
    )
    return msgspec.structs.replace(state, flags=_flags_update(state, ref, {}, None, None, config))


def _ewm(level: float | None, score: float, alpha: float) -> float:
    return score if level is None else alpha * score + (1.0 - alpha) * level


def _speaker_update(
    track: SpeakerSentiment, label: str, score: float, config: SignalConfig
) -> SpeakerSentiment:
    return SpeakerSentiment(
        turns=track.turns + 1,
        last_label=label,
        level=_ewm(track.level, score, config.ewm_alpha),
        min_score=score if track.min_score is None else min(track.min_score, score),
        negative_turns=track.negative_turns + (label == "negative"),
    )


def _customer_update(
    state: ConversationSignals,
    ref: TurnRef,
    emotions: dict[str, float],
    emotion_labels: tuple[str, ...],
    intents: list[tuple[str, float]],
    config: SignalConfig,
    *,
    reason_bearing: bool = True,
    custom: Mapping[str, str] | None = None,
    example: tuple[str, str, float] | None = None,
) -> ConversationSignals:
    top, top_p = intents[0] if intents else (None, None)
    custom = custom or {}
    most_negative = state.most_negative
    if most_negative is None or ref.sentiment_score < most_negative.sentiment_score:
        most_negative = ref
    state = msgspec.structs.replace(
        state,
        customer=_sentiment_update(state.customer, ref.sentiment_label, ref.sentiment_score, config),
        most_negative=most_negative,
        last_customer=ref,
        current_intent=top,
        current_intent_confidence=top_p,
        current_intent_category=custom.get(top, "") if top is not None else "",
        emotion_peaks=_peaks_update(state.emotion_peaks, emotions, ref.index),
        current_emotions=emotion_labels,
    )
    if reason_bearing:  # "yes", "my number is 1234", "thanks": no reason stated here
        state = _reason_update(state, ref, intents, config, custom, example)
        # Only a request can be repeated: answering the bot's questions about the same request
        # ("at Supercuts on Saturday", "yes, that's right") is slot filling, not a loop.
        state = _loop_update(state, top, config)
    return msgspec.structs.replace(state, flags=_flags_update(state, ref, emotions, top, top_p, config))


def _sentiment_update(
    track: CustomerSentiment, label: str, score: float, config: SignalConfig
) -> CustomerSentiment:
    window = config.trend_window
    start_sum, start_n = track.start_sum, track.start_n
    if start_n < window:
        start_sum, start_n = start_sum + score, start_n + 1
    recent = (*track.recent, score)[-window:]
    turns = track.turns + 1
    trend: TrendBand = "unknown"
    trend_value: float | None = None
    if turns >= config.trend_min_turns:
        trend_value = (sum(recent) / len(recent) - start_sum / start_n) / 2.0
        if trend_value >= config.trend_band:
            trend = "improving"
        elif trend_value <= -config.trend_band:
            trend = "declining"
        else:
            trend = "steady"
    negative = label == "negative"
    run = track.negative_run + 1 if negative else 0
    return CustomerSentiment(
        turns=turns,
        last_label=label,
        last_score=score,
        level=_ewm(track.level, score, config.ewm_alpha),
        start_sum=start_sum,
        start_n=start_n,
        recent=recent,
        trend=trend,
        trend_value=trend_value,
        negative_turns=track.negative_turns + negative,
        negative_run=run,
        max_negative_run=max(track.max_negative_run, run),
    )


def _peaks_update(
    peaks: dict[str, EmotionPeak], emotions: dict[str, float], index: int
) -> dict[str, EmotionPeak]:
    out = dict(peaks)
    for label in EMOTION_LABELS:
        if label == "neutral" or label not in emotions:
            continue
        current = out.get(label)
        if current is None or emotions[label] > current.score:
            out[label] = EmotionPeak(score=emotions[label], turn=index)
    return out


def _reason_update(
    state: ConversationSignals,
    ref: TurnRef,
    intents: list[tuple[str, float]],
    config: SignalConfig,
    custom: Mapping[str, str] | None = None,
    example: tuple[str, str, float] | None = None,
) -> ConversationSignals:
    """Fold one customer turn's intents into the contact-reason evidence.

    ``custom`` gives the category of the custom contact reasons among ``intents``;
    ``example`` the custom reason the turn matched, its closest example and similarity.
    """
    if not intents:
        return state
    top, top_p = intents[0]
    if top == OUT_OF_SCOPE or top in config.meta_intents or top_p < config.min_turn_confidence:
        return state  # "hi", "ok thanks", "get me a human": no reason stated here
    # Early turns say why the customer came; later ones drift into details and side issues.
    weight = config.early_turn_decay**state.reason_turns
    evidence = dict(state.evidence)
    seen: set[str] = set()
    for rank, (label, prob) in enumerate(intents):
        if label in config.meta_intents or prob <= 0.0 or label in seen:
            continue  # a label listed twice in one turn counts once: shares stay within 0..1
        seen.add(label)
        evidence[label] = _add_evidence(
            evidence.get(label),
            ref,
            prob,
            weight,
            is_top=rank == 0,
            category=(custom or {}).get(label, ""),
            example=example[1:] if example is not None and example[0] == label else None,
        )
    ranked = sorted(evidence.items(), key=lambda kv: (-kv[1].weight, kv[0]))
    locked = state.reason.locked
    if len(ranked) > config.max_tracked_intents:
        keep = ranked[: config.max_tracked_intents]
        if locked is not None and locked in evidence and all(label != locked for label, _ in keep):
            keep = [*keep[:-1], (locked, evidence[locked])]
        ranked = keep
        evidence = dict(keep)
    total = state.evidence_total + weight
    reason = _judge(ranked, total, state.reason, ref.index, config)
    return msgspec.structs.replace(
        state, evidence=evidence, evidence_total=total, reason_turns=state.reason_turns + 1, reason=reason
    )


def _add_evidence(
    old: IntentEvidence | None,
    ref: TurnRef,
    prob: float,
    weight: float,
    *,
    is_top: bool,
    category: str = "",
    example: tuple[str, float] | None = None,
) -> IntentEvidence:
    old = old or IntentEvidence()
    quoted, quoted_similarity = old.example, old.example_similarity
    if example is not None and (quoted is None or example[1] > quoted_similarity):
        quoted, quoted_similarity = example
    turns = (*old.turns, ref.index) if is_top and len(old.turns) < 3 else old.turns
    # Quote the first turn where this was the top intent; until there is one, the strongest.
    take = old.ref is None or (is_top and not old.ref_top) or (not old.ref_top and prob > old.ref_prob)
    return IntentEvidence(
        weight=old.weight + weight * prob,
        turns=turns,
        ref=ref if take else old.ref,
        ref_prob=prob if take else old.ref_prob,
        ref_top=old.ref_top or is_top,
        category=category or old.category,
        example=quoted,
        example_similarity=quoted_similarity,
    )


def _judge_intent(
    ranked: list[tuple[str, IntentEvidence]],
    total: float,
    previous: ReasonState,
    index: int,
    config: SignalConfig,
) -> ReasonState:
    """Decide the contact-reason intent from the ranked evidence (threshold, gap, hysteresis)."""
    shares = [(label, ev.weight / total if total > 0 else 0.0) for label, ev in ranked]
    share = dict(shares)
    best, best_share = shares[0] if shares else (OUT_OF_SCOPE, 0.0)
    runner_up = shares[1][1] if len(shares) > 1 else 0.0
    candidate = (
        best
        if best != OUT_OF_SCOPE
        and best_share >= config.confidence_threshold
        and best_share - runner_up >= config.ambiguity_gap
        else None
    )
    top = tuple(shares[:4])
    locked, since = previous.locked, previous.since_turn
    if locked is not None and candidate is not None and candidate != locked:
        # Hysteresis: a confident reason only yields to a clearly stronger rival.
        if best_share >= share.get(locked, 0.0) + config.switch_margin:
            locked, since = candidate, index
    elif locked is None and candidate is not None:
        locked, since = candidate, index
    if locked is not None:
        return ReasonState(
            intent=locked,
            category=evidence_category(locked, dict(ranked).get(locked)),
            confidence=share.get(locked, 0.0),
            status="confident",
            locked=locked,
            since_turn=since,
            ranked=top,
        )
    status: ReasonStatus = "low_confidence" if best_share < config.confidence_threshold else "ambiguous"
    return ReasonState(confidence=best_share, status=status, ranked=top)


def _judge(
    ranked: list[tuple[str, IntentEvidence]],
    total: float,
    previous: ReasonState,
    index: int,
    config: SignalConfig,
) -> ReasonState:
    """Decide the contact reason: its intent when that is confident, else its family, else its category.

    A family or category that became confident sticks like a confident intent
    does: it only yields to a rival at the family or category level that leads it
    by ``switch_margin``, or to a family inside it (a finer statement of the same
    reason). A confident intent always takes precedence.
    """
    reason = _judge_intent(ranked, total, previous, index, config)
    families = family_index(config.families)
    if reason.status == "confident":
        return msgspec.structs.replace(
            reason,
            level="intent",
            family=families.get(reason.intent),
            group=previous.group,
            group_level=previous.group_level,
            group_since=previous.group_since,
        )
    shares = [
        (label, ev.weight / total if total > 0 else 0.0, evidence_category(label, ev)) for label, ev in ranked
    ]
    tables = {level: _group_shares(shares, level, families) for level in ("family", "category")}
    found = _group_candidate(tables, config)
    group, level, since = previous.group, previous.group_level, previous.group_since
    if group is not None and found is not None and (found[0], found[1]) != (level, group):
        held = tables.get(level, {}).get(group, (0.0, OUT_OF_SCOPE))
        refines = found[0] == "family" and level == "category" and found[3] == group
        if refines or found[2] >= held[0] + config.switch_margin:
            group, level, since = found[1], found[0], index
    elif group is None and found is not None:
        group, level, since = found[1], found[0], index
    if group is None or level not in tables:
        return reason
    share, category = tables[level].get(group, (0.0, OUT_OF_SCOPE))
    return msgspec.structs.replace(
        reason,
        category=category,
        confidence=share,
        status="confident",
        level=level,
        family=group if level == "family" else None,
        group=group,
        group_level=level,
        group_since=since,
    )


def family_index(families: Mapping[str, tuple[str, ...]]) -> dict[str, str]:
    """Intent -> the family it belongs to (a policy never puts one intent in two families)."""
    return {intent: name for name, intents in families.items() for intent in intents}


def _group_shares(
    shares: list[tuple[str, float, str]], level: str, families: dict[str, str]
) -> dict[str, tuple[float, str]]:
    """Evidence share per family (intents in none compete alone) or per category, with the
    category each group's evidence mostly lies in."""
    totals: dict[str, float] = {}
    by_category: dict[str, dict[str, float]] = {}
    for label, share, category in shares:
        key = families.get(label, f"intent:{label}") if level == "family" else category
        totals[key] = totals.get(key, 0.0) + share
        split = by_category.setdefault(key, {})
        split[category] = split.get(category, 0.0) + share
    # Probabilities of one turn add up to at most 1, so a group's share does too; clamp for hand-built
    # turns (and merged custom reasons) whose probabilities add up to more.
    return {
        key: (min(1.0, total), min(by_category[key].items(), key=lambda kv: (-kv[1], kv[0]))[0])
        for key, total in totals.items()
    }


def _group_candidate(
    tables: dict[str, dict[str, tuple[float, str]]], config: SignalConfig
) -> tuple[ReasonLevel, str, float, str] | None:
    """The first level (family, then category) whose best group passes the threshold and the gap:
    ``(level, group, share, category)``. Lone intents and ``out_of_scope`` compete but never win."""
    for level in ("family", "category"):
        ranked = sorted(tables[level].items(), key=lambda kv: (-kv[1][0], kv[0]))
        if not ranked:
            continue
        best, (share, category) = ranked[0]
        runner_up = ranked[1][1][0] if len(ranked) > 1 else 0.0
        real = not best.startswith("intent:") and best != OUT_OF_SCOPE
        if real and share >= config.confidence_threshold and share - runner_up >= config.ambiguity_gap:
            return ("family" if level == "family" else "category"), best, share, category
    return None


def evidence_category(label: str, evidence: IntentEvidence | None) -> str:
    """The category of a contact-reason candidate: its own for a custom reason, else the taxonomy's."""
    return evidence.category if evidence is not None and evidence.category else category_of(label)


def _repeat_update(state: ConversationSignals, index: int, config: SignalConfig) -> ConversationSignals:
    """A customer turn that only asks to repeat: one more step of a loop when the bot spoke last.

    A caller who keeps asking a voice bot to say it again is not being served by it, whatever the
    intent: ``bot_loop_turns`` such requests, each right after a bot turn, raise ``bot_loop`` too.
    Two requests with no bot turn between them count once; a person taking over starts again.
    """
    if not state.after_bot:
        return msgspec.structs.replace(state, last_act=REPEAT_REQUEST)
    count = state.repeat_requests + 1
    flags = state.flags
    if "bot_loop" not in flags and count >= config.bot_loop_turns:
        evidence = f"asked the bot to repeat itself {count} times, each after a bot turn"
        flags = {**flags, "bot_loop": FlagHit(index, "pattern", evidence)}
    return msgspec.structs.replace(
        state, last_act=REPEAT_REQUEST, repeat_requests=count, after_bot=False, flags=flags
    )


def _loop_update(state: ConversationSignals, top: str | None, config: SignalConfig) -> ConversationSignals:
    """Count the customer's consecutive turns with the same top intent, each after a bot reply."""
    if top is None or top == OUT_OF_SCOPE:
        return state  # "ok", "hmm": neither a repeat nor a change of subject
    if top == state.loop_intent:
        count = state.loop_count + 1 if state.bot_answered else state.loop_count
    else:
        count = 1
    return msgspec.structs.replace(state, loop_intent=top, loop_count=count, bot_answered=False)


def _flags_update(
    state: ConversationSignals,
    ref: TurnRef,
    emotions: dict[str, float],
    top: str | None,
    top_p: float | None,
    config: SignalConfig,
) -> dict[str, FlagHit]:
    """Raise the escalation flags this customer turn shows (first hit per flag is kept)."""
    flags = state.flags
    new: dict[str, FlagHit] = {}
    strong = top if top is not None and top_p is not None and top_p >= config.intent_flag_threshold else None
    by_intent_or_phrase = (
        ("human_request", config.human_intents, human_request_phrase),
        ("churn_intent", config.churn_intents, churn_phrase),
        ("complaint", config.complaint_intents, complaint_phrase),
        ("legal_threat", (), legal_threat_phrase),
    )
    for name, intents, phrase_of in by_intent_or_phrase:
        if name in flags:
            continue
        if strong is not None and strong in intents:
            new[name] = FlagHit(ref.index, "intent", f"intent {strong} ({top_p:.2f})")
        elif (phrase := phrase_of(ref.text)) is not None:
            new[name] = FlagHit(ref.index, "phrase", f'"{phrase}"')
    if "anger_peak" not in flags:
        peaks = [(emotions.get(label, 0.0), label) for label in config.peak_emotions]
        score, label = max(peaks, default=(0.0, ""))
        if score >= config.emotion_peak_threshold and label:
            new["anger_peak"] = FlagHit(ref.index, "emotion", f"{label} {score:.2f}")
    if "bot_loop" not in flags and state.loop_count >= config.bot_loop_turns:
        new["bot_loop"] = FlagHit(
            ref.index,
            "pattern",
            f"intent {state.loop_intent} {state.loop_count} times in a row, each after a bot reply",
        )
    return {**flags, **new} if new else flags
