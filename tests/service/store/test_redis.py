"""RedisStore against a real Redis: native TTL, key prefix isolation, URL parsing."""

from __future__ import annotations

import pytest

from service.redis_conn import split_prefix
from service.store import open_store
from service.store.base import NewTurn, StoreError, tombstone_key
from service.store.redis import RedisStore


def test_split_prefix() -> None:
    assert split_prefix("redis://h:6379/0") == ("redis://h:6379/0", "switchboard:")
    assert split_prefix("redis://h:6379/1?prefix=x:&socket_timeout=2") == (
        "redis://h:6379/1?socket_timeout=2",
        "x:",
    )


TURN = [NewTurn(index=0, turn_id="a", digest="d", data=b"x")]


@pytest.mark.redis
async def test_append_sets_native_ttl_on_every_key(redis_url: str) -> None:
    store = RedisStore(redis_url, ttl_s=120)
    await store.append("c1", b"x", TURN, expected_version=0)
    for kind in ("head", "turns", "tids"):
        ttl = await store._client.ttl(store._key(kind, "c1"))
        assert 110 <= ttl <= 120, kind
    await store.erase("c1", tombstone_s=0)
    await store.close()


@pytest.mark.redis
async def test_erase_leaves_no_key_but_the_tombstone(redis_url: str) -> None:
    store = RedisStore(redis_url, ttl_s=120)
    await store.append("c1", b"x", TURN, expected_version=0)
    await store.erase("c1", tombstone_s=30)
    keys = [key async for key in store._client.scan_iter(match=store.prefix + "*")]
    assert keys == [store._key("tomb", tombstone_key("c1")).encode()]
    assert 0 < await store._client.pttl(keys[0]) <= 30_000
    await store._client.delete(*keys)
    await store.close()


@pytest.mark.redis
async def test_purge_reports_conversations_redis_expired(redis_url: str) -> None:
    now = [1_000_000.0]
    store = RedisStore(redis_url, ttl_s=120, clock=lambda: now[0])
    await store.append("c1", b"x", TURN, expected_version=0)
    assert await store.purge_expired() == []
    await store._client.delete(store._key("head", "c1"))  # what Redis' expiry does at the deadline
    now[0] += 121
    assert await store.purge_expired() == ["c1"]
    assert [key async for key in store._client.scan_iter(match=store.prefix + "*")] == []
    await store.close()


@pytest.mark.redis
async def test_first_layout_hashes_are_listed(redis_url: str) -> None:
    store = RedisStore(redis_url, ttl_s=120)
    await store._client.hset(store._key("conv", "old"), mapping={"v": 3, "d": b"{}", "c": b"1", "u": b"5.0"})
    assert await store.legacy_ids() == ["old"]
    legacy = await store.load_legacy("old")
    assert legacy is not None and (legacy.data, legacy.version, legacy.closed) == (b"{}", 3, True)
    await store.drop_legacy("old")
    assert await store.legacy_ids() == []
    await store.close()


@pytest.mark.redis
async def test_prefixes_isolate_deployments(redis_url: str) -> None:
    base = redis_url.rsplit("prefix=", 1)[0] + "prefix="
    one = RedisStore(base + "sbtest-one:", ttl_s=60)
    two = RedisStore(base + "sbtest-two:", ttl_s=60)
    await one.append("same-id", b"one", TURN, expected_version=0, closed=True)
    assert await two.load_head("same-id") is None
    assert "same-id" not in await two.closed_ids()
    await one.erase("same-id", tombstone_s=0)
    await one.close()
    await two.close()


def test_open_store_by_url() -> None:
    assert isinstance(open_store("redis://127.0.0.1:6379/0", 60), RedisStore)


async def test_unreachable_redis_is_a_store_error() -> None:
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0?socket_connect_timeout=0.5", ttl_s=60)
    for call in (
        store.load_head("x"),
        store.append("x", b"y", [], expected_version=0),
        store.closed_ids(),
        store.erase("x", tombstone_s=1),
        store.ping(),
    ):
        with pytest.raises(StoreError):
            await call
    await store.close()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
