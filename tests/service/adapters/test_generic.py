"""Generic signed webhook body → turns (decode layer)."""

from __future__ import annotations

import json

import msgspec
import pytest

from service.adapters.generic import decode_generic


def test_body_decodes_to_turns_with_source_and_customer() -> None:
    body = {
        "conversation_id": "connect-1234",
        "source": "amazon_connect",
        "channel": "voice",
        "customer": {"id": "cust-9", "tier": "gold"},
        "turns": [
            {"speaker": "bot", "text": "How can I help?", "id": "seg-1"},
            {
                "speaker": "customer",
                "text": "Cancel my contract",
                "id": "seg-2",
                "ts": "2025-01-09T10:00:00Z",
            },
        ],
    }
    inbound = decode_generic(json.dumps(body).encode())
    assert inbound.conversation_id == "connect-1234"
    assert inbound.source == "amazon_connect" and inbound.channel == "voice"
    assert inbound.customer is not None and inbound.customer.tier == "gold"
    assert [t.speaker for t in inbound.turns] == ["bot", "customer"]


def test_source_defaults_to_generic() -> None:
    inbound = decode_generic(b'{"conversation_id": "c1", "turns": [{"speaker": "customer", "text": "hi"}]}')
    assert inbound.source == "generic" and inbound.channel is None


def test_a_body_needs_turns_or_an_outcome() -> None:
    from service.errors import ValidationFailed

    with pytest.raises(ValidationFailed) as info:
        decode_generic(b'{"conversation_id": "c1", "turns": []}')
    assert info.value.errors[0]["field"] == "turns"
    only_outcome = decode_generic(b'{"conversation_id": "c1", "outcome": {"resolved": true, "csat": 5}}')
    assert only_outcome.turns == [] and only_outcome.outcome is not None and only_outcome.outcome.csat == 5


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"turns": [{"speaker": "customer", "text": "hi"}]}, "conversation_id"),
        ({"conversation_id": "c1", "turns": [{"speaker": "caller", "text": "hi"}]}, "turns[0].speaker"),
        ({"conversation_id": "c1", "turns": [{"speaker": "customer", "text": "hi", "x": 1}]}, "x"),
        (
            {"conversation_id": "c1", "turns": [{"speaker": "customer", "text": "hi"}], "source": "Bad!"},
            "source",
        ),
        (
            {"conversation_id": "has space", "turns": [{"speaker": "customer", "text": "hi"}]},
            "conversation_id",
        ),
    ],
)
def test_invalid_bodies_name_the_field(body: dict[str, object], where: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=where.replace("[", r"\[").replace("]", r"\]")):
        decode_generic(json.dumps(body).encode())
