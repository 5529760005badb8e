"""Replay guard nonce stores on real SQLite files and a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from service.adapters.backend import open_backend
from service.adapters.replay_guard import SCHEMA, RedisNonceStore, SqliteNonceStore
from service.sqlite_runner import SqliteRunner


@pytest.fixture
async def redis_nonces(redis_url: str) -> AsyncIterator[RedisNonceStore]:
    """The Redis nonce store of a backend on the test's own key prefix; the backend is closed after."""
    backend = open_backend(redis_url)
    store = backend.nonces
    assert isinstance(store, RedisNonceStore)
    yield store
    await backend.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


async def test_sqlite_claim_is_once_per_key_until_expiry(tmp_path: Path) -> None:
    clock = Clock()
    runner = SqliteRunner(tmp_path / "sb.sqlite3", SCHEMA)
    store = SqliteNonceStore(runner, clock=clock)
    assert await store.claim("chatwoot:d-1", 60)
    assert not await store.claim("chatwoot:d-1", 60)
    assert await store.claim("chatwoot:d-2", 60)
    clock.now += 61
    assert await store.claim("chatwoot:d-1", 60)  # expired: a new window
    await runner.close()


async def test_sqlite_claims_are_shared_by_processes_on_one_file(tmp_path: Path) -> None:
    first = SqliteRunner(tmp_path / "sb.sqlite3", SCHEMA)
    second = SqliteRunner(tmp_path / "sb.sqlite3", SCHEMA)
    one, two = SqliteNonceStore(first), SqliteNonceStore(second)
    results = await asyncio.gather(*(store.claim("generic:sig", 60) for store in (one, two, one, two)))
    assert sorted(results) == [False, False, False, True]
    await first.close()
    await second.close()


async def test_sqlite_release_lets_a_retry_through(tmp_path: Path) -> None:
    runner = SqliteRunner(tmp_path / "sb.sqlite3", SCHEMA)
    store = SqliteNonceStore(runner)
    assert await store.claim("k", 60)
    await store.release("k")
    assert await store.claim("k", 60)
    await runner.close()


async def test_sqlite_seen_and_record(tmp_path: Path) -> None:
    clock = Clock()
    runner = SqliteRunner(tmp_path / "sb.sqlite3", SCHEMA)
    store = SqliteNonceStore(runner, clock=clock)
    assert not await store.seen("twilio:a")
    assert not await store.record("twilio:a", 60)  # nothing claimed: nothing to keep
    assert not await store.seen("twilio:a")
    assert await store.claim("twilio:a", 5)
    assert await store.record("twilio:a", 60)
    assert await store.seen("twilio:a") and not await store.seen("twilio:b")
    assert not await store.claim("twilio:a", 60)  # one key space with claims
    clock.now += 50
    assert await store.record("twilio:a", 60)  # recording again extends
    clock.now += 50
    assert await store.seen("twilio:a")
    clock.now += 11
    assert not await store.seen("twilio:a")
    await runner.close()


async def test_claims_survive_a_restart(tmp_path: Path) -> None:
    backend = open_backend(f"sqlite:///{tmp_path / 'sb.sqlite3'}")
    assert await backend.nonces.claim("chatwoot:d-9", 600)
    await backend.close()
    reopened = open_backend(f"sqlite:///{tmp_path / 'sb.sqlite3'}")
    assert not await reopened.nonces.claim("chatwoot:d-9", 600)
    await reopened.close()


@pytest.mark.redis
async def test_redis_claim_release_and_ttl(redis_nonces: RedisNonceStore) -> None:
    store = redis_nonces
    assert await store.claim("generic:abc", 30)
    assert not await store.claim("generic:abc", 30)
    ttl_ms = await store._conn.client.pttl(store._key("generic:abc"))
    assert 25_000 < ttl_ms <= 30_000
    await store.release("generic:abc")
    assert await store.claim("generic:abc", 30)
    await store.release("generic:abc")


@pytest.mark.redis
async def test_redis_release_drops_the_key_from_its_owner_set(redis_nonces: RedisNonceStore) -> None:
    store = redis_nonces
    assert await store.claim("chatwoot:owned", 30, "conv-release")
    assert await store.claim("chatwoot:kept", 30, "conv-release")
    owner = store._owner_key("conv-release")
    await store.release("chatwoot:owned", "conv-release")
    assert not await store.seen("chatwoot:owned")
    assert await store._conn.client.smembers(owner) == {store._key("chatwoot:kept").encode()}
    await store.release("chatwoot:kept", "conv-release")
    assert not await store._conn.client.exists(owner)  # its last member gone, Redis drops the set


@pytest.mark.redis
async def test_redis_claim_is_atomic_across_clients(redis_url: str) -> None:
    backends = [open_backend(redis_url) for _ in range(3)]
    results = await asyncio.gather(*(b.nonces.claim("chatwoot:race", 30) for b in backends for _ in range(3)))
    assert results.count(True) == 1
    await backends[0].nonces.release("chatwoot:race")
    for backend in backends:
        await backend.close()


@pytest.mark.redis
async def test_redis_seen_and_record(redis_nonces: RedisNonceStore) -> None:
    store = redis_nonces
    assert not await store.seen("twilio:a")
    assert not await store.record("twilio:a", 30)  # nothing claimed: nothing to keep
    assert not await store.seen("twilio:a")
    assert await store.claim("twilio:a", 5)
    assert await store.record("twilio:a", 30)
    assert await store.seen("twilio:a") and not await store.seen("twilio:b")
    assert await store.record("twilio:a", 86_400)
    assert 86_000_000 < await store._conn.client.pttl(store._key("twilio:a")) <= 86_400_000
    await store.release("twilio:a")
    assert not await store.seen("twilio:a")


async def test_sqlite_forget_erases_a_conversations_keys_only(tmp_path: Path) -> None:
    runner = SqliteRunner(tmp_path / "sb.sqlite3", SCHEMA)
    store = SqliteNonceStore(runner)
    assert await store.claim("chatwoot:1", 60, "conv-a")
    for key, owner in (("twilio:2", "conv-a"), ("twilio:3", "conv-b")):
        assert await store.claim(key, 5, owner) and await store.record(key, 60, owner)
    assert await store.forget("conv-a") == 2
    assert not await store.seen("chatwoot:1") and not await store.seen("twilio:2")
    assert await store.seen("twilio:3")
    owners = await runner.run(
        lambda c: c.execute("SELECT conversation_id FROM sb_webhook_nonce_owners").fetchall()
    )
    assert owners == [("conv-b",)]
    await runner.close()


@pytest.mark.redis
async def test_redis_forget_erases_a_conversations_keys_only(redis_nonces: RedisNonceStore) -> None:
    store = redis_nonces
    assert await store.claim("chatwoot:1", 60, "conv-a")
    assert await store.claim("twilio:2", 5, "conv-a") and await store.record("twilio:2", 86_400, "conv-a")
    assert await store.claim("twilio:3", 5, "conv-b") and await store.record("twilio:3", 60, "conv-b")
    owner_ttl = await store._conn.client.pttl(store._owner_key("conv-a"))
    assert 86_000_000 < owner_ttl <= 86_400_000  # as long as its longest-lived key
    assert await store.forget("conv-a") == 2
    assert not await store.seen("chatwoot:1") and not await store.seen("twilio:2")
    assert await store.seen("twilio:3")
    assert not await store._conn.client.exists(store._owner_key("conv-a"))
    await store.forget("conv-b")


async def test_sqlite_an_erase_while_processing_is_not_undone_by_record(tmp_path: Path) -> None:
    """Another process erases the conversation between the claim and the record (its event was
    being processed): the record keeps nothing, and nothing names the conversation."""
    serving = SqliteNonceStore(SqliteRunner(tmp_path / "sb.sqlite3", SCHEMA))
    erasing_runner = SqliteRunner(tmp_path / "sb.sqlite3", SCHEMA)
    erasing = SqliteNonceStore(erasing_runner)
    assert await serving.claim("twilio:x", 5, "conv-a")
    assert await erasing.forget("conv-a") == 1
    assert not await serving.record("twilio:x", 86_400, "conv-a")
    assert not await serving.seen("twilio:x")
    rows = await erasing_runner.run(
        lambda c: c.execute(
            "SELECT key FROM sb_webhook_nonces UNION ALL SELECT conversation_id FROM sb_webhook_nonce_owners"
        ).fetchall()
    )
    assert rows == []
    await erasing_runner.close()
    await serving._runner.close()


@pytest.mark.redis
async def test_redis_an_erase_while_processing_is_not_undone_by_record(redis_url: str) -> None:
    serving, erasing = open_backend(redis_url), open_backend(redis_url)
    store = serving.nonces
    assert isinstance(store, RedisNonceStore)
    assert await store.claim("twilio:x", 5, "conv-a")
    assert await erasing.nonces.forget("conv-a") == 1
    assert not await store.record("twilio:x", 86_400, "conv-a")
    client = store._conn.client
    assert [key async for key in client.scan_iter(match=f"{store._prefix}*")] == []
    await serving.close()
    await erasing.close()
