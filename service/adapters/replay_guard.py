"""Replay guard: remembers webhook deliveries already accepted inside the signature window.

A timestamped signature stops a captured request from being replayed *after* the window;
inside it, the delivery id (or the signature itself) is claimed here once. Claims live in
the durable backend, so several workers or machines share them and a restart does not
reopen the window. A claim is released when processing fails, so the sender's genuine
retry is not mistaken for a replay.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any, Protocol

from redis.exceptions import RedisError

from service.adapters.backend import BackendError, SqliteRunner

SCHEMA = """
CREATE TABLE IF NOT EXISTS sb_webhook_nonces (
    key TEXT PRIMARY KEY,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sb_webhook_nonces_expiry ON sb_webhook_nonces (expires_at);
"""


class NonceStore(Protocol):
    """Set of keys with expiry; ``claim`` is atomic across processes."""

    async def claim(self, key: str, ttl_s: float) -> bool:
        """Record ``key`` for ``ttl_s`` seconds; False if it is already recorded (a replay)."""
        ...

    async def release(self, key: str) -> None:
        """Forget ``key`` (processing failed; let a retry through)."""
        ...


class SqliteNonceStore:
    """Nonces in the ``sb_webhook_nonces`` table."""

    def __init__(self, runner: SqliteRunner, clock: Any = time.time) -> None:
        self._runner = runner
        self._clock = clock

    async def claim(self, key: str, ttl_s: float) -> bool:
        """Insert the key, or take over an expired row; one statement, so atomic."""
        now = self._clock()

        def op(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "INSERT INTO sb_webhook_nonces (key, expires_at) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at "
                "WHERE sb_webhook_nonces.expires_at <= ?",
                (key, now + ttl_s, now),
            )
            claimed = cursor.rowcount == 1
            if claimed:
                # Opportunistic sweep; bounded so one request never pays for a large backlog.
                conn.execute(
                    "DELETE FROM sb_webhook_nonces WHERE key IN "
                    "(SELECT key FROM sb_webhook_nonces WHERE expires_at <= ? LIMIT 100)",
                    (now,),
                )
            return claimed

        return await self._runner.run(op)

    async def release(self, key: str) -> None:
        """Delete the key."""
        await self._runner.run(
            lambda conn: conn.execute("DELETE FROM sb_webhook_nonces WHERE key = ?", (key,))
        )


class RedisNonceStore:
    """Nonces as ``{prefix}nonce:{key}`` keys set with NX and a TTL."""

    def __init__(self, client: Any, prefix: str) -> None:
        self._client = client
        self._prefix = prefix

    def _key(self, key: str) -> str:
        return f"{self._prefix}nonce:{key}"

    async def claim(self, key: str, ttl_s: float) -> bool:
        """SET NX PX: Redis guarantees only one caller creates the key."""
        try:
            created = await self._client.set(self._key(key), b"1", nx=True, px=max(1, int(ttl_s * 1000)))
        except RedisError as exc:
            raise BackendError(f"adapter redis backend failed ({type(exc).__name__})") from exc
        return bool(created)

    async def release(self, key: str) -> None:
        """DEL the key."""
        try:
            await self._client.delete(self._key(key))
        except RedisError as exc:
            raise BackendError(f"adapter redis backend failed ({type(exc).__name__})") from exc
