"""MemoryStore: TTL expiry with a fake clock (the shared contract is in test_base.py)."""

from __future__ import annotations

import pytest

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


class TestMemoryStoreTTL:
    async def test_idle_record_expires(self, store: MemoryStore, clock: Clock) -> None:
        await store.save("c1", b"x", expected_version=0)
        clock.now += 59
        assert await store.load("c1") is not None
        await store.save("c1", b"y", expected_version=1)  # a write refreshes the TTL
        clock.now += 59
        assert await store.load("c1") is not None
        clock.now += 2
        assert await store.load("c1") is None
        assert await store.save("c1", b"new", expected_version=0) == 1

    async def test_purge(self, store: MemoryStore, clock: Clock) -> None:
        await store.save("a", b"x", expected_version=0)
        clock.now += 30
        await store.save("b", b"x", expected_version=0)
        clock.now += 31
        assert await store.purge_expired() == 1
        assert await store.load("b") is not None
