"""train -> onnx -> quantize -> evaluate -> load, on the tiny fixture data with the tiny recipe."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

pytest.importorskip("torch")

from export.evaluate import evaluate
from export.fuse import fuse_pack
from export.mix import dataset_counts
from export.modeling import PrototypeMemory, load_checkpoint
from export.onnx_export import EMBEDDING_OUTPUT, export_checkpoint, export_graph
from export.pack import build_pack, output_width, provenance
from export.prototypes import PROTOTYPES_FILE, write_prototypes
from export.quantize import quantize
from export.recipe import Recipe, build_data, tiny
from export.refit import refit_heads
from export.train import train
from models.manifest import read_manifest, sha256_file, write_manifest
from models.runtime import Runtime
from routing.taxonomy import ACT_LABELS, EMOTION_LABELS, INTENT_LABELS, SENTIMENT_LABELS

pytestmark = pytest.mark.export


@pytest.fixture(scope="module")
def tiny_pack(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    run = tmp_path_factory.mktemp("run")
    pack = tmp_path_factory.mktemp("pack")
    recipe = tiny(Recipe(data_dir=str(tiny_data)))
    summary = train(recipe, run, progress=False)
    # the refit's multi-layer heads and intent memory go through ONNX export too
    refit_heads(run, recipe, log=lambda _: None)
    exported = export_checkpoint(run / "checkpoint", run / "onnx")
    assert exported["max_abs_diff"] < 1e-4
    quant = quantize(run / "onnx" / "model.fp32.onnx", run / "onnx" / "model.int8.onnx", "portable")
    build_pack(
        run / "onnx" / "model.int8.onnx",
        run / "onnx" / "tokenizer.json",
        pack,
        inputs=exported["inputs"],
        max_length=64,
        name="tiny",
        version="0.0.1",  # type: ignore[arg-type]
        recipe={**summary["recipe"], "backbone": summary["backbone"]},  # type: ignore[dict-item]
        sources=provenance(dataset_counts(build_data(recipe)), tiny_data),
        quantization=quant,  # type: ignore[arg-type]
        outputs=["sentiment_logits", "emotion_logits", "intent_logits", "act_logits", EMBEDDING_OUTPUT],
        # as `python -m export quantize` declares it: the graph's own width (layers 3-6, 4 x 384)
        embedding_dim=output_width(
            onnx.load(str(run / "onnx" / "model.fp32.onnx"), load_external_data=False).graph.output,
            EMBEDDING_OUTPUT,
        )
        or 0,
    )
    write_prototypes(pack, recipe, k=2)
    evaluate(run, pack)
    return run, pack


def test_training_writes_checkpoint_and_log(tiny_pack: tuple[Path, Path]) -> None:
    run, _ = tiny_pack
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["best_step"] > 0
    assert (run / "checkpoint" / "heads.safetensors").exists()
    assert summary["data"]["train"]["requests"] > 0 and summary["data"]["train"]["sgd"] > 0
    assert summary["data"]["val"]["complaints"] > 0
    assert (run / "train_log.jsonl").read_text().strip()


def test_refit_writes_layer_mixture_and_memory(tiny_pack: tuple[Path, Path]) -> None:
    run, _ = tiny_pack
    heads = json.loads((run / "checkpoint" / "heads.json").read_text())
    assert heads["layers"] == {
        "emotion": [3, 4, 5, 6],
        "act": [3, 4, 5, 6],
        "sentiment": [3, 4, 5, 6],
        "embedding": [3, 4, 5, 6],
    }
    report = json.loads((run / "refit.json").read_text())
    assert report["emotion"]["layers"] == [3, 4, 5, 6]
    assert report["sentiment"]["layers"] == [3, 4, 5, 6]
    memory = report["intent_memory"]
    # a memory is kept only when it beats the linear head on the calibration half
    improved = memory["calibration_score_after"] > memory["calibration_score_before"]
    assert ("intent_memory" in heads) == improved


def test_intent_memory_stays_fp32_in_the_int8_graph(tiny_pack: tuple[Path, Path], tmp_path: Path) -> None:
    run, _ = tiny_pack
    model, _ = load_checkpoint(run / "checkpoint", attn_implementation="eager")
    classes = model.heads["intent"].out_features
    prototypes = torch.nn.functional.normalize(
        torch.randn(classes * 2, 384, generator=torch.Generator().manual_seed(0)), dim=-1
    )
    model.memory = PrototypeMemory(prototypes, torch.zeros(classes, 2), tau=0.02, weight=0.3)
    export_graph(model, tmp_path / "fp32.onnx")
    quantize(tmp_path / "fp32.onnx", tmp_path / "int8.onnx", "portable")
    nodes = onnx.load(str(tmp_path / "int8.onnx")).graph.node
    memory = [node.op_type for node in nodes if node.name.startswith("/memory/") and "MatMul" in node.op_type]
    assert memory == ["MatMul"]  # cosines / tau amplify int8 error 50x (export/quantize.py)
    assert any(node.op_type == "MatMulInteger" for node in nodes)  # the encoder is quantized


def test_quantize_fuses_attention_and_fuse_upgrades_an_unfused_pack(
    tiny_pack: tuple[Path, Path], tmp_path: Path
) -> None:
    """The pipeline's graph has one QAttention per layer; the same fp32 graph quantized without
    fusion (as packs before 2.4.2 were) is rebuilt by ``export fuse`` with equal outputs."""
    run, pack = tiny_pack
    fused = [node.op_type for node in onnx.load(str(pack / "model.int8.onnx")).graph.node]
    assert fused.count("QAttention") == 6 and "Softmax" not in fused
    old = tmp_path / "pack"
    shutil.copytree(pack, old)
    plain = quantize(run / "onnx" / "model.fp32.onnx", old / "model.int8.onnx", "portable", fuse=False)
    assert plain["fused_attention"] == 0
    assert "QAttention" not in {node.op_type for node in onnx.load(str(old / "model.int8.onnx")).graph.node}
    write_manifest(old, read_manifest(old))
    report = fuse_pack(old)
    assert report["multitask"]["fused_attention"] == 6
    assert report["multitask"]["largest_difference"] <= 1e-5
    assert read_manifest(old).files["model.int8.onnx"].sha256 == sha256_file(old / "model.int8.onnx")


def test_int8_is_smaller_than_fp32(tiny_pack: tuple[Path, Path]) -> None:
    run, pack = tiny_pack
    assert (pack / "model.int8.onnx").stat().st_size < 0.4 * (run / "onnx" / "model.fp32.onnx").stat().st_size


def test_pack_manifest_is_complete(tiny_pack: tuple[Path, Path]) -> None:
    _, pack = tiny_pack
    manifest = read_manifest(pack)
    assert manifest.heads["sentiment"].labels == list(SENTIMENT_LABELS)
    assert manifest.heads["emotion"].labels == list(EMOTION_LABELS)
    assert manifest.heads["intent"].labels == list(INTENT_LABELS)
    assert manifest.heads["act"].labels == list(ACT_LABELS)
    assert manifest.embedding is not None and manifest.embedding.output == EMBEDDING_OUTPUT
    for name, entry in manifest.files.items():
        assert sha256_file(pack / name) == entry.sha256, name
    assert {
        "MODEL_CARD.md",
        "card/reliability.png",
        "card/confusion_sentiment.png",
        "card/confusion_act.png",
        "card/runtime_checks.json",
    } <= set(manifest.files)
    assert manifest.heads["sentiment"].temperature > 0
    assert set(manifest.heads["emotion"].thresholds) == set(EMOTION_LABELS)
    assert "headline" in manifest.metrics
    card = (pack / "MODEL_CARD.md").read_text()
    assert "CC BY 4.0" in card and "Known limits" in card
    assert "CC BY-SA 4.0" in card  # SGD
    assert "Batch invariance" in card and "Non-lexical turns" in card
    checks = json.loads((pack / "card" / "runtime_checks.json").read_text())
    assert checks["invariance"]["batch_32"]["label_changes"] == 0
    assert checks["non_lexical"]["quiet_rate"] == 1.0


def test_runtime_loads_the_exported_pack(tiny_pack: tuple[Path, Path]) -> None:
    _, pack = tiny_pack
    runtime = Runtime.load(pack)
    out = runtime.predict(["where is my card", "thank you so much"])
    assert len(out) == 2
    for p in out:
        assert p.sentiment.label in SENTIMENT_LABELS and -1 <= p.sentiment.score <= 1
        assert p.intent.label in INTENT_LABELS
        assert abs(sum(p.sentiment.probs.values()) - 1) < 1e-4
        assert p.act.label in (*ACT_LABELS, "greeting")
        # the embedding concatenates layers 3-6 (static width in the graph, declared in the manifest)
        assert p.embedding is not None and len(p.embedding) == 4 * 384
        assert sum(x * x for x in p.embedding) == pytest.approx(1.0, abs=1e-3)


def test_intent_prototypes_are_listed_hashed_and_served(tiny_pack: tuple[Path, Path]) -> None:
    _, pack = tiny_pack
    manifest = read_manifest(pack)
    assert manifest.embedding is not None and manifest.embedding.prototypes == PROTOTYPES_FILE
    assert manifest.files[PROTOTYPES_FILE].sha256 == sha256_file(pack / PROTOTYPES_FILE)
    prototypes = Runtime.load(pack).intent_prototypes
    assert prototypes is not None
    assert "out_of_scope" not in prototypes.labels and set(prototypes.labels) <= set(INTENT_LABELS)
    assert prototypes.centres.shape == (len(prototypes.labels), 2, 4 * 384)
    query = prototypes.centroids[0]
    assert prototypes.similarity(prototypes.labels[0], query, 0.0) == pytest.approx(1.0, abs=1e-2)


def tiny_classifier(path: Path, labels: list[str], seed: int) -> Path:
    """A randomly initialised 32-wide BERT sequence classifier with the backbone's tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from export.modeling import default_backbone

    tokenizer = AutoTokenizer.from_pretrained(default_backbone())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    torch.manual_seed(seed)
    BertForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_hf_checkpoint_serves_one_head(tiny_pack: tuple[Path, Path], tmp_path: Path) -> None:
    from export.hf import export_hf

    ckpt = tiny_classifier(tmp_path / "ckpt", ["NEG", "NEU", "POS"], seed=0)
    pack = tmp_path / "pack"
    shutil.copytree(tiny_pack[1], pack)

    with pytest.raises(ValueError, match="not sentiment labels"):
        export_hf(str(ckpt), "sentiment", pack)
    manifest = export_hf(
        str(ckpt), "sentiment", pack, label_map={"NEG": "negative", "NEU": "neutral", "POS": "positive"}
    )
    assert manifest.heads["sentiment"].graph == "sentiment_hf"
    assert manifest.heads["sentiment"].source == f"hf:{ckpt}"
    assert manifest.heads["intent"].graph == "multitask"

    runtime = Runtime.load(pack)
    mixed = runtime.predict(["this is awful"])[0]
    original = Runtime.load(tiny_pack[1]).predict(["this is awful"])[0]
    assert mixed.intent.label == original.intent.label
    probs = np.array(list(mixed.sentiment.probs.values()))
    assert abs(probs.sum() - 1) < 1e-4
    assert mixed.sentiment.probs != original.sentiment.probs


def test_hf_command_line_leaves_the_source_pack_alone(tiny_pack: tuple[Path, Path], tmp_path: Path) -> None:
    from export.cli import main

    ckpt = tiny_classifier(tmp_path / "ckpt", ["negative", "positive"], seed=1)
    source = tiny_pack[1]
    before = (source / "manifest.json").read_bytes()
    out = tmp_path / "mixed"
    assert main(["hf", str(ckpt), "--head", "sentiment", "--pack", str(source), "--out", str(out)]) == 0
    assert (source / "manifest.json").read_bytes() == before
    mixed = read_manifest(out)
    assert mixed.heads["sentiment"].labels == ["negative", "positive"]
    assert Runtime.load(out).predict(["fine"])[0].sentiment.label in {"negative", "positive"}


def test_card_command_rewrites_the_card_and_its_hash(tiny_pack: tuple[Path, Path], tmp_path: Path) -> None:
    from export.cli import main

    run, source = tiny_pack
    pack = tmp_path / "pack"
    shutil.copytree(source, pack)
    (pack / "MODEL_CARD.md").write_text("stale\n")
    assert main(["card", "--run", str(run), "--pack", str(pack)]) == 0
    card = (pack / "MODEL_CARD.md").read_text()
    assert card.startswith("# Model card: tiny 0.0.1") and "Banking77 intent accuracy" in card
    assert read_manifest(pack).files["MODEL_CARD.md"].sha256 == sha256_file(pack / "MODEL_CARD.md")
    Runtime.load(pack)  # every hash verifies
