"""RedisStore against a real Redis: native TTL, key prefix isolation, URL parsing."""

from __future__ import annotations

import pytest

from service.store import open_store
from service.store.redis import RedisStore, split_prefix

pytestmark = pytest.mark.redis


def test_split_prefix() -> None:
    assert split_prefix("redis://h:6379/0") == ("redis://h:6379/0", "switchboard:")
    assert split_prefix("redis://h:6379/1?prefix=x:&socket_timeout=2") == (
        "redis://h:6379/1?socket_timeout=2",
        "x:",
    )


async def test_save_sets_native_ttl(redis_url: str) -> None:
    store = RedisStore(redis_url, ttl_s=120)
    await store.save("c1", b"x", expected_version=0)
    ttl = await store._client.ttl(store._key("c1"))
    assert 110 <= ttl <= 120
    await store.delete("c1")
    await store.close()


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
