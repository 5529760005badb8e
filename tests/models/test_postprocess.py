"""Post-processing: calibration, sentiment score, emotion thresholds, intent top-k."""

from __future__ import annotations

import numpy as np
import pytest

from models.manifest import HeadSpec
from models.postprocess import (
    calibrate,
    emotion_labels,
    emotion_results,
    intent_results,
    sentiment_results,
    sigmoid,
    softmax,
)


def test_softmax_temperature_flattens() -> None:
    logits = np.array([[2.0, 0.0, -1.0]], dtype=np.float32)
    sharp, flat = softmax(logits, 1.0), softmax(logits, 3.0)
    assert sharp.sum() == pytest.approx(1.0) and flat.sum() == pytest.approx(1.0)
    assert flat.max() < sharp.max()


def test_softmax_is_stable_for_large_logits() -> None:
    probs = softmax(np.array([[1000.0, 999.0]]))
    assert np.isfinite(probs).all() and probs[0, 0] == pytest.approx(1 / (1 + np.exp(-1)))


def test_calibrate_uses_kind_and_temperature() -> None:
    logits = np.array([[1.0, -2.0]])
    spec = HeadSpec(graph="g", output="o", kind="sigmoid", labels=["a", "b"], temperature=2.0)
    np.testing.assert_allclose(calibrate(logits, spec), sigmoid(logits / 2.0))


def test_sentiment_score_is_positive_minus_negative() -> None:
    probs = np.array([[0.1, 0.2, 0.7], [0.6, 0.3, 0.1]])
    first, second = sentiment_results(probs, ["negative", "neutral", "positive"])
    assert (first.label, first.confidence) == ("positive", 0.7)
    assert first.score == pytest.approx(0.6) and second.score == pytest.approx(-0.5)
    assert second.label == "negative" and second.probs == {"negative": 0.6, "neutral": 0.3, "positive": 0.1}


def test_emotion_labels_over_per_label_thresholds_strongest_first() -> None:
    probs = np.array([[0.45, 0.9, 0.6, 0.2], [0.1, 0.2, 0.3, 0.4]])
    labels = ["anger", "frustration", "joy", "neutral"]
    first, second = emotion_results(probs, labels, {"anger": 0.4, "joy": 0.65})
    assert first.labels == ["frustration", "anger"]  # joy 0.6 < its 0.65; anger 0.45 >= 0.4
    assert first.scores["joy"] == 0.6
    assert second.labels == []


def test_intent_top5_best_first() -> None:
    probs = np.array([[0.05, 0.4, 0.1, 0.2, 0.15, 0.06, 0.04]])
    labels = [f"i{n}" for n in range(7)]
    (result,) = intent_results(probs, labels)
    assert result.label == "i1" and result.confidence == 0.4
    assert [label for label, _ in result.alternatives] == ["i1", "i3", "i4", "i2", "i5"]


def test_intent_with_fewer_labels_than_k() -> None:
    (result,) = intent_results(np.array([[0.3, 0.7]]), ["a", "b"])
    assert result.alternatives == [("b", 0.7), ("a", 0.3)]


def test_emotion_labels_at_most_two_and_neutral_only_alone() -> None:
    assert emotion_labels(["anger", "neutral", "frustration", "sadness"], negative=False) == [
        "anger",
        "frustration",
    ]
    assert emotion_labels(["neutral"], negative=False) == ["neutral"]
    assert emotion_labels([], negative=False) == []


def test_no_gratitude_or_joy_on_a_negative_turn() -> None:
    assert emotion_labels(["gratitude", "joy", "frustration"], negative=True) == ["frustration"]
    assert emotion_labels(["gratitude", "neutral"], negative=True) == ["neutral"]
    assert emotion_labels(["gratitude", "joy"], negative=False) == ["gratitude", "joy"]
