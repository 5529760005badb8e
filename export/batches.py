"""What training and the head refit share: encoded samples, padded batches, masked losses.

``export.train`` (joint fine-tuning) and ``export.refit`` (linear heads on the
frozen encoder) both import from here, so neither depends on the other. Every
example is labelled only for the heads it can speak to: the targets of the
other heads are masked (``IGNORE`` for the class heads, an all-zero row of
allowed sentiment labels, a zero emotion mask), and every loss here averages
over the labelled rows or cells only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from export.mix import Sample
from routing.taxonomy import ACT_LABELS, EMOTION_LABELS, INTENT_LABELS, SENTIMENT_LABELS

__all__ = [
    "IGNORE",
    "Encoded",
    "class_loss",
    "cpu_threads",
    "emotion_loss",
    "encode",
    "pad_batch",
    "sentiment_loss",
]

# The target of an intent or act row with no label (torch's cross-entropy ignore_index).
IGNORE = -100


def cpu_threads() -> int:
    """Cores this process may really use (affinity mask), at least one."""
    return max(1, len(os.sched_getaffinity(0)))


@dataclass
class Encoded:
    """Pre-tokenized samples of one group or validation set, with per-head targets and masks."""

    ids: list[list[int]]
    allowed: np.ndarray  # [n, 3] 1 where a sentiment label is allowed; all-zero row: unknown
    emotion: np.ndarray  # [n, 8] 0/1 targets
    emotion_mask: np.ndarray  # [n, 8] 1 where the target is known
    intent: np.ndarray  # [n] class id or IGNORE
    act: np.ndarray  # [n] class id or IGNORE
    samples: list[Sample]


def encode(samples: list[Sample], tokenizer, max_length: int) -> Encoded:  # type: ignore[no-untyped-def]
    """Tokenize once up front and turn every sample's labels into arrays."""
    n = len(samples)
    ids = tokenizer([s.text for s in samples], truncation=True, max_length=max_length)["input_ids"]
    allowed = np.zeros((n, len(SENTIMENT_LABELS)), np.float32)
    emotion = np.zeros((n, len(EMOTION_LABELS)), np.float32)
    emotion_mask = np.zeros_like(emotion)
    intent = np.full(n, IGNORE, np.int64)
    act = np.full(n, IGNORE, np.int64)
    sentiment_index = {name: i for i, name in enumerate(SENTIMENT_LABELS)}
    emotion_index = {name: i for i, name in enumerate(EMOTION_LABELS)}
    intent_index = {name: i for i, name in enumerate(INTENT_LABELS)}
    act_index = {name: i for i, name in enumerate(ACT_LABELS)}
    for row, sample in enumerate(samples):
        for label in sample.sentiment:
            allowed[row, sentiment_index[label]] = 1.0
        for label, value in sample.emotion:
            emotion[row, emotion_index[label]] = value
            emotion_mask[row, emotion_index[label]] = 1.0
        if sample.intent:
            intent[row] = intent_index[sample.intent]
        if sample.act:
            act[row] = act_index[sample.act]
    return Encoded(list(ids), allowed, emotion, emotion_mask, intent, act, samples)


def pad_batch(ids: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad to the longest sequence in the batch (not to max_length)."""
    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for row, seq in enumerate(ids):
        input_ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    return {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(input_ids)}


def sentiment_loss(logits: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor | None:
    """Partial-label cross-entropy ``-log sum_{allowed} softmax`` over rows with a known label set."""
    known = allowed.sum(1) > 0
    if not bool(known.any()):
        return None
    z, a = logits[known], allowed[known]
    return (torch.logsumexp(z, 1) - torch.logsumexp(z.masked_fill(a == 0, -1e4), 1)).mean()


def emotion_loss(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor | None:
    """Binary cross-entropy averaged over the known cells only."""
    if float(mask.sum()) == 0:
        return None
    cells = nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return (cells * mask).sum() / mask.sum()


def class_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor | None:
    """Cross-entropy over labelled rows (``IGNORE`` elsewhere); None when no row is labelled."""
    if not bool((target != IGNORE).any()):
        return None
    return nn.functional.cross_entropy(logits, target, ignore_index=IGNORE)
