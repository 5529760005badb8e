"""Live conversations: append turns, keep state, notify on decision changes.

Concurrency design (no lost or reordered turns, one process or many):

* In one process, appends to one conversation are serialised by a
  per-conversation ``asyncio.Lock`` (taken before reading, released after
  writing), so local callers queue instead of conflicting.
* Across processes and machines, every write is a compare-and-set on the
  stored version. The loser of a race re-reads, drops turns whose ``id`` the
  winner already stored (idempotency), re-numbers its new turns after the
  winner's and folds them into the winner's signals. Model predictions are
  kept across the retry (they depend only on the text), so a conflict costs
  the routing work, not another inference.

Only new turns are scored: ``update_signals`` is incremental, so the stored
signals plus the new turns give the same state as re-scoring the whole
conversation. Turns without an ``id`` cannot be recognised as retries and are
always appended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import msgspec

from models.types import TextPrediction
from routing.conditions import ExplanationItem
from routing.decision import Decision, decide
from routing.signals import ConversationSignals, new_signals
from service.analysis import (
    Analyzer,
    ScoredTurn,
    build_response,
    customer_info,
    fold,
    log_scored,
    merge_customer,
    score_turn,
)
from service.errors import Conflict, InternalError, LimitExceeded, NotFound, Unavailable
from service.schemas import AnalysisResponse, CustomerIn, TurnIn, TurnOut
from service.store.base import ConversationStore, VersionConflict
from service.validation import check_conversation_id, check_turns

__all__ = ["ConversationService", "ConversationState", "CustomerIn", "TurnIn"]

DecisionListener = Callable[[str, AnalysisResponse, str | None], Awaitable[None]]
EraseListener = Callable[[str], Awaitable[Any]]
# Enough for every process of a deployment to win a race once; beyond that the
# conversation is pathologically hot and the client should back off (503 + Retry-After).
MAX_ATTEMPTS = 16
STATE_SCHEMA = 1
_log = logging.getLogger("switchboard.conversations")


class ConversationState(msgspec.Struct):
    """What the store keeps per conversation (text is stored redacted when redaction is on)."""

    conversation_id: str
    created_at: float
    updated_at: float
    signals: ConversationSignals
    turns: list[TurnOut] = []
    # Stored as plain data: routing's ExplanationItem has a union msgspec cannot decode
    # (two array types), so the Decision is rebuilt field by field on load (``load_decision``).
    decision: dict[str, Any] | None = None
    customer: CustomerIn | None = None
    channel: str | None = None
    language: str | None = None
    sources: list[str] = []
    closed: bool = False
    schema: int = STATE_SCHEMA


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(ConversationState)


def store_decision(decision: Decision) -> dict[str, Any]:
    """The stored form of a decision."""
    data: dict[str, Any] = msgspec.to_builtins(decision)
    return data


def load_decision(data: dict[str, Any] | None) -> Decision | None:
    """Rebuild a stored decision (constructors do not re-validate, so every field round-trips)."""
    if data is None:
        return None
    fields = dict(data)
    fields["explanation"] = [ExplanationItem(**item) for item in fields.get("explanation", [])]
    fields["churn_drivers"] = [tuple(pair) for pair in fields.get("churn_drivers", [])]
    return Decision(**fields)


def encode_state(state: ConversationState) -> bytes:
    """Serialise for the store."""
    return _encoder.encode(state)


def decode_state(data: bytes) -> ConversationState:
    """Deserialise from the store; a record that does not decode is our fault (500), never the client's."""
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise InternalError("a stored conversation could not be decoded") from exc


class ExportRecord(msgspec.Struct):
    """One conversation as exported (JSONL line of ``switchboard export`` / the export endpoint)."""

    conversation_id: str
    version: int
    created_at: float
    updated_at: float
    closed: bool
    channel: str | None
    language: str | None
    customer: CustomerIn | None
    sources: list[str]
    turns: list[TurnOut]
    decision: dict[str, Any] | None
    signals: ConversationSignals


def export_record(state: ConversationState, version: int) -> ExportRecord:
    """The export form of a stored conversation."""
    return ExportRecord(
        conversation_id=state.conversation_id,
        version=version,
        created_at=state.created_at,
        updated_at=state.updated_at,
        closed=state.closed,
        channel=state.channel,
        language=state.language,
        customer=state.customer,
        sources=state.sources,
        turns=state.turns,
        decision=state.decision,
        signals=state.signals,
    )


class _KeyedLocks:
    """One asyncio.Lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


def _notify_worthy(decision: Decision) -> bool:
    """A callback fires on a real change (routing's ``changed``: route, queue or priority after its
    stability rules), never for a conversation the customer just closed calmly (``resolved``)."""
    return decision.changed and not decision.resolved


class ConversationService:
    """Append turns to live conversations; read, close, export and erase them."""

    def __init__(
        self, analyzer: Analyzer, store: ConversationStore, clock: Callable[[], float] = time.time
    ) -> None:
        self.analyzer = analyzer
        self.store = store
        self._clock = clock
        self._locks = _KeyedLocks()
        self._decision_listeners: list[DecisionListener] = []
        self._erase_listeners: list[EraseListener] = []

    # -- listeners ---------------------------------------------------------------------------------

    def add_decision_listener(self, fn: DecisionListener) -> None:
        """Call ``fn(conversation_id, analysis, source)`` after an append whose decision changed.

        "Changed" is the decision's own ``changed`` flag: route, queue or priority
        moved after routing's stability rules (noise does not flip it), and never
        for a ``resolved`` decision (the customer closed the conversation calmly).

        Listeners run after the turns are stored; one that raises is logged and
        counted and does not fail the append (the turns are already committed).
        """
        self._decision_listeners.append(fn)

    def add_erase_listener(self, fn: EraseListener) -> None:
        """Call ``fn(conversation_id)`` when a conversation is erased (e.g. drop queued callbacks)."""
        self._erase_listeners.append(fn)

    # -- append ------------------------------------------------------------------------------------

    async def append(
        self,
        conversation_id: str,
        turns: list[TurnIn],
        *,
        customer: CustomerIn | None = None,
        channel: str | None = None,
        source: str | None = None,
        language: str | None = None,
        include_all_turns: bool = True,
    ) -> AnalysisResponse:
        """Append ``turns`` (idempotent on turn ``id``), score only the new ones, decide, store.

        Returns the updated analysis; ``turns`` holds every stored turn unless
        ``include_all_turns`` is False (then only this request's new turns).
        Raises ``ValidationFailed``/``LimitExceeded`` (422), ``Conflict`` (409,
        closed conversation), ``Overloaded``/``NotReady`` via the runtime.
        """
        check_conversation_id(conversation_id)
        check_turns(turns, self.analyzer.settings.limits)
        started = time.perf_counter()
        predictions: dict[str, TextPrediction] = {}
        inference_ms = 0.0
        async with self._locks.hold(conversation_id):
            for _attempt in range(MAX_ATTEMPTS):
                record = await self.store.load(conversation_id)
                version = record.version if record is not None else 0
                state = decode_state(record.data) if record is not None else self._new_state(conversation_id)
                new_turns, duplicates = self._new_turns(state, turns)
                if not new_turns:
                    # A pure retry (even after close): nothing to score, write or notify.
                    return self._respond(state, version, [], duplicates, started, 0.0, include_all_turns)
                if state.closed:
                    raise Conflict(f"conversation {conversation_id} is closed; start a new one")
                limit = self.analyzer.settings.limits.max_conversation_turns
                if len(state.turns) + len(new_turns) > limit:
                    raise LimitExceeded(
                        f"conversation would exceed {limit} turns",
                        errors=[{"field": "turns", "message": f"a conversation holds at most {limit} turns"}],
                        extra={"limit": "SWITCHBOARD_MAX_CONVERSATION_TURNS", "max": limit},
                    )
                inference_ms += await self._predict_missing(new_turns, predictions)
                scored = self._score(state, new_turns, predictions)
                previous = load_decision(state.decision)
                updated, decision = self._advance(
                    state, scored, customer, channel, language, source, previous
                )
                try:
                    new_version = await self.store.save(
                        conversation_id, encode_state(updated), expected_version=version
                    )
                except VersionConflict:
                    self.analyzer.metrics.store_conflicts.inc()
                    continue
                break
            else:
                raise Unavailable(f"conversation {conversation_id} is being updated concurrently; retry")
        self.analyzer.count_decision(decision, updated.signals)
        for turn in scored:  # counted once committed, not per compare-and-set attempt
            self.analyzer.metrics.turns_scored.labels(speaker=turn.out.speaker).inc()
        response = self._respond(
            updated,
            new_version,
            [t.out for t in scored],
            duplicates,
            started,
            inference_ms,
            include_all_turns,
            decision=decision,
        )
        if _notify_worthy(decision):
            await self._notify(conversation_id, response, source)
        return response

    def _new_state(self, conversation_id: str) -> ConversationState:
        now = self._clock()
        return ConversationState(
            conversation_id=conversation_id, created_at=now, updated_at=now, signals=new_signals()
        )

    @staticmethod
    def _new_turns(state: ConversationState, turns: Sequence[TurnIn]) -> tuple[list[TurnIn], int]:
        """Turns not stored yet (by id; repeated ids within the request count once)."""
        seen = {turn.id for turn in state.turns if turn.id is not None}
        fresh: list[TurnIn] = []
        for turn in turns:
            if turn.id is not None:
                if turn.id in seen:
                    continue
                seen.add(turn.id)
            fresh.append(turn)
        return fresh, len(turns) - len(fresh)

    async def _predict_missing(self, turns: Sequence[TurnIn], cache: dict[str, TextPrediction]) -> float:
        missing = list(dict.fromkeys(turn.text for turn in turns if turn.text not in cache))
        if not missing:
            return 0.0
        started = time.perf_counter()
        for text, prediction in zip(missing, await self.analyzer.predict(missing), strict=True):
            cache[text] = prediction
        return (time.perf_counter() - started) * 1000

    def _score(
        self, state: ConversationState, turns: Sequence[TurnIn], cache: dict[str, TextPrediction]
    ) -> list[ScoredTurn]:
        stamps = check_turns(turns, self.analyzer.settings.limits)
        first = len(state.turns)
        redact_text = self.analyzer.settings.redact
        reasons = self.analyzer.active_reasons
        scored = [
            score_turn(first + n, turn, stamp, cache[turn.text], redact_text=redact_text, reasons=reasons)
            for n, (turn, stamp) in enumerate(zip(turns, stamps, strict=True))
        ]
        log_scored(scored, log_transcripts=self.analyzer.settings.log_transcripts)
        return scored

    def _advance(
        self,
        state: ConversationState,
        scored: list[ScoredTurn],
        customer: CustomerIn | None,
        channel: str | None,
        language: str | None,
        source: str | None,
        previous: Decision | None = None,
    ) -> tuple[ConversationState, Decision]:
        policy = self.analyzer.policy
        signals = fold(state.signals, scored, policy.signals)
        merged = merge_customer(state.customer, customer)
        # The previous decision makes routing stable (hysteresis, no return to the bot) and "@previous"
        # rules keep a resolved conversation where it is; routing stays pure, the state carries it.
        decision = decide(signals, customer_info(merged), policy, state.conversation_id, previous)
        sources = state.sources if source is None or source in state.sources else [*state.sources, source]
        updated = msgspec.structs.replace(
            state,
            updated_at=self._clock(),
            signals=signals,
            turns=[*state.turns, *(t.out for t in scored)],
            decision=store_decision(decision),
            customer=merged,
            channel=channel or state.channel,
            language=language or state.language,
            sources=sources,
        )
        return updated, decision

    def _respond(
        self,
        state: ConversationState,
        version: int,
        new_turns: list[TurnOut],
        duplicates: int,
        started: float,
        inference_ms: float,
        include_all_turns: bool,
        decision: Decision | None = None,
    ) -> AnalysisResponse:
        decision = decision or load_decision(state.decision)
        if decision is None:  # a stored conversation always has one; only a brand-new empty state lacks it
            decision = decide(
                state.signals, customer_info(state.customer), self.analyzer.policy, state.conversation_id
            )
        response = build_response(
            state.conversation_id,
            signals=state.signals,
            customer=state.customer,
            decision=decision,
            policy=self.analyzer.policy,
            turns=state.turns if include_all_turns else new_turns,
            models=self.analyzer.models,
            timing_ms={
                "inference": round(inference_ms, 3),
                "total": round((time.perf_counter() - started) * 1000, 3),
            },
            redact_text=self.analyzer.settings.redact,
            channel=state.channel,
            version=version,
            closed=state.closed,
            appended=[t.index for t in new_turns],
            duplicates=duplicates,
        )
        # build_response leaves DecisionOut.changed at its default (a stateless analysis is always new).
        return msgspec.structs.replace(
            response, decision=msgspec.structs.replace(response.decision, changed=decision.changed)
        )

    async def _notify(self, conversation_id: str, response: AnalysisResponse, source: str | None) -> None:
        self.analyzer.metrics.decision_changes.inc()
        for listener in self._decision_listeners:
            try:
                await listener(conversation_id, response, source)
            except Exception:
                self.analyzer.metrics.listener_failures.inc()
                _log.exception("decision listener failed", extra={"conversation_id": conversation_id})

    # -- read / close / erase ------------------------------------------------------------------------

    async def _load(self, conversation_id: str) -> tuple[ConversationState, int]:
        check_conversation_id(conversation_id)
        record = await self.store.load(conversation_id)
        if record is None:
            raise NotFound(f"no live conversation {conversation_id} (never created, erased or expired)")
        return decode_state(record.data), record.version

    async def get(self, conversation_id: str) -> AnalysisResponse:
        """The current analysis with every stored turn; ``NotFound`` if absent or expired."""
        started = time.perf_counter()
        state, version = await self._load(conversation_id)
        return self._respond(state, version, [], 0, started, 0.0, True)

    async def close(self, conversation_id: str) -> AnalysisResponse:
        """Mark a conversation closed: no more turns; it stays readable/exportable until its TTL."""
        async with self._locks.hold(conversation_id):
            for _attempt in range(MAX_ATTEMPTS):
                state, version = await self._load(conversation_id)
                if state.closed:
                    break
                state = msgspec.structs.replace(state, closed=True, updated_at=self._clock())
                try:
                    version = await self.store.save(
                        conversation_id, encode_state(state), expected_version=version, closed=True
                    )
                except VersionConflict:
                    continue
                break
            else:
                raise Unavailable(f"conversation {conversation_id} is being updated concurrently; retry")
        return self._respond(state, version, [], 0, time.perf_counter(), 0.0, True)

    async def export(self, conversation_id: str) -> ExportRecord:
        """Everything stored about a conversation, in the export format."""
        state, version = await self._load(conversation_id)
        return export_record(state, version)

    async def delete(self, conversation_id: str) -> bool:
        """Erase the conversation and, through erase listeners, what others hold about it."""
        check_conversation_id(conversation_id)
        async with self._locks.hold(conversation_id):
            deleted = await self.store.delete(conversation_id)
        for listener in self._erase_listeners:
            await listener(conversation_id)
        return deleted
