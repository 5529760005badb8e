"""Live conversations: append turns, keep state, notify on decision changes, erase.

Storage (``service/store``): a small **head** per conversation (signals,
decision, customer, metadata: constant size) plus one record per turn. An
append reads the head, looks up only the client turn ids it carries, scores
and decides on the new turns, and writes the new head and the new turn records
with one compare-and-set on the head's version. Nothing proportional to the
history is read, decoded or written, so turn 2,000 costs what turn 10 costs.

Concurrency (no lost or reordered turns, one process or many):

* In one process, appends to one conversation are serialised by a
  per-conversation ``asyncio.Lock`` (taken before reading, released after
  writing), so local callers queue instead of conflicting.
* Across processes and machines, the write is a compare-and-set on the stored
  version. The loser of a race re-reads, drops turns whose ``id`` the winner
  already stored (idempotency), numbers its new turns after the winner's and
  folds them into the winner's signals. Model predictions are kept across the
  retry (they depend only on the text), so a conflict costs the routing work,
  not another inference.

A turn ``id`` re-sent with the same content is a retry (counted in
``duplicates``, nothing written); with different content it is a conflict
(409 naming the turn). Turns without an ``id`` cannot be recognised as retries
and are always appended.

Erasure is one path (``erase``) for ``DELETE``, ``switchboard export --delete``
and TTL expiry: the store drops the head and every turn record, erase
listeners drop what others hold (queued callbacks, replay-guard entries), and
an explicit erase leaves a tombstone so replayed events cannot re-create the
conversation (410 Gone) while it lives.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import msgspec

from models.types import TextPrediction
from routing.decision import Decision, decide_with_facts
from routing.facts import Value
from routing.insights import Outcome
from routing.redact import PiiMatch, redact_across, redact_found
from routing.signals import ConversationSignals, new_signals, requote
from routing.types import CustomerInfo
from service import tracing
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
from service.errors import Conflict, Gone, InternalError, LimitExceeded, NotFound, Unavailable
from service.schemas import AnalysisResponse, CustomerIn, TurnIn, TurnOut
from service.store.base import ConversationStore, Head, KnownTurn, NewTurn, StoreError, VersionConflict
from service.validation import check_conversation_id, check_turns

__all__ = ["ConversationHead", "ConversationService", "CustomerIn", "TurnIn"]

DecisionListener = Callable[[str, AnalysisResponse, str | None], Awaitable[bool | None]]
EraseListener = Callable[[str], Awaitable[Any]]
StateListener = Callable[[str, "ConversationHead", int], Awaitable[None]]
# Enough for every process of a deployment to win a race once; beyond that the
# conversation is pathologically hot and the client should back off (503 + Retry-After).
MAX_ATTEMPTS = 16
HEAD_SCHEMA = 2
DEFAULT_PAGE = 100
MAX_PAGE = 1000
# Longer than the longest platform retry window (Twilio retries for hours at most, Chatwoot
# within minutes) plus the webhook replay window: a replayed event cannot re-create an erasure.
DEFAULT_TOMBSTONE_S = 48 * 3600.0
_log = logging.getLogger("switchboard.conversations")


class Tail(msgspec.Struct):
    """A speaker's latest turn as stored: what the next turn of that speaker is redacted with."""

    index: int
    text: str


class ConversationHead(msgspec.Struct):
    """What the store keeps per conversation besides its turns (constant size).

    Text is stored redacted when redaction is on; the decision is stored as
    routing's own ``Decision``; ``tails`` holds each speaker's latest turn text
    so a number read out across two turns is redacted in both.
    """

    conversation_id: str
    created_at: float
    updated_at: float
    signals: ConversationSignals
    decision: Decision | None = None
    customer: CustomerIn | None = None
    channel: str | None = None
    language: str | None = None
    sources: list[str] = []
    closed: bool = False
    tails: dict[str, Tail] = {}
    schema: int = HEAD_SCHEMA


_head_encoder = msgspec.json.Encoder()
_head_decoder = msgspec.json.Decoder(ConversationHead)
_turn_decoder = msgspec.json.Decoder(TurnOut)


def encode_head(head: ConversationHead) -> bytes:
    """Serialise a head for the store."""
    return _head_encoder.encode(head)


def decode_head(data: bytes) -> ConversationHead:
    """Deserialise a head; one that does not decode is our fault (500), never the client's."""
    try:
        return _head_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise InternalError("a stored conversation could not be decoded") from exc


def decode_turns(records: Sequence[bytes]) -> list[TurnOut]:
    """Deserialise stored turn records."""
    try:
        return [_turn_decoder.decode(record) for record in records]
    except msgspec.DecodeError as exc:
        raise InternalError("a stored turn could not be decoded") from exc


def turn_digest(turn: TurnIn, text: str) -> str:
    """What identifies a turn's content for retry detection: speaker, (stored) text, timestamp.

    ``text`` is the text as stored, i.e. redacted when redaction is on, so the
    digest (16 hex characters of BLAKE2b) never fingerprints a card number.
    """
    content = "\x1f".join((turn.speaker, text, turn.ts or ""))
    return hashlib.blake2b(content.encode("utf-8"), digest_size=8).hexdigest()


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
    decision: Decision | None
    signals: ConversationSignals
    outcome: Outcome | None = None


class _KeyedLocks:
    """One asyncio.Lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self.users = 0  # callers holding or waiting for any of the locks

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        self.users += 1
        try:
            async with lock:
                yield
        finally:
            self.users -= 1
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


class _Incoming(msgspec.Struct):
    """An incoming turn, validated once: its parsed timestamp and content digest."""

    turn: TurnIn
    stamp: datetime | None
    clean: str
    digest: str
    pii: list[PiiMatch]  # what ``clean`` replaced (``redact_found``), reused by ``redact_across``


class _Redacted(msgspec.Struct):
    """The new turns' texts redacted across turns, the speakers' tails after them, and stored
    turn records rewritten because a number began there."""

    texts: list[str]
    tails: dict[str, Tail]
    replace: list[tuple[int, bytes]]
    stored_texts: dict[int, str]


class _Outcome(msgspec.Struct):
    """One committed append: everything the response and the callback are built from."""

    head: ConversationHead
    version: int
    turns: int
    scored: list[ScoredTurn]
    decision: Decision
    facts: dict[str, Value]
    info: CustomerInfo


def _notify_worthy(decision: Decision) -> bool:
    """A callback fires on a real change (routing's ``changed``: route, queue or priority after its
    stability rules), never for a conversation the customer just closed calmly (``resolved``)."""
    return decision.changed and not decision.resolved


class ConversationService:
    """Append turns to live conversations; read, close, export and erase them."""

    def __init__(
        self,
        analyzer: Analyzer,
        store: ConversationStore,
        clock: Callable[[], float] = time.time,
        tombstone_s: float = DEFAULT_TOMBSTONE_S,
    ) -> None:
        self.analyzer = analyzer
        self.store = store
        self.tombstone_s = tombstone_s
        self._clock = clock
        self._locks = _KeyedLocks()
        self._decision_listeners: list[DecisionListener] = []
        self._erase_listeners: list[EraseListener] = []
        self._state_listeners: list[StateListener] = []
        # Where a conversation's recorded outcome lives (``Insights.attach`` sets it), for exports.
        self.outcome_of: Callable[[str], Awaitable[Outcome | None]] | None = None
        # A lone turn's text goes to the model before the lock and the store's load (``_scoring``);
        # False sends it when the append first waits, on the load (``python -m bench loop`` compares).
        self.send_ahead = True
        # The only append in flight lets the store write on the event loop's thread (``inline``);
        # False always hands the write over (``python -m bench loop`` compares).
        self.inline_writes = True
        self._store_answered = True  # by the last load for an append (``_scoring``)

    # -- listeners ---------------------------------------------------------------------------------

    def add_decision_listener(self, fn: DecisionListener) -> None:
        """Call ``fn(conversation_id, analysis, source)`` after an append whose decision changed.

        ``analysis`` carries the conversation-level results and only the turns
        that append added. "Changed" is the decision's own ``changed`` flag:
        route, queue or priority moved after routing's stability rules, and
        never for a ``resolved`` decision (the customer closed calmly).

        Listeners run after the turns are stored; one that raises is logged and
        counted and does not fail the append (the turns are already committed).
        ``fn`` returns False when it stored nothing about the conversation (no callback
        URL for the source, say): unless one listener stored something, the append skips
        the store read that catches an erase racing the listeners. Any other result
        (None included) counts as stored.
        """
        self._decision_listeners.append(fn)

    def add_state_listener(self, fn: StateListener) -> None:
        """Call ``fn(conversation_id, head, version)`` after every committed append and close.

        Unlike decision listeners it sees every stored state, changed decision or not. One that
        raises is logged and counted and does not fail the request (the write is committed).
        """
        self._state_listeners.append(fn)

    async def _notify_state(self, head: ConversationHead, version: int) -> None:
        for listener in self._state_listeners:
            try:
                await listener(head.conversation_id, head, version)
            except Exception:
                self.analyzer.metrics.listener_failures.inc()
                _log.exception("state listener failed", extra={"conversation_id": head.conversation_id})

    def add_erase_listener(self, fn: EraseListener) -> None:
        """Call ``fn(conversation_id)`` whenever a conversation is erased (request, export, expiry)."""
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
        include_all_turns: bool = False,
    ) -> AnalysisResponse:
        """Append ``turns`` (idempotent on turn ``id``), score only the new ones, decide, store.

        Returns the updated analysis; ``turns`` holds this request's new turns,
        or every stored turn with ``include_all_turns``. Raises
        ``ValidationFailed``/``LimitExceeded`` (422), ``Conflict`` (409: closed
        conversation, or a stored turn id re-sent with different content),
        ``Gone`` (410: erased on request), ``Overloaded``/``NotReady`` via the
        runtime, ``StoreError`` (503).
        """
        check_conversation_id(conversation_id)
        started = time.perf_counter()
        stamps = self._check(turns)
        predictions: dict[str, TextPrediction] = {}
        inference_ms = speculative_ms = 0.0
        async with self._scoring(turns, predictions) as scoring, self._locks.hold(conversation_id):
            # Redacted and digested while the model runs: a lone turn's text is already on its way.
            incoming = self._prepare(turns, stamps)
            ids = [item.turn.id for item in incoming if item.turn.id is not None]
            for _attempt in range(MAX_ATTEMPTS):
                try:
                    stored, known = await self.store.load_for_append(conversation_id, ids)
                except StoreError:
                    self._store_answered = False
                    raise
                self._store_answered = True
                if stored is None and await self.store.erased(conversation_id):
                    raise Gone(
                        f"conversation {conversation_id} was erased on request; "
                        "events for it are refused (start a new conversation id)"
                    )
                head = decode_head(stored.data) if stored is not None else self._new_head(conversation_id)
                version, count = (stored.version, stored.turns) if stored is not None else (0, 0)
                fresh, duplicates = self._fresh(known, incoming)
                if not fresh:
                    # A pure retry (even after close): nothing to score, write or notify.
                    return await self._respond(
                        head, version, count, [], duplicates, started, 0.0, include_all_turns
                    )
                if head.closed:
                    raise Conflict(f"conversation {conversation_id} is closed; start a new one")
                self._check_size(count, len(fresh))
                # Needs no scores: done while the model runs, off a lone turn's critical path.
                redacted = await self._redact_across(head, count, fresh)
                speculative_ms = await scoring  # at once on a later attempt: the task is done
                missing = [item.turn.text for item in fresh]
                inference_ms += await self._predict_missing(missing, predictions)
                try:
                    outcome = await self._commit(
                        head,
                        version,
                        count,
                        fresh,
                        redacted,
                        predictions,
                        customer,
                        channel,
                        language,
                        source,
                    )
                except VersionConflict:
                    self.analyzer.metrics.store_conflicts.inc()
                    continue
                break
            else:
                raise Unavailable(f"conversation {conversation_id} is being updated concurrently; retry")
        self.analyzer.count_decision(outcome.decision, outcome.head.signals)
        for turn in outcome.scored:  # counted once committed, not per compare-and-set attempt
            self.analyzer.metrics.turns_scored.labels(speaker=turn.out.speaker).inc()
        new_turns = [t.out for t in outcome.scored]
        response = self._build(
            outcome.head, outcome.version, outcome.turns, new_turns, new_turns, duplicates,
            started, speculative_ms + inference_ms, outcome.decision, outcome.facts, info=outcome.info,
        )  # fmt: skip
        await self._notify_state(outcome.head, outcome.version)
        if _notify_worthy(outcome.decision) and await self._notify(conversation_id, response, source):
            await self._erase_again_if_gone(conversation_id)
        if include_all_turns:
            every = decode_turns(await self.store.load_turns(conversation_id))
            response = msgspec.structs.replace(response, turns=every)
        return response

    def _check(self, turns: Sequence[TurnIn]) -> list[datetime | None]:
        """Validate once (limits, timestamps): the parsed timestamps."""
        with tracing.span("switchboard.validate", {"switchboard.turns": len(turns)}):
            return check_turns(turns, self.analyzer.settings.limits)

    def _prepare(self, turns: Sequence[TurnIn], stamps: Sequence[datetime | None]) -> list[_Incoming]:
        """Redact and digest each checked turn; ids repeated inside the request must agree on content."""
        settings = self.analyzer.settings
        incoming = []
        for turn, stamp in zip(turns, stamps, strict=True):
            clean, pii = redact_found(turn.text) if settings.redact else (turn.text, [])
            incoming.append(
                _Incoming(turn=turn, stamp=stamp, clean=clean, digest=turn_digest(turn, clean), pii=pii)
            )
        seen: dict[str, str] = {}
        for item in incoming:
            turn_id = item.turn.id
            if turn_id is None:
                continue
            if seen.setdefault(turn_id, item.digest) != item.digest:
                raise Conflict(
                    f"turn id {turn_id!r} appears twice in this request with different content",
                    errors=[
                        {"field": "turns", "message": f"turn {turn_id!r} repeated with different content"}
                    ],
                )
        return incoming

    @staticmethod
    def _fresh(known: dict[str, KnownTurn], incoming: list[_Incoming]) -> tuple[list[_Incoming], int]:
        """The turns not stored yet; a stored id with different content is a 409 naming the turn."""
        fresh: list[_Incoming] = []
        taken: set[str] = set()
        for item in incoming:
            turn_id = item.turn.id
            if turn_id is not None:
                if turn_id in known:
                    if known[turn_id].digest != item.digest:
                        raise Conflict(
                            f"turn {turn_id!r} is already stored (index {known[turn_id].index}) "
                            "with different content; a retry must resend the same turn",
                            errors=[
                                {
                                    "field": "turns",
                                    "message": f"turn {turn_id!r} conflicts with the stored one",
                                }
                            ],
                            extra={"turn_id": turn_id, "index": known[turn_id].index},
                        )
                    continue
                if turn_id in taken:
                    continue
                taken.add(turn_id)
            fresh.append(item)
        return fresh, len(incoming) - len(fresh)

    async def _redact_across(self, head: ConversationHead, count: int, fresh: list[_Incoming]) -> _Redacted:
        """Redact each new turn together with its speaker's previous turn (``redact_across``): a card
        read out over two turns is caught, and the earlier part, stored or in this request, too."""
        texts = [item.clean for item in fresh]
        tails = dict(head.tails)
        if not self.analyzer.settings.redact:
            return _Redacted(texts=texts, tails=tails, replace=[], stored_texts={})
        stored_changes: dict[int, str] = {}
        for n, item in enumerate(fresh):
            tail = tails.get(item.turn.speaker)
            if tail is not None:
                previous, texts[n] = redact_across(tail.text, item.turn.text, item.pii)
                if previous is not None and tail.index >= count:
                    texts[tail.index - count] = previous
                elif previous is not None:
                    stored_changes[tail.index] = previous
            tails[item.turn.speaker] = Tail(index=count + n, text=texts[n])
        replace = []
        for index, text in sorted(stored_changes.items()):
            [record] = decode_turns(
                await self.store.load_turns(head.conversation_id, after=index - 1, limit=1)
            )
            replace.append((index, _head_encoder.encode(msgspec.structs.replace(record, text=text))))
        return _Redacted(texts=texts, tails=tails, replace=replace, stored_texts=stored_changes)

    def _check_size(self, stored: int, adding: int) -> None:
        limit = self.analyzer.settings.limits.max_conversation_turns
        if stored + adding > limit:
            raise LimitExceeded(
                f"conversation would exceed {limit} turns",
                errors=[{"field": "turns", "message": f"a conversation holds at most {limit} turns"}],
                extra={"limit": "SWITCHBOARD_MAX_CONVERSATION_TURNS", "max": limit},
            )

    def _new_head(self, conversation_id: str) -> ConversationHead:
        now = self._clock()
        return ConversationHead(
            conversation_id=conversation_id, created_at=now, updated_at=now, signals=new_signals()
        )

    @contextlib.asynccontextmanager
    async def _scoring(
        self, turns: Sequence[TurnIn], cache: dict[str, TextPrediction]
    ) -> AsyncIterator[asyncio.Future[float]]:
        """The request's text scored while the conversation is locked and loaded (a task filling
        ``cache``).

        The model needs only the text, so on a quiet service the lock and the store's round trip
        hide in the model's time: the task is let run first (one pass of the loop), and the text
        is on its way before the load starts (``send_ahead``). What the load then decides is
        unchanged: a pure retry, a closed or erased conversation or a size limit drops the work
        (cancelled, its error ignored), and a conversation that moved on scores whatever is still
        missing afterwards. Only a one-turn append (a live call's or chat's next turn) is scored
        ahead: a client that resends a whole transcript would have every stored turn scored
        again. And only while the store answered its last load: in an outage every append fails
        there, and their texts would take the model from requests it can serve (``/v1/analyze``).
        """
        ahead = [turns[0].text] if len(turns) == 1 else []
        task = asyncio.ensure_future(self._predict_missing(ahead, cache))
        try:
            if ahead and self.send_ahead and self._store_answered:
                await asyncio.sleep(0)
            yield task
        finally:
            if not task.done():
                task.cancel()
            with contextlib.suppress(BaseException):
                await task  # collects an error nobody awaited (a retry needs no model)

    async def _predict_missing(self, texts: Sequence[str], cache: dict[str, TextPrediction]) -> float:
        missing = list(dict.fromkeys(text for text in texts if text not in cache))
        if not missing:
            return 0.0
        started = time.perf_counter()
        for text, prediction in zip(missing, await self.analyzer.predict(missing), strict=True):
            cache[text] = prediction
        return (time.perf_counter() - started) * 1000

    async def _commit(
        self,
        head: ConversationHead,
        version: int,
        count: int,
        fresh: list[_Incoming],
        redacted: _Redacted,
        cache: dict[str, TextPrediction],
        customer: CustomerIn | None,
        channel: str | None,
        language: str | None,
        source: str | None,
    ) -> _Outcome:
        """Score, fold, decide once; write the new head and turn records (raises VersionConflict)."""
        settings = self.analyzer.settings
        reasons = self.analyzer.active_reasons
        scored = [
            score_turn(
                count + n,
                item.turn,
                item.stamp,
                cache[item.turn.text],
                redact_text=settings.redact,
                reasons=reasons,
                clean_text=redacted.texts[n],
            )
            for n, item in enumerate(fresh)
        ]
        log_scored(scored, log_transcripts=settings.log_transcripts)
        policy = self.analyzer.policy
        signals = head.signals
        for index, text in redacted.stored_texts.items():
            signals = requote(signals, index, text, policy.signals)
        signals = fold(signals, scored, policy.signals)
        merged = merge_customer(head.customer, customer)
        # The previous decision makes routing stable (hysteresis, no return to the bot) and "@previous"
        # rules keep a resolved conversation where it is; routing stays pure, the head carries it.
        info = customer_info(merged)
        with tracing.span("switchboard.route") as route_span:
            decision, facts = decide_with_facts(signals, info, policy, head.conversation_id, head.decision)
            tracing.describe_decision(route_span, decision)
        sources = head.sources if source is None or source in head.sources else [*head.sources, source]
        updated = msgspec.structs.replace(
            head,
            updated_at=self._clock(),
            signals=signals,
            decision=decision,
            customer=merged,
            channel=channel or head.channel,
            language=language or head.language,
            sources=sources,
            tails=redacted.tails,
        )
        records = [
            NewTurn(
                index=turn.out.index,
                turn_id=item.turn.id,
                digest=item.digest,
                data=_head_encoder.encode(turn.out),
            )
            for turn, item in zip(scored, fresh, strict=True)
        ]
        new_version = await self.store.append(
            head.conversation_id,
            encode_head(updated),
            records,
            expected_version=version,
            replace=redacted.replace,
            inline=self.inline_writes and self._locks.users == 1,
        )
        return _Outcome(
            head=updated,
            version=new_version,
            turns=count + len(scored),
            scored=scored,
            decision=decision,
            facts=facts,
            info=info,
        )

    def _build(
        self,
        head: ConversationHead,
        version: int,
        turn_count: int,
        turns: list[TurnOut],
        appended: list[TurnOut],
        duplicates: int,
        started: float,
        inference_ms: float,
        decision: Decision,
        facts: dict[str, Value] | None,
        next_after: int | None = None,
        info: CustomerInfo | None = None,
    ) -> AnalysisResponse:
        response = build_response(
            head.conversation_id,
            signals=head.signals,
            customer=head.customer,
            decision=decision,
            policy=self.analyzer.policy,
            turns=turns,
            models=self.analyzer.models,
            timing_ms={
                "inference": round(inference_ms, 3),
                "total": round((time.perf_counter() - started) * 1000, 3),
            },
            redact_text=self.analyzer.settings.redact,
            channel=head.channel,
            version=version,
            closed=head.closed,
            appended=[t.index for t in appended],
            duplicates=duplicates,
            facts=facts,
            turn_count=turn_count,
            next_after=next_after,
            info=info,
        )
        # build_response leaves DecisionOut.changed at its default (a stateless analysis is always new).
        return msgspec.structs.replace(
            response, decision=msgspec.structs.replace(response.decision, changed=decision.changed)
        )

    def _decision_of(self, head: ConversationHead) -> tuple[Decision, dict[str, Value] | None]:
        if head.decision is not None:
            return head.decision, None
        # Only a brand-new, empty head lacks one (a retry of nothing).
        decision, facts = decide_with_facts(
            head.signals, customer_info(head.customer), self.analyzer.policy, head.conversation_id
        )
        return decision, facts

    async def _respond(
        self,
        head: ConversationHead,
        version: int,
        count: int,
        appended: list[TurnOut],
        duplicates: int,
        started: float,
        inference_ms: float,
        include_all_turns: bool,
    ) -> AnalysisResponse:
        decision, facts = self._decision_of(head)
        turns = appended
        if include_all_turns and version > 0:
            turns = decode_turns(await self.store.load_turns(head.conversation_id))
        return self._build(
            head, version, count, turns, appended, duplicates, started, inference_ms, decision, facts
        )

    async def _erase_again_if_gone(self, conversation_id: str) -> None:
        """Run the erase listeners again if the conversation was erased since this append committed.

        The listeners run after the lock is released, so an erase here or in another process
        (``export --delete``, another replica) can land between the commit and a listener that
        queues a callback carrying the handoff context; that erase cleared the outbox before
        the callback was stored. The listeners have stored what they will by now, so one check
        afterwards misses nothing. Decision changes are rare (a few per conversation): one
        store read each. Failures are logged and counted, never raised: the append is stored.
        """
        try:
            if await self.store.live([conversation_id]):
                return
        except StoreError:
            _log.warning(
                "could not check for an erase after the listeners", extra={"conversation_id": conversation_id}
            )
            return
        for listener in self._erase_listeners:
            try:
                await listener(conversation_id)
            except Exception:  # the append is stored; its answer must not turn into an error
                self.analyzer.metrics.listener_failures.inc()
                _log.exception(
                    "erase listener failed after an append", extra={"conversation_id": conversation_id}
                )

    async def _notify(self, conversation_id: str, response: AnalysisResponse, source: str | None) -> bool:
        """Run the decision listeners; whether any may have stored something about the conversation."""
        self.analyzer.metrics.decision_changes.inc()
        stored = False
        for listener in self._decision_listeners:
            try:
                stored = await listener(conversation_id, response, source) is not False or stored
            except Exception:
                stored = True  # it may have stored something before it failed
                self.analyzer.metrics.listener_failures.inc()
                _log.exception("decision listener failed", extra={"conversation_id": conversation_id})
        return stored

    # -- read / close / erase ------------------------------------------------------------------------

    async def _load(self, conversation_id: str) -> tuple[ConversationHead, Head]:
        check_conversation_id(conversation_id)
        stored = await self.store.load_head(conversation_id)
        if stored is None:
            raise NotFound(f"no live conversation {conversation_id} (never created, erased or expired)")
        return decode_head(stored.data), stored

    async def get(
        self, conversation_id: str, *, after: int = -1, limit: int = DEFAULT_PAGE
    ) -> AnalysisResponse:
        """The current analysis with one page of turns: those with index > ``after``, at most
        ``limit`` (1..1000). ``next_after`` is the ``after`` of the next page (None at the end).
        ``NotFound`` if absent or expired."""
        started = time.perf_counter()
        head, stored = await self._load(conversation_id)
        page = decode_turns(await self.store.load_turns(conversation_id, after=after, limit=limit))
        last = page[-1].index if page else after
        next_after = last if page and last < stored.turns - 1 else None
        decision, facts = self._decision_of(head)
        return self._build(
            head, stored.version, stored.turns, page, [], 0, started, 0.0, decision, facts, next_after
        )

    async def close(self, conversation_id: str) -> AnalysisResponse:
        """Mark a conversation closed: no more turns; it stays readable/exportable until its TTL."""
        started = time.perf_counter()
        async with self._locks.hold(conversation_id):
            for _attempt in range(MAX_ATTEMPTS):
                head, stored = await self._load(conversation_id)
                version = stored.version
                if head.closed:
                    break
                head = msgspec.structs.replace(head, closed=True, updated_at=self._clock())
                try:
                    version = await self.store.append(
                        conversation_id, encode_head(head), [], expected_version=version, closed=True
                    )
                except VersionConflict:
                    continue
                await self._notify_state(head, version)
                break
            else:
                raise Unavailable(f"conversation {conversation_id} is being updated concurrently; retry")
        return await self._respond(head, version, stored.turns, [], 0, started, 0.0, False)

    async def export(self, conversation_id: str) -> ExportRecord:
        """Everything stored about a conversation, in the export format (every turn)."""
        head, stored = await self._load(conversation_id)
        return ExportRecord(
            conversation_id=head.conversation_id,
            version=stored.version,
            created_at=head.created_at,
            updated_at=head.updated_at,
            closed=head.closed,
            channel=head.channel,
            language=head.language,
            customer=head.customer,
            sources=head.sources,
            turns=decode_turns(await self.store.load_turns(conversation_id)),
            decision=head.decision,
            signals=head.signals,
            outcome=await self.outcome_of(conversation_id) if self.outcome_of is not None else None,
        )

    async def closed_ids(self) -> list[str]:
        """Ids of live closed conversations (what ``switchboard export`` takes by default)."""
        return await self.store.closed_ids()

    async def erase(self, conversation_id: str, *, tombstone: bool = True) -> bool:
        """The one erase path: the head and every turn record, then what erase listeners hold
        (queued callbacks, replay-guard entries). With ``tombstone`` (an erasure on request),
        events for this id are refused for ``tombstone_s`` seconds. True if anything was stored."""
        check_conversation_id(conversation_id)
        async with self._locks.hold(conversation_id):
            erased = await self.store.erase(conversation_id, self.tombstone_s if tombstone else 0.0)
        for listener in self._erase_listeners:
            await listener(conversation_id)
        return erased

    async def delete(self, conversation_id: str) -> bool:
        """Erase on request (``DELETE``): see ``erase``."""
        return await self.erase(conversation_id)

    async def purge_expired(self) -> list[str]:
        """Erase the conversations past their TTL through the same listeners (no tombstone: the
        customer did not ask, and the id may come back as a new conversation)."""
        expired = await self.store.purge_expired()
        for conversation_id in expired:
            for listener in self._erase_listeners:
                await listener(conversation_id)
        return expired
