"""Embedded default store (``sqlite:///path``): persistent, safe with several worker processes.

Layout: ``heads`` (one row per conversation), ``turns`` (one row per turn,
keyed by conversation and index, with a unique index on the client turn id)
and ``tombstones`` (erased ids, for a while). An append is one ``BEGIN
IMMEDIATE`` transaction: check the head's version, update it, insert the new
turn rows; its cost does not depend on how many turns are stored.

Why SQLite: the service must keep live conversations across restarts on one
box with no extra server. WAL mode lets readers proceed during a write, a busy
timeout makes concurrent writers from other worker processes wait instead of
failing, and the compare-and-set is the ``WHERE version = ?`` clause inside a
short write transaction, so no lock is held across the model inference.

sqlite3 calls block, so each store owns one connection on one dedicated thread
(``service.sqlite_runner``, shared with the outbox and the replay guard).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from service.sqlite_runner import SqliteError, SqliteRunner
from service.store.base import Head, KnownTurn, Legacy, NewTurn, StoreError, VersionConflict, tombstone_key

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS heads (
    id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    closed INTEGER NOT NULL DEFAULT 0,
    turns INTEGER NOT NULL DEFAULT 0,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS heads_updated_at ON heads (updated_at);
CREATE TABLE IF NOT EXISTS turns (
    conversation_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    turn_id TEXT,
    digest TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (conversation_id, idx)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS turns_turn_id ON turns (conversation_id, turn_id) WHERE turn_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS tombstones (
    id TEXT PRIMARY KEY,
    until REAL NOT NULL
);
"""
# The first layout: one row per conversation holding every turn (migrated on start).
_LEGACY_TABLE = "conversations"
_LIVE_CHUNK = 500  # ids per IN (...) query, well under SQLite's bound-parameter limit


class _Conflict(Exception):
    """Raised inside a write transaction to roll it back as a version conflict."""


class SQLiteStore:
    """Conversation heads and turn rows in one SQLite file (WAL, busy timeout, CAS by version)."""

    def __init__(self, path: Path, ttl_s: float, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.ttl_s = ttl_s
        self._clock = clock
        self._runner = SqliteRunner(path, _SCHEMA, thread_name="sqlite-store")

    # -- thread side -------------------------------------------------------------------------------

    async def _run(
        self, fn: Callable[[sqlite3.Connection], T], *, transaction: bool = False, inline: bool = False
    ) -> T:
        # ``transaction``: one IMMEDIATE transaction, so that a version check and the writes that
        # follow it cannot interleave with another process's append.
        try:
            if transaction:
                return await self._runner.run_in_transaction(fn, inline=inline)
            return await self._runner.run(fn)
        except SqliteError as exc:
            # The message can name tables/paths but never carries conversation content.
            raise StoreError(str(exc)) from exc

    def _cutoff(self) -> float:
        return self._clock() - self.ttl_s

    # -- interface ---------------------------------------------------------------------------------

    async def load_head(self, conversation_id: str) -> Head | None:
        """Return the live head or None (expired rows count as absent)."""
        cutoff = self._cutoff()
        return await self._run(lambda conn: _head(conn, conversation_id, cutoff))

    async def live(self, conversation_ids: Sequence[str]) -> set[str]:
        """The ids with an unexpired head row (one query per ``_LIVE_CHUNK`` ids, one trip)."""
        ids = list(dict.fromkeys(conversation_ids))
        if not ids:
            return set()
        cutoff = self._cutoff()
        return await self._run(lambda conn: _live(conn, ids, cutoff))

    async def find_turns(self, conversation_id: str, turn_ids: Sequence[str]) -> dict[str, KnownTurn]:
        """Stored turns among ``turn_ids`` (one indexed query)."""
        if not turn_ids:
            return {}
        return await self._run(lambda conn: _known(conn, conversation_id, turn_ids))

    async def load_for_append(
        self, conversation_id: str, turn_ids: Sequence[str]
    ) -> tuple[Head | None, dict[str, KnownTurn]]:
        """Head and known turn ids in one trip to the SQLite thread."""
        cutoff = self._cutoff()

        def query(conn: sqlite3.Connection) -> tuple[Head | None, dict[str, KnownTurn]]:
            head = _head(conn, conversation_id, cutoff)
            known = _known(conn, conversation_id, turn_ids) if head is not None and turn_ids else {}
            return head, known

        return await self._run(query)

    async def load_turns(
        self, conversation_id: str, after: int = -1, limit: int | None = None
    ) -> list[bytes]:
        """Turn rows with index > ``after``, by index."""
        return await self._run(
            lambda conn: [
                bytes(row[0])
                for row in conn.execute(
                    "SELECT data FROM turns WHERE conversation_id = ? AND idx > ? ORDER BY idx LIMIT ?",
                    (conversation_id, after, -1 if limit is None else limit),
                )
            ]
        )

    async def append(
        self,
        conversation_id: str,
        head: bytes,
        turns: Sequence[NewTurn],
        *,
        expected_version: int,
        closed: bool = False,
        replace: Sequence[tuple[int, bytes]] = (),
        inline: bool = False,
    ) -> int:
        """Compare-and-set on the head's version, then the new turn rows, in one transaction
        (``inline``: on the caller's thread when the runner is idle, ``SqliteRunner``)."""
        now = self._clock()
        cutoff = now - self.ttl_s
        new_version = expected_version + 1

        def write(conn: sqlite3.Connection) -> None:
            if expected_version == 0:
                stale = conn.execute(
                    "SELECT updated_at FROM heads WHERE id = ?", (conversation_id,)
                ).fetchone()
                if stale is not None and float(stale[0]) > cutoff:
                    raise _Conflict
                # Taking over an expired conversation the purge has not reached yet: its turns go.
                conn.execute("DELETE FROM turns WHERE conversation_id = ?", (conversation_id,))
                count = len(turns)
                conn.execute(
                    "INSERT OR REPLACE INTO heads (id, version, updated_at, closed, turns, data) "
                    "VALUES (?, 1, ?, ?, ?, ?)",
                    (conversation_id, now, int(closed), count, head),
                )
            else:
                cursor = conn.execute(
                    "UPDATE heads SET version = ?, updated_at = ?, closed = ?, turns = turns + ?, data = ? "
                    "WHERE id = ? AND version = ? AND updated_at > ?",
                    (
                        new_version,
                        now,
                        int(closed),
                        len(turns),
                        head,
                        conversation_id,
                        expected_version,
                        cutoff,
                    ),
                )
                if cursor.rowcount != 1:
                    raise _Conflict
            conn.executemany(
                "INSERT INTO turns (conversation_id, idx, turn_id, digest, data) VALUES (?, ?, ?, ?, ?)",
                [(conversation_id, t.index, t.turn_id, t.digest, t.data) for t in turns],
            )
            conn.executemany(
                "UPDATE turns SET data = ? WHERE conversation_id = ? AND idx = ?",
                [(data, conversation_id, index) for index, data in replace],
            )

        try:
            await self._run(write, transaction=True, inline=inline)
        except _Conflict:
            raise VersionConflict(f"conversation changed since version {expected_version}") from None
        return new_version

    async def erase(self, conversation_id: str, tombstone_s: float) -> bool:
        """Delete head and turn rows (and a first-layout row) and write the tombstone, atomically."""
        until = self._clock() + tombstone_s

        def write(conn: sqlite3.Connection) -> bool:
            erased = conn.execute("DELETE FROM heads WHERE id = ?", (conversation_id,)).rowcount
            erased += conn.execute("DELETE FROM turns WHERE conversation_id = ?", (conversation_id,)).rowcount
            if _has_legacy(conn):
                erased += conn.execute(
                    f"DELETE FROM {_LEGACY_TABLE} WHERE id = ?", (conversation_id,)
                ).rowcount
            if tombstone_s > 0:
                conn.execute(
                    "INSERT OR REPLACE INTO tombstones (id, until) VALUES (?, ?)",
                    (tombstone_key(conversation_id), until),
                )
            return erased > 0

        return await self._run(write, transaction=True)

    async def erased(self, conversation_id: str) -> bool:
        """Unexpired tombstone?"""
        now = self._clock()
        row = await self._run(
            lambda conn: conn.execute(
                "SELECT 1 FROM tombstones WHERE id = ? AND until > ?", (tombstone_key(conversation_id), now)
            ).fetchone()
        )
        return row is not None

    async def closed_ids(self) -> list[str]:
        """Ids of live closed conversations, oldest first."""
        cutoff = self._cutoff()
        rows = await self._run(
            lambda conn: conn.execute(
                "SELECT id FROM heads WHERE closed = 1 AND updated_at > ? ORDER BY updated_at",
                (cutoff,),
            ).fetchall()
        )
        return [str(row[0]) for row in rows]

    async def list_heads(self, limit: int, after: str | None = None) -> list[tuple[str, Head]]:
        """Live heads with id > ``after``, by id (the primary key), at most ``limit``: one query."""
        cutoff = self._cutoff()
        rows = await self._run(
            lambda conn: conn.execute(
                "SELECT id, data, version, updated_at, closed, turns FROM heads "
                "WHERE id > ? AND updated_at > ? ORDER BY id LIMIT ?",
                ("" if after is None else after, cutoff, max(0, limit)),
            ).fetchall()
        )
        return [
            (
                str(row[0]),
                Head(
                    data=bytes(row[1]),
                    version=int(row[2]),
                    updated_at=float(row[3]),
                    closed=bool(row[4]),
                    turns=int(row[5]),
                ),
            )
            for row in rows
        ]

    async def purge_expired(self) -> list[str]:
        """Delete conversations idle for longer than the TTL, and expired tombstones."""
        now = self._clock()
        cutoff = now - self.ttl_s

        def write(conn: sqlite3.Connection) -> list[str]:
            ids = [
                str(row[0]) for row in conn.execute("SELECT id FROM heads WHERE updated_at <= ?", (cutoff,))
            ]
            conn.executemany("DELETE FROM turns WHERE conversation_id = ?", [(cid,) for cid in ids])
            conn.execute("DELETE FROM heads WHERE updated_at <= ?", (cutoff,))
            conn.execute("DELETE FROM tombstones WHERE until <= ?", (now,))
            return ids

        return await self._run(write, transaction=True)

    async def legacy_ids(self) -> list[str]:
        """Ids in the first layout's table (absent table: none)."""

        def query(conn: sqlite3.Connection) -> list[str]:
            if not _has_legacy(conn):
                return []
            return [str(row[0]) for row in conn.execute(f"SELECT id FROM {_LEGACY_TABLE}")]

        return await self._run(query)

    async def load_legacy(self, conversation_id: str) -> Legacy | None:
        """The first-layout row."""

        def query(conn: sqlite3.Connection) -> Legacy | None:
            if not _has_legacy(conn):
                return None
            row = conn.execute(
                f"SELECT data, version, updated_at, closed FROM {_LEGACY_TABLE} WHERE id = ?",
                (conversation_id,),
            ).fetchone()
            if row is None:
                return None
            return Legacy(
                data=bytes(row[0]), version=int(row[1]), updated_at=float(row[2]), closed=bool(row[3])
            )

        return await self._run(query)

    async def drop_legacy(self, conversation_id: str) -> None:
        """Delete the first-layout row."""

        def write(conn: sqlite3.Connection) -> None:
            if _has_legacy(conn):
                conn.execute(f"DELETE FROM {_LEGACY_TABLE} WHERE id = ?", (conversation_id,))

        await self._run(write)

    async def ping(self) -> None:
        """Open the database (creating it) and run a trivial query."""
        await self._run(lambda conn: conn.execute("SELECT 1").fetchone())

    async def close(self) -> None:
        """Close the connection on its own thread, then stop the thread."""
        await self._runner.close()


def _live(conn: sqlite3.Connection, ids: Sequence[str], cutoff: float) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(ids), _LIVE_CHUNK):
        chunk = ids[start : start + _LIVE_CHUNK]
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT id FROM heads WHERE id IN ({marks}) AND updated_at > ?", (*chunk, cutoff)
        ).fetchall()
        found.update(str(row[0]) for row in rows)
    return found


def _head(conn: sqlite3.Connection, conversation_id: str, cutoff: float) -> Head | None:
    row = conn.execute(
        "SELECT data, version, updated_at, closed, turns FROM heads WHERE id = ? AND updated_at > ?",
        (conversation_id, cutoff),
    ).fetchone()
    if row is None:
        return None
    return Head(
        data=bytes(row[0]),
        version=int(row[1]),
        updated_at=float(row[2]),
        closed=bool(row[3]),
        turns=int(row[4]),
    )


def _known(conn: sqlite3.Connection, conversation_id: str, turn_ids: Sequence[str]) -> dict[str, KnownTurn]:
    ids = list(dict.fromkeys(turn_ids))
    marks = ",".join("?" * len(ids))
    rows = conn.execute(
        f"SELECT turn_id, idx, digest FROM turns WHERE conversation_id = ? AND turn_id IN ({marks})",
        (conversation_id, *ids),
    ).fetchall()
    return {str(row[0]): KnownTurn(index=int(row[1]), digest=str(row[2])) for row in rows}


def _has_legacy(conn: sqlite3.Connection) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (_LEGACY_TABLE,)
    ).fetchone()
    return row is not None
