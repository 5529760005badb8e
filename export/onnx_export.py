"""Export a checkpoint to one ONNX graph with a named output per head, and check it.

The graph takes ``input_ids``, ``attention_mask`` and (when the backbone uses
them) ``token_type_ids``, all int64 with dynamic batch and sequence axes, and
returns ``<head>_logits`` for every head of the checkpoint plus
``sentence_embedding``: the unit-length mean-pooled vector of the layers the
checkpoint names for it (``MultiHeadModel.sentence_embedding``), from the same
encoder pass (used for contact reasons defined by examples).
Pooling is inside the graph, so the runtime only tokenizes and calibrates.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from export.modeling import EMBEDDING, HEADS, MultiHeadModel, load_checkpoint

EMBEDDING_OUTPUT = "sentence_embedding"

CHECK_TEXTS = [
    "I still haven't received my card and it's been two weeks, this is ridiculous",
    "thanks so much, that fixed it!",
    "how do I change my PIN",
    "I want to cancel my account and speak to a real person",
    "what's the weather like in Paris tomorrow",
    "ok",
]


class _Export(nn.Module):
    """Positional-argument wrapper: ONNX export wants a tuple of outputs."""

    def __init__(self, model: MultiHeadModel, heads: tuple[str, ...]):
        super().__init__()
        self.model, self.heads = model, heads

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        means = self.model.layer_means(input_ids, attention_mask, token_type_ids)
        logits = self.model.head_logits(means)
        return (*(logits[h] for h in self.heads), self.model.sentence_embedding(means))


def input_names(model: MultiHeadModel) -> list[str]:
    """Graph inputs the backbone needs."""
    names = ["input_ids", "attention_mask"]
    return [*names, "token_type_ids"] if model.uses_token_types else names


def export_graph(
    model: MultiHeadModel, path: Path, heads: tuple[str, ...] | None = None, opset: int = 17
) -> list[str]:
    """Write ``model`` (restricted to ``heads``, default all it has) as ONNX; returns the input names."""
    heads = heads or tuple(h for h in HEADS if h in model.heads)
    model.eval()
    # A fresh wrapper module starts in training mode, and the exporter follows
    # the top module's flag: without .eval() dropout lands in the graph.
    wrapper = _Export(model, heads).eval()
    ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]], dtype=torch.long)
    mask = (ids != 0).long()
    names = input_names(model)
    outputs = [f"{h}_logits" for h in heads] + [EMBEDDING_OUTPUT]
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    axes.update({o: {0: "batch"} for o in outputs})
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(
            wrapper,
            (ids, mask, torch.zeros_like(ids)),
            str(path),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=outputs,
            dynamic_axes=axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    widths = {f"{h}_logits": len(model.labels[h]) for h in heads}
    widths[EMBEDDING_OUTPUT] = embedding_width(model)
    _set_output_widths(path, widths)
    return names


def embedding_width(model: MultiHeadModel) -> int:
    """Width of ``sentence_embedding``: the hidden size times the layers it concatenates."""
    return int(model.encoder.config.hidden_size) * len(model.layers.get(EMBEDDING, [model.last_layer]))


def _set_output_widths(path: Path, widths: dict[str, int]) -> None:
    """Write the static last dimension of each output into the graph: the exporter leaves a
    computed one symbolic, and the pack's manifest takes the embedding width from the graph."""
    graph = onnx.load(str(path))
    for output in graph.graph.output:
        if output.name in widths:
            dim = output.type.tensor_type.shape.dim[-1]
            dim.ClearField("dim_param")
            dim.dim_value = widths[output.name]
    onnx.save(graph, str(path))


def encode_for_onnx(tokenizer, texts: list[str], names: list[str], max_length: int) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    """Tokenize with padding to the longest text; only the inputs the graph takes."""
    batch = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="np")
    feeds = {
        "input_ids": batch["input_ids"].astype(np.int64),
        "attention_mask": batch["attention_mask"].astype(np.int64),
    }
    if "token_type_ids" in names:
        feeds["token_type_ids"] = np.zeros_like(feeds["input_ids"])
    return feeds


def max_abs_diff(model: MultiHeadModel, tokenizer, path: Path, heads: tuple[str, ...] | None = None) -> float:  # type: ignore[no-untyped-def]
    """Largest absolute logit difference between PyTorch and the ONNX graph on CHECK_TEXTS."""
    heads = heads or tuple(h for h in HEADS if h in model.heads)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    feeds = encode_for_onnx(tokenizer, CHECK_TEXTS, names, 128)
    onnx_out = session.run([f"{h}_logits" for h in heads], feeds)
    with torch.no_grad():
        torch_out = model(**{k: torch.from_numpy(v) for k, v in feeds.items()})
    return float(max(np.abs(o - torch_out[h].numpy()).max() for o, h in zip(onnx_out, heads, strict=True)))


def export_checkpoint(checkpoint: Path, out_dir: Path, tolerance: float = 1e-4) -> dict[str, object]:
    """Export ``checkpoint`` to ``out_dir/model.fp32.onnx`` (+ tokenizer.json) and verify it.

    Raises ``ValueError`` when ONNX and PyTorch disagree by more than ``tolerance``.
    """
    model, tokenizer = load_checkpoint(checkpoint, attn_implementation="eager")
    path = out_dir / "model.fp32.onnx"
    names = export_graph(model, path)
    diff = max_abs_diff(model, tokenizer, path)
    if diff > tolerance:
        raise ValueError(f"ONNX export differs from PyTorch by {diff:.2e} (> {tolerance:.0e})")
    shutil.copy(checkpoint / "tokenizer.json", out_dir / "tokenizer.json")
    (out_dir / "inputs.json").write_text(json.dumps(names))
    return {"path": str(path), "inputs": names, "max_abs_diff": diff}
