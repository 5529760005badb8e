"""Embedded default store (``sqlite:///path``): persistent, safe with several worker processes.

Why SQLite: the service must keep live conversations across restarts on one
box with no extra server. WAL mode lets readers proceed during a write, a busy
timeout makes concurrent writers from other worker processes wait instead of
failing, and every write is a single statement whose ``WHERE version = ?``
clause is the compare-and-set, so no lock is held across the model inference.

sqlite3 calls block, so each store owns one connection on one dedicated thread
(sqlite connections must not be shared across threads) and the event loop
awaits it through ``run_in_executor``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from service.store.base import Record, StoreError, VersionConflict


def open_sqlite(path: Path, schema: str, attempts: int = 50) -> sqlite3.Connection:
    """Open ``path`` in autocommit WAL mode and apply ``schema`` (idempotent DDL).

    Two processes opening a fresh file at once race for the lock that switching
    to WAL (and the first CREATE) takes; SQLite answers "database is locked" at
    once there instead of waiting on the busy timeout, so the setup is retried.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: autocommit; every statement is its own atomic transaction.
    conn = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=True)
    conn.execute("PRAGMA busy_timeout=10000")
    for attempt in range(attempts):
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(schema)
            return conn
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                conn.close()
                raise
            time.sleep(0.02 * (attempt + 1))
    raise AssertionError("unreachable")


T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    closed INTEGER NOT NULL DEFAULT 0,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_updated_at ON conversations (updated_at);
"""


class SQLiteStore:
    """Conversation records in one SQLite file (WAL, busy timeout, CAS by version)."""

    def __init__(self, path: Path, ttl_s: float, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.ttl_s = ttl_s
        self._clock = clock
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        self._conn: sqlite3.Connection | None = None

    # -- thread side -------------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = open_sqlite(self.path, _SCHEMA)
        return self._conn

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()

        def call() -> T:
            return fn(self._connection())

        try:
            return await loop.run_in_executor(self._executor, call)
        except sqlite3.Error as exc:
            # The message can name tables/paths but never carries conversation content.
            raise StoreError(f"sqlite store failed ({type(exc).__name__})") from exc

    def _cutoff(self) -> float:
        return self._clock() - self.ttl_s

    # -- interface ---------------------------------------------------------------------------------

    async def load(self, conversation_id: str) -> Record | None:
        """Return the live record or None (expired rows count as absent)."""
        cutoff = self._cutoff()

        def query(conn: sqlite3.Connection) -> Record | None:
            row = conn.execute(
                "SELECT data, version, updated_at, closed FROM conversations WHERE id = ? AND updated_at > ?",
                (conversation_id, cutoff),
            ).fetchone()
            if row is None:
                return None
            return Record(
                data=bytes(row[0]), version=int(row[1]), updated_at=float(row[2]), closed=bool(row[3])
            )

        return await self._run(query)

    async def save(
        self, conversation_id: str, data: bytes, *, expected_version: int, closed: bool = False
    ) -> int:
        """Compare-and-set on the version; see ``ConversationStore.save``."""
        now = self._clock()
        cutoff = now - self.ttl_s
        new_version = expected_version + 1

        def write(conn: sqlite3.Connection) -> int:
            if expected_version == 0:
                # Create, or take over an expired row that the purge has not removed yet.
                cursor = conn.execute(
                    "INSERT INTO conversations (id, version, updated_at, closed, data) "
                    "VALUES (?, 1, ?, ?, ?) "
                    "ON CONFLICT(id) DO UPDATE SET version = 1, updated_at = excluded.updated_at, "
                    "closed = excluded.closed, data = excluded.data WHERE conversations.updated_at <= ?",
                    (conversation_id, now, int(closed), data, cutoff),
                )
            else:
                cursor = conn.execute(
                    "UPDATE conversations SET version = ?, updated_at = ?, closed = ?, data = ? "
                    "WHERE id = ? AND version = ? AND updated_at > ?",
                    (new_version, now, int(closed), data, conversation_id, expected_version, cutoff),
                )
            return cursor.rowcount

        if await self._run(write) != 1:
            raise VersionConflict(f"conversation changed since version {expected_version}")
        return new_version

    async def delete(self, conversation_id: str) -> bool:
        """Erase the row."""
        return (
            await self._run(
                lambda conn: (
                    conn.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,)).rowcount
                )
            )
            > 0
        )

    async def closed_ids(self) -> list[str]:
        """Ids of live closed conversations, oldest first."""
        cutoff = self._cutoff()
        rows = await self._run(
            lambda conn: conn.execute(
                "SELECT id FROM conversations WHERE closed = 1 AND updated_at > ? ORDER BY updated_at",
                (cutoff,),
            ).fetchall()
        )
        return [str(row[0]) for row in rows]

    async def purge_expired(self) -> int:
        """Delete rows idle for longer than the TTL."""
        cutoff = self._cutoff()
        return await self._run(
            lambda conn: conn.execute("DELETE FROM conversations WHERE updated_at <= ?", (cutoff,)).rowcount
        )

    async def ping(self) -> None:
        """Open the database (creating it) and run a trivial query."""
        await self._run(lambda conn: conn.execute("SELECT 1").fetchone())

    async def close(self) -> None:
        """Close the connection on its own thread, then stop the thread."""

        def shutdown(conn: sqlite3.Connection) -> None:
            conn.close()
            self._conn = None

        if self._conn is not None:
            await self._run(shutdown)
        self._executor.shutdown(wait=True)
