"""The app factory: independent apps, fail-fast configuration, lifecycle."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from routing.errors import PolicyError
from service.app import ServiceState, create_app, runtime_config
from service.errors import SettingsError
from service.settings import Settings


def test_refuses_open_configuration() -> None:
    with pytest.raises(SettingsError):
        create_app(Settings())  # no keys and auth not explicitly off


def test_invalid_policy_fails_at_creation(base_env: dict[str, str], tmp_path: Path) -> None:
    policy = tmp_path / "p.toml"
    policy.write_text("not = [valid")
    with pytest.raises(PolicyError):
        create_app(Settings.from_env({**base_env, "SWITCHBOARD_POLICY": str(policy)}))


def test_runtime_config_from_settings() -> None:
    settings = Settings.from_env(
        {
            "SWITCHBOARD_AUTH_DISABLED": "1",
            "SWITCHBOARD_QUEUE_SIZE": "64",
            "SWITCHBOARD_MAX_TURNS": "64",
            "SWITCHBOARD_MAX_WAIT_MS": "0.5",
        }
    )
    config = runtime_config(settings)
    assert config.queue_size == 64 and config.max_wait_ms == 0.5 and config.default_deadline_ms == 2000


@pytest.mark.pack
def test_the_model_runs_where_the_setting_says_with_the_same_answers(base_env: dict[str, str]) -> None:
    from models.process import ProcessRuntime

    turn = {"speaker": "customer", "text": "I was charged twice, I want my money back"}
    scored = {}
    for mode in ("on", "off"):
        app = create_app(Settings.from_env({**base_env, "SWITCHBOARD_MODEL_PROCESS": mode}))
        with TestClient(app) as client:
            wait(client)
            service: ServiceState = app.state.service
            runtime = service.gate.runtime
            assert isinstance(runtime, ProcessRuntime) is (mode == "on")
            answer = client.post("/v1/conversations/c-1/turns", json={"turns": [turn]})
            assert answer.status_code == 200
            scored[mode] = {
                k: answer.json()["turns"][0][k]
                for k in ("sentiment", "emotion_scores", "intent", "act", "language")
            }
        if isinstance(runtime, ProcessRuntime):
            assert not runtime.ready and runtime._child.process.poll() == 0  # drained, exited with the app
    assert scored["on"] == scored["off"]


@pytest.mark.pack
def test_two_apps_are_independent_and_shut_down_cleanly(base_env: dict[str, str], tmp_path: Path) -> None:
    one = create_app(Settings.from_env(base_env))
    two = create_app(Settings.from_env({**base_env, "SWITCHBOARD_STORE": "memory://"}))
    assert one.state.metrics.registry is not two.state.metrics.registry
    with TestClient(one) as client_one, TestClient(two) as client_two:
        for client in (client_one, client_two):
            wait(client)
        client_one.post(
            "/v1/conversations/only-one/turns", json={"turns": [{"speaker": "customer", "text": "hi"}]}
        )
        assert client_two.get("/v1/conversations/only-one").status_code == 404
        assert 'route="/v1/conversations/{conversation_id}/turns"' in client_one.get("/metrics").text
        assert "only-one" not in client_two.get("/metrics").text
    service: ServiceState = one.state.service
    assert service.gate.draining and not service.ready and service.tasks == []
    assert service.gate.runtime is not None and not service.gate.runtime.ready  # drained and closed


def wait(client: TestClient[Any]) -> None:
    deadline = time.monotonic() + 60
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, client.get("/readyz").text
        time.sleep(0.05)
