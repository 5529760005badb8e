"""Carry cosine constants from one pack's sentence embedding to another's.

A cosine of 0.80 does not mean the same thing on two embeddings: fine-tuning the
shared encoder moves the whole distribution of similarities. The constants of
``switchboard reasons check`` and ``suggest`` (``service/reasons_tools.py``)
were measured on one embedding; this maps each to the cosine at the same
quantile of the pairwise cosines of the same CLINC150 training utterances
(every domain, a fixed sample) under the other embedding.

``python -m export similarity --from OLD_PACK --to NEW_PACK 0.80 0.70`` prints
the mapped values as JSON.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from export.metrics import unit_rows
from models.runtime import Runtime, RuntimeConfig

SAMPLE = 720
SEED = 5


def sample_texts(data_dir: Path, count: int = SAMPLE, seed: int = SEED) -> list[str]:
    """``count`` distinct CLINC150 training utterances, drawn deterministically from every intent."""
    data = json.loads((data_dir / "clinc150" / "data_full.json").read_text())
    texts = sorted({text for text, _ in data["train"]})
    return random.Random(seed).sample(texts, min(count, len(texts)))


def pairwise_cosines(vectors: np.ndarray) -> np.ndarray:
    """Cosines of every pair of rows (each pair once, no row with itself), sorted ascending."""
    unit = unit_rows(np.asarray(vectors, dtype=np.float64))
    upper = np.triu_indices(len(unit), k=1)
    return np.sort((unit @ unit.T)[upper])


def carry(values: Sequence[float], old: np.ndarray, new: np.ndarray) -> list[float]:
    """Each value's quantile among ``old`` cosines, read back as a cosine among ``new`` (both sorted)."""
    if len(old) == 0 or len(new) == 0:
        raise ValueError("both cosine samples must be non-empty")
    out = []
    for value in values:
        share = float(np.searchsorted(old, value, side="right")) / len(old)
        out.append(float(np.quantile(new, min(max(share, 0.0), 1.0))))
    return out


def embed(pack: Path, texts: Sequence[str]) -> np.ndarray:
    """The pack's sentence embedding of every text (rows); ValueError when the pack has none."""
    predictions = Runtime.load(pack, RuntimeConfig()).predict(list(texts))
    if any(p.embedding is None for p in predictions):
        raise ValueError(f"the pack at {pack} returns no sentence embedding")
    return np.asarray([p.embedding for p in predictions], dtype=np.float32)


def similarity_map(old_pack: Path, new_pack: Path, data_dir: Path, values: Sequence[float]) -> dict[str, Any]:
    """Every value carried from ``old_pack``'s embedding to ``new_pack``'s, with the quantile it sits at."""
    texts = sample_texts(data_dir)
    old = pairwise_cosines(embed(old_pack, texts))
    new = pairwise_cosines(embed(new_pack, texts))
    mapped = carry(values, old, new)
    return {
        "texts": len(texts),
        "pairs": len(old),
        "from": str(old_pack),
        "to": str(new_pack),
        "values": [
            {
                "from": value,
                "quantile": round(float(np.searchsorted(old, value, side="right")) / len(old), 5),
                "to": round(target, 3),
            }
            for value, target in zip(values, mapped, strict=True)
        ],
    }
