"""The pure steps of analysis.py: turn scoring, customer merging, summaries."""

from __future__ import annotations

from models.types import EmotionResult, IntentResult, SentimentResult, TextPrediction
from routing.signals import new_signals
from service.analysis import merge_customer, models_summary, score_turn, sentiment_out
from service.schemas import CustomerIn, TurnIn

PREDICTION = TextPrediction(
    sentiment=SentimentResult(
        label="negative",
        score=-0.81234567,
        confidence=0.85,
        probs={"negative": 0.85, "neutral": 0.11, "positive": 0.04},
    ),
    emotion=EmotionResult(labels=["anger"], scores={"anger": 0.9, "joy": 0.01}),
    intent=IntentResult(
        label="card_not_working",
        confidence=0.7,
        alternatives=[("card_not_working", 0.7), ("declined_card_payment", 0.2)],
    ),
)


def test_customer_turns_carry_intent_and_redacted_text() -> None:
    turn = TurnIn(
        speaker="customer", text="card 4111 1111 1111 1111 declined", id="a", ts="2024-01-01T00:00:00Z"
    )
    scored = score_turn(3, turn, None, PREDICTION, redact_text=True)
    assert scored.out.text == scored.scores.text == "card [CARD_NUMBER] declined"
    assert scored.out.index == scored.scores.index == 3 and scored.out.id == "a"
    assert scored.out.intent is not None and scored.out.intent.category == "cards"
    assert scored.scores.intent == [("card_not_working", 0.7), ("declined_card_payment", 0.2)]
    assert scored.out.sentiment.score == -0.8123 and scored.scores.sentiment_score == -0.81234567


def test_other_speakers_have_no_intent_and_text_can_stay_raw() -> None:
    turn = TurnIn(speaker="agent", text="card 4111 1111 1111 1111 declined")
    scored = score_turn(0, turn, None, PREDICTION, redact_text=False)
    assert scored.out.intent is None and scored.scores.intent is None
    assert "4111" in scored.out.text and scored.out.emotions == ["anger"]


def test_merge_customer() -> None:
    stored = CustomerIn(id="c1", tier="gold", attributes={"a": 1, "b": 2})
    merged = merge_customer(stored, CustomerIn(tenure_months=5, attributes={"b": 3}))
    assert merged == CustomerIn(id="c1", tier="gold", tenure_months=5, attributes={"a": 1, "b": 3})
    assert merge_customer(None, stored) is stored and merge_customer(stored, None) is stored


def test_sentiment_is_null_before_any_customer_turn() -> None:
    out = sentiment_out(new_signals())
    assert out.label is None and out.score is None and out.level is None and out.trend == "unknown"


def test_models_summary_names_only_what_determines_predictions() -> None:
    info = {
        "pack": "p",
        "version": "1",
        "files": {"model.int8.onnx": "a" * 64, "tokenizer.json": "b" * 64, "MODEL_CARD.md": "c" * 64},
    }
    assert models_summary(info) == {
        "pack": "p",
        "version": "1",
        "files": {"model.int8.onnx": "a" * 16, "tokenizer.json": "b" * 16},
    }
