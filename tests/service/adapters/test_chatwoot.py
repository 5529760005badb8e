"""Chatwoot message_created → turns (decode layer)."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from adapter_payloads import chatwoot_message

from service.adapters.chatwoot import decode_message_created
from service.adapters.inbound import Ignored, Inbound
from service.errors import ValidationFailed


def _decode(payload: Any, max_chars: int = 4000) -> Inbound | Ignored:
    return decode_message_created(json.dumps(payload).encode(), max_chars)


def test_incoming_message_becomes_a_customer_turn() -> None:
    decoded = _decode(chatwoot_message())
    assert isinstance(decoded, Inbound)
    assert decoded.conversation_id == "chatwoot:3:77"
    assert decoded.source == "chatwoot" and decoded.channel == "chat"
    (turn,) = decoded.turns
    assert (turn.speaker, turn.text, turn.id) == (
        "customer",
        "Hi, I was charged twice for my subscription",
        "9012",
    )
    assert turn.ts == "2025-01-09T17:30:45.123Z"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (chatwoot_message(message_type="outgoing"), "outgoing"),
        (chatwoot_message(message_type="template"), "template"),
        (chatwoot_message(message_type=1), "1"),
        (chatwoot_message(private=True), "private"),
        (chatwoot_message(message_type="outgoing", private=True), "outgoing"),
        (chatwoot_message(content=None), "no text"),
        (chatwoot_message(content="  "), "no text"),
        (chatwoot_message(event="conversation_status_changed"), "conversation_status_changed"),
    ],
)
def test_only_incoming_public_text_is_scored(payload: dict[str, Any], reason: str) -> None:
    decoded = _decode(payload)
    assert isinstance(decoded, Ignored) and reason in decoded.reason


def test_numeric_message_type_and_unix_timestamp() -> None:
    decoded = _decode(chatwoot_message(message_type=0) | {"created_at": 1736443845})
    assert isinstance(decoded, Inbound)
    assert decoded.turns[0].ts == "2025-01-09T17:30:45Z"


def test_channel_mapping_and_account_from_conversation() -> None:
    payload = chatwoot_message()
    payload["conversation"]["channel"] = "Channel::Email"
    payload["conversation"]["account_id"] = 3
    del payload["account"]
    decoded = _decode(payload)
    assert isinstance(decoded, Inbound)
    assert decoded.channel == "email" and decoded.conversation_id == "chatwoot:3:77"


def test_long_message_is_clipped() -> None:
    decoded = _decode(chatwoot_message(content="y" * 100), max_chars=20)
    assert isinstance(decoded, Inbound) and decoded.turns[0].text == "y" * 20


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"conversation": None}, "conversation"),
        ({"id": None}, "id"),
        ({"conversation": {"status": "open"}}, "conversation.id"),
    ],
)
def test_malformed_payload_names_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        _decode(chatwoot_message() | change)
    assert caught.value.errors[0]["field"] == field


def test_non_object_and_non_json_bodies() -> None:
    with pytest.raises(ValidationFailed):
        decode_message_created(b"[1, 2]", 4000)
    with pytest.raises(msgspec.DecodeError):
        decode_message_created(b"{not json", 4000)
