"""Tokenization for the runtime: the pack's ``tokenizer.json`` through ``tokenizers``.

Three decisions live here:

* **Truncation** keeps the head and the tail of a long turn (``head_tail``): the
  first quarter of the token budget and the last three quarters. Customers tend
  to state the reason for contact early ("I'm calling about my bill") and the
  latest emotion late ("...and honestly I'm about to cancel"); the middle is the
  least informative part for routing. ``head`` (plain right truncation) is
  available for packs that ask for it in their manifest.
  Texts far longer than the budget are first cut the same way at the
  character level, so a pasted transcript cannot stall the tokenizer.
* **Dynamic padding**: a batch is padded to its longest text, never to
  ``max_length``; attention-mask arithmetic makes the result independent of the
  padding, so batched and single results agree.
* **Length bucketing**: a window of texts is sorted by length before it is cut
  into batches, so texts of similar length share a batch and little compute is
  spent on padding.

The tokenizer's own truncation/padding settings from tokenizer.json (HF often
saves ``padding: 128``) are switched off: the runtime owns both.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from tokenizers import Tokenizer

Truncation = Literal["head_tail", "head"]
HEAD_FRACTION = 0.25
# Characters kept per token of budget before tokenizing: generous (English averages ~4-5
# characters per token) but bounds the tokenizer's work on a pasted 10 MB transcript.
CHARS_PER_TOKEN = 16
_PROBE_TEXT = "hello"
_PAD_TOKENS = ("[PAD]", "<pad>", "<PAD>")


def head_tail(ids: Sequence[int], budget: int, head_fraction: float = HEAD_FRACTION) -> list[int]:
    """Keep at most ``budget`` ids: the first ``floor(budget * head_fraction)`` and the rest from the end."""
    if len(ids) <= budget:
        return list(ids)
    if budget <= 0:
        return []
    head = int(budget * head_fraction)
    tail = budget - head
    return [*ids[:head], *ids[len(ids) - tail :]]


def clip_chars(text: str, max_chars: int, head_fraction: float = HEAD_FRACTION) -> str:
    """Head+tail cut at the character level, applied before tokenizing very long texts."""
    if len(text) <= max_chars:
        return text
    head = int(max_chars * head_fraction)
    return f"{text[:head]} {text[len(text) - (max_chars - head) :]}"


def _special_frame(tokenizer: Tokenizer) -> tuple[list[int], list[int]]:
    """Ids the post-processor puts before and after a single sequence (e.g. [CLS] / [SEP]).

    Found by encoding a probe word with and without special tokens and locating
    the plain ids inside the framed ones; works for BERT- and RoBERTa-style templates.
    """
    plain = tokenizer.encode(_PROBE_TEXT, add_special_tokens=False).ids
    framed = tokenizer.encode(_PROBE_TEXT, add_special_tokens=True).ids
    if not plain:
        raise ValueError(f"tokenizer produces no tokens for the probe text {_PROBE_TEXT!r}")
    for start in range(len(framed) - len(plain) + 1):
        if framed[start : start + len(plain)] == plain:
            return framed[:start], framed[start + len(plain) :]
    raise ValueError("cannot locate the text inside the tokenizer's special-token template")


def _pad_id(tokenizer: Tokenizer) -> int:
    """The padding id from tokenizer.json's padding settings, a known pad token, or 0."""
    padding = tokenizer.padding
    if padding and padding.get("pad_id") is not None:
        return int(padding["pad_id"])
    for token in _PAD_TOKENS:
        token_id = tokenizer.token_to_id(token)
        if token_id is not None:
            return int(token_id)
    return 0


class TextEncoder:
    """Turns texts into id arrays (special tokens included), truncated to ``max_length``."""

    def __init__(self, tokenizer: Tokenizer, max_length: int, truncation: Truncation = "head_tail") -> None:
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self._tokenizer = tokenizer
        self.prefix, self.suffix = _special_frame(tokenizer)
        self.budget = max_length - len(self.prefix) - len(self.suffix)
        if self.budget < 1:
            raise ValueError(f"max_length {max_length} leaves no room for text after special tokens")
        self.max_length = max_length
        self.truncation = truncation
        self.pad_id = _pad_id(tokenizer)
        self.max_chars = max_length * CHARS_PER_TOKEN
        # encode_batch_fast skips offset tracking (we never use offsets); older tokenizers lack it.
        self._encode_batch = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)

    @classmethod
    def from_file(cls, path: Path, max_length: int, truncation: Truncation = "head_tail") -> TextEncoder:
        """Load ``tokenizer.json``; raises ``Exception`` from ``tokenizers`` on a bad file."""
        return cls(Tokenizer.from_file(str(path)), max_length, truncation)

    def _truncate(self, ids: list[int]) -> list[int]:
        if len(ids) <= self.budget:
            return ids
        if self.truncation == "head":
            return ids[: self.budget]
        return head_tail(ids, self.budget)

    def encode(self, texts: Sequence[str]) -> list[np.ndarray]:
        """One int64 id array per text: prefix + truncated content + suffix (at most ``max_length``)."""
        clipped = [clip_chars(text, self.max_chars) for text in texts]
        encodings = self._encode_batch(clipped, add_special_tokens=False)
        return [
            np.array([*self.prefix, *self._truncate(enc.ids), *self.suffix], dtype=np.int64)
            for enc in encodings
        ]


def pad_batch(seqs: Sequence[np.ndarray], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad to the longest sequence; returns (input_ids, attention_mask), both int64 [batch, seq]."""
    width = max(len(seq) for seq in seqs)
    ids = np.full((len(seqs), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(seqs), width), dtype=np.int64)
    for row, seq in enumerate(seqs):
        ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
    return ids, mask


def bucket_by_length(
    lengths: Sequence[int], max_batch_size: int, max_batch_tokens: int, run_overhead_tokens: float = 16.0
) -> list[list[int]]:
    """Group indices into batches of similar length (length bucketing).

    Texts are sorted by length and cut into contiguous groups that minimise the
    modelled cost ``sum(run_overhead_tokens + size * longest)``: one ONNX run
    costs a fixed overhead (expressed in padded tokens, measured at warm-up)
    plus every padded token it computes. A window of 32 turns of 8-64 tokens
    thus runs as two or three batches instead of one padded to 64. Every batch
    has at most ``max_batch_size`` texts and ``max_batch_tokens`` padded tokens
    (a single text longer than that still runs alone). Batches come out
    shortest first. Exact dynamic programme, O(n * max_batch_size).
    """
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    sorted_lengths = [lengths[i] for i in order]
    count = len(order)
    best = [0.0] + [float("inf")] * count  # best[j]: cheapest cost of the first j texts
    cut = [0] * (count + 1)  # cut[j]: start of the last batch in that cheapest plan
    for end in range(1, count + 1):
        longest = sorted_lengths[end - 1]  # ascending: the last text of a batch is its longest
        for size in range(1, min(max_batch_size, end) + 1):
            if size > 1 and size * longest > max_batch_tokens:
                break
            cost = best[end - size] + run_overhead_tokens + size * longest
            if cost < best[end]:
                best[end], cut[end] = cost, end - size
    batches: list[list[int]] = []
    end = count
    while end > 0:
        batches.append(order[cut[end] : end])
        end = cut[end]
    return batches[::-1]
