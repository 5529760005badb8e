"""SQLiteStore: persistence across reopen, TTL, WAL, and real concurrency from two processes."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from service.store import open_store
from service.store.base import VersionConflict
from service.store.sqlite import SQLiteStore


class Clock:
    """A settable clock."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_records_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "db" / "s.sqlite3"
    first = SQLiteStore(path, ttl_s=60)
    await first.save("c1", b"kept", expected_version=0, closed=True)
    await first.close()
    second = SQLiteStore(path, ttl_s=60)
    record = await second.load("c1")
    await second.close()
    assert record is not None and record.data == b"kept" and record.version == 1 and record.closed


async def test_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    store = SQLiteStore(path, ttl_s=60)
    await store.ping()
    await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_ttl_expiry_and_takeover_of_expired_row(tmp_path: Path) -> None:
    clock = Clock()
    store = SQLiteStore(tmp_path / "s.sqlite3", ttl_s=60, clock=clock)
    await store.save("c1", b"old", expected_version=0)
    clock.now += 61
    assert await store.load("c1") is None
    with pytest.raises(VersionConflict):  # an expired record cannot be updated...
        await store.save("c1", b"late", expected_version=1)
    assert await store.save("c1", b"new", expected_version=0) == 1  # ...only re-created
    record = await store.load("c1")
    assert record is not None and record.data == b"new"
    clock.now += 61
    assert await store.purge_expired() == 1
    await store.close()


def test_open_store_by_url(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/x.sqlite3", 60)
    assert isinstance(store, SQLiteStore) and store.path == tmp_path / "x.sqlite3"


def _increment_worker(path: str, rounds: int, worker: int) -> None:
    """Append ``rounds`` items to one record with read-modify-CAS, retrying on conflict."""
    import asyncio

    async def run() -> None:
        store = SQLiteStore(Path(path), ttl_s=600)
        for n in range(rounds):
            while True:
                record = await store.load("shared")
                data = (record.data if record else b"") + f"{worker}:{n};".encode()
                try:
                    await store.save("shared", data, expected_version=record.version if record else 0)
                    break
                except VersionConflict:
                    continue
        await store.close()

    asyncio.run(run())


def test_two_processes_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    context = multiprocessing.get_context("spawn")
    rounds = 40
    procs = [context.Process(target=_increment_worker, args=(str(path), rounds, w)) for w in (1, 2)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    with sqlite3.connect(path) as conn:
        data, version = conn.execute("SELECT data, version FROM conversations WHERE id = 'shared'").fetchone()
    items = bytes(data).decode().rstrip(";").split(";")
    assert version == 2 * rounds and len(items) == 2 * rounds
    for worker in (1, 2):  # each writer's items are all there, in its own order
        assert [i for i in items if i.startswith(f"{worker}:")] == [f"{worker}:{n}" for n in range(rounds)]
