"""``open_redis`` against a real redis-server of its own, frozen with SIGSTOP, then resumed.

The server runs on a free port for this module only (the shared Redis is never frozen).
Timings are measured with the client's defaults (1 s connect and read timeouts); the
breaker's cool-down runs on a manual clock so no test sleeps through it.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Iterator
from typing import Any

import pytest

from service.redis_conn import CircuitBreaker, RedisStoreError, RedisUnavailable, open_redis, split_prefix
from tests.service.conftest import RedisServer, private_redis

pytestmark = pytest.mark.redis


class ManualClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with private_redis(tmp_path_factory) as started:
        yield started


async def _timed(coro: asyncio.Future[object] | object) -> tuple[float, BaseException | None]:
    start = time.perf_counter()
    try:
        await coro  # type: ignore[misc]
    except Exception as exc:
        return time.perf_counter() - start, exc
    return time.perf_counter() - start, None


async def test_calls_pass_with_the_configured_timeouts_and_prefix(server: RedisServer) -> None:
    conn = open_redis(server.url + "?prefix=t1:", health_check_interval_s=7)
    assert conn.prefix == "t1:"
    options = conn.client.connection_pool.connection_kwargs
    assert (options["socket_connect_timeout"], options["socket_timeout"]) == (1.0, 1.0)
    assert options["health_check_interval"] == 7
    await conn.call(lambda c: c.set("t1:k", b"v"))
    assert await conn.call(lambda c: c.get("t1:k")) == b"v"
    await conn.ping()
    assert conn.breaker.state == "closed"
    await conn.aclose()


async def test_frozen_redis_errors_in_time_then_fails_fast_then_recovers(server: RedisServer) -> None:
    clock = ManualClock()
    conn = open_redis(server.url, failure_threshold=2, cooldown_s=5.0, clock=clock)
    await conn.ping()  # a pooled, established connection: the frozen server's usual victim
    calls = 0

    def get(client: Any) -> Awaitable[bytes | None]:
        nonlocal calls
        calls += 1
        result: Awaitable[bytes | None] = client.get("frozen")
        return result

    server.freeze()
    try:
        first, error = await _timed(conn.call(get))
        assert isinstance(error, RedisUnavailable) and first < 2.0, (first, error)
        assert conn.breaker.state == "closed"  # one failure is not enough
        second, error = await _timed(conn.call(get))
        assert isinstance(error, RedisUnavailable) and second < 2.0, (second, error)
        assert conn.breaker.state == "open"

        fast, error = await _timed(conn.call(get))
        assert isinstance(error, RedisUnavailable) and fast < 0.05, (fast, error)
        assert error.retry_after_s == pytest.approx(5.0)
        assert calls == 2  # nothing was sent while open

        clock.now += 5.0  # cool-down over; the probe still meets a frozen server
        probe, error = await _timed(conn.call(get))
        assert isinstance(error, RedisUnavailable) and probe < 2.0
        assert conn.breaker.state == "open"
    finally:
        server.thaw()

    clock.now += 5.0
    assert await conn.call(get) is None  # the half-open probe succeeds
    assert conn.breaker.state == "closed"
    await conn.aclose()


async def test_a_new_connection_to_a_frozen_server_times_out(server: RedisServer) -> None:
    """The kernel still accepts the TCP connection; the handshake is what must time out."""
    conn = open_redis(server.url)
    server.freeze()
    try:
        elapsed, error = await _timed(conn.ping())
    finally:
        server.thaw()
    assert isinstance(error, RedisUnavailable) and elapsed < 2.0, (elapsed, error)
    await conn.ping()
    await conn.aclose()


async def test_nothing_listening_is_unavailable_at_once() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        conn = open_redis(f"redis://127.0.0.1:{port}/0", failure_threshold=1)
        elapsed, error = await _timed(conn.ping())
    assert isinstance(error, RedisUnavailable) and elapsed < 1.0
    assert conn.breaker.state == "open"
    await conn.aclose()


async def test_an_error_answer_is_not_an_outage(server: RedisServer) -> None:
    conn = open_redis(server.url, failure_threshold=1)
    await conn.call(lambda c: c.set("t2:text", b"not a number"))
    with pytest.raises(RedisStoreError) as caught:
        await conn.call(lambda c: c.incr("t2:text"))
    assert not isinstance(caught.value, RedisUnavailable)
    assert conn.breaker.state == "closed"
    await conn.call(lambda c: c.delete("t2:text"))
    await conn.aclose()


def test_breaker_admits_one_probe_after_the_cooldown() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(failure_threshold=3, cooldown_s=10.0, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()  # not consecutive: the count starts over
    for _ in range(3):
        assert breaker.check() is False
        breaker.record_failure()
    assert breaker.state == "open"
    clock.now += 9.9
    with pytest.raises(RedisUnavailable):
        breaker.check()
    clock.now += 0.1
    assert breaker.state == "half_open"
    assert breaker.check() is True  # the probe
    with pytest.raises(RedisUnavailable):
        breaker.check()  # others wait for the probe's answer
    breaker.abandon_probe()  # probe cancelled: the next call probes
    assert breaker.check() is True
    breaker.record_failure()  # probe failed: open for another cool-down
    with pytest.raises(RedisUnavailable):
        breaker.check()
    clock.now += 10.0
    assert breaker.check() is True
    breaker.record_success()
    assert breaker.state == "closed" and breaker.check() is False


async def test_a_cancelled_probe_does_not_wedge_the_breaker(server: RedisServer) -> None:
    clock = ManualClock()
    conn = open_redis(server.url, failure_threshold=1, cooldown_s=1.0, clock=clock)
    conn.breaker.record_failure()
    clock.now += 1.0
    task = asyncio.create_task(conn.call(lambda c: asyncio.sleep(10)))
    await asyncio.sleep(0)
    assert conn.breaker.state == "half_open"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await conn.ping()  # the next call became the probe
    assert conn.breaker.state == "closed"
    await conn.aclose()


def test_split_prefix() -> None:
    assert split_prefix("redis://h:1/2?prefix=a:&ssl_cert_reqs=none") == (
        "redis://h:1/2?ssl_cert_reqs=none",
        "a:",
    )
    assert split_prefix("redis://h:1/2") == ("redis://h:1/2", "switchboard:")


def test_timeouts_must_be_finite() -> None:
    with pytest.raises(ValueError):
        open_redis("redis://127.0.0.1:1/0", timeout_s=0)
