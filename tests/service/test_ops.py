"""Probes: readiness follows the pack and the store; liveness only fails for a broken pack.
``/metrics``: one charset, and totals over worker processes; the rate limit shared by two workers."""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from litestar.testing import TestClient
from prometheus_client import CollectorRegistry, generate_latest, multiprocess
from prometheus_client.parser import text_string_to_metric_families

from service.app import ServiceState, create_app
from service.settings import Settings
from service.store.base import StoreError
from tests.service.conftest import Server


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


def test_metrics_content_type_has_one_charset(tmp_path: Path) -> None:
    # No pack (its load fails at once): /metrics does not need one.
    app = create_app(
        Settings.from_env(
            {
                "SWITCHBOARD_AUTH_DISABLED": "true",
                "SWITCHBOARD_DATA_DIR": str(tmp_path),
                "SWITCHBOARD_PACK": str(tmp_path / "no-pack"),
                "SWITCHBOARD_STORE": "memory://",
                "SWITCHBOARD_LOG_LEVEL": "ERROR",
            }
        )
    )
    with TestClient(app) as client:
        response = client.get("/metrics")
    assert response.status_code == 200
    content_type = response.headers["content-type"]
    assert content_type.count("charset=utf-8") == 1, content_type
    assert content_type.startswith("text/plain; version=")


# ---- two worker processes: shared rate limit, summed metrics ---------------------------------------


def _pids(folder: Path) -> set[str]:
    return {db.stem.rsplit("_", 1)[1] for db in folder.glob("*.db")}


def _policy_requests(text: str) -> float:
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "switchboard_http_request_duration_seconds_count" and s.labels["route"] == "/v1/policy"
    )


def _request_counts(folder: Path) -> dict[str, float]:
    """``GET /v1/policy`` requests recorded per worker pid, read from each worker's own files."""
    counts: dict[str, float] = {}
    for db in folder.glob("histogram_*.db"):
        pid = db.stem.rsplit("_", 1)[1]
        single = folder.parent / f"one-{pid}"
        single.mkdir(exist_ok=True)
        shutil.copy(db, single / db.name)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(single))
        counts[pid] = _policy_requests(generate_latest(registry).decode())
    return counts


@pytest.mark.redis
def test_two_workers_share_the_rate_limit_and_report_totals(
    start_server: Callable[[dict[str, str]], Server], redis_url: str, tmp_path: Path
) -> None:
    server = start_server(
        {
            "SWITCHBOARD_WORKERS": "2",
            "SWITCHBOARD_AUTH_DISABLED": "true",
            "SWITCHBOARD_DATA_DIR": str(tmp_path / "var"),
            "SWITCHBOARD_PACK": str(tmp_path / "no-pack"),  # no model work: the limit sits before it
            "SWITCHBOARD_STORE": redis_url,
            "SWITCHBOARD_RATE_LIMIT": "5",
            "SWITCHBOARD_RATE_BURST": "5",
            "SWITCHBOARD_POLICY_RELOAD_INTERVAL": "0",
            "SWITCHBOARD_REASONS": "none",
        }
    )
    folder = tmp_path / "var" / "metrics" / str(server.process.pid)
    deadline = time.monotonic() + 60
    answered = False
    while not answered or len(_pids(folder)) < 2:  # each worker writes its files when its app is built
        assert server.process.poll() is None, server.log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"two workers did not start: {server.log.read_text()[-3000:]}"
        with contextlib.suppress(httpx.HTTPError):
            answered = httpx.get(f"{server.url}/healthz", timeout=2).status_code in (200, 503)
        time.sleep(0.2)

    def one(_: int) -> int:
        # A new connection per request, so the kernel spreads them over both workers' accepts.
        with httpx.Client(base_url=server.url, timeout=10) as client:
            return client.get("/v1/policy").status_code

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(one, range(40)))
    elapsed = time.monotonic() - started
    admitted = statuses.count(200)
    assert statuses.count(200) + statuses.count(429) == 40, statuses
    # At most 5 in any one-second window, for both workers together (per worker it would be 10+).
    assert 5 <= admitted <= 5 * (int(elapsed) + 1), (admitted, elapsed)
    if elapsed < 1.0:
        assert admitted == 5

    per_worker = _request_counts(folder)
    assert len(per_worker) == 2 and all(count > 0 for count in per_worker.values()), per_worker
    # Whichever worker answers /metrics reports the requests of both.
    for _ in range(4):
        text = httpx.get(f"{server.url}/metrics", timeout=5).text
        assert _policy_requests(text) == 40
        assert 'pid="' not in text  # every gauge says how workers' values combine
    assert sum(per_worker.values()) == 40
    log = server.log.read_text()
    assert "color_message" not in log and "\x1b[" not in log
