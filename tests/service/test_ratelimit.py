"""Rate limits: the in-process token bucket per key (burst, refill, Retry-After, isolation), and
the moving window shared through Redis (one allowance for all workers, fallback when Redis hangs)."""

from __future__ import annotations

import time

import pytest

from service.errors import RateLimited
from service.ratelimit import RedisRateLimiter, TokenBucketLimiter, build_limiter, moving_window
from tests.service.conftest import private_redis


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refuse_with_retry_after() -> None:
    clock = Clock()
    limiter = TokenBucketLimiter(rate=2.0, burst=3, clock=clock)
    for _ in range(3):
        limiter.acquire("k")
    with pytest.raises(RateLimited) as info:
        limiter.acquire("k")
    assert info.value.status == 429
    assert info.value.retry_after == pytest.approx(0.5)
    assert info.value.headers["Retry-After"] == "1"
    clock.now += 0.5
    limiter.acquire("k")  # one token refilled


def test_keys_are_independent() -> None:
    limiter = TokenBucketLimiter(rate=1.0, burst=1, clock=Clock())
    limiter.acquire("a")
    limiter.acquire("b")
    with pytest.raises(RateLimited):
        limiter.acquire("a")


def test_zero_rate_is_unlimited() -> None:
    limiter = TokenBucketLimiter(rate=0.0, burst=1, clock=Clock())
    for _ in range(1000):
        limiter.acquire("k")


def test_idle_buckets_are_forgotten() -> None:
    clock = Clock()
    limiter = TokenBucketLimiter(rate=10.0, burst=10, clock=clock)
    for n in range(100):
        limiter.acquire(f"key{n}")
    clock.now += 5
    limiter.acquire("fresh")
    assert len(limiter._buckets) == 1


# ---- shared through Redis ------------------------------------------------------------------------


def test_moving_window_keeps_the_rate_and_the_burst() -> None:
    assert moving_window(5.0, 5) == (5, 1)
    assert moving_window(50.0, 100) == (100, 2)  # the defaults
    assert moving_window(0.5, 1) == (1, 2)
    assert moving_window(3.0, 5) == (6, 2)  # whole seconds: burst rounded up, rate kept
    assert moving_window(100.0, 10) == (100, 1)  # at least one second's worth


def test_without_redis_the_limit_is_per_process() -> None:
    assert isinstance(build_limiter(5.0, 5, "sqlite:///var/x.sqlite3"), TokenBucketLimiter)
    assert isinstance(build_limiter(5.0, 5, "memory://"), TokenBucketLimiter)
    assert isinstance(build_limiter(0.0, 5, "redis://127.0.0.1:6379/0"), TokenBucketLimiter)


@pytest.mark.redis
async def test_two_limiters_on_one_redis_share_the_allowance(redis_url: str) -> None:
    # Two limiters stand for two worker processes: together they admit the burst once, not twice.
    first = build_limiter(5.0, 5, redis_url)
    second = build_limiter(5.0, 5, redis_url)
    assert isinstance(first, RedisRateLimiter) and isinstance(second, RedisRateLimiter)
    try:
        admitted = 0
        refusals: list[RateLimited] = []
        for n in range(12):
            try:
                await (first if n % 2 else second).take("key-a")
                admitted += 1
            except RateLimited as exc:
                refusals.append(exc)
        assert admitted == 5 and len(refusals) == 7
        assert 0 < refusals[0].retry_after <= 1.0
        await first.take("key-b")  # keys are independent
        assert first.fallback._buckets == {} and second.fallback._buckets == {}  # Redis decided
    finally:
        await first.aclose()
        await second.aclose()


@pytest.mark.redis
async def test_a_frozen_redis_falls_back_to_the_worker_bucket_quickly(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with private_redis(tmp_path_factory) as server:
        fallbacks: list[int] = []
        limiter = build_limiter(0.5, 2, server.url, on_fallback=lambda: fallbacks.append(1))
        assert isinstance(limiter, RedisRateLimiter)
        try:
            await limiter.take("k")  # Redis answers
            assert fallbacks == []
            server.freeze()
            started = time.monotonic()
            await limiter.take("k")  # timed out: decided by the local bucket (burst 2)
            assert time.monotonic() - started < 1.0
            await limiter.take("k")
            with pytest.raises(RateLimited):
                await limiter.take("k")  # third failure opens the breaker; the local bucket is empty
            started = time.monotonic()
            with pytest.raises(RateLimited):
                await limiter.take("k")  # still limited, per worker
            assert time.monotonic() - started < 0.05  # breaker open: no Redis round trip
            assert len(fallbacks) == 4
        finally:
            server.thaw()
            await limiter.aclose()
