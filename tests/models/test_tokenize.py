"""Tokenization: head+tail truncation, special tokens, dynamic padding, length bucketing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tokenizers import Tokenizer

from models.tokenize import TextEncoder, bucket_by_length, clip_chars, head_tail, pad_batch

CLS, SEP = 2, 3


@pytest.fixture
def tokenizer_path(tiny_pack: Path) -> Path:
    return tiny_pack / "tokenizer.json"


def test_head_tail_keeps_first_quarter_and_last_three_quarters() -> None:
    ids = list(range(100))
    kept = head_tail(ids, 20)
    assert kept == [*range(5), *range(85, 100)]


def test_head_tail_leaves_short_sequences_alone() -> None:
    assert head_tail([1, 2, 3], 3) == [1, 2, 3]
    assert head_tail([1, 2, 3], 10) == [1, 2, 3]


def test_encoder_frames_text_with_special_tokens(tokenizer_path: Path) -> None:
    encoder = TextEncoder.from_file(tokenizer_path, max_length=16)
    (ids,) = encoder.encode(["cancel my account"])
    assert ids.dtype == np.int64
    assert ids[0] == CLS and ids[-1] == SEP and len(ids) == 5
    assert (encoder.prefix, encoder.suffix, encoder.pad_id) == ([CLS], [SEP], 0)


def test_padding_saved_in_tokenizer_json_is_ignored(tokenizer_path: Path) -> None:
    assert Tokenizer.from_file(str(tokenizer_path)).padding is not None  # the fixture saves padding=64
    (ids,) = TextEncoder.from_file(tokenizer_path, max_length=16).encode(["refund"])
    assert len(ids) == 3


def test_long_text_keeps_reason_early_and_emotion_late(tokenizer_path: Path) -> None:
    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    text = "cancel account " + "the bill is wrong " * 10 + "angry upset"
    encoder = TextEncoder.from_file(tokenizer_path, max_length=18)
    (ids,) = encoder.encode([text])
    words = [tokenizer.id_to_token(int(i)) for i in ids]
    assert len(ids) == 18
    assert words[:5] == ["[CLS]", "cancel", "account", "the", "bill"]  # budget 16: 4 head tokens
    assert words[-3:] == ["angry", "upset", "[SEP]"]


def test_huge_text_is_clipped_before_tokenizing_but_keeps_head_and_tail(tokenizer_path: Path) -> None:
    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    encoder = TextEncoder.from_file(tokenizer_path, max_length=18)
    text = "cancel account " + "the bill is wrong " * 200_000 + "angry upset"  # ~3.6 MB
    assert clip_chars(text, encoder.max_chars) != text
    (ids,) = encoder.encode([text])
    words = [tokenizer.id_to_token(int(i)) for i in ids]
    assert words[:3] == ["[CLS]", "cancel", "account"] and words[-3:] == ["angry", "upset", "[SEP]"]


def test_clip_chars_keeps_short_texts() -> None:
    assert clip_chars("hello", 10) == "hello"
    assert clip_chars("abcdefghij" * 2, 8) == "ab efghij"


def test_head_truncation_keeps_the_start(tokenizer_path: Path) -> None:
    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    encoder = TextEncoder.from_file(tokenizer_path, max_length=6, truncation="head")
    (ids,) = encoder.encode(["cancel my account please the bill is wrong angry"])
    assert [tokenizer.id_to_token(int(i)) for i in ids] == [
        "[CLS]",
        "cancel",
        "my",
        "account",
        "please",
        "[SEP]",
    ]


def test_max_length_without_room_for_text_is_rejected(tokenizer_path: Path) -> None:
    with pytest.raises(ValueError, match="no room"):
        TextEncoder.from_file(tokenizer_path, max_length=2)


def test_pad_batch_pads_to_longest_with_mask() -> None:
    ids, mask = pad_batch([np.array([2, 5, 3]), np.array([2, 3])], pad_id=0)
    assert ids.tolist() == [[2, 5, 3], [2, 3, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 1, 0]]
    assert ids.dtype == mask.dtype == np.int64


def test_bucket_groups_similar_lengths_within_limits() -> None:
    lengths = [30, 5, 6, 29, 7, 31]
    assert bucket_by_length(lengths, 3, 1000, run_overhead_tokens=10) == [[1, 2, 4], [3, 0, 5]]
    # 4 x 29 = 116 > 90 tokens: the long texts cannot join the short ones; 3 x 31 = 93 > 90 either.
    batches = bucket_by_length(lengths, 8, 90, run_overhead_tokens=1000)
    assert batches == [[1, 2, 4], [3, 0], [5]] or batches == [[1, 2, 4], [3], [0, 5]]


def test_bucket_splits_when_padding_costs_more_than_a_run() -> None:
    assert bucket_by_length([5, 60], 8, 1000, run_overhead_tokens=10) == [[0], [1]]  # 10+120 > 20+65
    assert bucket_by_length([50, 60], 8, 1000, run_overhead_tokens=30) == [[0, 1]]  # 30+120 < 60+110
    assert bucket_by_length([5, 60], 8, 1000, run_overhead_tokens=500) == [[0, 1]]


def test_bucket_window_of_mixed_lengths_saves_padding() -> None:
    lengths = [8 + (n * 37) % 57 for n in range(32)]
    batches = bucket_by_length(lengths, 32, 4096, run_overhead_tokens=64)
    padded = sum(len(batch) * max(lengths[i] for i in batch) for batch in batches)
    assert 1 < len(batches) <= 4
    assert padded < 0.8 * 32 * max(lengths)


def test_bucket_oversized_text_forms_its_own_batch() -> None:
    assert bucket_by_length([500, 3], max_batch_size=8, max_batch_tokens=100) == [[1], [0]]


def test_bucket_of_nothing() -> None:
    assert bucket_by_length([], 8, 100) == []


@given(
    lengths=st.lists(st.integers(1, 128), max_size=80),
    size=st.integers(1, 40),
    tokens=st.integers(1, 5000),
    overhead=st.floats(0, 1000),
)
def test_bucket_covers_every_index_once_within_limits(
    lengths: list[int], size: int, tokens: int, overhead: float
) -> None:
    batches = bucket_by_length(lengths, size, tokens, overhead)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) <= size
        assert len(batch) == 1 or len(batch) * max(lengths[i] for i in batch) <= tokens
    longest = [max(lengths[i] for i in batch) for batch in batches]
    assert longest == sorted(longest)  # shortest batches first
