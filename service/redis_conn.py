"""The one way the service talks to Redis: bounded timeouts and a circuit breaker.

redis-py leaves socket timeouts unset by default (5.x), so a frozen server (a stopped
process, a full network partition) holds every request awaiting it for as long as the
kernel keeps the TCP connection, and newer versions retry timeouts three times with
backoff. ``open_redis`` sets explicit connect and read timeouts, turns the client's own
retries off, bounds every call by a deadline, and wraps calls in a ``CircuitBreaker``:
after ``failure_threshold`` consecutive failures it fails fast for ``cooldown_s``, then lets
one probe call through (half-open) and closes again when that succeeds.

A failing call raises ``RedisUnavailable`` (could not reach Redis in time, or the breaker
is open) or ``RedisStoreError`` (Redis answered with an error). Neither is an HTTP error:
callers map them (the service answers 503).

This module is a leaf: it imports nothing from the service.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qs, urlsplit, urlunsplit

import redis.asyncio as redis_asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

T = TypeVar("T")

DEFAULT_PREFIX = "switchboard:"

BreakerState = Literal["closed", "open", "half_open"]


class RedisStoreError(Exception):
    """A Redis call failed. The message names the redis-py exception type, never keys or values."""


class RedisUnavailable(RedisStoreError):
    """Redis could not be reached in time, or the circuit breaker is open (failing fast).

    ``retry_after_s`` is the time left until the breaker lets a probe through (0 when the
    call itself failed); useful for a ``Retry-After`` header.
    """

    def __init__(self, message: str, *, retry_after_s: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


# Failures that say "the server is not there": they count towards opening the breaker.
# Any other RedisError means the server answered (a script error, a wrong type).
_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, TimeoutError, OSError)


class CircuitBreaker:
    """Consecutive-failure circuit breaker; not thread safe (one event loop).

    * closed: calls pass; ``failure_threshold`` consecutive failures open it.
    * open: ``check`` raises ``RedisUnavailable`` at once until ``cooldown_s`` has passed.
    * half-open: the first ``check`` after the cool-down is the probe; concurrent calls
      still fail fast. The probe's success closes the breaker, its failure reopens it for
      another cool-down.
    """

    def __init__(
        self,
        failure_threshold: int = 3,
        cooldown_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if cooldown_s < 0:
            raise ValueError("cooldown_s must not be negative")
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._failures = 0
        self._open_until: float | None = None  # None: closed
        self._probing = False

    @property
    def state(self) -> BreakerState:
        """The current state (a read; it does not start a probe)."""
        if self._open_until is None:
            return "closed"
        if self._probing or self._clock() >= self._open_until:
            return "half_open"
        return "open"

    def check(self) -> bool:
        """Admit a call or raise ``RedisUnavailable``; True when the admitted call is the probe."""
        if self._open_until is None:
            return False
        left = self._open_until - self._clock()
        if left > 0 or self._probing:
            raise RedisUnavailable(
                "redis unavailable (circuit open, failing fast)", retry_after_s=max(0.0, left)
            )
        self._probing = True
        return True

    def record_success(self) -> None:
        """The server answered: close the breaker."""
        self._failures = 0
        self._open_until = None
        self._probing = False

    def record_failure(self) -> None:
        """The server did not answer: count it; open (or reopen) the breaker when due."""
        self._probing = False
        self._failures += 1
        if self._open_until is not None or self._failures >= self.failure_threshold:
            self._open_until = self._clock() + self.cooldown_s

    def abandon_probe(self) -> None:
        """The probe was cancelled before an answer: let the next call probe instead."""
        self._probing = False


class RedisConn:
    """A redis-py asyncio client behind a deadline and a circuit breaker.

    Make every call through ``call``; ``client`` is exposed for what does no I/O
    (``register_script``, building a pipeline inside an ``op``). ``prefix`` is the key
    namespace from the URL's ``?prefix=`` (default ``switchboard:``).
    """

    def __init__(self, client: Any, prefix: str, breaker: CircuitBreaker, deadline_s: float) -> None:
        self.client = client
        self.prefix = prefix
        self.breaker = breaker
        self.deadline_s = deadline_s

    async def call(self, op: Callable[[Any], Awaitable[T]]) -> T:
        """Return ``await op(client)``, bounded by ``deadline_s`` and guarded by the breaker.

        ``op`` is only invoked when the breaker admits the call, so nothing is sent while it
        is open. Raises ``RedisUnavailable`` (unreachable, timed out, breaker open; counted
        by the breaker) or ``RedisStoreError`` (Redis answered with an error; not counted).
        """
        probe = self.breaker.check()
        try:
            async with asyncio.timeout(self.deadline_s):
                result = await op(self.client)
        except _UNAVAILABLE as exc:
            self.breaker.record_failure()
            raise RedisUnavailable(f"redis unavailable ({type(exc).__name__})") from exc
        except RedisError as exc:
            self.breaker.record_success()
            raise RedisStoreError(f"redis call failed ({type(exc).__name__})") from exc
        except BaseException:
            if probe:
                self.breaker.abandon_probe()
            raise
        self.breaker.record_success()
        return result

    async def ping(self) -> None:
        """PING through ``call`` (a readiness check)."""
        await self.call(lambda client: client.ping())

    async def aclose(self) -> None:
        """Close the client and its connection pool (no I/O to a frozen server is awaited)."""
        # redis-py 5.0.0 has only close(); 5.0.1 added aclose() and deprecated close().
        closer = getattr(self.client, "aclose", None) or self.client.close
        await closer()


def split_prefix(url: str, default: str = DEFAULT_PREFIX) -> tuple[str, str]:
    """Take an optional ``?prefix=...`` off a Redis URL; return (URL without it, prefix)."""
    parts = urlsplit(url)
    query = parse_qs(parts.query, keep_blank_values=True)
    prefix = query.pop("prefix", [default])[0]
    rest = "&".join(f"{key}={value}" for key, values in query.items() for value in values)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, rest, parts.fragment)), prefix


def open_redis(
    url: str,
    *,
    connect_timeout_s: float = 1.0,
    timeout_s: float = 1.0,
    health_check_interval_s: int = 15,
    failure_threshold: int = 3,
    cooldown_s: float = 5.0,
    clock: Callable[[], float] = time.monotonic,
) -> RedisConn:
    """A guarded client for ``redis://``, ``rediss://`` or ``unix://`` ``url`` (no I/O yet).

    ``connect_timeout_s`` bounds the TCP connect, ``timeout_s`` every read and write on the
    socket (including the connection handshake); each call as a whole is bounded by their
    sum. A pooled connection idle for ``health_check_interval_s`` seconds is PINGed before
    reuse, so one that died meanwhile is replaced instead of failing the call. Options in
    the URL's query (``?socket_timeout=…``) take precedence, as in redis-py. Responses are
    bytes (``decode_responses=False``).
    """
    if connect_timeout_s <= 0 or timeout_s <= 0:
        raise ValueError("Redis timeouts must be positive (None would mean wait forever)")
    clean_url, prefix = split_prefix(url)
    client = redis_asyncio.from_url(
        clean_url,
        decode_responses=False,
        socket_connect_timeout=connect_timeout_s,
        socket_timeout=timeout_s,
        health_check_interval=health_check_interval_s,
        # Retrying inside the client would multiply the time a dead server costs; the
        # breaker and the callers' own retries (webhook senders, the outbox) cover it.
        retry_on_timeout=False,
        retry=Retry(NoBackoff(), 0),
    )
    breaker = CircuitBreaker(failure_threshold, cooldown_s, clock)
    return RedisConn(client, prefix, breaker, deadline_s=connect_timeout_s + timeout_s)
