"""Fused attention: ``python -m export fuse`` on the real default pack.

Rebuilding an unfused pack is tested on the pipeline's tiny pack (``test_pipeline.py``), which
is quantized both ways from its own fp32 graph.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

onnx = pytest.importorskip("onnx")

from tokenizers import Tokenizer  # noqa: E402

from export.cli import main  # noqa: E402
from export.fuse import PROBES, FuseError, _feeds, fuse_pack, largest_difference  # noqa: E402
from models.manifest import read_manifest, sha256_file  # noqa: E402
from models.packs import DEFAULT_PACK as DEFAULT_PACK_DIR  # noqa: E402
from models.runtime import Runtime  # noqa: E402

pytestmark = pytest.mark.export


def ops(graph: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in onnx.load(str(graph)).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def test_the_default_pack_ships_fused_attention() -> None:
    counts = ops(DEFAULT_PACK_DIR / "model.int8.onnx")
    assert counts.get("QAttention") == 6 and "Softmax" not in counts
    assert read_manifest(DEFAULT_PACK_DIR).metrics["quantization"]["fused_attention"] == 6


def test_probes_run_alone_and_as_one_padded_batch() -> None:
    graph = read_manifest(DEFAULT_PACK_DIR).graphs["multitask"]
    feeds = _feeds(graph, Tokenizer.from_file(str(DEFAULT_PACK_DIR / "tokenizer.json")), PROBES)
    assert len(feeds) == len(PROBES) + 1
    batch = feeds[-1]
    assert batch["input_ids"].shape[0] == len(PROBES)
    assert int(batch["attention_mask"].sum(axis=1).min()) < batch["input_ids"].shape[1]  # padded rows
    same = DEFAULT_PACK_DIR / "model.int8.onnx"
    assert largest_difference(same, same, feeds) == 0.0


def test_fuse_rebuilds_the_default_pack_with_equal_outputs(tmp_path: Path) -> None:
    pack = tmp_path / "pack"
    shutil.copytree(DEFAULT_PACK_DIR, pack)
    assert main(["fuse", "--pack", str(pack), "--version", "9.9.9"]) == 0
    manifest = read_manifest(pack)
    assert manifest.version == "9.9.9"
    assert manifest.metrics["quantization"]["fused_attention"] == 6
    assert manifest.files["model.int8.onnx"].sha256 == sha256_file(pack / "model.int8.onnx")
    assert ops(pack / "model.int8.onnx").get("QAttention") == 6
    runtime, reference = Runtime.load(pack), Runtime.load(DEFAULT_PACK_DIR)  # the hashes verify
    for text in PROBES[:4]:
        [mine], [theirs] = runtime.predict([text]), reference.predict([text])
        assert mine.intent == theirs.intent and mine.sentiment == theirs.sentiment


def test_fuse_writes_nothing_when_the_outputs_would_move(tmp_path: Path) -> None:
    pack = tmp_path / "pack"
    shutil.copytree(DEFAULT_PACK_DIR, pack)
    before = {path.name: path.read_bytes() for path in pack.iterdir() if path.is_file()}
    with pytest.raises(FuseError, match="outputs moved"):
        fuse_pack(pack, tolerance=-1.0)  # no difference is below a negative tolerance
    assert {path.name: path.read_bytes() for path in pack.iterdir() if path.is_file()} == before
    assert main(["fuse", "--pack", str(pack), "--tolerance", "-1"]) == 1
