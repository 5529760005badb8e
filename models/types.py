"""Typed results of the models layer (the public output of ``Runtime``).

Probabilities are calibrated: ``softmax(logits / T)`` or ``sigmoid(logits / T)``
with the head's temperature ``T`` from the pack manifest.
"""

from __future__ import annotations

import msgspec


class SentimentResult(msgspec.Struct):
    """Sentiment of one text.

    ``score`` is ``p(positive) - p(negative)`` in [-1, 1]; ``confidence`` is the
    probability of ``label``; ``probs`` maps every sentiment label to its probability.
    """

    label: str
    score: float
    confidence: float
    probs: dict[str, float]


class EmotionResult(msgspec.Struct):
    """Emotions of one text (multi-label).

    ``labels`` are the emotions whose score reached their per-label threshold,
    strongest first (possibly empty); ``scores`` holds every label's probability.
    """

    labels: list[str]
    scores: dict[str, float]


class IntentResult(msgspec.Struct):
    """Intent of one text: best label, its probability, and the top-5 ``(label, prob)`` best first."""

    label: str
    confidence: float
    alternatives: list[tuple[str, float]]


class TextPrediction(msgspec.Struct):
    """Every head's result for one text."""

    sentiment: SentimentResult
    emotion: EmotionResult
    intent: IntentResult
