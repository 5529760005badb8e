"""Request context middleware: in-flight admission control answers 429 at once; request ids."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import httpx
import pytest

from service.app import ServiceState, create_app
from service.middleware import request_id_from
from service.settings import Settings, hash_api_key

TURN = {"speaker": "customer", "text": "where is my refund"}


def scope(*headers: tuple[bytes, bytes]) -> Any:
    """An ASGI scope with only the headers (all ``request_id_from`` reads)."""
    return {"headers": list(headers)}


def test_request_id_from_headers() -> None:
    assert request_id_from(scope((b"x-request-id", b"abc.1:2-3"))) == "abc.1:2-3"
    assert len(request_id_from(scope((b"x-request-id", b"no spaces allowed")))) == 32
    assert len(request_id_from(scope((b"x-request-id", b"abc\n")))) == 32  # whole value, no trailing newline
    assert len(request_id_from(scope())) == 32


@pytest.mark.pack
async def test_excess_in_flight_requests_get_429_immediately(
    base_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, serve_app: Any
) -> None:
    app = create_app(Settings.from_env({**base_env, "SWITCHBOARD_MAX_INFLIGHT": "2"}))
    with serve_app(app) as server:
        service: ServiceState = app.state.service
        assert service.gate.runtime is not None
        real_submit = service.gate.runtime.submit
        gate = threading.Event()
        entered = 0

        async def held(texts: Any, deadline_ms: Any = None) -> Any:
            nonlocal entered
            entered += 1
            while not gate.is_set():  # set from the test's thread
                await asyncio.sleep(0.005)
            return await real_submit(texts, deadline_ms)

        monkeypatch.setattr(service.gate.runtime, "submit", held)
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            busy = [asyncio.create_task(client.post("/v1/analyze", json={"turns": [TURN]})) for _ in range(2)]
            while entered < 2:
                await asyncio.sleep(0.01)
            refused = await client.post("/v1/analyze", json={"turns": [TURN]})
            assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
            assert refused.headers["content-type"].startswith("application/problem+json")
            assert (
                refused.json()["type"] == "urn:switchboard:problem:overloaded"
                and refused.headers["x-request-id"]
            )
            assert (await client.get("/healthz")).status_code == 200  # probes are never shed
            gate.set()
            assert [r.status_code for r in await asyncio.gather(*busy)] == [200, 200]
            assert (
                await client.post("/v1/analyze", json={"turns": [TURN]})
            ).status_code == 200  # slots freed
            metrics = (await client.get("/metrics")).text
        assert 'switchboard_errors_total{status="429",type="overloaded"} 1.0' in metrics


@pytest.mark.pack
def test_scoring_requests_are_shed_before_parsing_while_the_queue_is_too_long(
    base_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from litestar.testing import TestClient

    app = create_app(Settings.from_env(base_env))
    with TestClient(app) as client:
        service: ServiceState = app.state.service
        while not service.ready:
            time.sleep(0.02)
        assert service.gate.admission is not None
        Runtime = type(service.gate.runtime)  # in this process or in a child (SWITCHBOARD_MODEL_PROCESS)
        service.gate.admission.workers = 1  # one batch worker whatever this machine's CPU count...
        service.gate.admission.seconds_per_text = 0.1  # 100 ms per text...
        monkeypatch.setattr(Runtime, "backlog", property(lambda self: 30))  # ...and 30 ahead: 3.1 s
        shed = client.post(
            "/v1/analyze", content=b"not even json", headers={"content-type": "application/json"}
        )
        assert shed.status_code == 429 and shed.headers["retry-after"] == "4"  # refused before parsing
        assert client.post("/v1/conversations/c/turns", json={"turns": [TURN]}).status_code == 429
        assert client.get("/v1/policy").status_code == 200  # reads and policy checks still work
        assert client.post("/v1/policy/validate", json={"policy": "x"}).status_code == 200
        monkeypatch.setattr(Runtime, "backlog", property(lambda self: 0))
        assert client.post("/v1/analyze", json={"turns": [TURN]}).status_code == 200


@pytest.mark.pack
def test_bodies_are_checked_when_the_handler_reads_them(base_env: dict[str, str]) -> None:
    from litestar.testing import TestClient

    app = create_app(Settings.from_env(base_env))
    with TestClient(app) as client:
        plain = client.post("/v1/analyze", content=b'{"turns": []}', headers={"content-type": "text/plain"})
        assert plain.status_code == 415 and plain.headers["content-type"] == "application/problem+json"
        deep = client.post("/v1/conversations/c-1/turns", content=b"[" * 100 + b"]" * 100)
        assert deep.status_code == 400 and deep.json()["limit"] == "max_nesting_depth"
        metrics = client.get("/metrics").text
        assert 'switchboard_errors_total{status="415",type="unsupported-media-type"} 1.0' in metrics
        assert 'switchboard_errors_total{status="400",type="bad-request"} 1.0' in metrics
        # A handler that never reads its body is not refused for it.
        ignored = client.post("/v1/policy/reload", content=b"[" * 100, headers={"content-type": "text/plain"})
        assert ignored.status_code == 200


@pytest.mark.pack
def test_authentication_comes_before_body_checks(base_env: dict[str, str]) -> None:
    from litestar.testing import TestClient

    keys = f"crm={hash_api_key('k')}"
    env = {**base_env, "SWITCHBOARD_AUTH_DISABLED": "false", "SWITCHBOARD_API_KEYS": keys}
    with TestClient(create_app(Settings.from_env(env))) as client:
        anonymous = client.post("/v1/analyze", content=b"[" * 100, headers={"content-type": "text/plain"})
        assert anonymous.status_code == 401  # nothing about the body is revealed before authentication
        signed_in = client.post(
            "/v1/analyze",
            content=b"[" * 100,
            headers={"content-type": "text/plain", "authorization": "Bearer k"},
        )
        assert signed_in.status_code == 415
