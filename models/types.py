"""Typed results of the models layer (the public output of ``Runtime``).

Probabilities are calibrated: ``softmax(logits / T)`` or ``sigmoid(logits / T)``
with the head's temperature ``T`` from the pack manifest.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
import numpy as np

from models.language import LanguageResult

UNKNOWN = "unknown"
"""Label reported where the pack cannot judge a turn (a language it does not support)."""


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


class ActResult(msgspec.Struct):
    """Conversation act of one text.

    ``label`` is one of the act head's labels, ``greeting``, ``repeat_request``, ``hold`` or
    ``non_lexical`` (decided by transcript normalisation), or ``unknown`` (no act head, or a
    language the pack does not support). ``probs`` holds the act head's
    calibrated probabilities (empty when the model was not consulted).
    """

    label: str
    confidence: float
    probs: dict[str, float]


class TextPrediction(msgspec.Struct):
    """Every head's result for one text.

    ``lexical`` is False for a turn with nothing but tags, fillers,
    backchannels and digits: it is reported neutral, with no emotion and no
    intent evidence. ``embedding`` is the pooled sentence vector (L2-normalised,
    a read-only float32 row) when the pack exposes one; it is kept as an array because
    its consumers (reason matching) compute with it, and 1,536 Python floats a turn cost
    both the batch worker (building them) and the event loop (converting them back).
    """

    sentiment: SentimentResult
    emotion: EmotionResult
    intent: IntentResult
    act: ActResult
    language: LanguageResult
    lexical: bool = True
    embedding: np.ndarray | None = None
    # What a consumer computed from this prediction on the batch worker (``Runtime.annotate``),
    # by the consumer's key; not model output, so equality ignores it.
    annotations: dict[str, Any] = msgspec.field(default_factory=dict)

    def __eq__(self, other: object) -> bool:
        """Field by field (``annotations`` aside), the embeddings by value (an array's own ``==``
        is elementwise)."""
        if not isinstance(other, TextPrediction):
            return NotImplemented
        mine, theirs = self.embedding, other.embedding
        if (mine is None) != (theirs is None) or (
            mine is not None and theirs is not None and not np.array_equal(mine, theirs)
        ):
            return False
        return all(
            getattr(self, name) == getattr(other, name)
            for name in self.__struct_fields__
            if name not in ("embedding", "annotations")
        )


def checked_texts(texts: Sequence[str]) -> tuple[str, ...]:
    """A private copy of the texts; TypeError for a bare string or a non-string item.

    Checked up front so that one bad request cannot fail the batch it would share with others.
    """
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, not a single string")
    copy = tuple(texts)
    for index, text in enumerate(copy):
        if not isinstance(text, str):
            raise TypeError(f"texts[{index}] is {type(text).__name__}, expected str")
    return copy
