"""The usual alternatives that ``python -m bench runtime`` measures Switchboard against.

(b) ``SeparateOnnxModels``: the same three heads as three separate int8 ONNX
    models (encoder + one head each), each with its own tokenization and one
    ``session.run`` per utterance, as three independent classifiers are
    usually deployed. Built by ``single_head_graphs`` from the training
    checkpoint with the pack's own export and quantization code
    (``export.onnx_export.export_graph`` with one head, then
    ``export.quantize.quantize``), cached under ``runs/bench/``.
(c) ``TransformersPipelines``: three Hugging Face ``text-classification``
    pipelines in PyTorch fp32 (softmax for sentiment/intent, sigmoid for
    emotion), each over a ``PreTrainedModel`` that wraps the checkpoint's
    encoder + mean pooling + one head, so it computes what the pack computes.

Import cost: this module imports torch/transformers only inside the functions
that need them; ``SeparateOnnxModels`` needs onnxruntime and tokenizers only,
so a cached (b) can be benchmarked without torch in the process.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import shutil
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from models.cpu import cpu_quota

HEADS = ("sentiment", "emotion", "intent")
HEAD_KIND = {"sentiment": "softmax", "emotion": "sigmoid", "intent": "softmax"}
# What the pipelines return: every sentiment/emotion score and the top-5 intents, like TextPrediction.
TOP_K: dict[str, int | None] = {"sentiment": None, "emotion": None, "intent": 5}
DEFAULT_CACHE = Path("runs/bench")
MAX_LENGTH = 128
STAMP = "stamp.json"


def checkpoint_fingerprint(checkpoint: Path) -> str:
    """Short sha256 over the checkpoint's weights and labels: the cache key of the (b) graphs."""
    digest = hashlib.sha256()
    for name in ("heads.safetensors", "labels.json", "config.json", "model.safetensors"):
        path = checkpoint / name
        digest.update(name.encode())
        if path.is_file():
            with path.open("rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
    return digest.hexdigest()[:16]


def _cached(out_dir: Path, fingerprint: str, preset: str) -> bool:
    stamp = out_dir / STAMP
    if not stamp.is_file():
        return False
    data = json.loads(stamp.read_text())
    files_ok = all((out_dir / f"{head}.int8.onnx").is_file() for head in HEADS)
    return bool(files_ok and data.get("fingerprint") == fingerprint and data.get("preset") == preset)


def single_head_graphs(checkpoint: Path, cache_dir: Path = DEFAULT_CACHE, preset: str = "portable") -> Path:
    """Export + int8-quantize one graph per head (cached); returns the folder holding them.

    The folder gets ``<head>.int8.onnx`` (output ``<head>_logits``), ``tokenizer.json``,
    ``labels.json`` and a stamp with the checkpoint fingerprint and quantization preset.
    """
    fingerprint = checkpoint_fingerprint(checkpoint)
    out_dir = cache_dir / f"separate-{fingerprint}-{preset}"
    if _cached(out_dir, fingerprint, preset):
        return out_dir
    from export.modeling import load_checkpoint
    from export.onnx_export import export_graph
    from export.quantize import quantize

    model, _ = load_checkpoint(checkpoint, attn_implementation="eager")
    out_dir.mkdir(parents=True, exist_ok=True)
    inputs: list[str] = []
    for head in HEADS:
        fp32 = out_dir / f"{head}.fp32.onnx"
        inputs = export_graph(model, fp32, heads=(head,))
        model.eval()  # torch.onnx.export restores the wrapper's (train) mode on exit
        quantize(fp32, out_dir / f"{head}.int8.onnx", preset)
        fp32.unlink()
    shutil.copy(checkpoint / "tokenizer.json", out_dir / "tokenizer.json")
    shutil.copy(checkpoint / "labels.json", out_dir / "labels.json")
    stamp = {"fingerprint": fingerprint, "preset": preset, "inputs": inputs, "checkpoint": str(checkpoint)}
    (out_dir / STAMP).write_text(json.dumps(stamp, indent=2))
    return out_dir


def _probabilities(logits: np.ndarray, kind: str) -> np.ndarray:
    if kind == "sigmoid":
        return np.asarray(1.0 / (1.0 + np.exp(-logits)))
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return np.asarray(shifted / shifted.sum(axis=-1, keepdims=True))


class SeparateOnnxModels:
    """Baseline (b): three int8 ONNX classifiers, one utterance per call, each tokenizing on its own."""

    def __init__(self, folder: Path, intra_op_threads: int | None = None) -> None:
        stamp = json.loads((folder / STAMP).read_text())
        self.labels: dict[str, list[str]] = json.loads((folder / "labels.json").read_text())
        self.inputs: list[str] = list(stamp["inputs"])
        threads = intra_op_threads or cpu_quota().cpus
        self.sessions: dict[str, ort.InferenceSession] = {}
        self.tokenizers: dict[str, Tokenizer] = {}
        for head in HEADS:
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.log_severity_level = 3
            path = str(folder / f"{head}.int8.onnx")
            self.sessions[head] = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
            tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
            tokenizer.no_padding()
            tokenizer.enable_truncation(MAX_LENGTH)
            self.tokenizers[head] = tokenizer

    def _feed(self, head: str, text: str) -> dict[str, np.ndarray]:
        ids = np.array([self.tokenizers[head].encode(text).ids], dtype=np.int64)
        tensors = {
            "input_ids": ids,
            "attention_mask": np.ones_like(ids),
            "token_type_ids": np.zeros_like(ids),
        }
        return {name: tensors[name] for name in self.inputs}

    def predict(self, text: str) -> dict[str, list[float]]:
        """Probabilities per head for one text (three tokenizations, three runs)."""
        result = {}
        for head in HEADS:
            (logits,) = self.sessions[head].run([f"{head}_logits"], self._feed(head, text))
            result[head] = _probabilities(logits[0], HEAD_KIND[head]).tolist()
        return result


def _head_model_class() -> type:
    """A ``PreTrainedModel`` subclass (built lazily: defining it imports torch/transformers)."""
    from torch import nn
    from transformers import PreTrainedModel
    from transformers.modeling_outputs import SequenceClassifierOutput

    class PooledHeadClassifier(PreTrainedModel):
        """The multi-task model reduced to one head, as a sequence classifier for pipelines."""

        base_model_prefix = "model"
        _supports_sdpa = True  # attention runs inside the wrapped encoder, which was built with SDPA

        def __init__(self, config: Any, model: nn.Module, head: str) -> None:
            super().__init__(config)
            self.model = model
            self.head = head

        def forward(
            self, input_ids: Any, attention_mask: Any = None, token_type_ids: Any = None, **_: Any
        ) -> SequenceClassifierOutput:
            return SequenceClassifierOutput(
                logits=self.model(input_ids, attention_mask, token_type_ids)[self.head]
            )

    return PooledHeadClassifier


class TransformersPipelines:
    """Baseline (c): three ``transformers`` text-classification pipelines, PyTorch fp32.

    Each head gets its own encoder copy (three separate models, as they are
    usually trained and deployed). Torch uses the process's CPU quota for
    intra-op threads. Every client thread gets its own pipelines (sharing the
    models) because a fast tokenizer is not safe to share between threads.
    """

    def __init__(self, checkpoint: Path, threads: int | None = None) -> None:
        import torch
        from transformers import AutoTokenizer
        from transformers.utils import logging as hf_logging

        from export.modeling import load_checkpoint

        # Silences "model not supported for text-classification" (an error-level log): it is, by duck typing.
        hf_logging.set_verbosity(hf_logging.CRITICAL)
        torch.set_num_threads(threads or cpu_quota().cpus)
        model, _ = load_checkpoint(checkpoint)
        self.labels: dict[str, list[str]] = dict(model.labels)
        self._checkpoint = checkpoint
        self._tokenizer_class = AutoTokenizer
        classifier = _head_model_class()
        self.models: dict[str, Any] = {}
        for head in HEADS:
            config = copy.deepcopy(model.encoder.config)
            config.id2label = dict(enumerate(self.labels[head]))
            config.label2id = {label: i for i, label in enumerate(self.labels[head])}
            config.problem_type = (
                "multi_label_classification"
                if HEAD_KIND[head] == "sigmoid"
                else "single_label_classification"
            )
            self.models[head] = classifier(config, copy.deepcopy(model), head).eval()
        self._local = threading.local()

    def _pipelines(self) -> dict[str, Any]:
        pipes: dict[str, Any] | None = getattr(self._local, "pipes", None)
        if pipes is None:
            from transformers import pipeline

            tokenizer = self._tokenizer_class.from_pretrained(str(self._checkpoint))
            pipes = {
                head: pipeline(
                    "text-classification",
                    model=self.models[head],
                    tokenizer=tokenizer if head == "sentiment" else copy.deepcopy(tokenizer),
                    device=-1,
                    top_k=TOP_K[head],
                    function_to_apply=HEAD_KIND[head],
                )
                for head in HEADS
            }
            self._local.pipes = pipes
        return pipes

    def predict(self, text: str) -> dict[str, list[dict[str, Any]]]:
        """Every label's score per head for one text (three pipeline calls)."""
        import torch

        with torch.inference_mode():
            return {
                head: pipe(text, truncation=True, max_length=MAX_LENGTH)
                for head, pipe in self._pipelines().items()
            }


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m export.baseline graphs --checkpoint DIR [--cache runs/bench]``: build/cache (b)."""
    parser = argparse.ArgumentParser(prog="python -m export.baseline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    graphs = sub.add_parser("graphs", help="export the three single-head int8 graphs (cached)")
    graphs.add_argument("--checkpoint", type=Path, required=True)
    graphs.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    graphs.add_argument("--preset", default="portable")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    print(single_head_graphs(args.checkpoint, args.cache, args.preset))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
