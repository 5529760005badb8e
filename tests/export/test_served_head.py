"""The intent head refitted on the int8 graph's own pooled vectors (export/served_head.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

pytest.importorskip("torch")

from export.served_head import (
    HeadSettings,
    ServedHeadError,
    _merged_accuracy,
    fit_linear,
    pooled_input,
    served_pooled,
    write_int8_head,
)
from models.manifest import read_manifest
from models.packs import DEFAULT_PACK as DEFAULT_PACK_DIR

pytestmark = pytest.mark.export

TEXTS = ["i lost my credit card", "how do i top up my account", "my transfer has not arrived yet"]


@pytest.fixture(scope="module")
def pack_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pack") / "default"
    shutil.copytree(DEFAULT_PACK_DIR, out)
    return out


def _intent_logits(graph: Path, tokenizer: Path, text: str) -> np.ndarray:
    from tokenizers import Tokenizer

    ids = np.array([Tokenizer.from_file(str(tokenizer)).encode(text).ids], np.int64)
    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    return np.asarray(session.run(["intent_logits"], feed)[0])[0]


def test_the_pooled_input_is_the_tensor_the_int8_intent_head_quantizes() -> None:
    model = onnx.load(str(DEFAULT_PACK_DIR / "model.int8.onnx"))
    name = pooled_input(model, "intent")
    readers = [n for n in model.graph.node if name in n.input]
    assert any(n.op_type == "DynamicQuantizeLinear" for n in readers)
    with pytest.raises(ServedHeadError, match="no int8 'nothing' head"):
        pooled_input(model, "nothing")


def test_a_written_head_is_what_the_graph_computes_on_the_served_vectors(pack_copy: Path) -> None:
    manifest = read_manifest(pack_copy)
    graph, tokenizer = pack_copy / "model.int8.onnx", pack_copy / "tokenizer.json"
    x = served_pooled(graph, tokenizer, manifest.graphs["multitask"].max_length, TEXTS)
    assert x.shape == (3, 384)
    rng = np.random.default_rng(0)
    classes = len(manifest.heads["intent"].labels)
    weight = rng.normal(0, 0.5, (classes, 384)).astype(np.float32)
    bias = rng.normal(0, 0.1, classes).astype(np.float32)
    stored = write_int8_head(graph, weight, bias)
    assert np.abs(stored - weight).max() <= np.abs(weight).max(1, keepdims=True).max() / 64 / 2 + 1e-6
    for row, text in enumerate(TEXTS):
        expected = x[row] @ stored.T + bias
        got = _intent_logits(graph, tokenizer, text)
        # the graph quantizes the pooled vector too: a small error, never a different ranking of the far apart
        assert np.abs(got - expected).max() < 0.05 * np.abs(expected).max()
        assert got.argmax() == expected.argmax()


def test_a_head_of_the_wrong_shape_is_refused_and_the_graph_is_left_alone(pack_copy: Path) -> None:
    graph = pack_copy / "model.int8.onnx"
    before = graph.read_bytes()
    with pytest.raises(ServedHeadError, match="shape"):
        write_int8_head(graph, np.zeros((5, 384), np.float32), np.zeros(5, np.float32))
    assert graph.read_bytes() == before


def test_a_head_over_another_label_set_is_written_when_resizing_is_asked_for(
    tmp_path: Path, pack_copy: Path
) -> None:
    graph = tmp_path / "model.int8.onnx"
    shutil.copy(pack_copy / "model.int8.onnx", graph)
    rng = np.random.default_rng(2)
    weight, bias = rng.normal(0, 0.5, (7, 384)).astype(np.float32), rng.normal(0, 0.1, 7).astype(np.float32)
    write_int8_head(graph, weight, bias, resize=True)
    (output,) = [o for o in onnx.load(str(graph)).graph.output if o.name == "intent_logits"]
    assert output.type.tensor_type.shape.dim[1].dim_value == 7
    assert _intent_logits(graph, pack_copy / "tokenizer.json", TEXTS[0]).shape == (7,)
    with pytest.raises(ServedHeadError, match="shape"):  # only the class axis may change
        write_int8_head(graph, np.zeros((7, 100), np.float32), np.zeros(7, np.float32), resize=True)


def test_an_old_head_is_scored_with_its_merged_intents_read_as_the_intent_they_became() -> None:
    index = {"terminate_account": 0, "change_pin": 1}
    old = ["delete_account", "change_pin", "terminate_account", "some_gone_intent"]
    logits = np.array([[5, 0, 0, 0], [0, 5, 0, 0], [0, 0, 5, 0], [0, 0, 0, 5]], np.float32)
    y = np.array([0, 1, 0, 0])
    # delete_account merged into terminate_account: right; a label the taxonomy lost: wrong
    assert _merged_accuracy(logits, y, old, index) == 0.75


def test_fit_linear_separates_and_smoothing_keeps_it_short_of_certainty() -> None:
    rng = np.random.default_rng(1)
    centres = rng.normal(0, 1, (4, 16))
    y = np.repeat(np.arange(4), 50)
    x = (centres[y] + rng.normal(0, 0.3, (200, 16))).astype(np.float32)
    settings = HeadSettings(epochs=20, batch_size=16)
    weight, bias = fit_linear(x, y, 4, settings)
    logits = x @ weight.T + bias
    assert (logits.argmax(1) == y).mean() == 1.0
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    assert probs.max() < 0.97  # label smoothing 0.1 over 4 classes aims at 0.925 for the true class
    again, _ = fit_linear(x, y, 4, settings)
    assert np.array_equal(weight, again)  # seeded: the same head every run
