"""MemoryStore: TTL expiry with a fake clock (the shared contract is in test_base.py)."""

from __future__ import annotations

import pytest

from service.store.base import NewTurn
from service.store.memory import MemoryStore


class Clock:
    """A settable clock."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock) -> MemoryStore:
    return MemoryStore(ttl_s=60, clock=clock)


TURN = [NewTurn(index=0, turn_id="a", digest="d", data=b"x")]


class TestMemoryStoreTTL:
    async def test_idle_conversation_expires(self, store: MemoryStore, clock: Clock) -> None:
        await store.append("c1", b"x", TURN, expected_version=0)
        clock.now += 59
        assert await store.load_head("c1") is not None
        await store.append("c1", b"y", [], expected_version=1)  # a write refreshes the TTL
        clock.now += 59
        assert await store.load_head("c1") is not None
        clock.now += 2
        assert await store.load_head("c1") is None
        assert await store.load_turns("c1") == []
        assert await store.append("c1", b"new", [], expected_version=0) == 1
        assert await store.find_turns("c1", ["a"]) == {}  # the expired turns did not come back

    async def test_an_expired_head_is_not_live(self, store: MemoryStore, clock: Clock) -> None:
        await store.append("c1", b"x", TURN, expected_version=0)
        assert await store.live(["c1"]) == {"c1"}
        clock.now += 61
        assert await store.live(["c1"]) == set()

    async def test_purge_returns_expired_ids_and_drops_tombstones(
        self, store: MemoryStore, clock: Clock
    ) -> None:
        await store.append("a", b"x", TURN, expected_version=0)
        clock.now += 30
        await store.append("b", b"x", TURN, expected_version=0)
        await store.erase("b", tombstone_s=20)
        clock.now += 31
        assert await store.purge_expired() == ["a"]
        assert not await store.erased("b")
