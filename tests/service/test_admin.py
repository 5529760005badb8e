"""``/v1/admin/callbacks`` through the real app: API-key guard, problem+json, and a dead letter sent
again to a real receiver, where the reference Standard Webhooks library verifies it."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from standardwebhooks import Webhook

from service.adapters.backend import open_backend
from service.adapters.outbox_store import NewMessage
from service.app import create_app
from service.settings import Settings, hash_api_key
from tests.service.adapters.callback_receiver import Receiver, running_receiver

TOKEN = "sb_admin-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WHSEC = "whsec_" + base64.b64encode(b"admin-test-signing-key-32-bytes!").decode()
T0 = 1_736_443_845.0
CONTEXT = "customer wants to cancel; card [CARD_NUMBER] charged twice"


def _body(key: str) -> bytes:
    return json.dumps({"type": "decision.changed", "id": key, "context": {"summary": CONTEXT}}).encode()


async def _populate(url: str, receiver_url: str) -> None:
    """Dead letters d1 and d2 (d2 newest) and a delivered one, by real store operations."""
    backend = open_backend(url)
    store = backend.outbox
    for key, conversation in (("d1", "CA-1"), ("d2", "CA-2"), ("ok", "CA-3")):
        await store.add(NewMessage(key, conversation, "generic", receiver_url, _body(key), T0))
    await store.claim(T0, T0 + 30, 10)
    await store.finish("d1", "dead", T0 + 1, "HTTP 500")
    await store.finish("d2", "dead", T0 + 2, "timeout")
    await store.finish("ok", "delivered", T0 + 3, None)
    await backend.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as started:
        yield started


@pytest.fixture
def client(tmp_path: Path, receiver: Receiver) -> Iterator[TestClient[Any]]:
    outbox = f"sqlite:///{tmp_path / 'outbox.sqlite3'}"
    asyncio.run(_populate(outbox, receiver.url))
    env = {
        "SWITCHBOARD_API_KEYS": f"ops={hash_api_key(TOKEN)}",
        "SWITCHBOARD_DATA_DIR": str(tmp_path / "var"),
        "SWITCHBOARD_PACK": str(tmp_path / "no-pack"),  # the admin routes need no model
        "SWITCHBOARD_RATE_LIMIT": "0",
        "SWITCHBOARD_POLICY_RELOAD_INTERVAL": "0",
        "SWITCHBOARD_LOG_LEVEL": "ERROR",
        "SWITCHBOARD_OUTBOX": outbox,
        "SWITCHBOARD_CALLBACK_URL": receiver.url,
        "SWITCHBOARD_CALLBACK_SECRET": WHSEC,
        # The fixed 2025 timestamps must outlive the outbox's purge of finished callbacks.
        "SWITCHBOARD_CALLBACK_RETENTION_S": str(20 * 365 * 86400),
    }
    with TestClient(create_app(Settings.from_env(env))) as test_client:
        yield test_client


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["type"].startswith("urn:switchboard:problem:")
    return body


def wait_state(client: TestClient[Any], key: str, state: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        shown: dict[str, Any] = client.get(f"/v1/admin/callbacks/{key}", headers=AUTH).json()
        if shown["state"] == state:
            return shown
        time.sleep(0.05)
    raise AssertionError(f"{key} never reached {state}")


def test_admin_routes_need_an_api_key(client: TestClient[Any]) -> None:
    for response in (
        client.get("/v1/admin/callbacks"),
        client.get("/v1/admin/callbacks/d1"),
        client.post("/v1/admin/callbacks/redrive", json={"all": True}),
        client.get("/v1/admin/callbacks", headers={"Authorization": "Bearer wrong"}),
    ):
        problem(response, 401)
    assert wait_state(client, "d1", "dead")["attempts"] == 1  # nothing was sent again


def test_list_dead_letters_metadata_only_unless_asked(client: TestClient[Any], receiver: Receiver) -> None:
    response = client.get("/v1/admin/callbacks", headers=AUTH)
    assert response.status_code == 200, response.text
    listed = response.json()
    assert listed["state"] == "dead"
    assert listed["counts"] == {"pending": 0, "delivered": 1, "dead": 2}
    assert [c["key"] for c in listed["callbacks"]] == ["d2", "d1"]
    assert listed["callbacks"][1] == {
        "key": "d1",
        "conversation_id": "CA-1",
        "source": "generic",
        "url": receiver.url,
        "state": "dead",
        "attempts": 1,
        "last_error": "HTTP 500",
        "created_at": "2025-01-09T17:30:45Z",
        "finished_at": "2025-01-09T17:30:46Z",
    }
    assert "CARD_NUMBER" not in response.text
    with_body = client.get("/v1/admin/callbacks?state=delivered&body=true&limit=5", headers=AUTH).json()
    (delivered,) = with_body["callbacks"]
    assert delivered["key"] == "ok" and delivered["body"]["context"]["summary"] == CONTEXT
    assert [
        c["key"] for c in client.get("/v1/admin/callbacks?limit=1", headers=AUTH).json()["callbacks"]
    ] == ["d2"]
    problem(client.get("/v1/admin/callbacks?state=lost", headers=AUTH), 400)
    problem(client.get("/v1/admin/callbacks?limit=0", headers=AUTH), 400)


def test_one_callback_and_404_for_an_unknown_key(client: TestClient[Any]) -> None:
    shown = client.get("/v1/admin/callbacks/d2", headers=AUTH).json()
    assert (shown["state"], shown["last_error"]) == ("dead", "timeout") and "body" not in shown
    assert client.get("/v1/admin/callbacks/d2?body=true", headers=AUTH).json()["body"] == json.loads(
        _body("d2")
    )
    body = problem(client.get("/v1/admin/callbacks/nope", headers=AUTH), 404)
    assert "nope" in body["detail"]


def test_redrive_named_key_is_delivered_and_verifies(client: TestClient[Any], receiver: Receiver) -> None:
    unknown = problem(
        client.post("/v1/admin/callbacks/redrive", json={"keys": ["d1", "nope"]}, headers=AUTH), 404
    )
    assert unknown["errors"] == [{"field": "keys", "message": "unknown callback key 'nope'"}]
    assert wait_state(client, "d1", "dead")["attempts"] == 1  # nothing was sent again

    response = client.post("/v1/admin/callbacks/redrive", json={"keys": ["d1", "ok"]}, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json() == {"redriven": 1, "keys": ["d1"], "not_dead": ["ok"]}
    delivered = wait_state(client, "d1", "delivered")
    assert delivered["attempts"] == 1 and delivered["finished_at"] is not None
    (delivery,) = receiver.deliveries
    assert delivery.headers["webhook-id"] == "d1" == delivery.headers["idempotency-key"]
    assert Webhook(WHSEC).verify(delivery.body, delivery.headers) == json.loads(_body("d1"))
    assert [c["key"] for c in client.get("/v1/admin/callbacks", headers=AUTH).json()["callbacks"]] == ["d2"]


def test_redrive_all_and_bad_bodies(client: TestClient[Any], receiver: Receiver) -> None:
    bad_bodies: list[dict[str, Any]] = [{}, {"keys": []}, {"keys": ["d1"], "all": True}, {"all": False}]
    for bad in bad_bodies:
        errors = problem(client.post("/v1/admin/callbacks/redrive", json=bad, headers=AUTH), 422)["errors"]
        assert errors[0]["field"] == "keys"
    problem(client.post("/v1/admin/callbacks/redrive", json={"all": True, "extra": 1}, headers=AUTH), 422)
    problem(client.post("/v1/admin/callbacks/redrive", json={"keys": "d1"}, headers=AUTH), 422)
    response = client.post("/v1/admin/callbacks/redrive", json={"all": True}, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json() == {"redriven": 2, "keys": None, "not_dead": None}
    wait_state(client, "d1", "delivered")
    wait_state(client, "d2", "delivered")
    assert sorted(receiver.accepted) == ["d1", "d2"]


def test_admin_routes_are_in_the_openapi_document(client: TestClient[Any]) -> None:
    paths = client.get("/schema/openapi.json").json()["paths"]
    for path, method in (
        ("/v1/admin/callbacks", "get"),
        ("/v1/admin/callbacks/{key}", "get"),
        ("/v1/admin/callbacks/redrive", "post"),
    ):
        assert paths[path][method]["security"] == [{"bearer": []}]
