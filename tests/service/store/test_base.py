"""The ConversationStore contract (service/store/base.py), run against every store.

memory and SQLite always run; Redis runs when a server answers at REDIS_URL.
Store-specific behaviour (TTL with a fake clock, persistence, several
processes, the first layout) is tested in each store's own module.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from service.store.base import ConversationStore, NewTurn, VersionConflict
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


def turns(first: int, count: int, *, ids: bool = True, tag: str = "t") -> list[NewTurn]:
    """``count`` turn records numbered from ``first``."""
    return [
        NewTurn(
            index=i, turn_id=f"{tag}{i}" if ids else None, digest=f"d{i}", data=f"{tag}-data-{i}".encode()
        )
        for i in range(first, first + count)
    ]


class TestStoreContract:
    """What ``ConversationService`` relies on: CAS on the head, append-only turns, lookups, erase."""

    async def test_missing_is_none(self, store: ConversationStore) -> None:
        assert await store.load_head("nope") is None
        assert await store.load_turns("nope") == []
        assert await store.find_turns("nope", ["a"]) == {}

    async def test_append_writes_head_and_turns(self, store: ConversationStore) -> None:
        assert await store.append("c1", b"h1", turns(0, 3), expected_version=0) == 1
        head = await store.load_head("c1")
        assert head is not None and (head.data, head.version, head.turns, head.closed) == (b"h1", 1, 3, False)
        assert await store.append("c1", b"h2", turns(3, 2), expected_version=1, closed=True) == 2
        head = await store.load_head("c1")
        assert head is not None and (head.data, head.version, head.turns, head.closed) == (b"h2", 2, 5, True)
        assert await store.load_turns("c1") == [f"t-data-{i}".encode() for i in range(5)]

    async def test_turn_pages(self, store: ConversationStore) -> None:
        await store.append("c1", b"h", turns(0, 10), expected_version=0)
        assert await store.load_turns("c1", after=-1, limit=3) == [b"t-data-0", b"t-data-1", b"t-data-2"]
        assert await store.load_turns("c1", after=7) == [b"t-data-8", b"t-data-9"]
        assert await store.load_turns("c1", after=7, limit=1) == [b"t-data-8"]
        assert await store.load_turns("c1", after=9) == []

    async def test_find_turns_by_client_id(self, store: ConversationStore) -> None:
        await store.append("c1", b"h", turns(0, 2) + turns(2, 1, ids=False), expected_version=0)
        found = await store.find_turns("c1", ["t1", "t0", "t9", "t1"])
        assert {k: (v.index, v.digest) for k, v in found.items()} == {"t0": (0, "d0"), "t1": (1, "d1")}

    async def test_stale_writer_conflicts_and_changes_nothing(self, store: ConversationStore) -> None:
        await store.append("c1", b"one", turns(0, 1), expected_version=0)
        with pytest.raises(VersionConflict):
            await store.append("c1", b"again", turns(0, 1, tag="x"), expected_version=0)
        await store.append("c1", b"two", turns(1, 1), expected_version=1)
        with pytest.raises(VersionConflict):
            await store.append("c1", b"stale", turns(2, 1, tag="x"), expected_version=1)
        head = await store.load_head("c1")
        assert head is not None and (head.data, head.version, head.turns) == (b"two", 2, 2)
        assert await store.load_turns("c1") == [b"t-data-0", b"t-data-1"]
        assert await store.find_turns("c1", ["x2", "x0"]) == {}

    async def test_update_of_missing_conflicts(self, store: ConversationStore) -> None:
        with pytest.raises(VersionConflict):
            await store.append("ghost", b"x", turns(0, 1), expected_version=3)
        assert await store.load_head("ghost") is None
        assert await store.load_turns("ghost") == []

    async def test_concurrent_cas_exactly_one_wins(self, store: ConversationStore) -> None:
        await store.append("c1", b"base", [], expected_version=0)
        results = await asyncio.gather(
            *(
                store.append("c1", f"w{i}".encode(), turns(0, 1, tag=f"w{i}"), expected_version=1)
                for i in range(8)
            ),
            return_exceptions=True,
        )
        assert sum(1 for r in results if r == 2) == 1
        assert sum(1 for r in results if isinstance(r, VersionConflict)) == 7
        assert len(await store.load_turns("c1")) == 1

    async def test_replace_rewrites_one_turn(self, store: ConversationStore) -> None:
        await store.append("c1", b"h", turns(0, 3), expected_version=0)
        await store.append("c1", b"h2", turns(3, 1), expected_version=1, replace=[(1, b"[redacted]")])
        assert await store.load_turns("c1") == [b"t-data-0", b"[redacted]", b"t-data-2", b"t-data-3"]

    async def test_erase_leaves_nothing_and_a_tombstone(self, store: ConversationStore) -> None:
        await store.append("c1", b"h", turns(0, 3), expected_version=0)
        assert not await store.erased("c1")
        assert await store.erase("c1", tombstone_s=60) is True
        assert await store.load_head("c1") is None
        assert await store.load_turns("c1") == []
        assert await store.find_turns("c1", ["t0"]) == {}
        assert await store.erased("c1")
        assert await store.erase("c1", tombstone_s=60) is False
        # The store itself still accepts a new conversation under the id (the service refuses it).
        assert await store.append("c1", b"new", turns(0, 1, tag="n"), expected_version=0) == 1
        assert await store.load_turns("c1") == [b"n-data-0"]

    async def test_live_names_the_ids_with_a_head(self, store: ConversationStore) -> None:
        assert await store.live([]) == set()
        for cid in ("a", "b", "c"):
            await store.append(cid, b"h", turns(0, 1), expected_version=0)
        await store.erase("b", tombstone_s=60)
        assert await store.live(["a", "b", "c", "never", "a"]) == {"a", "c"}
        many = [f"id{n}" for n in range(1200)]  # more than one IN (...) chunk on SQLite
        assert await store.live([*many, "c"]) == {"c"}

    async def test_erase_without_tombstone(self, store: ConversationStore) -> None:
        await store.append("c2", b"h", turns(0, 1), expected_version=0)
        assert await store.erase("c2", tombstone_s=0) is True
        assert not await store.erased("c2")

    async def test_closed_ids(self, store: ConversationStore) -> None:
        await store.append("open", b"x", [], expected_version=0)
        await store.append("done", b"x", [], expected_version=0, closed=True)
        assert await store.closed_ids() == ["done"]

    async def test_list_heads_pages_by_id(self, store: ConversationStore) -> None:
        for cid in ["c3", "c1", "c2", "c5", "c4"]:
            await store.append(cid, f"h-{cid}".encode(), turns(0, 1), expected_version=0)
        await store.append("c2", b"h-c2b", turns(1, 1), expected_version=1, closed=True)
        first = await store.list_heads(2)
        assert [(cid, h.data) for cid, h in first] == [("c1", b"h-c1"), ("c2", b"h-c2b")]
        assert (first[1][1].version, first[1][1].turns, first[1][1].closed) == (2, 2, True)
        rest = await store.list_heads(10, after="c2")
        assert [cid for cid, _ in rest] == ["c3", "c4", "c5"]
        assert await store.list_heads(10, after="c5") == []
        await store.erase("c4", tombstone_s=0)
        assert [cid for cid, _ in await store.list_heads(10)] == ["c1", "c2", "c3", "c5"]

    async def test_binary_data_round_trips(self, store: ConversationStore) -> None:
        blob = bytes(range(256)) * 4
        await store.append(
            "bin", blob, [NewTurn(index=0, turn_id="b", digest="d", data=blob)], expected_version=0
        )
        head = await store.load_head("bin")
        assert head is not None and head.data == blob
        assert await store.load_turns("bin") == [blob]

    async def test_no_legacy_records_in_a_fresh_store(self, store: ConversationStore) -> None:
        assert await store.legacy_ids() == []
        assert await store.load_legacy("x") is None

    async def test_load_for_append_reads_head_and_known_ids_together(self, store: ConversationStore) -> None:
        assert await store.load_for_append("c1", ["t0"]) == (None, {})
        await store.append("c1", b"h", turns(0, 2), expected_version=0)
        head, known = await store.load_for_append("c1", ["t1", "t7"])
        assert head is not None and head.version == 1 and head.turns == 2
        assert {k: v.index for k, v in known.items()} == {"t1": 1}
        assert (await store.load_for_append("c1", []))[1] == {}
