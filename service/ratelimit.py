"""Per-key token-bucket rate limiting (in process).

Each key owns a bucket of ``burst`` tokens refilled at ``rate`` per second; a
request takes one token or is refused with the time until the next token. The
buckets live in the worker's memory, so with N workers or replicas the
effective limit is up to N times the configured rate (documented). Buckets idle
long enough to be full again are dropped so the table cannot grow without bound.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from service.errors import RateLimited


class TokenBucketLimiter:
    """``acquire(key)`` takes one token or raises ``RateLimited`` with Retry-After."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill time)
        self._last_sweep = clock()

    @property
    def enabled(self) -> bool:
        """A rate of 0 means unlimited."""
        return self.rate > 0

    def acquire(self, key: str) -> None:
        """Consume a token for ``key``; raise ``RateLimited`` when the bucket is empty."""
        if not self.enabled:
            return
        now = self._clock()
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            raise RateLimited(
                retry_after=(1.0 - tokens) / self.rate,
                detail=f"rate limit of {self.rate:g} requests/s (burst {self.burst:g}) exceeded for this key",
            )
        self._buckets[key] = (tokens - 1.0, now)
        self._sweep(now)

    def _sweep(self, now: float) -> None:
        # A bucket untouched for burst/rate seconds is full again: forgetting it changes nothing.
        full_after = self.burst / self.rate
        if now - self._last_sweep < max(full_after, 1.0):
            return
        self._last_sweep = now
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_after}
