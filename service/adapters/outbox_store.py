"""Durable storage of pending decision callbacks (SQLite or Redis).

Semantics shared by both implementations:

* **FIFO per conversation and target URL**: only the oldest pending message of a
  (conversation, URL) pair can be claimed, so a receiver never sees an older decision
  after a newer one, even while the older one is being retried. Other conversations are
  not held up.
* **Leases**: ``claim`` pushes the message's due time to ``lease_until`` and counts the
  attempt, atomically, so several workers (processes or machines) never deliver the same
  message at once, and a worker that dies mid-delivery only delays it until the lease ends.
* Finished messages (``delivered`` / ``dead``) stay for audit until ``purge``; dead ones
  can be sent again with ``redrive`` (all) or ``redrive_keys`` (some); ``erase`` removes
  everything of one conversation; ``list_messages`` and ``get`` serve the admin tooling.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any, Literal, Protocol, TypeVar

import msgspec

from service.adapters.backend_errors import backend_errors
from service.redis_conn import RedisConn
from service.sqlite_runner import SqliteRunner

T = TypeVar("T")

State = Literal["pending", "delivered", "dead"]


class NewMessage(msgspec.Struct, frozen=True):
    """A callback to deliver: ``key`` is its idempotency key, ``body`` the exact bytes to POST."""

    key: str
    conversation_id: str
    source: str | None
    url: str
    body: bytes
    created_at: float


class OutboxMessage(msgspec.Struct, frozen=True):
    """A claimed message; ``attempts`` already counts the attempt about to be made."""

    key: str
    conversation_id: str
    source: str | None
    url: str
    body: bytes
    created_at: float
    attempts: int


class MessageStatus(msgspec.Struct, frozen=True):
    """Where one message stands (for tests, admin tooling and logs)."""

    key: str
    state: State
    attempts: int
    last_error: str | None


class MessageRecord(msgspec.Struct, frozen=True):
    """Everything stored about one message (admin tooling); ``finished_at`` is None while pending."""

    key: str
    conversation_id: str
    source: str | None
    url: str
    state: State
    attempts: int
    last_error: str | None
    created_at: float
    finished_at: float | None
    body: bytes


class OutboxStore(Protocol):
    """The narrow interface the ``Outbox`` worker needs."""

    async def add(self, message: NewMessage) -> None:
        """Store a new pending message, due at once."""
        ...

    async def claim(self, now: float, lease_until: float, limit: int) -> list[OutboxMessage]:
        """Lease up to ``limit`` due queue heads until ``lease_until``, counting the attempt."""
        ...

    async def retry(self, key: str, next_attempt_at: float, error: str) -> None:
        """Schedule another attempt."""
        ...

    async def finish(
        self, key: str, state: Literal["delivered", "dead"], now: float, error: str | None
    ) -> None:
        """Mark delivered or dead-lettered; the next message of its queue becomes due."""
        ...

    async def next_due(self) -> float | None:
        """Earliest time any queue head is due (or its lease ends); None when nothing is pending."""
        ...

    async def counts(self) -> dict[str, int]:
        """Number of messages per state."""
        ...

    async def status(self, key: str) -> MessageStatus | None:
        """The state of one message, or None if unknown."""
        ...

    async def purge(self, finished_before: float) -> int:
        """Delete delivered and dead messages finished before the given time; return how many."""
        ...

    async def erase(self, conversation_id: str) -> int:
        """Delete every message of a conversation (right to erasure); return how many."""
        ...

    async def redrive(self, now: float) -> int:
        """Make every dead message pending again with a fresh attempt budget; return how many."""
        ...

    async def redrive_keys(self, keys: list[str], now: float) -> list[str]:
        """``redrive`` for the dead messages among ``keys``; return the keys redriven (others are left)."""
        ...

    async def list_messages(self, state: State, limit: int) -> list[MessageRecord]:
        """Up to ``limit`` messages in ``state``: pending in enqueue order, finished ones newest first."""
        ...

    async def get(self, key: str) -> MessageRecord | None:
        """One message with its body, or None if unknown."""
        ...


# --- SQLite -------------------------------------------------------------------------------

SCHEMA = """
CREATE TABLE IF NOT EXISTS sb_outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    conversation_id TEXT NOT NULL,
    source TEXT,
    url TEXT NOT NULL,
    body BLOB NOT NULL,
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    last_error TEXT,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS sb_outbox_due ON sb_outbox (state, next_attempt_at);
CREATE INDEX IF NOT EXISTS sb_outbox_queue ON sb_outbox (conversation_id, url, state, seq);
"""

# One statement, hence atomic against other processes on the same file. The NOT EXISTS
# keeps each (conversation, url) queue FIFO; next_attempt_at doubles as the lease.
_CLAIM = """
UPDATE sb_outbox SET attempts = attempts + 1, next_attempt_at = :lease
WHERE seq IN (
    SELECT o.seq FROM sb_outbox AS o
    WHERE o.state = 'pending' AND o.next_attempt_at <= :now
      AND NOT EXISTS (
          SELECT 1 FROM sb_outbox AS p
          WHERE p.state = 'pending' AND p.conversation_id = o.conversation_id
            AND p.url = o.url AND p.seq < o.seq
      )
    ORDER BY o.next_attempt_at, o.seq
    LIMIT :limit
)
RETURNING key, conversation_id, source, url, body, created_at, attempts
"""

_NEXT_DUE = """
SELECT MIN(o.next_attempt_at) FROM sb_outbox AS o
WHERE o.state = 'pending'
  AND NOT EXISTS (
      SELECT 1 FROM sb_outbox AS p
      WHERE p.state = 'pending' AND p.conversation_id = o.conversation_id
        AND p.url = o.url AND p.seq < o.seq
  )
"""


class SqliteOutboxStore:
    """Outbox rows in the ``sb_outbox`` table of the backend's SQLite file."""

    def __init__(self, runner: SqliteRunner) -> None:
        self._runner = runner

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with backend_errors():
            return await self._runner.run(fn)

    async def add(self, message: NewMessage) -> None:
        """INSERT the message as pending."""
        await self._run(
            lambda conn: conn.execute(
                "INSERT INTO sb_outbox (key, conversation_id, source, url, body, created_at, "
                "next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    message.key,
                    message.conversation_id,
                    message.source,
                    message.url,
                    message.body,
                    message.created_at,
                    message.created_at,
                ),
            )
        )

    async def claim(self, now: float, lease_until: float, limit: int) -> list[OutboxMessage]:
        """Lease due queue heads (see ``_CLAIM``)."""

        def op(conn: sqlite3.Connection) -> list[OutboxMessage]:
            rows = conn.execute(_CLAIM, {"now": now, "lease": lease_until, "limit": limit}).fetchall()
            return [
                OutboxMessage(
                    key=row[0],
                    conversation_id=row[1],
                    source=row[2],
                    url=row[3],
                    body=bytes(row[4]),
                    created_at=row[5],
                    attempts=row[6],
                )
                for row in rows
            ]

        return await self._run(op)

    async def retry(self, key: str, next_attempt_at: float, error: str) -> None:
        """Set the next due time and remember the error."""
        await self._run(
            lambda conn: conn.execute(
                "UPDATE sb_outbox SET next_attempt_at = ?, last_error = ? "
                "WHERE key = ? AND state = 'pending'",
                (next_attempt_at, error, key),
            )
        )

    async def finish(
        self, key: str, state: Literal["delivered", "dead"], now: float, error: str | None
    ) -> None:
        """Leave the pending state; the queue's next row is then the head."""
        await self._run(
            lambda conn: conn.execute(
                "UPDATE sb_outbox SET state = ?, finished_at = ?, last_error = COALESCE(?, last_error) "
                "WHERE key = ? AND state = 'pending'",
                (state, now, error, key),
            )
        )

    async def next_due(self) -> float | None:
        """MIN(next_attempt_at) over queue heads (a blocked non-head must not make the worker spin)."""

        def op(conn: sqlite3.Connection) -> float | None:
            row = conn.execute(_NEXT_DUE).fetchone()
            return None if row is None or row[0] is None else float(row[0])

        return await self._run(op)

    async def counts(self) -> dict[str, int]:
        """GROUP BY state."""

        def op(conn: sqlite3.Connection) -> dict[str, int]:
            found = dict(conn.execute("SELECT state, COUNT(*) FROM sb_outbox GROUP BY state").fetchall())
            return {state: int(found.get(state, 0)) for state in ("pending", "delivered", "dead")}

        return await self._run(op)

    async def status(self, key: str) -> MessageStatus | None:
        """One row's state."""

        def op(conn: sqlite3.Connection) -> MessageStatus | None:
            row = conn.execute(
                "SELECT state, attempts, last_error FROM sb_outbox WHERE key = ?", (key,)
            ).fetchone()
            return (
                None
                if row is None
                else MessageStatus(key=key, state=row[0], attempts=row[1], last_error=row[2])
            )

        return await self._run(op)

    async def purge(self, finished_before: float) -> int:
        """DELETE finished rows older than the cutoff."""

        def op(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "DELETE FROM sb_outbox WHERE state != 'pending' AND finished_at < ?", (finished_before,)
            )
            return cursor.rowcount

        return await self._run(op)

    async def erase(self, conversation_id: str) -> int:
        """DELETE every row of the conversation."""

        def op(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "DELETE FROM sb_outbox WHERE conversation_id = ?", (conversation_id,)
            ).rowcount

        return await self._run(op)

    async def redrive(self, now: float) -> int:
        """Dead rows become pending, due now, with their attempt count reset."""

        def op(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "UPDATE sb_outbox SET state = 'pending', attempts = 0, next_attempt_at = ?, "
                "finished_at = NULL WHERE state = 'dead'",
                (now,),
            )
            return cursor.rowcount

        return await self._run(op)

    async def redrive_keys(self, keys: list[str], now: float) -> list[str]:
        """As ``redrive``, for the named dead rows only (one statement per call: atomic)."""
        if not keys:
            return []

        def op(conn: sqlite3.Connection) -> list[str]:
            marks = ", ".join("?" * len(keys))
            rows = conn.execute(
                "UPDATE sb_outbox SET state = 'pending', attempts = 0, next_attempt_at = ?, "
                f"finished_at = NULL WHERE state = 'dead' AND key IN ({marks}) RETURNING key",
                (now, *keys),
            ).fetchall()
            found = {row[0] for row in rows}
            return [key for key in dict.fromkeys(keys) if key in found]

        return await self._run(op)

    async def list_messages(self, state: State, limit: int) -> list[MessageRecord]:
        """SELECT by state: pending by ``seq``, finished by ``finished_at`` descending."""
        order = "seq" if state == "pending" else "finished_at DESC, seq DESC"

        def op(conn: sqlite3.Connection) -> list[MessageRecord]:
            rows = conn.execute(
                f"SELECT {_RECORD_COLUMNS} FROM sb_outbox WHERE state = ? ORDER BY {order} LIMIT ?",
                (state, limit),
            ).fetchall()
            return [_record(row) for row in rows]

        return await self._run(op)

    async def get(self, key: str) -> MessageRecord | None:
        """One row by key."""

        def op(conn: sqlite3.Connection) -> MessageRecord | None:
            row = conn.execute(f"SELECT {_RECORD_COLUMNS} FROM sb_outbox WHERE key = ?", (key,)).fetchone()
            return None if row is None else _record(row)

        return await self._run(op)


_RECORD_COLUMNS = (
    "key, conversation_id, source, url, state, attempts, last_error, created_at, finished_at, body"
)


def _record(row: tuple[Any, ...]) -> MessageRecord:
    return MessageRecord(
        key=row[0],
        conversation_id=row[1],
        source=row[2],
        url=row[3],
        state=row[4],
        attempts=int(row[5]),
        last_error=row[6],
        created_at=float(row[7]),
        finished_at=None if row[8] is None else float(row[8]),
        body=bytes(row[9]),
    )


# --- Redis --------------------------------------------------------------------------------
#
# Keys under {prefix}outbox: —
#   m:{key}      hash: cid src url body created attempts state err fin q
#   q:{digest}   list: pending keys of one (conversation, url) queue, oldest first
#   due          zset: the HEAD of every queue, scored by due time (or lease end)
#   pend         set of pending keys; dead / done: zsets scored by finish time
#   c:{cid}      set of every key of a conversation (for erase)
# Only queue heads are ever in ``due``, which is what makes delivery FIFO per queue.

_ADD = """
redis.call('HSET', KEYS[1], 'cid', ARGV[2], 'src', ARGV[3], 'url', ARGV[4], 'body', ARGV[5],
           'created', ARGV[6], 'attempts', 0, 'state', 'pending', 'q', KEYS[2])
if redis.call('RPUSH', KEYS[2], ARGV[1]) == 1 then redis.call('ZADD', KEYS[3], ARGV[6], ARGV[1]) end
redis.call('SADD', KEYS[4], ARGV[1])
redis.call('SADD', KEYS[5], ARGV[1])
return 1
"""

_CLAIM_LUA = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(ids) do
  local h = ARGV[4] .. id
  if redis.call('EXISTS', h) == 0 then
    redis.call('ZREM', KEYS[1], id)
  else
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    redis.call('HINCRBY', h, 'attempts', 1)
    table.insert(out, {id, redis.call('HMGET', h, 'cid', 'src', 'url', 'body', 'created', 'attempts')})
  end
end
return out
"""

_RETRY = """
if redis.call('HGET', KEYS[1], 'state') ~= 'pending' then return 0 end
redis.call('HSET', KEYS[1], 'err', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 1
"""

# KEYS: hash, due, pend, finished zset. ARGV: key, state, now, err ('' = keep).
_FINISH = """
if redis.call('HGET', KEYS[1], 'state') ~= 'pending' then return 0 end
local q = redis.call('HGET', KEYS[1], 'q')
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'fin', ARGV[3])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'err', ARGV[4]) end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
redis.call('LREM', q, 1, ARGV[1])
local head = redis.call('LINDEX', q, 0)
if head then redis.call('ZADD', KEYS[2], ARGV[3], head) end
return 1
"""

# KEYS: conversation set, due, pend, dead, done. ARGV: message hash prefix.
_ERASE = """
local ids = redis.call('SMEMBERS', KEYS[1])
for _, id in ipairs(ids) do
  local h = ARGV[1] .. id
  local q = redis.call('HGET', h, 'q')
  if q then redis.call('DEL', q) end
  redis.call('ZREM', KEYS[2], id)
  redis.call('SREM', KEYS[3], id)
  redis.call('ZREM', KEYS[4], id)
  redis.call('ZREM', KEYS[5], id)
  redis.call('DEL', h)
end
redis.call('DEL', KEYS[1])
return #ids
"""

# KEYS: finished zset. ARGV: cutoff, message hash prefix, conversation set prefix.
_PURGE = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1], 'LIMIT', 0, 500)
for _, id in ipairs(ids) do
  local h = ARGV[2] .. id
  local cid = redis.call('HGET', h, 'cid')
  if cid then redis.call('SREM', ARGV[3] .. cid, id) end
  redis.call('DEL', h)
  redis.call('ZREM', KEYS[1], id)
end
return #ids
"""

# KEYS: dead, due, pend. ARGV: now, message hash prefix, then the keys to redrive (only
# those still in ``dead`` move; none named: every dead message). Returns the keys moved.
_REDRIVE = """
local ids = {}
if #ARGV > 2 then
  for i = 3, #ARGV do table.insert(ids, ARGV[i]) end
else
  ids = redis.call('ZRANGE', KEYS[1], 0, -1)
end
local out = {}
for _, id in ipairs(ids) do
  if redis.call('ZSCORE', KEYS[1], id) then
    local h = ARGV[2] .. id
    local q = redis.call('HGET', h, 'q')
    if q then
      redis.call('HSET', h, 'state', 'pending', 'attempts', 0)
      redis.call('HDEL', h, 'fin')
      if redis.call('RPUSH', q, id) == 1 then redis.call('ZADD', KEYS[2], ARGV[1], id) end
      redis.call('SADD', KEYS[3], id)
      table.insert(out, id)
    end
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
"""


class RedisOutboxStore:
    """Outbox in Redis (see the key layout above); every multi-key change is one Lua script."""

    def __init__(self, conn: RedisConn, prefix: str) -> None:
        self._conn = conn
        self._p = f"{prefix}outbox:"
        client = conn.client  # registering a script is local: no I/O until it is called
        self._add = client.register_script(_ADD)
        self._claim = client.register_script(_CLAIM_LUA)
        self._retry = client.register_script(_RETRY)
        self._finish = client.register_script(_FINISH)
        self._erase = client.register_script(_ERASE)
        self._purge = client.register_script(_PURGE)
        self._redrive = client.register_script(_REDRIVE)

    def _msg(self, key: str) -> str:
        return f"{self._p}m:{key}"

    def _queue(self, conversation_id: str, url: str) -> str:
        digest = hashlib.sha256(f"{url}\0{conversation_id}".encode()).hexdigest()[:32]
        return f"{self._p}q:{digest}"

    def _conv(self, conversation_id: str) -> str:
        return f"{self._p}c:{conversation_id}"

    async def _call(self, op: Callable[[Any], Awaitable[T]]) -> T:
        with backend_errors():
            return await self._conn.call(op)

    async def add(self, message: NewMessage) -> None:
        """HSET + RPUSH; the message enters ``due`` if it is its queue's head."""
        keys = [
            self._msg(message.key),
            self._queue(message.conversation_id, message.url),
            self._p + "due",
            self._p + "pend",
            self._conv(message.conversation_id),
        ]
        args = [
            message.key,
            message.conversation_id,
            message.source or "",
            message.url,
            message.body,
            repr(message.created_at),
        ]
        await self._call(lambda c: self._add(keys=keys, args=args, client=c))

    async def claim(self, now: float, lease_until: float, limit: int) -> list[OutboxMessage]:
        """Lease due heads atomically."""
        args = [repr(now), repr(lease_until), limit, self._p + "m:"]
        raw = await self._call(lambda c: self._claim(keys=[self._p + "due"], args=args, client=c))
        messages = []
        for key, (cid, src, url, body, created, attempts) in raw:
            messages.append(
                OutboxMessage(
                    key=key.decode(),
                    conversation_id=cid.decode(),
                    source=src.decode() or None,
                    url=url.decode(),
                    body=bytes(body),
                    created_at=float(created),
                    attempts=int(attempts),
                )
            )
        return messages

    async def retry(self, key: str, next_attempt_at: float, error: str) -> None:
        """Re-score the head in ``due``."""
        keys = [self._msg(key), self._p + "due"]
        await self._call(lambda c: self._retry(keys=keys, args=[key, repr(next_attempt_at), error], client=c))

    async def finish(
        self, key: str, state: Literal["delivered", "dead"], now: float, error: str | None
    ) -> None:
        """Pop from the queue, promote the next head."""
        finished = self._p + ("done" if state == "delivered" else "dead")
        await self._call(
            lambda c: self._finish(
                keys=[self._msg(key), self._p + "due", self._p + "pend", finished],
                args=[key, state, repr(now), error or ""],
                client=c,
            )
        )

    async def next_due(self) -> float | None:
        """Lowest score in ``due``."""
        head = await self._call(lambda c: c.zrange(self._p + "due", 0, 0, withscores=True))
        return float(head[0][1]) if head else None

    async def counts(self) -> dict[str, int]:
        """SCARD / ZCARD."""

        def counted(client: Any) -> Awaitable[list[Any]]:
            pipe = client.pipeline(transaction=False)
            pipe.scard(self._p + "pend")
            pipe.zcard(self._p + "done")
            pipe.zcard(self._p + "dead")
            result: Awaitable[list[Any]] = pipe.execute()
            return result

        pending, delivered, dead = await self._call(counted)
        return {"pending": int(pending), "delivered": int(delivered), "dead": int(dead)}

    async def status(self, key: str) -> MessageStatus | None:
        """HMGET state attempts err."""
        state, attempts, err = await self._call(lambda c: c.hmget(self._msg(key), "state", "attempts", "err"))
        if state is None:
            return None
        return MessageStatus(
            key=key,
            state=state.decode(),
            attempts=int(attempts or 0),
            last_error=err.decode() if err else None,
        )

    async def purge(self, finished_before: float) -> int:
        """Drop old finished messages, 500 per script call to keep Redis responsive."""
        args = [repr(finished_before), self._p + "m:", self._p + "c:"]

        async def batch(finished: str) -> int:
            keys = [self._p + finished]
            return int(await self._call(lambda c: self._purge(keys=keys, args=args, client=c)))

        total = 0
        for finished in ("done", "dead"):
            while True:
                removed = await batch(finished)
                total += removed
                if removed < 500:
                    break
        return total

    async def erase(self, conversation_id: str) -> int:
        """Delete every message and queue of the conversation."""
        keys = [
            self._conv(conversation_id),
            self._p + "due",
            self._p + "pend",
            self._p + "dead",
            self._p + "done",
        ]
        return int(await self._call(lambda c: self._erase(keys=keys, args=[self._p + "m:"], client=c)))

    async def redrive(self, now: float) -> int:
        """Requeue dead messages at the tail of their queues."""
        keys = [self._p + "dead", self._p + "due", self._p + "pend"]
        args = [repr(now), self._p + "m:"]
        return len(await self._call(lambda c: self._redrive(keys=keys, args=args, client=c)))

    async def redrive_keys(self, keys: list[str], now: float) -> list[str]:
        """Requeue the named dead messages at the tail of their queues."""
        if not keys:
            return []
        unique = list(dict.fromkeys(keys))
        redis_keys = [self._p + "dead", self._p + "due", self._p + "pend"]
        args = [repr(now), self._p + "m:", *unique]
        moved = await self._call(lambda c: self._redrive(keys=redis_keys, args=args, client=c))
        found = {raw.decode() for raw in moved}
        return [key for key in unique if key in found]

    async def list_messages(self, state: State, limit: int) -> list[MessageRecord]:
        """Pending: the ``pend`` set ordered by enqueue time; finished: newest first from their zset."""
        if state == "pending":
            members = await self._call(lambda c: c.smembers(self._p + "pend"))
            records = [r for r in await self._records([m.decode() for m in members]) if r is not None]
            records.sort(key=lambda r: (r.created_at, r.key))
            return records[:limit]
        finished = self._p + ("done" if state == "delivered" else "dead")
        ids = await self._call(lambda c: c.zrevrange(finished, 0, limit - 1))
        return [r for r in await self._records([i.decode() for i in ids]) if r is not None]

    async def get(self, key: str) -> MessageRecord | None:
        """HGETALL of the message hash."""
        (record,) = await self._records([key])
        return record

    async def _records(self, keys: list[str]) -> list[MessageRecord | None]:
        if not keys:
            return []

        def fetch(client: Any) -> Awaitable[list[Any]]:
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.hgetall(self._msg(key))
            result: Awaitable[list[Any]] = pipe.execute()
            return result

        hashes = await self._call(fetch)
        return [_redis_record(key, h) for key, h in zip(keys, hashes, strict=True)]


def _redis_record(key: str, fields: dict[bytes, bytes]) -> MessageRecord | None:
    if not fields or b"state" not in fields:
        return None

    def text(name: bytes) -> str | None:
        value = fields.get(name)
        return value.decode() if value else None

    finished = fields.get(b"fin")
    return MessageRecord(
        key=key,
        conversation_id=fields[b"cid"].decode(),
        source=text(b"src"),
        url=fields[b"url"].decode(),
        state=fields[b"state"].decode(),  # type: ignore[arg-type]
        attempts=int(fields.get(b"attempts", b"0")),
        last_error=text(b"err"),
        created_at=float(fields[b"created"]),
        finished_at=float(finished) if finished else None,
        body=bytes(fields.get(b"body", b"")),
    )
