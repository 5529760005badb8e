"""Refit the intent head on the encoder as it is served: the int8 graph's own pooled vectors.

The refit (``export.refit``) fits the intent head on the fp32 encoder and keeps
the epoch that scores best on the calibration half; quantization then moves
every pooled vector a little, and the head meets vectors it was not fitted on.
This step reads the pooled layer the intent head reads *from the int8 graph*,
one text per run as the runtime serves it, fits a fresh linear head of the same
shape to convergence (a fixed schedule, so the calibration half stays untouched
for the temperature that ``export evaluate`` fits afterwards) with label
smoothing, and writes it into the int8 graph, re-quantized per output channel
like the rest of the pack (``export.quantize``, preset ``portable``: symmetric,
7-bit range). When a run's fp32 graph is given, the same head goes into it, so
``export evaluate`` compares like with like.

Why label smoothing: 77 close intents ("card not working" vs "card swallowed")
reward a head that does not push every training sentence to certainty. The
setting was chosen on exploratory runs that are not committed; the committed
figure is the card's (``export evaluate`` after this step). Only the intent
head is refitted here: the other heads and the sentence embedding keep their
outputs bit for bit.

Run by ``python -m export build`` after ``quantize``, and on its own as
``python -m export served-head --pack PACK [--run RUN]``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import numpy_helper
from tokenizers import Tokenizer
from torch import nn

from export.halves import halves, label_index
from export.mix import Sample
from routing.taxonomy import INTENT_ALIASES

# Weight range of the ``portable`` preset (7-bit symmetric int8, see export/quantize.py).
QMAX = 64
INT8_WEIGHT = "model.heads.{head}.weight_Transposed"
FP32_WEIGHT = "model.heads.{head}.weight"
BIAS = "model.heads.{head}.bias"


@dataclass(frozen=True)
class HeadSettings:
    """The fixed schedule of the served-head refit (recorded in its report)."""

    epochs: int = 30
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.01
    dropout: float = 0.1
    label_smoothing: float = 0.1
    warmup: float = 0.06
    seed: int = 13


class ServedHeadError(ValueError):
    """The graph has no int8 head of the expected shape to refit."""


def _initializers(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    return {init.name: init for init in model.graph.initializer}


def pooled_input(model: onnx.ModelProto, head: str = "intent") -> str:
    """Name of the float tensor the int8 ``head`` reads: the input its dynamic quantization takes.

    Raises ServedHeadError when the graph has no quantized ``head``.
    """
    weight = INT8_WEIGHT.format(head=head) + "_quantized"
    producers = {out: node for node in model.graph.node for out in node.output}
    for node in model.graph.node:
        if node.op_type == "MatMulInteger" and node.input[1] == weight:
            quant = producers.get(node.input[0])
            if quant is None or quant.op_type != "DynamicQuantizeLinear":
                break
            return str(quant.input[0])
    raise ServedHeadError(f"no int8 {head!r} head ({weight!r}) fed by a dynamic quantization in the graph")


def _check_plain(model: onnx.ModelProto, head: str) -> None:
    """The head's output must be its linear layer's own (no prototype memory blended after it)."""
    bias = BIAS.format(head=head)
    for node in model.graph.node:
        if f"{head}_logits" in node.output:
            if bias not in node.input:
                raise ServedHeadError(
                    f"{head}_logits is not the linear {head} head's output (an intent memory?); "
                    "this step refits a plain linear head only"
                )
            return
    raise ServedHeadError(f"the graph has no output {head}_logits")


def served_pooled(
    graph: Path, tokenizer: Path, max_length: int, texts: Sequence[str], head: str = "intent"
) -> np.ndarray:
    """The vectors ``head`` reads in the int8 ``graph`` for ``texts``: [n, hidden], one text per run."""
    model = onnx.load(str(graph))
    name = pooled_input(model, head)
    model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    wanted = {i.name for i in session.get_inputs()}
    encoder = Tokenizer.from_file(str(tokenizer))
    encoder.enable_truncation(max_length)
    encoder.no_padding()
    rows = []
    for encoding in encoder.encode_batch(list(texts)):
        ids = np.array([encoding.ids], np.int64)
        feed = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        (value,) = session.run([name], {k: v for k, v in feed.items() if k in wanted})
        rows.append(np.asarray(value, np.float32).reshape(-1))
    return np.stack(rows) if rows else np.zeros((0, 0), np.float32)


def fit_linear(
    x: np.ndarray, y: np.ndarray, classes: int, settings: HeadSettings
) -> tuple[np.ndarray, np.ndarray]:
    """Fit ``logits = x @ W.T + b`` by smoothed cross-entropy; returns (W [classes, hidden], b [classes])."""
    generator = torch.Generator().manual_seed(settings.seed)
    torch.manual_seed(settings.seed)
    head = nn.Linear(x.shape[1], classes)
    dropout = nn.Dropout(settings.dropout)
    features, targets = (
        torch.from_numpy(np.ascontiguousarray(x, np.float32)),
        torch.from_numpy(y.astype(np.int64)),
    )
    optimizer = torch.optim.AdamW(head.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    per_epoch = math.ceil(len(features) / settings.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=settings.lr, total_steps=settings.epochs * per_epoch, pct_start=settings.warmup
    )
    head.train()
    for _ in range(settings.epochs):
        order = torch.randperm(len(features), generator=generator)
        for start in range(0, len(features), settings.batch_size):
            rows = order[start : start + settings.batch_size]
            logits = head(dropout(features[rows]))
            loss = nn.functional.cross_entropy(
                logits, targets[rows], label_smoothing=settings.label_smoothing
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    return head.weight.detach().numpy().copy(), head.bias.detach().numpy().copy()


def _replace(
    model: onnx.ModelProto, name: str, value: np.ndarray, resize: bool = False, axis: int = -1
) -> None:
    """Overwrite initializer ``name``; its shape must stay, except its class ``axis`` when
    ``resize`` (a taxonomy that merged or added intents)."""
    inits = _initializers(model)
    if name not in inits:
        raise ServedHeadError(f"the graph has no initializer {name!r}")
    old = inits[name]
    kept, new = list(old.dims), list(value.shape)
    if resize and len(kept) == len(new):
        kept[axis] = new[axis] = 0
    if kept != new:
        raise ServedHeadError(f"{name!r} has shape {list(old.dims)}, the new head {list(value.shape)}")
    old.CopyFrom(numpy_helper.from_array(value.astype(numpy_helper.to_array(old).dtype), name))


def _resize_output(model: onnx.ModelProto, head: str, classes: int) -> None:
    """Give ``{head}_logits`` (and the product feeding it) ``classes`` columns in the graph's shapes."""
    for info in [*model.graph.output, *model.graph.value_info]:
        if info.name in (f"{head}_logits", f"{head}_logits_MatMul"):
            dims = info.type.tensor_type.shape.dim
            if len(dims) == 2:
                dims[1].Clear()
                dims[1].dim_value = classes


def write_int8_head(
    graph: Path, weight: np.ndarray, bias: np.ndarray, head: str = "intent", resize: bool = False
) -> np.ndarray:
    """Write a linear head (W [classes, hidden], b) into the int8 ``graph`` in place.

    ``resize``: the number of classes may differ from the graph's (the taxonomy changed).
    The weight is stored transposed, symmetric per output channel in the 7-bit range
    of the ``portable`` preset; returns the weight as stored (dequantized, [classes, hidden]).
    Raises ServedHeadError when shapes or names differ or the head is not a plain linear one.
    """
    model = onnx.load(str(graph))
    pooled_input(model, head)
    _check_plain(model, head)
    transposed = np.ascontiguousarray(weight.T, np.float32)  # [hidden, classes]
    scale = np.maximum(np.abs(transposed).max(0), 1e-12) / QMAX
    quantized = np.clip(np.round(transposed / scale), -QMAX, QMAX).astype(np.int8)
    base = INT8_WEIGHT.format(head=head)
    _replace(model, base + "_quantized", quantized, resize)
    _replace(model, base + "_scale", scale.astype(np.float32), resize)
    _replace(model, base + "_zero_point", np.zeros(scale.shape, np.int8), resize)
    _replace(model, BIAS.format(head=head), bias.astype(np.float32), resize)
    if resize:
        _resize_output(model, head, len(bias))
    onnx.save(model, str(graph))
    return (quantized.astype(np.float32) * scale).T


def write_fp32_head(
    graph: Path, weight: np.ndarray, bias: np.ndarray, head: str = "intent", resize: bool = False
) -> None:
    """Write a linear head into an fp32 graph exported by ``export.onnx_export`` (in place);
    ``resize`` as in ``write_int8_head``."""
    model = onnx.load(str(graph))
    _replace(model, FP32_WEIGHT.format(head=head), weight.astype(np.float32), resize, axis=0)
    _replace(model, BIAS.format(head=head), bias.astype(np.float32), resize)
    if resize:
        _resize_output(model, head, len(bias))
    onnx.save(model, str(graph))


def _accuracy(x: np.ndarray, y: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> float:
    return float(((x @ weight.T + bias).argmax(1) == y).mean()) if len(y) else 0.0


def _merged_accuracy(
    logits: np.ndarray, y: np.ndarray, old_labels: Sequence[str], index: dict[str, int]
) -> float:
    """Accuracy of another label set's logits, each old label read as the intent it is now
    (``INTENT_ALIASES``); an old label the taxonomy no longer has counts as wrong."""
    names = [INTENT_ALIASES.get(label, label) for label in old_labels]
    column = np.array([index.get(name, -1) for name in names], np.int64)
    return float((column[logits.argmax(1)] == y).mean()) if len(y) else 0.0


def refit_served_head(
    graph: Path,
    tokenizer: Path,
    max_length: int,
    train: Sequence[Sample],
    calibration: Sequence[Sample],
    fp32: Path | None = None,
    settings: HeadSettings | None = None,
    old_labels: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Refit the int8 ``graph``'s intent head on its own pooled vectors of ``train`` (in place).

    ``calibration`` (labelled requests) is only scored, before and after, for the report;
    the head's schedule is fixed. ``fp32`` (optional) gets the same head. ``old_labels``: the
    graph's head columns when the taxonomy changed them (the old head is then scored with its
    merged intents read as the intent they merged into). Returns the report.
    """
    settings = settings or HeadSettings()
    _check_plain(onnx.load(str(graph)), "intent")
    started = time.perf_counter()
    index = label_index("intent")
    labelled = [s for s in train if s.intent]
    # One session pools both sets: building it costs seconds on the 23 MB graph.
    pooled = served_pooled(graph, tokenizer, max_length, [s.text for s in [*labelled, *calibration]])
    x, cal_x = pooled[: len(labelled)], pooled[len(labelled) :]
    y = np.array([index[s.intent] for s in labelled], np.int64)
    pooled_seconds = time.perf_counter() - started
    weight, bias = fit_linear(x, y, len(index), settings)
    cal_y = np.array([index[s.intent] for s in calibration], np.int64)
    model = onnx.load(str(graph))
    inits = {k: numpy_helper.to_array(v) for k, v in _initializers(model).items()}
    base = INT8_WEIGHT.format(head="intent")
    old_w = (inits[base + "_quantized"].astype(np.float32) * inits[base + "_scale"]).T
    old_b = inits[BIAS.format(head="intent")]
    resize = len(old_b) != len(index)
    if not resize:
        before: float | None = _accuracy(cal_x, cal_y, old_w, old_b)
    elif old_labels is not None and len(old_labels) == len(old_b):
        before = _merged_accuracy(cal_x @ old_w.T + old_b, cal_y, old_labels, index)
    else:
        before = None
    stored = write_int8_head(graph, weight, bias, resize=resize)
    if fp32 is not None:
        write_fp32_head(fp32, weight, bias, resize=resize)
    return {
        "settings": asdict(settings),
        "train_texts": len(labelled),
        "calibration_texts": len(calibration),
        "classes_before": len(old_b),
        "classes": len(index),
        "calibration_accuracy_before": None if before is None else round(before, 4),
        "calibration_accuracy_after": round(_accuracy(cal_x, cal_y, stored, bias), 4),
        "pooling_seconds": round(pooled_seconds, 1),
        "seconds": round(time.perf_counter() - started, 1),
        "fp32_graph_updated": fp32 is not None,
    }


def calibration_requests(val: dict[str, list[Sample]], seed: int) -> list[Sample]:
    """The calibration half of the ``requests`` validation set (the half ``export evaluate`` fits on)."""
    cal, _ = halves(len(val["requests"]), seed)
    return [val["requests"][i] for i in cal.tolist()]
