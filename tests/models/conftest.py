"""Fixtures for the models tests: tiny but real packs (ONNX graphs + tokenizer + manifest).

The graphs are built with ``onnx.helper`` (token + type embedding, tanh, masked
mean pooling, one linear layer per head), so they exercise the same tensor
names, dynamic shapes and masking as the real pack, in microseconds. Sessions
can be wrapped to be slow (gated) or failing through ``Runtime.load``'s
``session_factory`` seam.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

from models.manifest import (
    EmbeddingSpec,
    FileEntry,
    GraphSpec,
    HeadSpec,
    Manifest,
    read_manifest,
    write_manifest,
)
from models.pack import SessionLike, ort_session
from routing.taxonomy import ACT_LABELS

SENTIMENT = ["negative", "neutral", "positive"]
EMOTION = ["anger", "frustration", "confusion", "anxiety", "sadness", "gratitude", "joy", "neutral"]
INTENT = ["cancel_account", "dispute_charge", "track_order", "reset_password", "thank_agent", "out_of_scope"]
VOCAB_TEXT = """
i want to cancel my account please the bill is wrong charged twice where order package
password reset login thank you so much great help angry upset still not working again
why confused worried refund today now
"""
WORDS = VOCAB_TEXT.split()
DIM = 16
MAX_LENGTH = 16
EMBEDDING_DIM = 8


def build_tokenizer(path: Path, *, padding_length: int | None = 64) -> None:
    """A WordLevel tokenizer over WORDS with a BERT-style [CLS] $A [SEP] template."""
    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3}
    for word in WORDS:
        vocab.setdefault(word, len(vocab))
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    if padding_length is not None:  # like HF's saved tokenizers: the runtime must switch this off
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]", length=padding_length)
    tokenizer.save(str(path))


def vocab_size() -> int:
    return 4 + len(dict.fromkeys(WORDS))


def build_graph(
    path: Path,
    outputs: dict[str, int],
    *,
    inputs: Sequence[str] = ("input_ids", "attention_mask", "token_type_ids"),
    seed: int = 0,
    declared_width: dict[str, int] | None = None,
) -> None:
    """Embedding -> tanh -> masked mean -> Linear per output; outputs [batch, n]."""
    rng = np.random.default_rng(seed)
    inits = [
        numpy_helper.from_array(rng.normal(0, 1, (vocab_size(), DIM)).astype(np.float32), "E"),
        numpy_helper.from_array(rng.normal(0, 0.1, (2, DIM)).astype(np.float32), "T"),
        numpy_helper.from_array(np.array([-1], dtype=np.int64), "axis_last"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis_seq"),
        numpy_helper.from_array(np.array(1e-6, dtype=np.float32), "eps"),
    ]
    nodes = [helper.make_node("Gather", ["E", "input_ids"], ["tok"])]
    if "token_type_ids" in inputs:
        nodes += [
            helper.make_node("Gather", ["T", "token_type_ids"], ["typ"]),
            helper.make_node("Add", ["tok", "typ"], ["emb"]),
        ]
    else:
        nodes.append(helper.make_node("Identity", ["tok"], ["emb"]))
    nodes += [
        helper.make_node("Tanh", ["emb"], ["hidden"]),
        helper.make_node("Cast", ["attention_mask"], ["maskf"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["maskf", "axis_last"], ["mask3"]),
        helper.make_node("Mul", ["hidden", "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axis_seq"], ["summed"], keepdims=0),
        helper.make_node("ReduceSum", ["mask3", "axis_seq"], ["count"], keepdims=0),
        helper.make_node("Max", ["count", "eps"], ["count_safe"]),
        helper.make_node("Div", ["summed", "count_safe"], ["pooled"]),
    ]
    graph_outputs = []
    for name, width in outputs.items():
        inits += [
            numpy_helper.from_array(rng.normal(0, 1, (DIM, width)).astype(np.float32), f"W_{name}"),
            numpy_helper.from_array(rng.normal(0, 0.1, (width,)).astype(np.float32), f"b_{name}"),
        ]
        nodes += [
            helper.make_node("MatMul", ["pooled", f"W_{name}"], [f"mm_{name}"]),
            helper.make_node("Add", [f"mm_{name}", f"b_{name}"], [name]),
        ]
        declared = (declared_width or {}).get(name, width)
        graph_outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", declared]))
    graph_inputs = [
        helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "seq"]) for name in inputs
    ]
    graph = helper.make_graph(nodes, "tiny", graph_inputs, graph_outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def head(graph: str, output: str, kind: str, labels: list[str], **extra: Any) -> HeadSpec:
    return HeadSpec(graph=graph, output=output, kind=kind, labels=labels, **extra)  # type: ignore[arg-type]


def build_pack(folder: Path, *, mixed: bool = False, seed: int = 0, v2: bool = False) -> Path:
    """Write a complete tiny pack; ``mixed`` serves intent from a second, single-task graph.

    ``v2`` adds what pack v2 has: an act head and a sentence-embedding output.
    """
    folder.mkdir(parents=True, exist_ok=True)
    build_tokenizer(folder / "tokenizer.json")
    multitask = {"sentiment_logits": len(SENTIMENT), "emotion_logits": len(EMOTION)}
    if not mixed:
        multitask["intent_logits"] = len(INTENT)
    if v2:
        multitask["act_logits"] = len(ACT_LABELS)
        multitask["sentence_embedding"] = EMBEDDING_DIM
    build_graph(folder / "model.onnx", multitask, seed=seed)
    graphs = {
        "multitask": GraphSpec(
            file="model.onnx",
            inputs=["input_ids", "attention_mask", "token_type_ids"],
            max_length=MAX_LENGTH,
        )
    }
    files = {"model.onnx": FileEntry("", 0), "tokenizer.json": FileEntry("", 0)}
    intent = head("multitask", "intent_logits", "softmax", INTENT, temperature=1.5)
    if mixed:
        build_graph(
            folder / "intent.onnx", {"logits": len(INTENT)}, inputs=("input_ids", "attention_mask"), seed=7
        )
        graphs["intent_hf"] = GraphSpec(
            file="intent.onnx", inputs=["input_ids", "attention_mask"], max_length=12
        )
        files["intent.onnx"] = FileEntry("", 0)
        intent = head("intent_hf", "logits", "softmax", INTENT, source="hf:tiny")
    manifest = Manifest(
        name="tiny",
        version="0.0.1",
        graphs=graphs,
        heads={
            "sentiment": head("multitask", "sentiment_logits", "softmax", SENTIMENT, temperature=1.2),
            "emotion": head(
                "multitask", "emotion_logits", "sigmoid", EMOTION, thresholds={"anger": 0.4, "neutral": 0.7}
            ),
            "intent": intent,
            **({"act": head("multitask", "act_logits", "softmax", list(ACT_LABELS))} if v2 else {}),
        },
        files=files,
        embedding=EmbeddingSpec("multitask", "sentence_embedding", EMBEDDING_DIM, normalized=False)
        if v2
        else None,
    )
    write_manifest(folder, manifest)
    return folder


def edit_manifest(folder: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Apply ``change`` to the raw manifest JSON (no re-hashing: tests break packs on purpose)."""
    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@dataclass
class Described:
    name: str
    shape: list[Any]
    type: str


class ScriptedSession:
    """A real ONNX session with test controls: count runs, block on a gate, fail, hide output widths."""

    def __init__(self, inner: SessionLike, *, symbolic_outputs: bool = False) -> None:
        self.inner = inner
        self.symbolic_outputs = symbolic_outputs
        self.calls: list[int] = []  # batch size of every run
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.fail: Exception | None = None
        self._lock = threading.Lock()
        self.inside = 0  # runs inside the session right now
        self.peak = 0  # most runs ever inside at once

    def get_inputs(self) -> Any:
        return self.inner.get_inputs()

    def get_outputs(self) -> Any:
        if self.symbolic_outputs:  # as exported graphs often report: only a probe run can check widths
            return [Described(o.name, ["batch", "n"], o.type) for o in self.inner.get_outputs()]
        return self.inner.get_outputs()

    def run(self, output_names: list[str] | None, input_feed: dict[str, Any]) -> Any:
        with self._lock:
            self.inside += 1
            self.peak = max(self.peak, self.inside)
        try:
            self.entered.set()
            if not self.gate.wait(timeout=10):
                raise TimeoutError("test gate never opened")
            self.calls.append(int(input_feed["input_ids"].shape[0]))
            if self.fail is not None:
                raise self.fail
            return self.inner.run(output_names, input_feed)
        finally:
            with self._lock:
                self.inside -= 1


class SessionRecorder:
    """A ``session_factory`` that wraps every session in a ScriptedSession and keeps them."""

    def __init__(self) -> None:
        self.sessions: dict[str, ScriptedSession] = {}
        self.symbolic_outputs = False

    def __call__(self, path: Path, options: Any) -> ScriptedSession:
        session = ScriptedSession(ort_session(path, options), symbolic_outputs=self.symbolic_outputs)
        self.sessions[path.name] = session
        return session

    @property
    def main(self) -> ScriptedSession:
        return self.sessions["model.onnx"]


@pytest.fixture(scope="session")
def tiny_pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid single-graph tiny pack (do not modify: shared by the session)."""
    return build_pack(tmp_path_factory.mktemp("pack") / "tiny")


@pytest.fixture(scope="session")
def v2_pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny pack shaped like pack v2: act head and sentence embedding."""
    return build_pack(tmp_path_factory.mktemp("pack") / "v2", v2=True)


@pytest.fixture(scope="session")
def int8_pack(tmp_path_factory: pytest.TempPathFactory, v2_pack: Path) -> Path:
    """``v2_pack`` with its MatMuls dynamically quantized, as export quantizes the real pack."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    folder = tmp_path_factory.mktemp("pack") / "int8"
    shutil.copytree(v2_pack, folder)
    quantize_dynamic(str(v2_pack / "model.onnx"), str(folder / "model.onnx"), weight_type=QuantType.QInt8)
    write_manifest(folder, read_manifest(folder))
    return folder


@pytest.fixture(scope="session")
def mixed_pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid tiny pack whose intent head comes from a second graph."""
    return build_pack(tmp_path_factory.mktemp("pack") / "mixed", mixed=True)


@pytest.fixture
def fresh_pack(tmp_path: Path) -> Path:
    """A private copy of the tiny pack that a test may break."""
    return build_pack(tmp_path / "pack")


@pytest.fixture
def recorder() -> Iterator[SessionRecorder]:
    rec = SessionRecorder()
    yield rec
    for session in rec.sessions.values():  # never leave a worker blocked on a gate
        session.gate.set()


@pytest.fixture
def edit() -> Callable[[Path, Callable[[dict[str, Any]], None]], None]:
    """``edit(pack, change)``: apply ``change`` to the raw manifest JSON without re-hashing."""
    return edit_manifest


@pytest.fixture
def pack_builder() -> Callable[..., Path]:
    """``pack_builder(folder, mixed=False, seed=0)``: write a complete tiny pack."""
    return build_pack
