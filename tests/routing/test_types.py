"""The input Structs decode from JSON with their types enforced, and old turns stay usable."""

from __future__ import annotations

import msgspec
import pytest

from routing.signals import SignalConfig, new_signals, update_signals
from routing.types import CustomerInfo, TurnScores

# A turn as the first version wrote it: none of the fields added since (act, lexical,
# language, custom contact reasons), and one field (sentiment_probs) that was dropped.
OLD_TURN = {
    "index": 3,
    "speaker": "customer",
    "text": "my card hasn't arrived",
    "ts": "2025-01-06T09:00:00Z",
    "sentiment_label": "negative",
    "sentiment_score": -0.4,
    "sentiment_probs": {"negative": 0.5, "neutral": 0.4, "positive": 0.1},
    "emotions": {"frustration": 0.7},
    "emotion_labels": ["frustration"],
    "intent": [["card_arrival", 0.9]],
}


def test_turn_scores_round_trip() -> None:
    turn = msgspec.convert(OLD_TURN, TurnScores, strict=False)
    assert turn.intent == [("card_arrival", 0.9)]
    assert turn.ts is not None and turn.ts.tzinfo is not None
    assert msgspec.json.decode(msgspec.json.encode(turn), type=TurnScores) == turn


def test_an_old_turn_still_folds_into_the_signals() -> None:
    turn = msgspec.convert(OLD_TURN, TurnScores, strict=False)
    signals = update_signals(new_signals(), turn, SignalConfig())
    assert signals.reason.intent == "card_arrival"
    assert signals.current_intent == "card_arrival" and signals.last_index == 3


@pytest.mark.parametrize(
    ("field", "value"),
    [("speaker", "robot"), ("sentiment_score", "high"), ("intent", [["card_arrival"]])],
)
def test_a_malformed_turn_is_rejected_at_the_boundary(field: str, value: object) -> None:
    with pytest.raises(msgspec.ValidationError, match=field):
        msgspec.convert({**OLD_TURN, field: value}, TurnScores, strict=False)


def test_customer_info_defaults_and_attributes() -> None:
    customer = msgspec.json.decode(
        b'{"tier": "gold", "attributes": {"vip": true, "n": 2}}', type=CustomerInfo
    )
    assert customer.tier == "gold" and customer.tenure_months is None
    assert customer.attributes == {"vip": True, "n": 2}
    assert CustomerInfo().attributes == {} and CustomerInfo().attributes is not CustomerInfo().attributes
