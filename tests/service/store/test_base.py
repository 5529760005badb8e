"""The ConversationStore contract (service/store/base.py), run against every store.

memory and SQLite always run; Redis runs when a server answers at REDIS_URL.
Store-specific behaviour (TTL with a fake clock, persistence, several
processes) is tested in each store's own module.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from service.store.base import ConversationStore, VersionConflict
from service.store.memory import MemoryStore
from service.store.redis import RedisStore
from service.store.sqlite import SQLiteStore


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ConversationStore]:
    """Each store kind with a 60 s TTL."""
    if request.param == "memory":
        opened: ConversationStore = MemoryStore(ttl_s=60)
    elif request.param == "sqlite":
        opened = SQLiteStore(tmp_path / "store.sqlite3", ttl_s=60)
    else:
        opened = RedisStore(request.getfixturevalue("redis_url"), ttl_s=60)
    yield opened
    await opened.close()


class TestStoreContract:
    """What ``ConversationService`` relies on: CAS by version, delete, closed listing."""

    async def test_missing_is_none(self, store: ConversationStore) -> None:
        assert await store.load("nope") is None

    async def test_create_then_update_bumps_version(self, store: ConversationStore) -> None:
        assert await store.save("c1", b"one", expected_version=0) == 1
        record = await store.load("c1")
        assert record is not None and record.data == b"one" and record.version == 1 and not record.closed
        assert await store.save("c1", b"two", expected_version=1, closed=True) == 2
        record = await store.load("c1")
        assert record is not None and record.data == b"two" and record.version == 2 and record.closed

    async def test_stale_writer_conflicts_and_changes_nothing(self, store: ConversationStore) -> None:
        await store.save("c1", b"one", expected_version=0)
        with pytest.raises(VersionConflict):
            await store.save("c1", b"again", expected_version=0)
        await store.save("c1", b"two", expected_version=1)
        with pytest.raises(VersionConflict):
            await store.save("c1", b"stale", expected_version=1)
        record = await store.load("c1")
        assert record is not None and record.data == b"two" and record.version == 2

    async def test_update_of_missing_conflicts(self, store: ConversationStore) -> None:
        with pytest.raises(VersionConflict):
            await store.save("ghost", b"x", expected_version=3)
        assert await store.load("ghost") is None

    async def test_concurrent_cas_exactly_one_wins(self, store: ConversationStore) -> None:
        await store.save("c1", b"base", expected_version=0)
        results = await asyncio.gather(
            *(store.save("c1", f"w{i}".encode(), expected_version=1) for i in range(8)),
            return_exceptions=True,
        )
        assert sum(1 for r in results if r == 2) == 1
        assert sum(1 for r in results if isinstance(r, VersionConflict)) == 7

    async def test_delete(self, store: ConversationStore) -> None:
        await store.save("c1", b"x", expected_version=0)
        assert await store.delete("c1") is True
        assert await store.load("c1") is None
        assert await store.delete("c1") is False
        # After erasure the id starts again from version 1.
        assert await store.save("c1", b"y", expected_version=0) == 1

    async def test_closed_ids(self, store: ConversationStore) -> None:
        await store.save("open", b"x", expected_version=0)
        await store.save("done", b"x", expected_version=0, closed=True)
        assert await store.closed_ids() == ["done"]

    async def test_binary_data_round_trips(self, store: ConversationStore) -> None:
        blob = bytes(range(256)) * 4
        await store.save("bin", blob, expected_version=0)
        record = await store.load("bin")
        assert record is not None and record.data == blob
