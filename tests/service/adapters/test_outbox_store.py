"""Outbox stores (real SQLite file, real Redis): leases, FIFO per conversation, retry, dead letters."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from service.adapters.backend import Backend, open_backend
from service.adapters.outbox_store import NewMessage, OutboxStore

T0 = 1_000_000.0
URL = "http://127.0.0.1:9/cb"

StoreFactory = Callable[[], OutboxStore]


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
async def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """Each call opens another connection to the same backend, like another worker process."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'sb.sqlite3'}"
    else:
        url = request.getfixturevalue("redis_url")
    backends: list[Backend] = []

    def factory() -> OutboxStore:
        backends.append(open_backend(url))
        return backends[-1].outbox

    yield factory
    for conversation in ("c1", "c2", "c3"):
        await backends[0].outbox.erase(conversation)
    for backend in backends:
        await backend.close()


def _msg(key: str, conversation: str = "c1", url: str = URL, at: float = T0) -> NewMessage:
    return NewMessage(key, conversation, "chatwoot", url, f'{{"id": "{key}"}}'.encode(), at)


async def test_claim_leases_and_counts_attempts(new_store: StoreFactory) -> None:
    store = new_store()
    await store.add(_msg("k1"))
    (claimed,) = await store.claim(T0, T0 + 30, 10)
    assert (claimed.key, claimed.attempts, claimed.source, claimed.body) == (
        "k1",
        1,
        "chatwoot",
        b'{"id": "k1"}',
    )
    assert await store.claim(T0 + 29, T0 + 60, 10) == []  # leased
    (again,) = await store.claim(T0 + 31, T0 + 60, 10)  # the worker died: lease ran out
    assert again.attempts == 2


async def test_fifo_per_conversation_and_url(new_store: StoreFactory) -> None:
    store = new_store()
    await store.add(_msg("a1", "c1"))
    await store.add(_msg("a2", "c1"))
    await store.add(_msg("b1", "c2"))
    await store.add(_msg("x1", "c1", url="http://127.0.0.1:9/other"))
    first = {m.key for m in await store.claim(T0, T0 + 30, 10)}
    assert first == {"a1", "b1", "x1"}  # a2 waits behind a1
    await store.retry("a1", T0 + 5, "HTTP 503")
    assert await store.claim(T0 + 1, T0 + 30, 10) == []  # a1 backing off still blocks a2
    await store.finish("a1", "delivered", T0 + 6, None)
    assert [m.key for m in await store.claim(T0 + 6, T0 + 30, 10)] == ["a2"]


async def test_dead_letter_unblocks_the_queue_and_can_be_redriven(new_store: StoreFactory) -> None:
    store = new_store()
    await store.add(_msg("a1"))
    await store.add(_msg("a2"))
    await store.claim(T0, T0 + 30, 10)
    await store.finish("a1", "dead", T0 + 1, "HTTP 500")
    status = await store.status("a1")
    assert status is not None and (status.state, status.attempts, status.last_error) == (
        "dead",
        1,
        "HTTP 500",
    )
    assert [m.key for m in await store.claim(T0 + 1, T0 + 30, 10)] == ["a2"]
    await store.finish("a2", "delivered", T0 + 2, None)
    assert await store.counts() == {"pending": 0, "delivered": 1, "dead": 1}
    assert await store.redrive(T0 + 3) == 1
    (redriven,) = await store.claim(T0 + 3, T0 + 30, 10)
    assert (redriven.key, redriven.attempts) == ("a1", 1)


async def test_retry_schedule_and_next_due(new_store: StoreFactory) -> None:
    store = new_store()
    assert await store.next_due() is None
    await store.add(_msg("k1", at=T0))
    await store.add(_msg("k2", at=T0 + 1))  # same queue: not a head, must not count
    assert await store.next_due() == T0
    await store.claim(T0, T0 + 30, 10)
    await store.retry("k1", T0 + 8, "timeout")
    assert await store.next_due() == T0 + 8
    assert await store.claim(T0 + 7.9, T0 + 40, 10) == []
    assert [m.key for m in await store.claim(T0 + 8, T0 + 40, 10)] == ["k1"]
    status = await store.status("k1")
    assert status is not None and status.last_error == "timeout" and status.attempts == 2


async def test_purge_and_erase(new_store: StoreFactory) -> None:
    store = new_store()
    for key, conversation in (("k1", "c1"), ("k2", "c2"), ("k3", "c3")):
        await store.add(_msg(key, conversation))
    await store.claim(T0, T0 + 30, 10)
    await store.finish("k1", "delivered", T0 + 1, None)
    await store.finish("k2", "dead", T0 + 100, "HTTP 500")
    assert await store.purge(T0 + 50) == 1
    assert await store.status("k1") is None and await store.status("k2") is not None
    assert await store.erase("c3") == 1
    assert await store.status("k3") is None
    assert await store.counts() == {"pending": 0, "delivered": 0, "dead": 1}
    assert await store.next_due() is None


async def test_concurrent_workers_never_claim_the_same_message(new_store: StoreFactory) -> None:
    stores = [new_store() for _ in range(3)]
    for i in range(30):
        await stores[0].add(_msg(f"k{i}", conversation=f"c{i % 3 + 1}" if i < 3 else f"q{i}"))
    batches = await asyncio.gather(*(s.claim(T0, T0 + 30, 50) for s in stores for _ in range(2)))
    keys = [m.key for batch in batches for m in batch]
    assert len(keys) == len(set(keys)) == 30
    for i in range(3, 30):
        await stores[0].erase(f"q{i}")
