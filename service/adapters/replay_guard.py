"""Replay guard: remembers webhook deliveries already accepted.

Two uses, one store of keys with expiry:

* **Timestamped signatures** (Chatwoot, generic): the timestamp stops a captured request
  from being replayed *after* the window; inside it, the signed content (timestamp + body
  hash) is ``claim``-ed once before processing and ``release``-d if processing fails, so
  the sender's genuine retry is not mistaken for a replay.
* **Twilio** signs no timestamp, so a captured request verifies forever. Its signed
  identity is ``claim``-ed briefly while the event is processed and ``record``-ed (kept
  for longer than Twilio retries) only once it was: a crash mid-processing never swallows
  the retry.

Keys live in the durable backend, so several workers or machines share them and a restart
does not forget them. Each key may name the conversation its delivery went to, so erasing a
conversation (``forget``) leaves nothing about it here; the conversation's erase tombstone
keeps refusing its replays. ``claim``, ``record`` and ``forget`` are each one atomic step
(a transaction, a Lua script), and ``record`` only extends a claim that is still there: an
erase in another process that lands while an event is processed is never undone by it.
Failures raise ``BackendError``.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from service.adapters.backend_errors import backend_errors
from service.redis_conn import RedisConn
from service.sqlite_runner import SqliteRunner

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS sb_webhook_nonces (
    key TEXT PRIMARY KEY,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sb_webhook_nonces_expiry ON sb_webhook_nonces (expires_at);
CREATE TABLE IF NOT EXISTS sb_webhook_nonce_owners (
    key TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sb_webhook_nonce_owners_conversation ON sb_webhook_nonce_owners (conversation_id);
"""


class NonceStore(Protocol):
    """Set of keys with expiry; ``claim`` is atomic across processes."""

    async def claim(self, key: str, ttl_s: float, conversation_id: str | None = None) -> bool:
        """Record ``key`` for ``ttl_s`` seconds (owned by ``conversation_id``, if given); False if
        it is already recorded (a replay)."""
        ...

    async def release(self, key: str, conversation_id: str | None = None) -> None:
        """Forget ``key`` (processing failed; let a retry through); ``conversation_id`` is the
        owner given to ``claim``."""
        ...

    async def seen(self, key: str) -> bool:
        """True while ``key`` is recorded and not expired."""
        ...

    async def record(self, key: str, ttl_s: float, conversation_id: str | None = None) -> bool:
        """Keep a claimed ``key`` for ``ttl_s`` seconds from now (its event was processed).

        False, and nothing is recorded, when the claim is gone: released, or erased with its
        conversation (``forget``) while the event was processed."""
        ...

    async def forget(self, conversation_id: str) -> int:
        """Delete every key owned by ``conversation_id`` (an erasure); returns how many."""
        ...


class SqliteNonceStore:
    """Nonces in the ``sb_webhook_nonces`` table."""

    def __init__(self, runner: SqliteRunner, clock: Callable[[], float] = time.time) -> None:
        self._runner = runner
        self._clock = clock

    async def _run(self, fn: Callable[[sqlite3.Connection], T], *, transaction: bool = False) -> T:
        with backend_errors():
            return await (self._runner.run_in_transaction if transaction else self._runner.run)(fn)

    async def claim(self, key: str, ttl_s: float, conversation_id: str | None = None) -> bool:
        """Insert the key, or take over an expired row, and its owner row, in one transaction."""
        now = self._clock()

        def work(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "INSERT INTO sb_webhook_nonces (key, expires_at) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at "
                "WHERE sb_webhook_nonces.expires_at <= ?",
                (key, now + ttl_s, now),
            )
            claimed = cursor.rowcount == 1
            if claimed:
                _own(conn, key, conversation_id)
                _sweep(conn, now)
            return claimed

        return await self._run(work, transaction=True)

    async def release(self, key: str, conversation_id: str | None = None) -> None:
        """Delete the key and its owner row."""

        def op(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM sb_webhook_nonces WHERE key = ?", (key,))
            conn.execute("DELETE FROM sb_webhook_nonce_owners WHERE key = ?", (key,))

        await self._run(op)

    async def seen(self, key: str) -> bool:
        """Look the key up, ignoring an expired row."""
        now = self._clock()

        def op(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT 1 FROM sb_webhook_nonces WHERE key = ? AND expires_at > ?", (key, now)
            ).fetchone()
            return row is not None

        return await self._run(op)

    async def record(self, key: str, ttl_s: float, conversation_id: str | None = None) -> bool:
        """Give the claimed row a fresh expiry (and its owner) in one transaction, if it is there."""
        now = self._clock()

        def work(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE sb_webhook_nonces SET expires_at = ? WHERE key = ?", (now + ttl_s, key)
            )
            kept = cursor.rowcount == 1
            if kept:
                _own(conn, key, conversation_id)
            _sweep(conn, now)
            return kept

        return await self._run(work, transaction=True)

    async def forget(self, conversation_id: str) -> int:
        """Delete the conversation's keys and their owner rows in one transaction."""

        def work(conn: sqlite3.Connection) -> int:
            deleted = conn.execute(
                "DELETE FROM sb_webhook_nonces WHERE key IN "
                "(SELECT key FROM sb_webhook_nonce_owners WHERE conversation_id = ?)",
                (conversation_id,),
            ).rowcount
            conn.execute("DELETE FROM sb_webhook_nonce_owners WHERE conversation_id = ?", (conversation_id,))
            return int(deleted)

        return await self._run(work, transaction=True)


def _own(conn: sqlite3.Connection, key: str, conversation_id: str | None) -> None:
    if conversation_id is not None:
        conn.execute(
            "INSERT OR REPLACE INTO sb_webhook_nonce_owners (key, conversation_id) VALUES (?, ?)",
            (key, conversation_id),
        )


def _sweep(conn: sqlite3.Connection, now: float) -> None:
    # Opportunistic; bounded so one request never pays for a large backlog.
    expired = "SELECT key FROM sb_webhook_nonces WHERE expires_at <= ? LIMIT 100"
    conn.execute(f"DELETE FROM sb_webhook_nonce_owners WHERE key IN ({expired})", (now,))
    conn.execute(f"DELETE FROM sb_webhook_nonces WHERE key IN ({expired})", (now,))


# The owner set (KEYS[2], optional) lists a conversation's keys and lives as long as its
# longest-lived key (PTTL/PEXPIRE rather than GT, which Redis 6 lacks).
_OWN_LUA = """
local function own(ttl)
  if KEYS[2] then
    redis.call('SADD', KEYS[2], KEYS[1])
    if redis.call('PTTL', KEYS[2]) < ttl then redis.call('PEXPIRE', KEYS[2], ttl) end
  end
end
"""
# KEYS: nonce, [owner set]. ARGV: ttl ms, NX (claim: only a new key) or XX (record: only a key
# still there). 1 if set.
_SET_LUA = (
    _OWN_LUA
    + """
local ttl = tonumber(ARGV[1])
if not redis.call('SET', KEYS[1], '1', ARGV[2], 'PX', ttl) then return 0 end
own(ttl)
return 1
"""
)
# KEYS: owner set. How many of its keys existed.
_FORGET_LUA = """
local deleted = 0
for _, key in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  deleted = deleted + redis.call('DEL', key)
end
redis.call('DEL', KEYS[1])
return deleted
"""


class RedisNonceStore:
    """Nonces as ``{prefix}nonce:{key}`` keys with a TTL (Redis expires them)."""

    def __init__(self, conn: RedisConn, prefix: str) -> None:
        self._conn = conn
        self._prefix = prefix
        self._set = conn.client.register_script(_SET_LUA)
        self._forget = conn.client.register_script(_FORGET_LUA)

    def _key(self, key: str) -> str:
        return f"{self._prefix}nonce:{key}"

    async def _call(self, op: Callable[[Any], Awaitable[T]]) -> T:
        with backend_errors():
            return await self._conn.call(op)

    def _owner_key(self, conversation_id: str) -> str:
        return f"{self._prefix}nonces-of:{conversation_id}"

    def _keys(self, key: str, conversation_id: str | None) -> list[str]:
        keys = [self._key(key)]
        if conversation_id is not None:
            keys.append(self._owner_key(conversation_id))
        return keys

    async def claim(self, key: str, ttl_s: float, conversation_id: str | None = None) -> bool:
        """SET NX PX and the owner set in one script: only one caller creates the key."""
        keys, args = self._keys(key, conversation_id), [_ms(ttl_s), "NX"]
        return bool(int(await self._call(lambda c: self._set(keys=keys, args=args, client=c))))

    async def release(self, key: str, conversation_id: str | None = None) -> None:
        """DEL the key and drop it from its owner's set in one MULTI/EXEC: a failure between two
        separate commands would have left the set naming a key that is gone."""
        nonce = self._key(key)
        owner = self._owner_key(conversation_id) if conversation_id is not None else None

        async def op(c: Any) -> None:
            async with c.pipeline(transaction=True) as pipe:
                pipe.delete(nonce)
                if owner is not None:
                    pipe.srem(owner, nonce)
                await pipe.execute()

        await self._call(op)

    async def seen(self, key: str) -> bool:
        """EXISTS the key."""
        return int(await self._call(lambda c: c.exists(self._key(key)))) > 0

    async def record(self, key: str, ttl_s: float, conversation_id: str | None = None) -> bool:
        """SET XX PX and the owner set in one script (nothing when the claim is gone)."""
        keys, args = self._keys(key, conversation_id), [_ms(ttl_s), "XX"]
        return bool(int(await self._call(lambda c: self._set(keys=keys, args=args, client=c))))

    async def forget(self, conversation_id: str) -> int:
        """Delete the keys listed in the conversation's owner set, then the set, in one script."""
        keys = [self._owner_key(conversation_id)]
        return int(await self._call(lambda c: self._forget(keys=keys, args=[], client=c)))


def _ms(ttl_s: float) -> int:
    return max(1, int(ttl_s * 1000))
