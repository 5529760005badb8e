"""The pack's intent prototypes: a few points per built-in intent in the sentence-embedding space.

Custom contact reasons are matched by the sentence embedding (``service.reasons``),
built-in intents by a classifier head whose probabilities only compare built-in
intents with each other. The prototypes put a head's pick on the reasons' scale:
each intent's centroid and its k-means centres over the pack's own embeddings of
its training utterances, so the turn's similarity to the intent is measured
exactly as its similarity to a reason (centroid cosine blended with the nearest
point's). The file is optional (``EmbeddingSpec.prototypes``); packs without it
keep the head-only rule.

File format (``numpy.savez``, no pickles): ``labels`` (n,) str, ``centroids``
(n, d) and ``centres`` (n, k, d) float16, unit rows; an intent with fewer than k
utterances repeats its last centre.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models.errors import PackError

__all__ = ["IntentPrototypes", "blended", "load_prototypes"]


def blended(centroid: np.ndarray, nearest: np.ndarray, example_weight: float) -> np.ndarray:
    """A reason's (or an intent's) similarity to a turn: its centroid's cosine blended with its
    nearest example's.

    The centroid is what the examples share; the nearest example keeps a way of asking that only
    one example covers (``MatchSettings.example_weight`` weighs it).
    """
    return (1.0 - example_weight) * centroid + example_weight * nearest


@dataclass(frozen=True)
class IntentPrototypes:
    """Unit centroids ``(n, d)`` and centres ``(n, k, d)`` of the intents in ``labels``."""

    labels: tuple[str, ...]
    centroids: np.ndarray
    centres: np.ndarray
    rows: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rows", {label: i for i, label in enumerate(self.labels)})

    def similarity(self, label: str, query: np.ndarray, example_weight: float) -> float | None:
        """``label``'s similarity to a unit ``query``: ``(1 - w)`` x centroid cosine + ``w`` x the
        nearest centre's; None for a label without prototypes (``out_of_scope``, a custom reason)."""
        row = self.rows.get(label)
        if row is None:
            return None
        centroid = self.centroids[row] @ query
        nearest = np.max(self.centres[row] @ query)
        return float(blended(centroid, nearest, example_weight))


def load_prototypes(path: Path, dim: int, intents: tuple[str, ...]) -> IntentPrototypes:
    """Read and check a prototypes file against the embedding width and the intent labels.

    Raises PackError naming the file and the first problem (missing arrays, wrong shapes,
    labels the intent head does not have).
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            labels = tuple(str(label) for label in data["labels"])
            centroids = np.asarray(data["centroids"], dtype=np.float32)
            centres = np.asarray(data["centres"], dtype=np.float32)
    except (OSError, KeyError, ValueError) as exc:
        raise PackError(f"intent prototypes {path}: cannot be read: {exc}") from exc
    n = len(labels)
    if centroids.shape != (n, dim) or centres.ndim != 3 or centres.shape[0] != n or centres.shape[2] != dim:
        raise PackError(
            f"intent prototypes {path}: expected centroids ({n}, {dim}) and centres ({n}, k, {dim}), "
            f"got {centroids.shape} and {centres.shape}"
        )
    unknown = sorted(set(labels) - set(intents))
    if unknown:
        raise PackError(f"intent prototypes {path}: labels the intent head does not have: {unknown[:5]}")
    return IntentPrototypes(labels=labels, centroids=centroids, centres=centres)
