"""The pack's intent prototypes: file checks at load, the blended similarity, the manifest wiring."""

from __future__ import annotations

import shutil
from pathlib import Path

import msgspec
import numpy as np
import pytest

from models.errors import PackError
from models.manifest import FileEntry, read_manifest, write_manifest
from models.prototypes import IntentPrototypes, load_prototypes
from models.runtime import Runtime, RuntimeConfig
from tests.models.conftest import EMBEDDING_DIM

INTENTS = ("card_arrival", "lost_or_stolen_card", "out_of_scope")


def _write(path: Path, labels: list[str], dim: int, k: int = 2) -> None:
    centroids = np.eye(len(labels), dim, dtype=np.float16)
    centres = np.repeat(centroids[:, None, :], k, axis=1)
    np.savez(path, labels=np.array(labels), centroids=centroids, centres=centres)


def test_similarity_blends_the_centroid_and_the_nearest_centre() -> None:
    centroids = np.array([[1.0, 0.0]], dtype=np.float32)
    centres = np.array([[[1.0, 0.0], [0.0, 1.0]]], dtype=np.float32)
    prototypes = IntentPrototypes(("card_arrival",), centroids, centres)
    query = np.array([0.6, 0.8], dtype=np.float32)
    assert prototypes.similarity("card_arrival", query, 0.3) == pytest.approx(0.7 * 0.6 + 0.3 * 0.8)
    assert prototypes.similarity("out_of_scope", query, 0.3) is None


def test_a_valid_file_loads(tmp_path: Path) -> None:
    _write(tmp_path / "p.npz", ["card_arrival", "lost_or_stolen_card"], 4)
    prototypes = load_prototypes(tmp_path / "p.npz", 4, INTENTS)
    assert prototypes.labels == ("card_arrival", "lost_or_stolen_card")
    assert prototypes.centres.shape == (2, 2, 4) and prototypes.centres.dtype == np.float32


def test_a_wrong_width_names_both_shapes(tmp_path: Path) -> None:
    _write(tmp_path / "p.npz", ["card_arrival"], 3)
    with pytest.raises(PackError, match=r"expected centroids \(1, 4\).*got \(1, 3\)"):
        load_prototypes(tmp_path / "p.npz", 4, INTENTS)


def test_labels_the_head_does_not_have_are_refused(tmp_path: Path) -> None:
    _write(tmp_path / "p.npz", ["card_arrival", "buy_a_boat"], 4)
    with pytest.raises(PackError, match="buy_a_boat"):
        load_prototypes(tmp_path / "p.npz", 4, INTENTS)


def test_a_file_without_its_arrays_cannot_be_read(tmp_path: Path) -> None:
    np.savez(tmp_path / "p.npz", labels=np.array(["card_arrival"]))
    with pytest.raises(PackError, match="cannot be read"):
        load_prototypes(tmp_path / "p.npz", 4, INTENTS)


def _with_prototypes(v2_pack: Path, folder: Path, listed: bool) -> Path:
    shutil.copytree(v2_pack, folder)
    manifest = read_manifest(folder)
    labels = [label for label in manifest.heads["intent"].labels if label != "out_of_scope"][:3]
    _write(folder / "intent_prototypes.npz", labels, EMBEDDING_DIM)
    assert manifest.embedding is not None
    files = {**manifest.files, "intent_prototypes.npz": FileEntry("", 0)} if listed else manifest.files
    embedding = msgspec.structs.replace(manifest.embedding, prototypes="intent_prototypes.npz")
    write_manifest(folder, msgspec.structs.replace(manifest, files=files, embedding=embedding))
    return folder


def test_the_runtime_serves_the_prototypes_the_manifest_lists(v2_pack: Path, tmp_path: Path) -> None:
    folder = _with_prototypes(v2_pack, tmp_path / "pack", listed=True)
    prototypes = Runtime.load(folder, RuntimeConfig(intra_op_threads=1)).intent_prototypes
    assert prototypes is not None and len(prototypes.labels) == 3
    assert Runtime.load(v2_pack, RuntimeConfig(intra_op_threads=1)).intent_prototypes is None


def test_a_prototypes_file_missing_from_files_fails_the_load(v2_pack: Path, tmp_path: Path) -> None:
    folder = _with_prototypes(v2_pack, tmp_path / "pack", listed=False)
    with pytest.raises(PackError, match=r"prototypes file 'intent_prototypes\.npz' is not listed in files"):
        Runtime.load(folder, RuntimeConfig(intra_op_threads=1))
