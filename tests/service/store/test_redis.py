"""RedisStore against a real Redis: native TTL, key prefix isolation, URL parsing."""

from __future__ import annotations

import pytest

from service.store import open_store
from service.store.base import StoreError
from service.store.redis import RedisStore, split_prefix


def test_split_prefix() -> None:
    assert split_prefix("redis://h:6379/0") == ("redis://h:6379/0", "switchboard:")
    assert split_prefix("redis://h:6379/1?prefix=x:&socket_timeout=2") == (
        "redis://h:6379/1?socket_timeout=2",
        "x:",
    )


@pytest.mark.redis
async def test_save_sets_native_ttl(redis_url: str) -> None:
    store = RedisStore(redis_url, ttl_s=120)
    await store.save("c1", b"x", expected_version=0)
    ttl = await store._client.ttl(store._key("c1"))
    assert 110 <= ttl <= 120
    await store.delete("c1")
    await store.close()


@pytest.mark.redis
async def test_prefixes_isolate_deployments(redis_url: str) -> None:
    base = redis_url.rsplit("prefix=", 1)[0] + "prefix="
    one = RedisStore(base + "sbtest-one:", ttl_s=60)
    two = RedisStore(base + "sbtest-two:", ttl_s=60)
    await one.save("same-id", b"one", expected_version=0, closed=True)
    assert await two.load("same-id") is None
    assert "same-id" not in await two.closed_ids()
    await one.delete("same-id")
    await one.close()
    await two.close()


def test_open_store_by_url() -> None:
    assert isinstance(open_store("redis://127.0.0.1:6379/0", 60), RedisStore)


async def test_unreachable_redis_is_a_503_store_error() -> None:
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0?socket_connect_timeout=0.5", ttl_s=60)
    for call in (
        store.load("x"),
        store.save("x", b"y", expected_version=0),
        store.closed_ids(),
        store.ping(),
    ):
        with pytest.raises(StoreError) as info:
            await call
        assert info.value.status == 503
    await store.close()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
