"""Per-key rate limiting: shared through Redis when Redis is configured, else per worker.

``TokenBucketLimiter`` (in process): each key owns a bucket of ``burst`` tokens
refilled at ``rate`` per second; a request takes one token or is refused with the
time until the next token. Buckets idle long enough to be full again are dropped so
the table cannot grow without bound. The buckets live in one worker's memory: with
an SQLite or memory store, N workers or replicas admit up to N times the rate
(SQLite offers no cheap atomic shared counter at request rate; use Redis to share).

``RedisRateLimiter`` (conversation store on Redis): a moving window kept in Redis by
the ``limits`` library, so every worker and replica draws from the same allowance.
A moving window counts the requests of the last ``window_s`` seconds; ``window_s``
is ``burst / rate`` rounded up to whole seconds (the library's granularity) and the
window admits ``rate × window_s`` requests, so the long-run rate is exactly ``rate``
and a burst is ``burst`` requests (at least one second's worth: ``rate=100,
burst=10`` admits 100 at once).

Redis failure: every call runs through the project's guarded connection
(``service.redis_conn``: 0.2 s connect and read timeouts, no client retries, a
circuit breaker). When Redis does not answer in time, or the breaker is open, the
request is decided by the worker's own token bucket (with the same rate and burst)
and ``switchboard_ratelimit_fallbacks_total`` counts it: the limit degrades to per
worker, it neither lets everything through nor refuses everything, and a frozen
Redis costs a request at most 0.4 s, and nothing once the breaker has opened.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any, Protocol

from service.errors import RateLimited
from service.redis_conn import RedisConn, RedisStoreError, open_redis

_log = logging.getLogger("switchboard.ratelimit")

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
# Short: a rate-limit check sits in front of every /v1 request.
REDIS_TIMEOUT_S = 0.2
# Warn about falling back at most this often (a dead Redis would otherwise log every request).
_WARN_EVERY_S = 60.0


class RateLimiter(Protocol):
    """What the API-key guard needs: take one unit for a key, or raise ``RateLimited``."""

    @property
    def enabled(self) -> bool:
        """False when the rate is 0 (unlimited)."""

    async def take(self, key: str) -> None:
        """Consume one request for ``key``; raise ``RateLimited`` (429 + Retry-After) when over."""

    async def aclose(self) -> None:
        """Release connections (app shutdown)."""


def _refused(rate: float, burst: float, retry_after: float) -> RateLimited:
    return RateLimited(
        retry_after=retry_after,
        detail=f"rate limit of {rate:g} requests/s (burst {burst:g}) exceeded for this key",
    )


class TokenBucketLimiter:
    """``acquire(key)`` takes one token or raises ``RateLimited`` with Retry-After (one process)."""

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
            raise _refused(self.rate, self.burst, (1.0 - tokens) / self.rate)
        self._buckets[key] = (tokens - 1.0, now)
        self._sweep(now)

    async def take(self, key: str) -> None:
        """``acquire`` (no I/O: the buckets are in memory)."""
        self.acquire(key)

    async def aclose(self) -> None:
        """Nothing to release."""

    def _sweep(self, now: float) -> None:
        # A bucket untouched for burst/rate seconds is full again: forgetting it changes nothing.
        full_after = self.burst / self.rate
        if now - self._last_sweep < max(full_after, 1.0):
            return
        self._last_sweep = now
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_after}


def moving_window(rate: float, burst: int) -> tuple[int, int]:
    """``(requests, seconds)`` of the moving window that stands for a ``rate``/``burst`` bucket."""
    seconds = max(1, math.ceil(burst / rate - 1e-9))
    return max(1, round(rate * seconds)), seconds


class RedisRateLimiter:
    """A moving window per key in Redis (``limits``), shared by every worker and replica.

    ``conn`` is a guarded connection (``open_redis``); ``fallback`` decides while Redis
    does not answer, and ``on_fallback`` is called once per such decision (a metric).
    """

    def __init__(
        self,
        conn: RedisConn,
        rate: float,
        burst: int,
        *,
        fallback: TokenBucketLimiter | None = None,
        on_fallback: Callable[[], None] | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        from limits import RateLimitItemPerSecond
        from limits.aio.storage import RedisStorage
        from limits.aio.strategies import MovingWindowRateLimiter

        self.rate = rate
        self.burst = burst
        self.conn = conn
        amount, seconds = moving_window(rate, burst)
        self.item = RateLimitItemPerSecond(amount, seconds)
        # The guarded client's pool: its timeouts and no-retry policy apply to the library's calls.
        storage = RedisStorage(
            "async+redis://",
            implementation="redispy",
            key_prefix=f"{conn.prefix}ratelimit",
            connection_pool=conn.client.connection_pool,
        )
        self._window: Any = MovingWindowRateLimiter(storage)
        self.fallback = fallback if fallback is not None else TokenBucketLimiter(rate, burst)
        self._on_fallback = on_fallback
        self._wall_clock = wall_clock
        self._warned_at = -math.inf

    @property
    def enabled(self) -> bool:
        """A rate of 0 means unlimited."""
        return self.rate > 0

    async def take(self, key: str) -> None:
        """One request for ``key`` against the shared window; the local bucket if Redis fails."""
        if not self.enabled:
            return
        try:
            allowed = await self.conn.call(lambda _: self._window.hit(self.item, key))
            if allowed:
                return
            stats = await self.conn.call(lambda _: self._window.get_window_stats(self.item, key))
        except RedisStoreError as exc:
            self._fell_back(exc)
            self.fallback.acquire(key)
            return
        retry_after = max(0.0, float(stats.reset_time) - self._wall_clock())
        raise _refused(self.rate, self.burst, retry_after or 1.0 / self.rate)

    def _fell_back(self, exc: RedisStoreError) -> None:
        if self._on_fallback is not None:
            self._on_fallback()
        now = time.monotonic()
        if now - self._warned_at >= _WARN_EVERY_S:
            self._warned_at = now
            _log.warning(
                "rate limit: Redis did not answer; deciding per worker until it does",
                extra={"error": str(exc)},
            )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.conn.aclose()


def build_limiter(
    rate: float, burst: int, store_url: str, on_fallback: Callable[[], None] | None = None
) -> RateLimiter:
    """The limiter for a service: shared through Redis when ``store_url`` is a Redis URL
    (its ``?prefix=`` namespaces the keys), else in process. No I/O here."""
    if rate <= 0 or not store_url.startswith(REDIS_SCHEMES):
        return TokenBucketLimiter(rate, burst)
    conn = open_redis(store_url, connect_timeout_s=REDIS_TIMEOUT_S, timeout_s=REDIS_TIMEOUT_S)
    return RedisRateLimiter(conn, rate, burst, on_fallback=on_fallback)
