"""SQLiteStore: persistence across reopen, TTL, WAL, the first layout, and two real processes."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from service.store import open_store
from service.store.base import NewTurn, VersionConflict
from service.store.sqlite import SQLiteStore


class Clock:
    """A settable clock."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def one(index: int, tag: str = "t") -> list[NewTurn]:
    return [NewTurn(index=index, turn_id=f"{tag}{index}", digest="d", data=f"{tag}{index}".encode())]


async def test_records_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "db" / "s.sqlite3"
    first = SQLiteStore(path, ttl_s=60)
    await first.append("c1", b"kept", one(0), expected_version=0, closed=True)
    await first.close()
    second = SQLiteStore(path, ttl_s=60)
    head = await second.load_head("c1")
    turns = await second.load_turns("c1")
    await second.close()
    assert head is not None and head.data == b"kept" and head.version == 1 and head.closed
    assert turns == [b"t0"]


async def test_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    store = SQLiteStore(path, ttl_s=60)
    await store.ping()
    await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_ttl_expiry_takeover_and_purge(tmp_path: Path) -> None:
    clock = Clock()
    store = SQLiteStore(tmp_path / "s.sqlite3", ttl_s=60, clock=clock)
    await store.append("c1", b"old", one(0), expected_version=0)
    clock.now += 61
    assert await store.load_head("c1") is None
    with pytest.raises(VersionConflict):  # an expired conversation cannot be updated...
        await store.append("c1", b"late", one(1), expected_version=1)
    assert await store.append("c1", b"new", one(0, "n"), expected_version=0) == 1  # ...only re-created
    assert await store.load_turns("c1") == [b"n0"]  # without the old turns
    await store.append("c2", b"x", one(0), expected_version=0)
    clock.now += 61
    assert sorted(await store.purge_expired()) == ["c1", "c2"]
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM turns").fetchone()[0] == 0
    await store.close()


async def test_tombstones_expire(tmp_path: Path) -> None:
    clock = Clock()
    store = SQLiteStore(tmp_path / "s.sqlite3", ttl_s=60, clock=clock)
    await store.append("c1", b"h", one(0), expected_version=0)
    await store.erase("c1", tombstone_s=100)
    clock.now += 99
    assert await store.erased("c1")
    clock.now += 2
    assert not await store.erased("c1")
    await store.purge_expired()
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM tombstones").fetchone()[0] == 0
    await store.close()


async def test_first_layout_rows_are_listed_loaded_and_dropped(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE conversations (id TEXT PRIMARY KEY, version INTEGER NOT NULL, "
            "updated_at REAL NOT NULL, closed INTEGER NOT NULL DEFAULT 0, data BLOB NOT NULL)"
        )
        conn.execute("INSERT INTO conversations VALUES ('old', 7, 5.0, 1, x'7b7d')")
    store = SQLiteStore(path, ttl_s=60)
    assert await store.legacy_ids() == ["old"]
    legacy = await store.load_legacy("old")
    assert legacy is not None and (legacy.data, legacy.version, legacy.closed) == (b"{}", 7, True)
    await store.drop_legacy("old")
    assert await store.legacy_ids() == []
    await store.close()


def test_open_store_by_url(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/x.sqlite3", 60)
    assert isinstance(store, SQLiteStore) and store.path == tmp_path / "x.sqlite3"


def _append_worker(path: str, rounds: int, worker: int) -> None:
    """Append ``rounds`` turns to one conversation with read-CAS, retrying on conflict."""
    import asyncio

    async def run() -> None:
        store = SQLiteStore(Path(path), ttl_s=600)
        for n in range(rounds):
            while True:
                head = await store.load_head("shared")
                version, count = (head.version, head.turns) if head else (0, 0)
                turn = NewTurn(
                    index=count, turn_id=f"{worker}:{n}", digest="d", data=f"{worker}:{n}".encode()
                )
                try:
                    await store.append("shared", b"h", [turn], expected_version=version)
                    break
                except VersionConflict:
                    continue
        await store.close()

    asyncio.run(run())


def test_two_processes_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    context = multiprocessing.get_context("spawn")
    rounds = 40
    procs = [context.Process(target=_append_worker, args=(str(path), rounds, w)) for w in (1, 2)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    with sqlite3.connect(path) as conn:
        (version,) = conn.execute("SELECT version FROM heads WHERE id = 'shared'").fetchone()
        rows = conn.execute(
            "SELECT idx, data FROM turns WHERE conversation_id = 'shared' ORDER BY idx"
        ).fetchall()
    items = [bytes(data).decode() for _, data in rows]
    assert version == 2 * rounds and [idx for idx, _ in rows] == list(range(2 * rounds))
    for worker in (1, 2):  # each writer's turns are all there, in its own order
        assert [i for i in items if i.startswith(f"{worker}:")] == [f"{worker}:{n}" for n in range(rounds)]
