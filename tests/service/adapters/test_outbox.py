"""The callback outbox against a real HTTP receiver: signing, idempotency keys, retries, restarts."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
from callback_receiver import Receiver
from prometheus_client import CollectorRegistry
from standardwebhooks import Webhook, WebhookVerificationError

from service.adapters.backend import open_backend
from service.adapters.config import AdapterConfig
from service.adapters.outbox import Outbox, backoff_delay, build_callback_body, parse_retry_after
from service.adapters.signatures import receiver_secret, verify_timestamped
from service.errors import SettingsError, Unauthorized

SECRET = "callback-secret"


def analysis(
    conversation_id: str = "CA123", route: str = "retention_human", priority: int = 8
) -> dict[str, Any]:
    """An analysis in the API's documented response shape (issue 5's contract).

    The outbox accepts any msgspec-encodable analysis; the end-to-end tests in
    test_routes.py feed it the service's real AnalysisResponse.
    """
    return {
        "conversation_id": conversation_id,
        "decision": {
            "route": route,
            "queue": "retention",
            "priority": priority,
            "rule": "churn-risk-high",
            "explanation": [],
            "policy": {"version": "2025-01", "hash": "abc123"},
        },
        "contact_reason": {
            "category": "cancellation",
            "intent": "cancel_account",
            "confidence": 0.91,
            "alternatives": [],
        },
        "sentiment": {"label": "negative", "score": -0.8, "trend": "declining"},
        "emotions": ["anger"],
        "signals": {"customer_turns": 3},
        "context": {"summary": "wants to cancel; card [CARD_NUMBER] charged twice"},
        "turns": [{"index": 0, "speaker": "customer", "text": "cancel it"}],
        "models": {"pack": "default"},
        "timing_ms": {"total": 3.2},
    }


def config(url: str, **overrides: Any) -> AdapterConfig:
    values: dict[str, Any] = {
        "callback_urls": {"twilio_voice": url},
        "callback_secret": SECRET,
        "callback_backoff_base_s": 0.05,
        "callback_backoff_max_s": 0.2,
        "callback_timeout_s": 2.0,
        "callback_max_attempts": 5,
    }
    values.update(overrides)
    return AdapterConfig(**values)


async def wait_state(outbox: Outbox, key: str, state: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = await outbox.status(key)
        if status is not None and status.state == state:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{key} never reached {state}: {await outbox.status(key)}")


def check_signed(headers: dict[str, str], body: bytes) -> None:
    check_signed_with(SECRET, headers, body)


async def test_decision_is_posted_signed_with_an_idempotency_key(tmp_path: Path, receiver: Receiver) -> None:
    registry = CollectorRegistry()
    outbox = Outbox(
        config(receiver.url), open_backend(f"sqlite:///{tmp_path / 'sb.sqlite3'}"), registry=registry
    )
    await outbox.start()
    key = await outbox.enqueue("CA123", analysis(), "twilio_voice")
    assert key is not None
    (delivery,) = await receiver.wait_for(1)
    await wait_state(outbox, key, "delivered")
    await outbox.stop()

    assert delivery.path == "/switchboard/decisions"
    assert delivery.headers["idempotency-key"] == key == delivery.headers["x-switchboard-delivery"]
    assert delivery.headers["content-type"] == "application/json"
    assert delivery.headers["x-switchboard-event"] == "decision.changed"
    check_signed(delivery.headers, delivery.body)
    payload = json.loads(delivery.body)
    assert payload["id"] == key and payload["type"] == "decision.changed"
    assert payload["conversation_id"] == "CA123" and payload["source"] == "twilio_voice"
    assert payload["decision"]["route"] == "retention_human" and payload["decision"]["queue"] == "retention"
    assert payload["contact_reason"]["intent"] == "cancel_account"
    assert payload["context"] == {"summary": "wants to cancel; card [CARD_NUMBER] charged twice"}
    assert "turns" not in payload and "timing_ms" not in payload
    sample = {"source": "twilio_voice"}
    assert registry.get_sample_value("switchboard_callbacks_enqueued_total", sample) == 1
    assert (
        registry.get_sample_value("switchboard_callbacks_finished_total", sample | {"result": "delivered"})
        == 1
    )
    assert registry.get_sample_value("switchboard_callback_attempts_total", sample | {"outcome": "2xx"}) == 1
    assert registry.get_sample_value("switchboard_callback_delivery_lag_seconds_count", sample) == 1


async def test_receiver_failing_twice_still_gets_it_once_accepted(tmp_path: Path, receiver: Receiver) -> None:
    receiver.script = [503, 500]
    registry = CollectorRegistry()
    outbox = Outbox(
        config(receiver.url), open_backend(f"sqlite:///{tmp_path / 'sb.sqlite3'}"), registry=registry
    )
    await outbox.start()
    key = await outbox.enqueue("CA123", analysis(), "twilio_voice")
    assert key is not None
    deliveries = await receiver.wait_for(3)
    await wait_state(outbox, key, "delivered")
    await outbox.stop()
    assert [d.status for d in deliveries] == [503, 500, 200]
    assert {d.headers["idempotency-key"] for d in deliveries} == {key}
    assert [d.headers["x-switchboard-attempt"] for d in deliveries] == ["1", "2", "3"]
    assert len({d.body for d in deliveries}) == 1  # the same bytes, re-signed each time
    for d in deliveries:
        check_signed(d.headers, d.body)
    assert list(receiver.accepted) == [key]
    assert (
        registry.get_sample_value(
            "switchboard_callback_attempts_total", {"source": "twilio_voice", "outcome": "5xx"}
        )
        == 2
    )


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A durable backend: an SQLite file, or a real Redis under a per-test prefix."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'sb.sqlite3'}"
    url: str = request.getfixturevalue("redis_url")
    return url


async def test_failures_then_success_across_a_restart(backend_url: str, receiver: Receiver) -> None:
    """Attempt 1 fails, the service stops, a new outbox on the same backend fails once more, then delivers."""
    receiver.script = [503, 503]
    # A long backoff, so the message is still waiting when the first service stops.
    slow = config(receiver.url, callback_backoff_base_s=2.0, callback_backoff_max_s=2.0)
    first = Outbox(slow, open_backend(backend_url))
    await first.start()
    key = await first.enqueue("CA-restart", analysis(), "twilio_voice")
    assert key is not None
    await receiver.wait_for(1)
    await first.stop()
    assert receiver.accepted == {}

    second = Outbox(config(receiver.url), open_backend(backend_url))
    status = await second.status(key)
    assert status is not None and (status.state, status.attempts) == ("pending", 1)
    await second.start()
    deliveries = await receiver.wait_for(3)
    await wait_state(second, key, "delivered")
    assert await second.erase("CA-restart") == 1
    await second.stop()
    assert [d.status for d in deliveries] == [503, 503, 200]
    assert {d.headers["idempotency-key"] for d in deliveries} == {key}
    assert list(receiver.accepted) == [key]


async def test_decisions_of_one_conversation_arrive_in_order(tmp_path: Path, receiver: Receiver) -> None:
    receiver.script = [503]  # the first decision needs a retry; the second must still come after it
    outbox = Outbox(config(receiver.url), open_backend(f"sqlite:///{tmp_path / 'sb.sqlite3'}"))
    await outbox.start()
    first = await outbox.enqueue("CA123", analysis(route="specialist", priority=3), "twilio_voice")
    second = await outbox.enqueue("CA123", analysis(route="retention_human", priority=9), "twilio_voice")
    await receiver.wait_for(3)
    assert first is not None and second is not None
    await wait_state(outbox, second, "delivered")
    await outbox.stop()
    routes = [json.loads(d.body)["decision"]["route"] for d in receiver.deliveries]
    assert routes == ["specialist", "specialist", "retention_human"]


async def test_dead_letter_after_max_attempts_then_redrive(tmp_path: Path, receiver: Receiver) -> None:
    receiver.script = [500, 500, 500]
    registry = CollectorRegistry()
    outbox = Outbox(
        config(receiver.url, callback_max_attempts=3),
        open_backend(f"sqlite:///{tmp_path / 'sb.sqlite3'}"),
        registry=registry,
    )
    await outbox.start()
    key = await outbox.enqueue("CA123", analysis(), "twilio_voice")
    assert key is not None
    await wait_state(outbox, key, "dead")
    status = await outbox.status(key)
    assert status is not None and status.attempts == 3 and status.last_error == "HTTP 500"
    assert (
        registry.get_sample_value(
            "switchboard_callbacks_finished_total", {"source": "twilio_voice", "result": "dead"}
        )
        == 1
    )
    assert await outbox.counts() == {"pending": 0, "delivered": 0, "dead": 1}
    assert await outbox.redrive() == 1
    await wait_state(outbox, key, "delivered")
    await outbox.stop()
    assert list(receiver.accepted) == [key]


async def test_unreachable_receiver_is_retried_as_a_transport_error(tmp_path: Path) -> None:
    outbox = Outbox(
        config("http://127.0.0.1:9/unreachable", callback_max_attempts=2),
        open_backend(f"sqlite:///{tmp_path / 'sb.sqlite3'}"),
    )
    await outbox.start()
    key = await outbox.enqueue("CA123", analysis(), "twilio_voice")
    assert key is not None
    await wait_state(outbox, key, "dead")
    status = await outbox.status(key)
    await outbox.stop()
    assert status is not None and status.last_error == "ConnectError"


async def test_source_without_url_enqueues_nothing(tmp_path: Path) -> None:
    outbox = Outbox(config("http://127.0.0.1:9/x"), open_backend(f"sqlite:///{tmp_path / 'sb.sqlite3'}"))
    assert await outbox.enqueue("chatwoot:1:2", analysis(), "chatwoot") is None
    assert await outbox.on_decision("chatwoot:1:2", analysis(), "chatwoot") is False  # stored nothing
    assert await outbox.counts() == {"pending": 0, "delivered": 0, "dead": 0}
    await outbox.backend.close()


async def test_erase_drops_pending_callbacks(tmp_path: Path) -> None:
    outbox = Outbox(config("http://127.0.0.1:9/x"), open_backend(f"sqlite:///{tmp_path / 'sb.sqlite3'}"))
    key = await outbox.enqueue("CA123", analysis(), "twilio_voice")
    assert key is not None and await outbox.erase("CA123") == 1
    assert await outbox.status(key) is None
    await outbox.backend.close()


async def test_listener_never_raises_when_the_backend_fails(tmp_path: Path) -> None:
    (tmp_path / "blocked.sqlite3").mkdir()
    registry = CollectorRegistry()
    outbox = Outbox(
        config("http://127.0.0.1:9/x"),
        open_backend(f"sqlite:///{tmp_path / 'blocked.sqlite3'}"),
        registry=registry,
    )
    assert await outbox.on_decision("CA123", analysis(), "twilio_voice") is True  # it may have stored
    assert (
        registry.get_sample_value("switchboard_callbacks_enqueue_failures_total", {"source": "twilio_voice"})
        == 1
    )
    await outbox.backend.close()


def test_callback_urls_without_a_secret_are_refused() -> None:
    with pytest.raises(SettingsError):
        Outbox(AdapterConfig(callback_urls={"*": "http://x/cb"}), open_backend("memory://"))


def test_backoff_grows_exponentially_with_bounded_jitter() -> None:
    assert backoff_delay(1, 1.0, 300, rng=lambda: 0.0) == 0.5
    assert backoff_delay(1, 1.0, 300, rng=lambda: 1.0) == 1.0
    assert backoff_delay(4, 1.0, 300, rng=lambda: 0.0) == 4.0
    assert backoff_delay(30, 1.0, 300, rng=lambda: 1.0) == 300
    delays = {backoff_delay(3, 1.0, 300) for _ in range(50)}
    assert all(2.0 <= d <= 4.0 for d in delays) and len(delays) > 1


def test_parse_retry_after() -> None:
    assert parse_retry_after("7", now=0) == 7
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now=1445412480) == 30
    assert parse_retry_after("soon", now=0) is None
    assert parse_retry_after(None, now=0) is None


def test_callback_body_keeps_routing_fields_only() -> None:
    body = json.loads(build_callback_body("k1", "CA1", None, analysis(), 1_736_443_845.5))
    assert body["created_at"] == "2025-01-09T17:30:45.500000Z"
    assert set(body) == {
        "type",
        "id",
        "created_at",
        "conversation_id",
        "source",
        *("decision", "contact_reason", "sentiment", "emotions", "context"),
    }


# --- Standard Webhooks ------------------------------------------------------------------------------

WHSEC = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


async def _deliver_one(tmp_path: Path, receiver: Receiver, **overrides: Any) -> tuple[str, list[Any]]:
    outbox = Outbox(config(receiver.url, **overrides), open_backend(f"sqlite:///{tmp_path / 'sb.sqlite3'}"))
    await outbox.start()
    key = await outbox.enqueue("CA123", analysis(), "twilio_voice")
    assert key is not None
    await wait_state(outbox, key, "delivered")
    await outbox.stop()
    return key, receiver.deliveries


async def test_callbacks_verify_with_standardwebhooks_out_of_the_box(
    tmp_path: Path, receiver: Receiver
) -> None:
    """Default scheme, a whsec_ secret: the reference library accepts every attempt, retries included."""
    receiver.script = [503]
    key, deliveries = await _deliver_one(tmp_path, receiver, callback_secret=WHSEC)
    assert len(deliveries) == 2
    verifier = Webhook(WHSEC)
    for delivery in deliveries:
        assert delivery.headers["webhook-id"] == key == delivery.headers["idempotency-key"]
        assert verifier.verify(delivery.body, delivery.headers)["id"] == key
        check_signed_with(WHSEC, delivery.headers, delivery.body)  # the original scheme still verifies
    tampered = deliveries[0].body.replace(b"retention_human", b"self_service__")
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        verifier.verify(tampered, deliveries[0].headers)
    other_id = deliveries[0].headers | {"webhook-id": "another-id"}
    with pytest.raises(WebhookVerificationError):
        verifier.verify(deliveries[0].body, other_id)


async def test_plain_secret_verifies_as_whsec_of_its_base64(tmp_path: Path, receiver: Receiver) -> None:
    """The README's recipe for a plain secret: the receiver uses "whsec_" + base64(secret bytes)."""
    _, (delivery,) = await _deliver_one(tmp_path, receiver)
    by_hand = "whsec_" + base64.b64encode(SECRET.encode()).decode()
    assert receiver_secret(SECRET) == by_hand and receiver_secret(WHSEC) == WHSEC
    assert Webhook(by_hand).verify(delivery.body, delivery.headers)["conversation_id"] == "CA123"
    check_signed(delivery.headers, delivery.body)
    with pytest.raises(WebhookVerificationError):
        Webhook(WHSEC).verify(delivery.body, delivery.headers)  # a different secret


async def test_switchboard_scheme_keeps_the_original_headers_only(tmp_path: Path, receiver: Receiver) -> None:
    _, (delivery,) = await _deliver_one(tmp_path, receiver, callback_signature_scheme="switchboard")
    assert not {"webhook-id", "webhook-timestamp", "webhook-signature"} & set(delivery.headers)
    check_signed(delivery.headers, delivery.body)
    with pytest.raises(Unauthorized, match="does not match"):
        check_signed(delivery.headers, delivery.body + b" ")
    with pytest.raises(WebhookVerificationError, match="Missing required headers"):
        Webhook(receiver_secret(SECRET)).verify(delivery.body, delivery.headers)


@pytest.mark.parametrize("secret", ["whsec_", "whsec_not*base64!", "whsec_===="])
def test_unusable_whsec_secret_is_refused_at_startup(secret: str) -> None:
    with pytest.raises(SettingsError, match="SWITCHBOARD_CALLBACK_SECRET"):
        Outbox(config("http://127.0.0.1:9/x", callback_secret=secret), open_backend("memory://"))


def test_settings_refuse_an_unusable_whsec_secret_and_default_to_standard_webhooks() -> None:
    env = {
        "SWITCHBOARD_CALLBACK_URL": "https://crm.example.com/cb",
        "SWITCHBOARD_CALLBACK_SECRET": "whsec_%%",
    }
    with pytest.raises(SettingsError, match="SWITCHBOARD_CALLBACK_SECRET"):
        AdapterConfig.from_env(env)
    # The original scheme signs with the string as given: any string is a usable secret there.
    legacy = AdapterConfig.from_env(env | {"SWITCHBOARD_CALLBACK_SIGNATURE_SCHEME": "switchboard"})
    assert legacy.callback_signature_scheme == "switchboard"
    fresh = AdapterConfig.from_env(env | {"SWITCHBOARD_CALLBACK_SECRET": WHSEC})
    assert fresh.callback_signature_scheme == "standard-webhooks"


def check_signed_with(secret: str, headers: dict[str, str], body: bytes) -> None:
    verify_timestamped(
        secrets=[secret],
        timestamp=headers["x-switchboard-timestamp"],
        signature=headers["x-switchboard-signature"],
        body=body,
        now=time.time(),
        max_age_s=300,
        timestamp_header="X-Switchboard-Timestamp",
        signature_header="X-Switchboard-Signature",
        realm="test",
    )


# --- dead letters: listing, one message, redriving some ---------------------------------------------


async def test_list_get_and_redrive_some_dead_letters(backend_url: str, receiver: Receiver) -> None:
    receiver.script = [500, 500]
    outbox = Outbox(config(receiver.url, callback_max_attempts=1), open_backend(backend_url))
    await outbox.start()
    first = await outbox.enqueue("CA-a", analysis("CA-a"), "twilio_voice")
    assert first is not None
    await wait_state(outbox, first, "dead")
    second = await outbox.enqueue("CA-b", analysis("CA-b"), "twilio_voice")
    assert second is not None
    await wait_state(outbox, second, "dead")

    dead = await outbox.list_messages("dead", 10)
    assert [m.key for m in dead] == [second, first]  # newest first
    assert [m.key for m in await outbox.list_messages("dead", 1)] == [second]
    record = await outbox.get(first)
    assert record is not None
    assert (record.conversation_id, record.source, record.url, record.state) == (
        "CA-a",
        "twilio_voice",
        receiver.url,
        "dead",
    )
    assert (record.attempts, record.last_error) == (1, "HTTP 500")
    assert record.finished_at is not None and record.finished_at >= record.created_at
    assert json.loads(record.body)["id"] == first
    assert await outbox.get("no-such-key") is None

    assert await outbox.redrive_keys([first, "no-such-key", first]) == [first]
    await wait_state(outbox, first, "delivered")
    assert await outbox.redrive_keys([first]) == []  # delivered: not dead any more
    assert [m.key for m in await outbox.list_messages("dead", 10)] == [second]
    assert [m.key for m in await outbox.list_messages("delivered", 10)] == [first]
    assert list(receiver.accepted) == [first]
    await outbox.stop()
    cleanup = Outbox(config(receiver.url), open_backend(backend_url))
    assert await cleanup.erase("CA-a") + await cleanup.erase("CA-b") == 2
    await cleanup.backend.close()


async def test_pending_are_listed_in_enqueue_order(backend_url: str) -> None:
    outbox = Outbox(config("http://127.0.0.1:9/x"), open_backend(backend_url))  # never started
    keys = [await outbox.enqueue(f"CA-{i}", analysis(f"CA-{i}"), "twilio_voice") for i in range(3)]
    pending = await outbox.list_messages("pending", 10)
    assert [m.key for m in pending] == keys
    assert all(m.state == "pending" and m.attempts == 0 and m.finished_at is None for m in pending)
    assert await outbox.list_messages("dead", 10) == []
    assert await outbox.redrive_keys([k for k in keys if k]) == []  # pending is not dead
    for i in range(3):
        await outbox.erase(f"CA-{i}")
    await outbox.backend.close()
