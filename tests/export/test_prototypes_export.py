"""Spherical k-means and the per-intent prototypes written into a pack (``export/prototypes.py``)."""

from __future__ import annotations

import numpy as np

from export.prototypes import prototypes, spherical_kmeans


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_kmeans_finds_two_separate_directions_and_is_deterministic() -> None:
    rng = np.random.default_rng(0)
    a = _unit(np.array([1.0, 0.0, 0.0]) + 0.05 * rng.standard_normal((20, 3)))
    b = _unit(np.array([0.0, 1.0, 0.0]) + 0.05 * rng.standard_normal((20, 3)))
    x = np.concatenate([a, b]).astype(np.float32)
    centres = spherical_kmeans(x, 2, seed=3)
    assert np.allclose(np.linalg.norm(centres, axis=1), 1.0, atol=1e-5)
    assert sorted(int(np.argmax(c)) for c in centres) == [0, 1]
    assert np.array_equal(centres, spherical_kmeans(x, 2, seed=3))


def test_fewer_rows_than_centres_repeat_the_last_row() -> None:
    x = _unit(np.array([[1.0, 0.0], [0.0, 1.0]])).astype(np.float32)
    centres = spherical_kmeans(x, 4, seed=0)
    assert centres.shape == (4, 2)
    assert np.array_equal(centres[1:], np.repeat(x[1:], 3, axis=0))


def test_prototypes_sort_labels_and_give_unit_centroids() -> None:
    rng = np.random.default_rng(1)
    vectors = {
        "zeta": _unit(rng.standard_normal((6, 4))).astype(np.float32),
        "alpha": _unit(rng.standard_normal((3, 4))).astype(np.float32),
    }
    labels, centroids, centres = prototypes(vectors, k=2, seed=0)
    assert labels == ["alpha", "zeta"]
    assert centroids.shape == (2, 4) and centres.shape == (2, 2, 4)
    assert np.allclose(np.linalg.norm(centroids, axis=1), 1.0, atol=1e-5)
    mean = vectors["alpha"].mean(axis=0)
    assert np.allclose(centroids[0], mean / np.linalg.norm(mean), atol=1e-6)
