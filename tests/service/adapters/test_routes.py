"""Webhook routes: the public-URL rule, then end to end with the real app and model pack.

Requests are signed the way the platforms sign them. One app serves most tests. It runs
with API-key auth ON (webhooks must not need a bearer key), behind a simulated proxy (the
test client talks to ``http://switchboard.local:8000`` while the platforms sign
``SWITCHBOARD_PUBLIC_BASE_URL``), and sends decision callbacks to a real HTTP receiver.
"Nothing stored" is checked through ``GET /v1/conversations/{id}`` (404). The end-to-end
tests are skipped, saying so, only while the model pack is absent.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import msgspec
import pytest
from adapter_payloads import (
    ACCOUNT_SID,
    chatwoot_message,
    chatwoot_request,
    generic_request,
    message_added,
    twilio_request,
    voice_event,
)
from callback_receiver import Receiver, running_receiver
from litestar import Litestar, Request
from litestar.datastructures import State
from litestar.testing import TestClient
from prometheus_client import CollectorRegistry

from service.adapters.backend import open_backend, resolve_backend_url
from service.adapters.routes import build_adapter_routers, public_url
from service.adapters.signatures import verify_timestamped
from service.app import create_app
from service.errors import Unavailable
from service.problems import problem_response
from service.schemas import TurnIn
from service.settings import Settings, hash_api_key

e2e = pytest.mark.pack  # needs the model pack: skipped, saying so, only while it is absent

PUBLIC = "https://switchboard.example.com/sb"  # what Twilio calls; the proxy strips /sb
INTERNAL = "http://switchboard.local:8000"  # what the service sees
TWILIO_TOKEN = "twilio-auth-token-0123456789abcdef"
CHATWOOT_SECRET = "chatwoot-webhook-secret"
CHATWOOT_TOKEN = "chatwoot-shared-token"
WEBHOOK_SECRET = "generic-webhook-secret"
CALLBACK_SECRET = "callback-signing-secret"
API_KEY = "sb-test-api-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}

VOICE = "/v1/webhooks/twilio/voice"
CONVERSATIONS = "/v1/webhooks/twilio/conversations"
CHATWOOT = "/v1/webhooks/chatwoot"
GENERIC = "/v1/webhooks/generic"


def app_env(data_dir: Path, pack: Path, callback_url: str, **extra: str) -> dict[str, str]:
    env = {
        "SWITCHBOARD_API_KEYS": f"tests={hash_api_key(API_KEY)}",
        "SWITCHBOARD_DATA_DIR": str(data_dir),
        "SWITCHBOARD_PACK": str(pack),
        "SWITCHBOARD_RATE_LIMIT": "0",
        "SWITCHBOARD_POLICY_RELOAD_INTERVAL": "0",
        "SWITCHBOARD_LOG_LEVEL": "WARNING",
        "SWITCHBOARD_PUBLIC_BASE_URL": PUBLIC,
        "SWITCHBOARD_TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "SWITCHBOARD_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "SWITCHBOARD_TWILIO_AGENT_AUTHORS": "agent_*",
        "SWITCHBOARD_CHATWOOT_SECRET": CHATWOOT_SECRET,
        "SWITCHBOARD_CHATWOOT_TOKEN": CHATWOOT_TOKEN,
        "SWITCHBOARD_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "SWITCHBOARD_CALLBACK_URL": callback_url + "/any",
        "SWITCHBOARD_CALLBACK_URL_CHATWOOT": callback_url + "/chatwoot",
        "SWITCHBOARD_CALLBACK_SECRET": CALLBACK_SECRET,
        "SWITCHBOARD_CALLBACK_BACKOFF_BASE_S": "0.1",
        "SWITCHBOARD_CALLBACK_BACKOFF_MAX_S": "0.2",
    }
    return env | {f"SWITCHBOARD_{k}": v for k, v in extra.items()}


def wait_ready(client: TestClient[Any]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if client.get("/readyz").status_code == 200:
            return
        time.sleep(0.05)
    raise AssertionError(f"service never became ready: {client.get('/readyz').text}")


@pytest.fixture(scope="module")
def module_receiver() -> Iterator[Receiver]:
    with running_receiver() as started:
        yield started


@pytest.fixture(scope="module")
def client(
    tmp_path_factory: pytest.TempPathFactory, test_pack: Path, module_receiver: Receiver
) -> Iterator[TestClient[Any]]:
    env = app_env(tmp_path_factory.mktemp("webhooks"), test_pack, module_receiver.url)
    with TestClient(create_app(Settings.from_env(env)), base_url=INTERNAL) as test_client:
        wait_ready(test_client)
        yield test_client


def stored_turns(client: TestClient[Any], conversation_id: str) -> list[dict[str, Any]] | None:
    """The conversation's turns through the bearer-protected API, or None if nothing is stored."""
    response = client.get(f"/v1/conversations/{conversation_id}", headers=AUTH)
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    turns: list[dict[str, Any]] = response.json()["turns"]
    return turns


def post_twilio(
    client: TestClient[Any],
    path: str,
    fields: dict[str, str],
    *,
    token: str = TWILIO_TOKEN,
    url: str | None = None,
) -> Any:
    body, headers = twilio_request(url or PUBLIC + path, fields, token)
    return client.post(path, content=body, headers=headers)


def rejected(response: Any, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == status


# ---- the URL Twilio signed ---------------------------------------------------------------------


def request_seen(host: str, scheme: str = "http", query: bytes = b"tenant=acme") -> Request[Any, Any, State]:
    path = "/v1/webhooks/twilio/voice"
    scope = {
        "type": "http",
        "method": "POST",
        "scheme": scheme,
        "server": ("10.0.0.5", 8000),
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "headers": [(b"host", host.encode())],
        "app": None,
    }
    return Request(scope)  # type: ignore[arg-type]


def test_public_url_is_the_request_url_without_a_configured_base() -> None:
    assert public_url(request_seen("sb.example.com:8443"), None) == (
        "http://sb.example.com:8443/v1/webhooks/twilio/voice?tenant=acme"
    )


def test_public_base_url_replaces_scheme_host_and_prefix() -> None:
    seen = request_seen("10.0.0.5:8000")
    assert (
        public_url(seen, "https://sb.example.com/sb")
        == "https://sb.example.com/sb/v1/webhooks/twilio/voice?tenant=acme"
    )
    assert public_url(request_seen("x", query=b""), "https://sb.example.com") == (
        "https://sb.example.com/v1/webhooks/twilio/voice"
    )


# ---- Twilio Voice --------------------------------------------------------------------------------


@e2e
def test_voice_final_segments_become_turns_once(client: TestClient[Any]) -> None:
    call = "CA" + "1" * 32
    assert stored_turns(client, call) is None
    for fields in (
        voice_event("transcription-started", call_sid=call),
        voice_event(call_sid=call, sequence=1, transcript="I was charged twice and I am really angry"),
        voice_event(call_sid=call, sequence=2, track="outbound_track", transcript="Sorry to hear that"),
        voice_event(call_sid=call, sequence=3, final=False, transcript="I want to"),
        voice_event(
            call_sid=call, sequence=1, transcript="I was charged twice and I am really angry"
        ),  # retry
        voice_event("transcription-stopped", call_sid=call),
    ):
        response = post_twilio(client, VOICE, fields)
        assert response.status_code == 204, response.text
        assert response.content == b""
    turns = stored_turns(client, call)
    assert turns is not None
    assert [(t["speaker"], t["text"]) for t in turns] == [
        ("customer", "I was charged twice and I am really angry"),
        ("agent", "Sorry to hear that"),
    ]
    assert turns[0]["intent"] is not None


@e2e
def test_status_events_alone_store_nothing(client: TestClient[Any]) -> None:
    call = "CA" + "2" * 32
    for fields in (
        voice_event("transcription-started", call_sid=call),
        voice_event(call_sid=call, final=False),
    ):
        assert post_twilio(client, VOICE, fields).status_code == 204
    assert stored_turns(client, call) is None


@e2e
@e2e
def test_generic_webhook_carries_an_outcome(client: TestClient[Any]) -> None:
    outcome = {"resolved": True, "csat": 4, "handle_time_s": 212, "labels": ["billing"]}
    payload = generic_body("bridge-outcome", "I was charged twice") | {"outcome": outcome}
    body, headers = generic_request(payload, WEBHOOK_SECRET)
    response = client.post(GENERIC, content=body, headers=headers)
    assert response.status_code == 200 and response.json()["appended"] == [0], response.text
    stored = client.get("/v1/conversations/bridge-outcome/outcome", headers=AUTH)
    assert stored.status_code == 200 and stored.json()["csat"] == 4 and stored.json()["resolved"] is True

    later = {"conversation_id": "bridge-outcome", "outcome": outcome | {"csat": 2}}  # outcome only
    body, headers = generic_request(later, WEBHOOK_SECRET)
    response = client.post(GENERIC, content=body, headers=headers)
    assert response.status_code == 200 and response.json()["conversation_id"] == "bridge-outcome"
    assert client.get("/v1/conversations/bridge-outcome/outcome", headers=AUTH).json()["csat"] == 2

    unknown = {"conversation_id": "bridge-never-seen", "outcome": outcome}
    body, headers = generic_request(unknown, WEBHOOK_SECRET)
    rejected(client.post(GENERIC, content=body, headers=headers), 404)
    empty = {"conversation_id": "bridge-outcome"}
    body, headers = generic_request(empty, WEBHOOK_SECRET)
    rejected(client.post(GENERIC, content=body, headers=headers), 422)


@pytest.mark.parametrize(
    "attack",
    ["wrong token", "tampered", "missing signature", "internal url", "other path", "other account"],
)
def test_voice_rejections_store_nothing(client: TestClient[Any], attack: str) -> None:
    call = "CA" + "3" * 30 + str(len(attack)).zfill(2)
    fields = voice_event(call_sid=call)
    if attack == "wrong token":
        response = post_twilio(client, VOICE, fields, token="not-the-token")
    elif attack == "tampered":  # the signature of the genuine event over a forged body
        _, headers = twilio_request(PUBLIC + VOICE, fields, TWILIO_TOKEN)
        forged = dict(fields, TranscriptionData=json.dumps({"transcript": "forged words"}))
        response = client.post(VOICE, content=urlencode(forged).encode(), headers=headers)
    elif attack == "missing signature":
        body, headers = twilio_request(PUBLIC + VOICE, fields, TWILIO_TOKEN)
        del headers["X-Twilio-Signature"]
        response = client.post(VOICE, content=body, headers=headers)
    elif attack == "internal url":  # signed for the URL the service sees, not the public one
        response = post_twilio(client, VOICE, fields, url=INTERNAL + VOICE)
    elif attack == "other path":  # signed for another webhook on the same host
        response = post_twilio(client, VOICE, fields, url=PUBLIC + CONVERSATIONS)
    else:
        response = post_twilio(client, VOICE, fields | {"AccountSid": "AC" + "9" * 32})
    rejected(response, 403 if attack == "other account" else 401)
    assert stored_turns(client, call) is None


@e2e
def test_voice_accepts_the_default_port_form(client: TestClient[Any]) -> None:
    call = "CA" + "4" * 32
    url = PUBLIC.replace("example.com", "example.com:443") + VOICE
    assert post_twilio(client, VOICE, voice_event(call_sid=call), url=url).status_code == 204
    assert stored_turns(client, call) is not None


# ---- Twilio Conversations ------------------------------------------------------------------------


@e2e
def test_conversation_messages_by_author(client: TestClient[Any]) -> None:
    sid = "CH" + "5" * 32
    customer = message_added(body="Where is my refund, this is the third time I ask") | {
        "ConversationSid": sid
    }
    agent = message_added(
        author="agent_jo", body="Let me check that for you", index=5, message_sid="IM" + "6" * 32
    )
    for fields in (customer, agent | {"ConversationSid": sid}, customer):
        response = post_twilio(client, CONVERSATIONS, fields)
        assert response.status_code == 204, response.text
    turns = stored_turns(client, sid)
    assert turns is not None and [t["speaker"] for t in turns] == ["customer", "agent"]


@e2e
def test_conversation_message_with_bad_signature_is_not_stored(client: TestClient[Any]) -> None:
    sid = "CH" + "7" * 32
    rejected(post_twilio(client, CONVERSATIONS, message_added() | {"ConversationSid": sid}, token="x"), 401)
    assert stored_turns(client, sid) is None


# ---- Chatwoot ------------------------------------------------------------------------------------


@e2e
def test_chatwoot_message_accepted_replay_refused_duplicate_idempotent(
    client: TestClient[Any], module_receiver: Receiver
) -> None:
    payload = chatwoot_message(
        conversation_id=1001, message_id=50001, content="I want to cancel my plan today"
    )
    body, headers = chatwoot_request(payload, CHATWOOT_SECRET, delivery="dlv-1001")
    first = client.post(CHATWOOT, content=body, headers=headers)
    assert first.status_code == 200, first.text
    ack = first.json()
    assert (
        ack["status"] == "accepted" and ack["conversation_id"] == "chatwoot:3:1001" and ack["appended"] == 1
    )
    assert ack["decision"]["route"] in ("self_serve_bot", "specialist", "retention_human")

    rejected(client.post(CHATWOOT, content=body, headers=headers), 403)  # the same delivery again
    replayed = headers | {"X-Chatwoot-Delivery": "dlv-1001-resent"}  # the delivery id is not signed
    rejected(client.post(CHATWOOT, content=body, headers=replayed), 403)

    body2, headers2 = chatwoot_request(
        payload, CHATWOOT_SECRET, delivery="dlv-1001-resent", timestamp=int(time.time()) + 1
    )
    again = client.post(CHATWOOT, content=body2, headers=headers2)
    assert again.status_code == 200 and again.json()["duplicates"] == 1 and again.json()["appended"] == 0
    turns = stored_turns(client, "chatwoot:3:1001")
    assert turns is not None and len(turns) == 1

    # The first decision of a conversation is a change: it is called back to Chatwoot's URL.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        mine = [
            d
            for d in module_receiver.deliveries
            if json.loads(d.body)["conversation_id"] == "chatwoot:3:1001"
        ]
        if mine:
            break
        time.sleep(0.05)
    (delivery,) = mine
    assert delivery.path.endswith("/chatwoot") and delivery.status == 200
    payload_out = json.loads(delivery.body)
    assert payload_out["source"] == "chatwoot" and payload_out["decision"] == ack["decision"]
    assert payload_out["id"] == delivery.headers["idempotency-key"]
    assert "context" in payload_out and "turns" not in payload_out
    verify_timestamped(
        secrets=[CALLBACK_SECRET],
        timestamp=delivery.headers["x-switchboard-timestamp"],
        signature=delivery.headers["x-switchboard-signature"],
        body=delivery.body,
        now=time.time(),
        max_age_s=300,
        timestamp_header="X-Switchboard-Timestamp",
        signature_header="X-Switchboard-Signature",
        realm="test",
    )


@e2e
@pytest.mark.parametrize(
    "attack", ["stale", "future", "bad signature", "other secret", "unsigned", "wrong token"]
)
def test_chatwoot_rejections_store_nothing(client: TestClient[Any], attack: str) -> None:
    conversation = 2000 + len(attack)
    payload = chatwoot_message(conversation_id=conversation, message_id=60000 + conversation)
    now = int(time.time())
    body, headers = chatwoot_request(payload, CHATWOOT_SECRET, delivery=f"dlv-{attack}")
    path = CHATWOOT
    if attack == "stale":
        body, headers = chatwoot_request(payload, CHATWOOT_SECRET, timestamp=now - 301)
    elif attack == "future":
        body, headers = chatwoot_request(payload, CHATWOOT_SECRET, timestamp=now + 400)
    elif attack == "bad signature":
        headers["X-Chatwoot-Signature"] = "sha256=" + "0" * 64
    elif attack == "other secret":
        body, headers = chatwoot_request(payload, "not-the-secret")
    elif attack == "unsigned":
        headers = {"Content-Type": "application/json"}
    else:
        headers = {"Content-Type": "application/json"}
        path = f"{CHATWOOT}?token=not-the-token"
    rejected(client.post(path, content=body, headers=headers), 401)
    assert stored_turns(client, f"chatwoot:3:{conversation}") is None


@e2e
def test_chatwoot_outgoing_and_private_messages_are_ignored(client: TestClient[Any]) -> None:
    for number, payload in enumerate(
        (
            chatwoot_message(message_type="outgoing"),
            chatwoot_message(private=True),
            chatwoot_message(content=None),
        )
    ):
        payload["conversation"]["id"] = 3000 + number
        body, headers = chatwoot_request(payload, CHATWOOT_SECRET, delivery=f"dlv-ignored-{number}")
        response = client.post(CHATWOOT, content=body, headers=headers)
        assert response.status_code == 200 and response.json()["status"] == "ignored", response.text
        assert stored_turns(client, f"chatwoot:3:{3000 + number}") is None


@e2e
def test_chatwoot_shared_token_fallback(client: TestClient[Any]) -> None:
    first = json.dumps(chatwoot_message(conversation_id=4001, message_id=70001)).encode()
    response = client.post(f"{CHATWOOT}?token={CHATWOOT_TOKEN}", content=first)
    assert response.status_code == 200 and response.json()["status"] == "accepted", response.text
    second = json.dumps(
        chatwoot_message(conversation_id=4001, message_id=70002, content="still waiting")
    ).encode()
    response = client.post(CHATWOOT, content=second, headers={"X-Switchboard-Token": CHATWOOT_TOKEN})
    assert response.status_code == 200
    turns = stored_turns(client, "chatwoot:3:4001")
    assert turns is not None and len(turns) == 2


# ---- generic -------------------------------------------------------------------------------------


def generic_body(conversation_id: str, *texts: str) -> dict[str, Any]:
    return {
        "conversation_id": conversation_id,
        "source": "stt_bridge",
        "channel": "voice",
        "turns": [{"speaker": "customer", "text": t, "id": f"seg-{i}"} for i, t in enumerate(texts)],
    }


@e2e
def test_generic_webhook_returns_the_analysis(client: TestClient[Any]) -> None:
    body, headers = generic_request(
        generic_body("bridge-1", "My internet has been down for two days"), WEBHOOK_SECRET
    )
    response = client.post(GENERIC, content=body, headers=headers)
    assert response.status_code == 200, response.text
    analysis = response.json()
    assert analysis["conversation_id"] == "bridge-1" and analysis["appended"] == [0]
    assert analysis["decision"]["route"] in ("self_serve_bot", "specialist", "retention_human")

    rejected(client.post(GENERIC, content=body, headers=headers), 403)  # replay

    resigned_body, resigned = generic_request(
        generic_body("bridge-1", "My internet has been down for two days"),
        WEBHOOK_SECRET,
        timestamp=int(time.time()) + 1,
    )
    again = client.post(GENERIC, content=resigned_body, headers=resigned)
    assert again.status_code == 200 and again.json()["duplicates"] == 1 and again.json()["appended"] == []


@e2e
@pytest.mark.parametrize("attack", ["stale", "bad signature", "unsigned", "other secret", "invalid body"])
def test_generic_rejections_store_nothing(client: TestClient[Any], attack: str) -> None:
    conversation = f"bridge-reject-{attack.replace(' ', '-')}"
    payload = generic_body(conversation, "cancel my contract")
    body, headers = generic_request(payload, WEBHOOK_SECRET)
    status = 401
    if attack == "stale":
        body, headers = generic_request(payload, WEBHOOK_SECRET, timestamp=int(time.time()) - 1000)
    elif attack == "bad signature":
        headers["X-Switchboard-Signature"] = headers["X-Switchboard-Signature"][:-2] + "00"
    elif attack == "unsigned":
        del headers["X-Switchboard-Signature"]
    elif attack == "other secret":
        body, headers = generic_request(payload, "not-the-secret")
    else:
        payload["turns"][0]["speaker"] = "caller"
        body, headers = generic_request(payload, WEBHOOK_SECRET)
        status = 422
    response = client.post(GENERIC, content=body, headers=headers)
    rejected(response, status)
    if status == 422:
        assert response.json()["errors"][0]["field"] == "turns[0].speaker"
    assert stored_turns(client, conversation) is None


# ---- cross-cutting -------------------------------------------------------------------------------


@e2e
def test_webhooks_need_no_api_key_but_the_api_does(client: TestClient[Any]) -> None:
    assert client.get("/v1/conversations/anything").status_code == 401
    body, headers = generic_request(generic_body("bridge-noauth", "hello, my bill is wrong"), WEBHOOK_SECRET)
    assert "Authorization" not in headers
    assert client.post(GENERIC, content=body, headers=headers).status_code == 200


@e2e
def test_webhook_metrics_and_schema(client: TestClient[Any]) -> None:
    rejected(client.post(GENERIC, content=b"{}", headers={"X-Switchboard-Timestamp": "1"}), 401)
    metrics = client.get("/metrics").text
    assert 'switchboard_webhook_events_total{outcome="rejected",platform="generic"}' in metrics
    assert "switchboard_callback_outbox_messages" in metrics
    paths = client.get("/schema/openapi.json").json()["paths"]
    assert {VOICE, CONVERSATIONS, CHATWOOT, GENERIC} <= set(paths)


@e2e
def test_callback_survives_failures_and_a_restart(
    tmp_path: Path, test_pack: Path, receiver: Receiver
) -> None:
    """The receiver fails twice; the service is restarted in between; the decision still arrives, once."""
    receiver.script = [503, 503]
    env = app_env(tmp_path / "var", test_pack, receiver.url)
    # The first service backs off long enough that it cannot deliver before it is stopped.
    slow = env | {"SWITCHBOARD_CALLBACK_BACKOFF_BASE_S": "3.0", "SWITCHBOARD_CALLBACK_BACKOFF_MAX_S": "3.0"}
    call = "CA" + "8" * 32
    with TestClient(create_app(Settings.from_env(slow)), base_url=INTERNAL) as first:
        wait_ready(first)
        response = post_twilio(
            first, VOICE, voice_event(call_sid=call, transcript="cancel my account right now")
        )
        assert response.status_code == 204
        receiver.wait(1)
    assert receiver.accepted == {}  # stopped before any delivery succeeded

    with TestClient(create_app(Settings.from_env(env)), base_url=INTERNAL) as second:
        wait_ready(second)
        deliveries = receiver.wait(3)
        assert stored_turns(second, call) is not None  # the conversation survived too
    assert [d.status for d in deliveries] == [503, 503, 200]
    assert len({d.headers["idempotency-key"] for d in deliveries}) == 1
    assert len(receiver.accepted) == 1
    payload = json.loads(deliveries[-1].body)
    assert payload["conversation_id"] == call and payload["source"] == "twilio_voice"
    assert deliveries[-1].path.endswith("/any")


# ---- replays and duplicates, without the model pack ------------------------------------------------
#
# These run the real webhook routes (real signing, real SQLite replay store) in front of a
# conversation service stand-in that can fail on demand: what is checked is whether an event
# reaches ``append`` again, which a real service would answer but could not be made to fail.


class Appended(msgspec.Struct):
    """The parts of ``AnalysisResponse`` the Chatwoot and generic routes read."""

    appended: list[int]
    duplicates: int = 0
    decision: None = None


class FlakyConversations:
    """Records every ``append``; the first ``failures`` of them raise 503 (the store is down)."""

    def __init__(self, failures: int = 0, delay_s: float = 0.0) -> None:
        self.failures = failures
        self.delay_s = delay_s
        self.appended: list[tuple[str, list[str | None]]] = []

    async def append(self, conversation_id: str, turns: list[TurnIn], **_: Any) -> Appended:
        await asyncio.sleep(self.delay_s)  # an append takes time: copies can arrive meanwhile
        if self.failures:
            self.failures -= 1
            raise Unavailable("conversation store unavailable")
        self.appended.append((conversation_id, [turn.id for turn in turns]))
        return Appended(appended=[len(self.appended) - 1])


DEDUP_TTL_S = 7_200.0


@pytest.fixture
def flaky() -> FlakyConversations:
    return FlakyConversations()


@pytest.fixture
def bare(tmp_path: Path, flaky: FlakyConversations) -> Iterator[TestClient[Any]]:
    env = {
        "SWITCHBOARD_AUTH_DISABLED": "true",
        "SWITCHBOARD_DATA_DIR": str(tmp_path),
        "SWITCHBOARD_PUBLIC_BASE_URL": PUBLIC,
        "SWITCHBOARD_TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "SWITCHBOARD_CHATWOOT_SECRET": CHATWOOT_SECRET,
        "SWITCHBOARD_WEBHOOK_SECRET": f"{WEBHOOK_SECRET},{WEBHOOK_SECRET}-next",
    }
    settings = Settings.from_env(env)
    routers = build_adapter_routers(
        flaky,  # type: ignore[arg-type]
        settings,
        nonces=open_backend(resolve_backend_url(settings)).nonces,
        registry=CollectorRegistry(),
        twilio_dedup_ttl_s=DEDUP_TTL_S,
    )
    app = Litestar(route_handlers=routers, exception_handlers={Exception: problem_response})
    with TestClient(app, base_url=INTERNAL) as test_client:
        yield test_client


async def test_twilio_copies_arriving_at_once_are_processed_once(
    bare: TestClient[Any], flaky: FlakyConversations
) -> None:
    flaky.delay_s = 0.2
    body, headers = twilio_request(PUBLIC + VOICE, voice_event(sequence=9), TWILIO_TOKEN)
    transport = httpx.ASGITransport(app=bare.app)
    async with httpx.AsyncClient(transport=transport, base_url=INTERNAL) as client:
        answers = await asyncio.gather(*(client.post(VOICE, content=body, headers=headers) for _ in range(8)))
    assert [a.status_code for a in answers] == [204] * 8
    outcomes = sorted(a.headers["x-switchboard-outcome"] for a in answers)
    assert outcomes == ["accepted"] + ["duplicate"] * 7 and len(flaky.appended) == 1


def test_twilio_duplicate_is_acknowledged_and_not_processed_again(
    bare: TestClient[Any], flaky: FlakyConversations, tmp_path: Path
) -> None:
    fields = voice_event(sequence=7)
    first = post_twilio(bare, VOICE, fields)
    assert first.status_code == 204 and first.headers["x-switchboard-outcome"] == "accepted"
    for url in (None, PUBLIC.replace("example.com", "example.com:443") + VOICE):
        again = post_twilio(bare, VOICE, fields, url=url)  # a replay, or Twilio sending it twice
        assert again.status_code == 204 and again.headers["x-switchboard-outcome"] == "duplicate"
    assert len(flaky.appended) == 1

    partial = voice_event(sequence=8, final=False)  # processed (ignored) is processed too
    assert post_twilio(bare, VOICE, partial).headers["x-switchboard-outcome"] == "ignored"
    assert post_twilio(bare, VOICE, partial).headers["x-switchboard-outcome"] == "duplicate"

    message = message_added()
    assert post_twilio(bare, CONVERSATIONS, message).headers["x-switchboard-outcome"] == "accepted"
    assert post_twilio(bare, CONVERSATIONS, message).headers["x-switchboard-outcome"] == "duplicate"
    retried = message | {"RetryCount": "1"}  # Twilio's own retry is another signed delivery
    assert post_twilio(bare, CONVERSATIONS, retried).headers["x-switchboard-outcome"] == "accepted"
    assert len(flaky.appended) == 3  # the conversation layer's turn ids absorb the retry

    with sqlite3.connect(tmp_path / "switchboard.sqlite3") as db:
        expiries = [row[0] for row in db.execute("SELECT expires_at FROM sb_webhook_nonces")]
    assert len(expiries) == 4
    assert all(DEDUP_TTL_S - 60 < expires - time.time() <= DEDUP_TTL_S for expires in expiries)


def test_twilio_retry_after_a_failure_is_processed(bare: TestClient[Any], flaky: FlakyConversations) -> None:
    flaky.failures = 1
    fields = voice_event(sequence=9)
    rejected(post_twilio(bare, VOICE, fields), 503)
    assert flaky.appended == []
    retry = post_twilio(bare, VOICE, fields)
    assert retry.status_code == 204 and retry.headers["x-switchboard-outcome"] == "accepted"
    assert post_twilio(bare, VOICE, fields).headers["x-switchboard-outcome"] == "duplicate"
    assert len(flaky.appended) == 1


def test_twilio_rejected_event_is_not_remembered(bare: TestClient[Any], flaky: FlakyConversations) -> None:
    fields = voice_event(sequence=10) | {"TranscriptionData": "not json"}
    rejected(post_twilio(bare, VOICE, fields), 422)
    rejected(post_twilio(bare, VOICE, fields), 422)  # judged again, not waved through as a duplicate
    assert flaky.appended == []


@pytest.mark.parametrize("change", ["delivery changed", "delivery removed", "token added"])
def test_chatwoot_replay_with_unsigned_headers_changed_is_refused(
    bare: TestClient[Any], flaky: FlakyConversations, change: str
) -> None:
    body, headers = chatwoot_request(chatwoot_message(message_id=80001), CHATWOOT_SECRET, delivery="dlv-1")
    assert bare.post(CHATWOOT, content=body, headers=headers).status_code == 200
    replay = dict(headers)
    path = CHATWOOT
    if change == "delivery changed":
        replay["X-Chatwoot-Delivery"] = "dlv-2"
    elif change == "delivery removed":
        del replay["X-Chatwoot-Delivery"]
    else:
        path = f"{CHATWOOT}?token=whatever"
    rejected(bare.post(path, content=body, headers=replay), 403)
    assert len(flaky.appended) == 1


def test_chatwoot_resigned_delivery_and_retry_after_failure_are_processed(
    bare: TestClient[Any], flaky: FlakyConversations
) -> None:
    payload = chatwoot_message(message_id=80002)
    now = int(time.time())
    flaky.failures = 1
    body, headers = chatwoot_request(payload, CHATWOOT_SECRET, timestamp=now)
    rejected(bare.post(CHATWOOT, content=body, headers=headers), 503)
    assert bare.post(CHATWOOT, content=body, headers=headers).status_code == 200  # claim was released
    body, headers = chatwoot_request(payload, CHATWOOT_SECRET, timestamp=now + 1)
    assert bare.post(CHATWOOT, content=body, headers=headers).status_code == 200  # signed anew
    assert len(flaky.appended) == 2


def test_generic_replay_signed_with_the_other_rotating_secret_is_refused(
    bare: TestClient[Any], flaky: FlakyConversations
) -> None:
    payload = generic_body("bridge-rotate", "my bill is wrong")
    now = int(time.time())
    body, headers = generic_request(payload, WEBHOOK_SECRET, timestamp=now)
    assert bare.post(GENERIC, content=body, headers=headers).status_code == 200
    _, other = generic_request(payload, WEBHOOK_SECRET + "-next", timestamp=now)
    assert other["X-Switchboard-Signature"] != headers["X-Switchboard-Signature"]
    rejected(bare.post(GENERIC, content=body, headers=other), 403)
    assert len(flaky.appended) == 1
