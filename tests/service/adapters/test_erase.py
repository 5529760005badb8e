"""Erase is erase: every path (DELETE, ``switchboard export --delete``, TTL expiry) leaves
nothing about the conversation in the store, the callback outbox or the replay guard, on
SQLite and on Redis, and a captured webhook replayed afterwards re-creates nothing.

Each platform delivers one signed event; the callback receiver keeps failing so the
decision callbacks stay queued (with the handoff context in them) until the erasure. The
check reads the raw storage: every SQLite row, or every Redis key under the test's prefix
with its value, must be free of the conversation id and of the customer's words. The
tombstone keeps a digest of the id, never the id.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from adapter_payloads import (
    chatwoot_message,
    chatwoot_request,
    generic_request,
    message_added,
    twilio_request,
    voice_event,
)
from callback_receiver import Receiver, running_receiver
from litestar.testing import TestClient
from test_routes import (
    AUTH,
    CHATWOOT,
    CHATWOOT_SECRET,
    CONVERSATIONS,
    GENERIC,
    INTERNAL,
    PUBLIC,
    TWILIO_TOKEN,
    VOICE,
    WEBHOOK_SECRET,
    app_env,
    wait_ready,
)

from service.app import ServiceState, create_app
from service.cli import _export_async
from service.settings import Settings

pytestmark = pytest.mark.pack

WORDS = "zebracorn"  # a word no other content contains: its absence means the text is gone
CALL_SID = "CAe0a1b2c3d4e5f60718293a4b5c6d7e8f"
CHAT_SID = "CHe0a1b2c3d4e5f60718293a4b5c6d7e8f"


def deliveries() -> list[tuple[str, str, bytes, dict[str, str]]]:
    """(conversation id, path, body, headers) of one signed event per platform, captured once."""
    voice = voice_event(transcript=f"my {WORDS} card was charged twice", call_sid=CALL_SID)
    voice_body, voice_headers = twilio_request(PUBLIC + VOICE, voice, TWILIO_TOKEN)
    sms = message_added(body=f"my {WORDS} parcel is lost") | {"ConversationSid": CHAT_SID}
    sms_body, sms_headers = twilio_request(PUBLIC + CONVERSATIONS, sms, TWILIO_TOKEN)
    chat_body, chat_headers = chatwoot_request(
        chatwoot_message(content=f"my {WORDS} order never came", conversation_id=4242), CHATWOOT_SECRET
    )
    generic = {
        "conversation_id": "generic-erase-1",
        "turns": [{"speaker": "customer", "text": f"cancel my {WORDS} plan", "id": "g1"}],
        "source": "crm",
    }
    generic_body, generic_headers = generic_request(generic, WEBHOOK_SECRET)
    return [
        (CALL_SID, VOICE, voice_body, voice_headers),
        (CHAT_SID, CONVERSATIONS, sms_body, sms_headers),
        ("chatwoot:3:4242", CHATWOOT, chat_body, chat_headers),
        ("generic-erase-1", GENERIC, generic_body, generic_headers),
    ]


@pytest.fixture(scope="module")
def failing_receiver() -> Iterator[Receiver]:
    with running_receiver() as receiver:
        receiver.script.extend([503] * 10_000)  # callbacks stay queued until erased
        yield receiver


def sqlite_traces(path: Path, needles: list[str]) -> list[str]:
    """Every row of every table in ``path`` that contains one of ``needles``."""
    found: list[str] = []
    with sqlite3.connect(path) as conn:
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for row in conn.execute(f"SELECT * FROM {table}"):
                text = " ".join(str(bytes(v)) if isinstance(v, bytes) else str(v) for v in row)
                found += [f"{table}: {needle}" for needle in needles if needle in text]
    return found


def redis_traces(url: str, prefix: str, needles: list[str]) -> list[str]:
    """Every key under ``prefix`` whose name or value contains one of ``needles``."""
    client = redis.Redis.from_url(url.split("?")[0])
    found: list[str] = []
    for key in client.scan_iter(match=prefix + "*"):
        kind = client.type(key).decode()
        if kind == "none":  # expired or deleted between SCAN and TYPE: nothing left of it
            continue
        value: Any = {
            "string": lambda k: client.get(k),
            "hash": lambda k: client.hgetall(k),
            "list": lambda k: client.lrange(k, 0, -1),
            "set": lambda k: client.smembers(k),
            "zset": lambda k: client.zrange(k, 0, -1),
        }[kind](key)
        text = f"{key!r} {value!r}"
        found += [f"{key!r}: {needle}" for needle in needles if needle in text]
    client.close()
    return found


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
@pytest.mark.parametrize("path", ["delete", "export", "expiry"])
def test_erase_leaves_nothing_and_replays_resurrect_nothing(
    backend: str,
    path: str,
    tmp_path: Path,
    test_pack: Path,
    failing_receiver: Receiver,
    request: pytest.FixtureRequest,
) -> None:
    extra: dict[str, str] = {"CONVERSATION_TTL": "3"} if path == "expiry" else {}
    if backend == "redis":
        extra["STORE"] = request.getfixturevalue("redis_url")
    env = app_env(tmp_path / "var", test_pack, failing_receiver.url, **extra)
    settings = Settings.from_env(env)
    captured = deliveries()
    with TestClient(create_app(settings), base_url=INTERNAL) as client:
        wait_ready(client)
        service: ServiceState = client.app.state.service
        for _, route, body, headers in captured:
            response = client.post(route, content=body, headers=headers)
            assert response.status_code in (200, 204), response.text
        ids = [conversation_id for conversation_id, *_ in captured]
        traces = storage_traces(backend, settings, ids)
        assert traces, "the deliveries left nothing to erase: the check would prove nothing"
        if path == "delete":
            for conversation_id in ids:
                erased = client.delete(f"/v1/conversations/{conversation_id}", headers=AUTH)
                assert erased.status_code == 200 and erased.json()["deleted"] is True
        elif path == "export":
            out = tmp_path / "export.jsonl"
            with client.portal() as portal:  # the app's own event loop (its Redis client lives there)
                assert portal.call(_export_async, settings, ids, out, True) == 0
            assert all(cid in out.read_text() for cid in ids)  # exported, then erased
        else:
            # The app's own purge loop (every TTL/2) may get there first: either way, the one erase
            # path must leave nothing once the conversations are past their TTL.
            time.sleep(3.2)
            deadline = time.monotonic() + 15
            while storage_traces(backend, settings, ids):
                assert time.monotonic() < deadline, "expired conversations were not erased"
                with client.portal() as portal:
                    portal.call(service.conversations.purge_expired)
                time.sleep(0.1)
        assert storage_traces(backend, settings, ids) == []
        if path == "expiry":
            return  # expiry leaves no tombstone: a platform may reuse an idle conversation's id
        for conversation_id, route, body, headers in captured:  # the captured requests, replayed
            for variant in unsigned_variants(headers):
                replay = client.post(route, content=body, headers=variant)
                assert replay.status_code == 410, (conversation_id, replay.text)
        assert storage_traces(backend, settings, ids) == []


def unsigned_variants(headers: dict[str, str]) -> list[dict[str, str]]:
    """The captured headers as sent, and with every header no signature covers changed or dropped."""
    signed = {"content-type", "x-twilio-signature", "x-chatwoot-signature", "x-chatwoot-timestamp"}
    signed |= {"x-switchboard-signature", "x-switchboard-timestamp"}
    variants = [dict(headers)]
    for name in headers:
        if name.lower() not in signed:
            variants.append({k: v for k, v in headers.items() if k != name})
            variants.append(headers | {name: headers[name] + "-replayed"})
    variants.append(headers | {"X-Chatwoot-Delivery": "replayed-delivery", "X-Request-Id": "replay"})
    return variants


def storage_traces(backend: str, settings: Settings, ids: list[str]) -> list[str]:
    needles = [WORDS, *ids, CALL_SID, CHAT_SID]
    if backend == "sqlite":
        return sqlite_traces(Path(settings.resolved_store_url.removeprefix("sqlite:///")), needles)
    url = settings.resolved_store_url
    prefix = url.split("prefix=", 1)[1]
    return redis_traces(url, prefix, needles)
