"""The pure steps of analysis.py: turn scoring, customer merging, summaries."""

from __future__ import annotations

import msgspec

from models.language import LanguageResult
from models.types import ActResult, EmotionResult, IntentResult, SentimentResult, TextPrediction
from routing.signals import SignalConfig, new_signals, update_signals
from service.analysis import language_out, merge_customer, models_summary, score_turn, sentiment_out
from service.migration import LegacyState
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
    act=ActResult(label="reason", confidence=0.91234, probs={"reason": 0.91234, "inform": 0.08766}),
    language=LanguageResult(code="en", confidence=0.98765, supported=True),
)
CFG = SignalConfig()
# What the runtime reports for "[noise]" and for a Spanish turn with the English-only default pack.
NOISE = TextPrediction(
    sentiment=SentimentResult(
        label="neutral", score=0.0, confidence=1.0, probs={"negative": 0.0, "neutral": 1.0, "positive": 0.0}
    ),
    emotion=EmotionResult(labels=[], scores={"anger": 0.0}),
    intent=IntentResult(label="unknown", confidence=0.0, alternatives=[]),
    act=ActResult(label="non_lexical", confidence=1.0, probs={}),
    language=LanguageResult(code="und", confidence=0.0, supported=True),
    lexical=False,
)
SPANISH = TextPrediction(
    sentiment=SentimentResult(label="unknown", score=0.0, confidence=0.0, probs={}),
    emotion=EmotionResult(labels=[], scores={}),
    intent=IntentResult(label="unknown", confidence=0.0, alternatives=[]),
    act=ActResult(label="unknown", confidence=0.0, probs={}),
    language=LanguageResult(code="es", confidence=0.99, supported=False),
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
    assert scored.out.act is not None and (scored.out.act.label, scored.out.act.confidence) == (
        "reason",
        0.9123,
    )
    assert scored.out.language is not None
    assert (scored.out.language.code, scored.out.language.confidence, scored.out.language.supported) == (
        "en",
        0.9877,
        True,
    )
    assert scored.out.lexical is True
    s = scored.scores
    assert (s.act, s.lexical, s.language, s.language_supported) == ("reason", True, "en", True)


def test_non_lexical_turn_is_quiet_and_weighs_nothing() -> None:
    scored = score_turn(0, TurnIn(speaker="customer", text="[noise]"), None, NOISE, redact_text=True)
    out = scored.out
    assert out.lexical is False and out.act is not None and out.act.label == "non_lexical"
    assert out.sentiment.label == "neutral" and out.sentiment.score == 0.0 and out.emotions == []
    assert out.intent is not None and (out.intent.label, out.intent.confidence, out.intent.category) == (
        "unknown",
        0.0,
        "out_of_scope",
    )
    signals = update_signals(new_signals(), scored.scores, CFG)
    assert signals.turns.customer == 1 and signals.customer.turns == 0 and signals.last_act == "non_lexical"


def test_unsupported_language_turn_reaches_routing_as_such() -> None:
    turn = TurnIn(speaker="customer", text="Hola, perdí mi tarjeta de crédito ayer y necesito ayuda")
    scored = score_turn(0, turn, None, SPANISH, redact_text=True)
    assert scored.out.language is not None and scored.out.language.supported is False
    assert scored.out.sentiment.label == "unknown" and scored.out.intent is not None
    assert scored.out.intent.label == "unknown" and scored.out.intent.category == "out_of_scope"
    signals = update_signals(new_signals(), scored.scores, CFG)
    assert language_out(signals).code == "es" and language_out(signals).supported is False
    assert signals.customer.turns == 0 and signals.reason.status == "none"


def test_turns_and_state_stored_before_acts_and_languages_still_decode() -> None:
    scored = score_turn(
        0, TurnIn(speaker="customer", text="my card is broken"), None, PREDICTION, redact_text=True
    )
    state = LegacyState(
        conversation_id="c",
        created_at=1.0,
        updated_at=1.0,
        signals=update_signals(new_signals(), scored.scores, CFG),
        turns=[scored.out],
    )
    raw = msgspec.json.decode(msgspec.json.encode(state))
    for key in ("act", "language", "lexical"):
        del raw["turns"][0][key]
    for key in ("last_act", "closing", "languages", "language", "language_supported"):
        del raw["signals"][key]
    del raw["signals"]["turns"]["customer_non_lexical"]
    raw["signals"]["schema"] = 1
    old = msgspec.json.decode(msgspec.json.encode(raw), type=LegacyState)
    assert old.turns[0].act is None and old.turns[0].language is None and old.turns[0].lexical is True
    assert old.signals.language == "und" and old.signals.language_supported is True
    assert old.signals.reason == state.signals.reason and old.signals.customer == state.signals.customer


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
