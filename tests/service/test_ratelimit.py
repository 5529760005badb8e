"""Token bucket per key: burst, refill, Retry-After, isolation between keys."""

from __future__ import annotations

import pytest

from service.errors import RateLimited
from service.ratelimit import TokenBucketLimiter


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
