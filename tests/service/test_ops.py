"""Probes: readiness follows the pack and the store; liveness only fails for a broken pack."""

from __future__ import annotations

import time

import pytest
from litestar.testing import TestClient

from service.app import ServiceState, create_app
from service.settings import Settings
from service.store.base import StoreError


@pytest.mark.pack
def test_readiness_reports_an_unreachable_store(
    base_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(Settings.from_env({**base_env, "SWITCHBOARD_STORE": "memory://"}))
    with TestClient(app) as client:
        service: ServiceState = app.state.service
        deadline = time.monotonic() + 60
        while not service.ready:
            assert time.monotonic() < deadline
            time.sleep(0.02)

        async def down() -> None:
            raise StoreError("connection refused")

        monkeypatch.setattr(service.store, "ping", down)
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.headers["retry-after"] == "1"
        assert ready.json() == {
            "status": "degraded",
            "ready": False,
            "checks": {"pack": "ready", "store": "unavailable"},
        }
        assert client.get("/healthz").status_code == 200  # the process is alive: do not restart it
        assert "switchboard_ready 1.0" in client.get("/metrics").text
