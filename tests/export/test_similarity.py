"""Carrying cosine constants between packs: quantile matching, and the committed pack on tiny data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from export.similarity import carry, pairwise_cosines, sample_texts, similarity_map
from models.packs import DEFAULT_PACK


def test_a_value_keeps_its_quantile_from_one_sample_to_the_other() -> None:
    old = np.sort(np.linspace(0.0, 1.0, 1001))
    new = np.sort(np.linspace(0.0, 1.0, 1001) ** 2)  # the same ranking, similarities shrunk
    assert carry([0.5, 0.9], old, new) == pytest.approx([0.25, 0.81], abs=2e-3)
    assert carry([0.5], old, old) == pytest.approx([0.5], abs=2e-3)  # same embedding: unchanged
    assert carry([2.0, -1.0], old, new) == pytest.approx([1.0, 0.0])  # clipped to the sample's range
    with pytest.raises(ValueError, match="non-empty"):
        carry([0.5], old, np.array([]))


def test_pairwise_cosines_take_each_pair_once_sorted() -> None:
    vectors = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    cosines = pairwise_cosines(vectors)
    assert cosines == pytest.approx(sorted([0.0, np.sqrt(0.5), np.sqrt(0.5)]))


def test_sample_is_deterministic_and_distinct(tiny_data: Path) -> None:
    first, second = sample_texts(tiny_data, count=5), sample_texts(tiny_data, count=5)
    assert first == second and len(set(first)) == len(first) == 5


def test_a_pack_carried_to_itself_keeps_every_value(tiny_data: Path) -> None:
    report = similarity_map(DEFAULT_PACK, DEFAULT_PACK, tiny_data, [0.3, 0.6])
    assert report["texts"] >= 5 and report["pairs"] == report["texts"] * (report["texts"] - 1) // 2
    for row in report["values"]:
        assert row["to"] == pytest.approx(row["from"], abs=0.05)
