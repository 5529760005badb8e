"""Post-processing: logits of one batch -> calibrated probabilities -> typed results.

Vectorised over the batch with numpy; only the final per-text assembly is a
Python loop (``tolist()`` converts to plain floats in one step).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from models.manifest import HeadSpec
from models.types import EmotionResult, IntentResult, SentimentResult, TextPrediction

TOP_K_INTENTS = 5
DEFAULT_THRESHOLD = 0.5


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise ``softmax(logits / temperature)`` in float64 (numerically stable)."""
    scaled = logits.astype(np.float64) / temperature
    scaled -= scaled.max(axis=-1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=-1, keepdims=True)


def sigmoid(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Element-wise ``sigmoid(logits / temperature)`` in float64."""
    return 1.0 / (1.0 + np.exp(-logits.astype(np.float64) / temperature))


def calibrate(logits: np.ndarray, head: HeadSpec) -> np.ndarray:
    """Calibrated probabilities of a head's logits [batch, labels] (its kind and temperature)."""
    if head.kind == "softmax":
        return softmax(logits, head.temperature)
    return sigmoid(logits, head.temperature)


def sentiment_results(probs: np.ndarray, labels: Sequence[str]) -> list[SentimentResult]:
    """Label, p(positive) - p(negative), confidence and all probabilities per row."""
    pos, neg = labels.index("positive"), labels.index("negative")
    best = probs.argmax(axis=-1).tolist()
    results = []
    for row, top in zip(probs.tolist(), best, strict=True):
        results.append(
            SentimentResult(
                label=labels[top],
                score=row[pos] - row[neg],
                confidence=row[top],
                probs=dict(zip(labels, row, strict=True)),
            )
        )
    return results


def emotion_results(
    probs: np.ndarray, labels: Sequence[str], thresholds: Mapping[str, float]
) -> list[EmotionResult]:
    """Every label's score, and the labels at or over their threshold, strongest first.

    Labels without a threshold in the manifest use 0.5. The list may be empty.
    """
    cut = np.array([thresholds.get(label, DEFAULT_THRESHOLD) for label in labels])
    order = np.argsort(-probs, axis=-1, kind="stable").tolist()
    over = (probs >= cut).tolist()
    results = []
    for row, row_order, row_over in zip(probs.tolist(), order, over, strict=True):
        results.append(
            EmotionResult(
                labels=[labels[i] for i in row_order if row_over[i]],
                scores=dict(zip(labels, row, strict=True)),
            )
        )
    return results


def intent_results(probs: np.ndarray, labels: Sequence[str], k: int = TOP_K_INTENTS) -> list[IntentResult]:
    """Best intent, its probability, and the top-``k`` (label, prob) pairs best first."""
    k = min(k, probs.shape[-1])
    top = np.argsort(-probs, axis=-1, kind="stable")[:, :k]
    top_probs = np.take_along_axis(probs, top, axis=-1).tolist()
    results = []
    for indices, values in zip(top.tolist(), top_probs, strict=True):
        alternatives = [(labels[i], p) for i, p in zip(indices, values, strict=True)]
        results.append(
            IntentResult(label=alternatives[0][0], confidence=values[0], alternatives=alternatives)
        )
    return results


def predictions(logits: Mapping[str, np.ndarray], heads: Mapping[str, HeadSpec]) -> list[TextPrediction]:
    """Assemble one ``TextPrediction`` per row from every head's logits."""
    sentiment_head, emotion_head, intent_head = heads["sentiment"], heads["emotion"], heads["intent"]
    sentiment = sentiment_results(calibrate(logits["sentiment"], sentiment_head), sentiment_head.labels)
    emotion = emotion_results(
        calibrate(logits["emotion"], emotion_head), emotion_head.labels, emotion_head.thresholds
    )
    intent = intent_results(calibrate(logits["intent"], intent_head), intent_head.labels)
    return [
        TextPrediction(sentiment=s, emotion=e, intent=i)
        for s, e, i in zip(sentiment, emotion, intent, strict=True)
    ]
