"""The input Structs decode from JSON with their types enforced."""

from __future__ import annotations

import msgspec
import pytest

from routing.types import ROUTES, SPEAKERS, CustomerInfo, TurnScores

TURN = {
    "index": 3,
    "speaker": "customer",
    "text": "hi",
    "ts": "2025-01-06T09:00:00Z",
    "sentiment_label": "neutral",
    "sentiment_score": 0.1,
    "sentiment_probs": {"negative": 0.2, "neutral": 0.5, "positive": 0.3},
    "emotions": {"joy": 0.2},
    "emotion_labels": [],
    "intent": [["balance", 0.9]],
}


def test_turn_scores_round_trip() -> None:
    turn = msgspec.convert(TURN, TurnScores, strict=False)
    assert turn.intent == [("balance", 0.9)]
    assert turn.ts is not None and turn.ts.tzinfo is not None
    assert msgspec.json.decode(msgspec.json.encode(turn), type=TurnScores) == turn


def test_unknown_speaker_is_rejected_at_the_boundary() -> None:
    with pytest.raises(msgspec.ValidationError, match="speaker"):
        msgspec.convert({**TURN, "speaker": "robot"}, TurnScores, strict=False)


def test_customer_info_defaults_and_attributes() -> None:
    customer = msgspec.json.decode(
        b'{"tier": "gold", "attributes": {"vip": true, "n": 2}}', type=CustomerInfo
    )
    assert customer.tier == "gold" and customer.tenure_months is None
    assert customer.attributes == {"vip": True, "n": 2}
    assert CustomerInfo().attributes == {} and CustomerInfo().attributes is not CustomerInfo().attributes


def test_literals() -> None:
    assert SPEAKERS == ("customer", "agent", "bot", "system")
    assert ROUTES == ("self_serve_bot", "specialist", "retention_human")
