"""The calibration / report split of every validation set, and the label arrays read from it.

Every validation set is split in two halves by a fixed seed: the *calibration*
half fits temperatures and thresholds (and picks the refit heads' epochs); the
*report* half gives every number in the card and the figures. Shared by
``export.evaluate``, ``export.figures`` and ``export.refit``.
"""

from __future__ import annotations

import random

import numpy as np

from export.mix import Sample
from export.pack import LABELS

__all__ = ["emotion_arrays", "halves", "label_index", "report_half", "single_label_rows"]


def halves(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic calibration / report index split of ``n`` rows."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return np.array(sorted(order[: n // 2]), dtype=np.int64), np.array(
        sorted(order[n // 2 :]), dtype=np.int64
    )


def label_index(head: str) -> dict[str, int]:
    """Class id of every label of ``head``, in the pack's order."""
    return {label: i for i, label in enumerate(LABELS[head])}


def report_half(val: dict[str, list[Sample]], name: str, seed: int) -> tuple[list[Sample], np.ndarray]:
    """The report half of validation set ``name``: its samples and their row numbers."""
    _, rep = halves(len(val[name]), seed)
    return [val[name][i] for i in rep.tolist()], rep


def _label(sample: Sample, head: str) -> str:
    if head == "sentiment":
        return sample.sentiment[0] if len(sample.sentiment) == 1 else ""
    return str(getattr(sample, head))


def single_label_rows(samples: list[Sample], rows: np.ndarray, head: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows with exactly one known label for ``head`` and their class ids."""
    index = label_index(head)
    keep = [r for r in rows.tolist() if _label(samples[r], head)]
    return np.array(keep, np.int64), np.array([index[_label(samples[r], head)] for r in keep], np.int64)


def emotion_arrays(samples: list[Sample]) -> tuple[np.ndarray, np.ndarray]:
    """Emotion targets ``[n, 8]`` and a mask ``[n, 8]`` of the cells each sample labels."""
    index = label_index("emotion")
    y = np.zeros((len(samples), len(index)), np.float32)
    known = np.zeros_like(y)
    for r, sample in enumerate(samples):
        for label, value in sample.emotion:
            y[r, index[label]] = value
            known[r, index[label]] = 1
    return y, known
