"""The insights counter store: time-bucketed counters kept as conversations change.

Per conversation the store keeps a small **member** record (the version of the head it was
computed from, its ``Facts`` and its ``Outcome``) and the counters it contributes
(``routing.insights.cells``). A change, whether a committed append, a close or an outcome,
replaces the member and adds ``new cells - old cells`` to the counters in one atomic step:

* SQLite (``memory://`` and ``sqlite:///path``; the same file as the conversations): one
  ``BEGIN IMMEDIATE`` transaction on the runner's thread reads the member, writes it and
  upserts the counter rows (for a whole batch of conversations: ``Insights`` batches), so
  processes sharing the file never lose an increment.
* Redis: a GET of the member, then one Lua script that checks the member is unchanged
  (compare-and-set), HINCRBYs the counter hashes ``{prefix}insights:{dim}:{bucket}``
  (field ``value\\x1fmetric``) and stores the new member; a lost race re-reads and retries.
  Replicas sharing the Redis prefix therefore add up.

An update computed from an older head than the stored member's is ignored, so listeners
running out of order across processes cannot roll a conversation back. A query reads only
the counters of the requested dimension over the window's buckets (hourly), never a
conversation. Erasing a conversation deletes its member (and with it the outcome, which is
personal data); the anonymous counts it added stay in the aggregates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from routing.insights import (
    BUCKET_S,
    Cells,
    ExperimentReport,
    Facts,
    GroupSummary,
    Outcome,
    add_counts,
    cells,
    delta,
    experiment_reports,
    facts_from,
    summarize,
)
from service.conversations import ConversationHead, ConversationService, decode_head
from service.errors import Gone, NotFound
from service.redis_conn import RedisStoreError, RedisUnavailable, open_redis
from service.sqlite_runner import SqliteError, SqliteRunner
from service.store.base import ConversationStore, StoreError
from service.validation import check_conversation_id

__all__ = [
    "DEFAULT_RETENTION_S",
    "FLUSH_DELAY_S",
    "ExperimentsOverview",
    "Insights",
    "InsightsOverview",
    "InsightsStore",
    "Member",
    "OutcomeRecorded",
    "RedisInsights",
    "SqliteInsights",
    "Update",
    "open_insights",
]

T = TypeVar("T")
# Longer than the longest window a query accepts (90 days).
DEFAULT_RETENTION_S = 100 * 86400
MAX_ATTEMPTS = 32
# How long a counter update waits for others to share its batch (readers never wait for it: they
# flush), and the most conversations one batch (one SQLite transaction) holds.
FLUSH_DELAY_S = 0.2
MAX_BATCH = 256
Bucketed = dict[tuple[int, str, str, str], int]


_log = logging.getLogger("switchboard.insights")


class Member(msgspec.Struct, frozen=True):
    """What the store keeps per conversation: the head version its facts came from, and the outcome."""

    version: int
    facts: Facts | None = None
    outcome: Outcome | None = None


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Member)


def _bucketed(member: Member | None) -> Bucketed:
    if member is None or member.facts is None:
        return {}
    bucket = member.facts.bucket
    contribution: Cells = cells(member.facts, member.outcome)
    return {(bucket, dim, value, metric): n for (dim, value, metric), n in contribution.items()}


def _changes(old: Member | None, new: Member | None) -> Bucketed:
    return delta(_bucketed(old), _bucketed(new))


Update = Callable[[Member | None], Member | None]


def _apply_updates(conn: sqlite3.Connection, updates: Sequence[tuple[str, Update]]) -> list[Member | None]:
    """Inside a transaction: replace each member with ``fn(old)``, then move the counters once by
    the summed differences. Returns the new members, in order."""
    members: list[Member | None] = []
    moved: Bucketed = {}
    for conversation_id, fn in updates:
        row = conn.execute("SELECT data FROM insight_members WHERE id = ?", (conversation_id,)).fetchone()
        old = _decoder.decode(row[0]) if row is not None else None
        new = fn(old)
        members.append(new)
        if new == old:
            continue
        if new is None:
            conn.execute("DELETE FROM insight_members WHERE id = ?", (conversation_id,))
        else:
            conn.execute(
                "INSERT INTO insight_members (id, data) VALUES (?, ?) "
                "ON CONFLICT (id) DO UPDATE SET data = excluded.data",
                (conversation_id, _encoder.encode(new)),
            )
        for key, n in _changes(old, new).items():
            moved[key] = moved.get(key, 0) + n
    conn.executemany(
        "INSERT INTO insight_counters (dim, bucket, value, metric, n) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (dim, bucket, value, metric) DO UPDATE SET n = n + excluded.n",
        [(dim, bucket, value, metric, n) for (bucket, dim, value, metric), n in moved.items() if n],
    )
    return members


def state_update(version: int, facts: Facts | None) -> Update:
    """The update for a head at ``version``: new facts, the outcome kept; stale heads change nothing."""

    def apply(old: Member | None) -> Member | None:
        if old is not None and old.version > version:
            return old
        return Member(version=version, facts=facts, outcome=old.outcome if old is not None else None)

    return apply


def outcome_update(version: int, facts: Facts | None, outcome: Outcome) -> Update:
    """The update for an outcome posted against a head at ``version`` (newer stored facts win)."""

    def apply(old: Member | None) -> Member | None:
        if old is not None and old.version >= version:
            return Member(version=old.version, facts=old.facts, outcome=outcome)
        return Member(version=version, facts=facts, outcome=outcome)

    return apply


class InsightsStore:
    """The interface both backends implement (every method may raise ``StoreError``: 503)."""

    bucket_s: int = BUCKET_S

    async def update(self, conversation_id: str, fn: Update) -> Member | None:
        """Atomically replace the member with ``fn(old)`` and move the counters by the difference."""
        raise NotImplementedError

    async def update_many(self, updates: Sequence[tuple[str, Update]]) -> None:
        """``update`` for each ``(conversation_id, fn)``, in order (one id at most once).

        Backends that can apply them in one atomic step do (SQLite: one transaction)."""
        for conversation_id, fn in updates:
            await self.update(conversation_id, fn)

    async def member(self, conversation_id: str) -> Member | None:
        """The stored member, or None."""
        raise NotImplementedError

    async def forget(self, conversation_id: str) -> None:
        """Drop the member (and its outcome); the counters keep what it contributed."""
        raise NotImplementedError

    async def groups(self, dim: str, first_bucket: int, last_bucket: int) -> dict[str, dict[str, int]]:
        """``value -> metric -> sum`` of dimension ``dim`` over buckets ``first..last`` (inclusive)."""
        raise NotImplementedError

    async def get_state(self, key: str) -> bytes | None:
        """A small shared state value (the SLO evaluator's), or None."""
        raise NotImplementedError

    async def swap_state(self, key: str, expected: bytes | None, new: bytes) -> bool:
        """Set ``key`` to ``new`` only if it still holds ``expected`` (None: absent); True if set.

        Replicas sharing the store race through this compare-and-set: one wins each change."""
        raise NotImplementedError

    async def close(self) -> None:
        """Release connections. Idempotent."""
        raise NotImplementedError


_SCHEMA = """
CREATE TABLE IF NOT EXISTS insight_counters (
    dim TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    value TEXT NOT NULL,
    metric TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (dim, bucket, value, metric)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS insight_members (
    id TEXT PRIMARY KEY,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS insight_state (
    key TEXT PRIMARY KEY,
    data BLOB NOT NULL
);
"""


class SqliteInsights(InsightsStore):
    """Counters and members in SQLite (``path=None``: a private in-memory database)."""

    def __init__(self, path: Path | None) -> None:
        self._runner = SqliteRunner(path, _SCHEMA, thread_name="sqlite-insights")

    async def _run(self, fn: Callable[[sqlite3.Connection], T], *, transaction: bool = False) -> T:
        run = self._runner.run_in_transaction if transaction else self._runner.run
        try:
            return await run(fn)
        except SqliteError as exc:
            raise StoreError(f"insights store: {exc}") from exc

    async def update(self, conversation_id: str, fn: Update) -> Member | None:
        """One IMMEDIATE transaction: read, compute, write member and counters."""
        update = [(conversation_id, fn)]
        return await self._run(lambda conn: _apply_updates(conn, update)[0], transaction=True)

    async def update_many(self, updates: Sequence[tuple[str, Update]]) -> None:
        """Every update in one IMMEDIATE transaction, the counter rows summed over them."""
        if updates:
            await self._run(lambda conn: _apply_updates(conn, updates), transaction=True)

    async def member(self, conversation_id: str) -> Member | None:
        """The stored member, or None."""
        row = await self._run(
            lambda conn: conn.execute(
                "SELECT data FROM insight_members WHERE id = ?", (conversation_id,)
            ).fetchone()
        )
        return _decoder.decode(row[0]) if row is not None else None

    async def forget(self, conversation_id: str) -> None:
        """Drop the member."""
        await self._run(
            lambda conn: conn.execute("DELETE FROM insight_members WHERE id = ?", (conversation_id,))
        )

    async def groups(self, dim: str, first_bucket: int, last_bucket: int) -> dict[str, dict[str, int]]:
        """One indexed aggregate over the dimension's rows in the window."""
        rows = await self._run(
            lambda conn: conn.execute(
                "SELECT value, metric, SUM(n) FROM insight_counters "
                "WHERE dim = ? AND bucket BETWEEN ? AND ? GROUP BY value, metric",
                (dim, first_bucket, last_bucket),
            ).fetchall()
        )
        out: dict[str, dict[str, int]] = {}
        add_counts(out, ((value, metric, int(n)) for value, metric, n in rows if n))
        return out

    async def get_state(self, key: str) -> bytes | None:
        """The state row's data, or None."""
        row = await self._run(
            lambda conn: conn.execute("SELECT data FROM insight_state WHERE key = ?", (key,)).fetchone()
        )
        return bytes(row[0]) if row is not None else None

    async def swap_state(self, key: str, expected: bytes | None, new: bytes) -> bool:
        """One IMMEDIATE transaction: compare the row with ``expected``, then write ``new``."""

        def body(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT data FROM insight_state WHERE key = ?", (key,)).fetchone()
            if (bytes(row[0]) if row is not None else None) != expected:
                return False
            conn.execute(
                "INSERT INTO insight_state (key, data) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET data = excluded.data",
                (key, new),
            )
            return True

        return await self._run(body, transaction=True)

    async def close(self) -> None:
        """Close the connection and its thread."""
        await self._runner.close()


# KEYS: member, then the counter hashes. ARGV: expected member ('' = none), new member ('' = delete),
# ttl s, number of increments, then (key index, field, n) per increment.
_UPDATE_SCRIPT = """
local cur = redis.call('GET', KEYS[1])
if cur == false then cur = '' end
if cur ~= ARGV[1] then return 0 end
local ttl = tonumber(ARGV[3])
local count = tonumber(ARGV[4])
for i = 0, count - 1 do
  local key = KEYS[tonumber(ARGV[5 + 3 * i])]
  local field = ARGV[6 + 3 * i]
  if redis.call('HINCRBY', key, field, ARGV[7 + 3 * i]) == 0 then
    redis.call('HDEL', key, field)
  end
  redis.call('EXPIRE', key, ttl)
end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ttl)
end
return 1
"""
# KEYS: the window's bucket hashes of one dimension. Returns field, sum, field, sum, ...
_SUM_SCRIPT = """
local sums = {}
local order = {}
for i = 1, #KEYS do
  local flat = redis.call('HGETALL', KEYS[i])
  for j = 1, #flat, 2 do
    local field = flat[j]
    local n = tonumber(flat[j + 1])
    if sums[field] == nil then
      sums[field] = n
      order[#order + 1] = field
    else
      sums[field] = sums[field] + n
    end
  end
end
local out = {}
for _, field in ipairs(order) do
  out[#out + 1] = field
  out[#out + 1] = string.format('%.0f', sums[field])
end
return out
"""
# KEYS: the state key. ARGV: expected ('' = absent), new. Returns 1 when set.
_SWAP_SCRIPT = """
local cur = redis.call('GET', KEYS[1])
if cur == false then cur = '' end
if cur ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"""
_SEP = "\x1f"


class RedisInsights(InsightsStore):
    """Counter hashes and member strings in Redis under the URL's prefix (shared by replicas)."""

    def __init__(self, url: str, retention_s: int = DEFAULT_RETENTION_S) -> None:
        self._conn = open_redis(url)
        self.prefix = self._conn.prefix
        self.retention_s = retention_s
        self._script = self._conn.client.register_script(_UPDATE_SCRIPT)
        self._sum = self._conn.client.register_script(_SUM_SCRIPT)
        self._swap = self._conn.client.register_script(_SWAP_SCRIPT)

    async def _call(self, op: Callable[[Any], Awaitable[T]]) -> T:
        try:
            return await self._conn.call(op)
        except RedisUnavailable as exc:
            raise StoreError(f"insights store: {exc}", retry_after_s=exc.retry_after_s) from exc
        except RedisStoreError as exc:
            raise StoreError(f"insights store: {exc}") from exc

    def _member_key(self, conversation_id: str) -> str:
        return f"{self.prefix}insights:member:{conversation_id}"

    def _hash_key(self, dim: str, bucket: int) -> str:
        return f"{self.prefix}insights:{dim}:{bucket}"

    async def update(self, conversation_id: str, fn: Update) -> Member | None:
        """GET the member, compute, then compare-and-set with the counter increments (Lua)."""
        key = self._member_key(conversation_id)
        for _attempt in range(MAX_ATTEMPTS):
            raw: bytes | None = await self._call(lambda c: c.get(key))
            old = _decoder.decode(raw) if raw else None
            new = fn(old)
            if new == old:
                return new
            changes = _changes(old, new)
            hashes: dict[str, int] = {}
            args: list[Any] = [
                raw or b"",
                _encoder.encode(new) if new is not None else b"",
                self.retention_s,
                len(changes),
            ]
            for (bucket, dim, value, metric), n in changes.items():
                hash_key = self._hash_key(dim, bucket)
                index = hashes.setdefault(hash_key, len(hashes) + 2)  # KEYS[1] is the member
                args.extend((index, f"{value}{_SEP}{metric}", n))
            keys = [key, *hashes]
            applied = await self._call(partial(self._apply, keys, args))
            if applied:
                return new
        raise StoreError("insights store: the conversation's counters are updated concurrently; retry")

    async def _apply(self, keys: list[str], args: list[Any], client: Any) -> int:
        return int(await self._script(keys=keys, args=args, client=client))

    async def member(self, conversation_id: str) -> Member | None:
        """The stored member, or None."""
        raw = await self._call(lambda c: c.get(self._member_key(conversation_id)))
        return _decoder.decode(raw) if raw else None

    async def forget(self, conversation_id: str) -> None:
        """DEL the member."""
        await self._call(lambda c: c.delete(self._member_key(conversation_id)))

    async def groups(self, dim: str, first_bucket: int, last_bucket: int) -> dict[str, dict[str, int]]:
        """One Lua call sums the window's bucket hashes in Redis (what comes back is one row per
        counter, not one per counter and hour: parsing the reply is what a query costs)."""
        keys = [self._hash_key(dim, b) for b in range(first_bucket, last_bucket + 1, self.bucket_s)]
        flat: list[bytes] = await self._call(partial(self._run_sum, keys))
        rows = []
        for field, n in zip(flat[::2], flat[1::2], strict=True):
            value, _, metric = field.decode().partition(_SEP)
            if int(n):
                rows.append((value, metric, int(n)))
        out: dict[str, dict[str, int]] = {}
        add_counts(out, rows)
        return out

    async def _run_sum(self, keys: list[str], client: Any) -> list[bytes]:
        return list(await self._sum(keys=keys, args=[], client=client))

    async def get_state(self, key: str) -> bytes | None:
        """GET the state key."""
        raw: bytes | None = await self._call(lambda c: c.get(f"{self.prefix}insights:state:{key}"))
        return raw or None

    async def swap_state(self, key: str, expected: bytes | None, new: bytes) -> bool:
        """Compare-and-set in one Lua call."""
        keys = [f"{self.prefix}insights:state:{key}"]
        args = [expected or b"", new]
        return bool(await self._call(lambda c: self._swap(keys=keys, args=args, client=c)))

    async def close(self) -> None:
        """Close the client."""
        await self._conn.aclose()


def open_insights(store_url: str, retention_s: int = DEFAULT_RETENTION_S) -> InsightsStore:
    """The counter store beside the conversation store ``store_url``: ``memory://`` (private
    in-memory SQLite), ``sqlite:///path`` (the same file) or a Redis URL (the same prefix)."""
    if store_url.startswith(("redis://", "rediss://", "unix://")):
        return RedisInsights(store_url, retention_s)
    if store_url.startswith("sqlite:///"):
        return SqliteInsights(Path(store_url.removeprefix("sqlite:///")))
    return SqliteInsights(None)


class InsightsOverview(msgspec.Struct):
    """``GET /v1/insights``: the groups of one dimension over a window, and the total."""

    window: str
    by: str
    start: str
    end: str
    bucket_s: int
    total: GroupSummary
    groups: list[GroupSummary]


class ExperimentsOverview(msgspec.Struct):
    """``GET /v1/insights/experiments``: every experiment with data in the window."""

    window: str
    start: str
    end: str
    experiments: list[ExperimentReport]


class OutcomeRecorded(msgspec.Struct):
    """``POST …/outcome``: the stored outcome and whether this request changed it."""

    conversation_id: str
    outcome: Outcome
    changed: bool


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


class Insights:
    """Keeps the counters current from the conversation service and answers the queries.

    Counter updates are not on a request's path, and they are batched: a committed change
    queues its conversation's newest head (replacing an older one still queued, since only the
    newest state counts), and ``FLUSH_DELAY_S`` later one task applies everything queued in one
    step of the store (one SQLite transaction, one trip to its thread). A transaction per append
    measurably took CPU from the appends under load; a batch costs one. Every reader (queries,
    outcomes, erasure, shutdown) calls ``flush`` first, so what it reads includes every change
    committed before it asked.
    """

    def __init__(
        self, store: InsightsStore, clock: Callable[[], float] = time.time, delay_s: float = FLUSH_DELAY_S
    ) -> None:
        self.store = store
        self._clock = clock
        self._delay_s = delay_s
        self._queued: dict[str, tuple[ConversationHead, int]] = {}
        self._conversations: ConversationStore | None = None
        self._flusher: asyncio.Task[None] | None = None
        # One batch at a time keeps each conversation's updates in the order they were queued.
        self._applying = asyncio.Lock()

    def attach(self, conversations: ConversationService) -> None:
        """Count every committed append and close; drop the member (and outcome) on erasure."""
        self._conversations = conversations.store
        conversations.add_state_listener(self.on_state)
        conversations.add_erase_listener(self.forget)
        conversations.outcome_of = self.outcome

    async def on_state(self, conversation_id: str, head: ConversationHead, version: int) -> None:
        """A state listener: queue recomputing the conversation's facts and moving the counters."""
        queued = self._queued.get(conversation_id)
        if queued is None or queued[1] <= version:
            self._queued[conversation_id] = (head, version)
        if self._flusher is None:
            self._schedule()

    def _schedule(self) -> None:
        self._flusher = asyncio.create_task(self._flush_later(), name="switchboard-insights")
        self._flusher.add_done_callback(self._flushed)

    async def _flush_later(self) -> None:
        await asyncio.sleep(self._delay_s)
        async with self._applying:
            # Only what is queued now: changes arriving meanwhile wait for the next batch, so under
            # steady load batches stay large and a reader's flush waits for one batch at most.
            await self._apply_all(self._take())

    def _flushed(self, task: asyncio.Task[None]) -> None:
        self._flusher = None
        if not task.cancelled() and self._queued:
            self._schedule()

    def _take(self) -> dict[str, tuple[ConversationHead, int]]:
        taken, self._queued = self._queued, {}
        return taken

    async def _apply_all(self, batch: dict[str, tuple[ConversationHead, int]]) -> None:
        items = list(batch.items())
        for start in range(0, len(items), MAX_BATCH):
            await self._apply(items[start : start + MAX_BATCH])

    async def _apply(self, batch: list[tuple[str, tuple[ConversationHead, int]]]) -> None:
        bucket_s = self.store.bucket_s
        try:
            await self.store.update_many(
                [
                    (
                        conversation_id,
                        state_update(
                            version,
                            facts_from(head.decision, head.signals, head.created_at, head.closed, bucket_s),
                        ),
                    )
                    for conversation_id, (head, version) in batch
                ]
            )
            await self._drop_erased([conversation_id for conversation_id, _ in batch])
        except Exception as exc:  # the appends are stored; only these counter moves are lost
            _log.error(
                "insights counters could not be updated",
                extra={"conversations": len(batch), "exc_type": type(exc).__name__},
            )

    async def _drop_erased(self, conversation_ids: list[str]) -> None:
        """Forget the members just written whose conversation is gone from the store.

        Another process (``switchboard export --delete``, another replica) may erase a
        conversation while its change waits here; its erase deleted the member before this
        batch wrote it back. An erase deletes the head before the member, so checking the heads
        after writing misses nothing: either that erase's member delete came after the write,
        or the head was already gone when checked.
        """
        if self._conversations is None or not conversation_ids:
            return
        live = await self._conversations.live(conversation_ids)
        for conversation_id in conversation_ids:
            if conversation_id not in live:
                await self.store.forget(conversation_id)

    async def flush(self, conversation_id: str | None = None) -> None:
        """Apply the queued counter updates now (of one conversation, or all) and wait for them,
        and for any batch already being applied."""
        async with self._applying:
            if conversation_id is None:
                batch = self._take()
            else:
                queued = self._queued.pop(conversation_id, None)
                batch = {conversation_id: queued} if queued is not None else {}
            await self._apply_all(batch)

    async def close(self) -> None:
        """Apply everything queued, stop the flush task and close the store."""
        await self.flush()
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.store.close()

    async def forget(self, conversation_id: str) -> None:
        """Erase listener: apply the conversation's queued update, then drop its member."""
        await self.flush(conversation_id)
        await self.store.forget(conversation_id)

    async def record_outcome(
        self, conversations: ConversationService, conversation_id: str, outcome: Outcome
    ) -> OutcomeRecorded:
        """Store ``outcome`` for a live conversation (replacing any other; the same one is a no-op).

        Raises ``NotFound`` (never created or expired), ``Gone`` (erased on request),
        ``StoreError`` (503)."""
        check_conversation_id(conversation_id)
        await self.flush(conversation_id)
        stored = await conversations.store.load_head(conversation_id)
        if stored is None:
            if await conversations.store.erased(conversation_id):
                raise Gone(f"conversation {conversation_id} was erased on request")
            raise NotFound(f"no live conversation {conversation_id} (never created, erased or expired)")
        head = decode_head(stored.data)
        facts = facts_from(head.decision, head.signals, head.created_at, head.closed, self.store.bucket_s)
        update = outcome_update(stored.version, facts, outcome)
        previous: list[Outcome | None] = []

        def apply(old: Member | None) -> Member | None:
            previous[:] = [old.outcome if old is not None else None]
            return update(old)

        await self.store.update(conversation_id, apply)
        if not await conversations.store.live([conversation_id]):  # erased meanwhile, elsewhere
            await self.store.forget(conversation_id)
            raise Gone(f"conversation {conversation_id} was erased while its outcome was recorded")
        return OutcomeRecorded(
            conversation_id=conversation_id, outcome=outcome, changed=previous[0] != outcome
        )

    async def outcome(self, conversation_id: str) -> Outcome | None:
        """The stored outcome, or None."""
        member = await self.store.member(conversation_id)
        return member.outcome if member is not None else None

    def _range(self, window_s: int) -> tuple[int, int]:
        bucket_s = self.store.bucket_s
        last = int(self._clock() // bucket_s) * bucket_s
        first = last - (max(1, window_s // bucket_s) - 1) * bucket_s
        return first, last

    async def overview(self, window: str, window_s: int, by: str) -> InsightsOverview:
        """Sum the counters of dimension ``by`` (and the total) over the last ``window_s`` seconds,
        in whole buckets ending with the current one."""
        await self.flush()
        first, last = self._range(window_s)
        dims = ("all",) if by == "all" else ("all", by)
        found = await asyncio.gather(*(self.store.groups(dim, first, last) for dim in dims))
        total = summarize("*", found[0].get("*", {}))
        groups = [summarize(key, counts) for key, counts in found[-1].items()] if by != "all" else [total]
        groups.sort(key=lambda g: (-g.conversations, g.key))
        return InsightsOverview(
            window=window,
            by=by,
            start=_iso(first),
            end=_iso(last + self.store.bucket_s),
            bucket_s=self.store.bucket_s,
            total=total,
            groups=groups,
        )

    async def totals(self, windows_s: list[int]) -> dict[int, dict[str, int]]:
        """Per window (seconds): the ``all`` counters summed over its last whole buckets (as
        ``overview``), one query each; what the SLO evaluator reads."""
        await self.flush()
        ranges = [self._range(w) for w in windows_s]
        found = await asyncio.gather(*(self.store.groups("all", first, last) for first, last in ranges))
        return {w: groups.get("*", {}) for w, groups in zip(windows_s, found, strict=True)}

    async def experiments(
        self, window: str, window_s: int, declared: dict[str, list[str]] | None = None
    ) -> ExperimentsOverview:
        """Every experiment with data in the window, each arm against the control."""
        await self.flush()
        first, last = self._range(window_s)
        groups = await self.store.groups("variant", first, last)
        return ExperimentsOverview(
            window=window,
            start=_iso(first),
            end=_iso(last + self.store.bucket_s),
            experiments=experiment_reports(groups, declared),
        )
