"""``export hf``: serve one head from any Hugging Face sequence-classification checkpoint.

The checkpoint is exported to ONNX with a single output named ``<head>_logits``,
quantized with the same preset as the pack, checked against PyTorch, and added
to an existing pack: the manifest then says that this head is served by the
new graph (with its own tokenizer and labels) while the other heads stay on
the multi-task graph.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

import numpy as np
import onnxruntime as ort
import torch
from torch import nn
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from export.pack import KINDS, LABELS
from export.quantize import quantize
from models.manifest import FileEntry, GraphSpec, HeadSpec, Manifest, read_manifest, write_manifest


class _Logits(nn.Module):
    def __init__(self, model: nn.Module, names: list[str]):
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.names, inputs, strict=True))).logits


def map_labels(id2label: dict[int, str], head: str, mapping: dict[str, str]) -> list[str]:
    """Checkpoint labels in output order, renamed by ``mapping``; all must be in the head's label set."""
    labels = [
        mapping.get(id2label[i], id2label[i]).lower()
        if head != "intent"
        else mapping.get(id2label[i], id2label[i])
        for i in range(len(id2label))
    ]
    unknown = [x for x in labels if x not in LABELS[head]]
    if unknown:
        raise ValueError(
            f"labels {unknown} are not {head} labels ({', '.join(LABELS[head][:10])}…); "
            "rename them with --label-map OLD=NEW"
        )
    if len(set(labels)) != len(labels):
        raise ValueError(f"label mapping produces duplicates: {labels}")
    return labels


def export_hf(
    checkpoint: str,
    head: str,
    pack_dir: Path,
    *,
    label_map: dict[str, str] | None = None,
    kind: str | None = None,
    max_length: int = 128,
    preset: str = "portable",
    tolerance: float = 1e-3,
) -> Manifest:
    """Add ``checkpoint`` to the pack at ``pack_dir`` as the model that serves ``head``."""
    if head not in LABELS:
        raise ValueError(f"head must be one of {sorted(LABELS)}, got {head!r}")
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint, attn_implementation="eager").eval()
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(
            "the checkpoint needs a fast tokenizer (tokenizer.json) to be served without transformers"
        )
    labels = map_labels({int(k): v for k, v in model.config.id2label.items()}, head, label_map or {})
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in tokenizer.model_input_names]
    key = f"{head}_hf"
    graph_file, tok_file = f"{key}.int8.onnx", f"{key}.tokenizer.json"
    sample = tokenizer(["I am really unhappy with this", "thanks!"], padding=True, return_tensors="pt")
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "model.onnx"
        with torch.no_grad():
            torch.onnx.export(
                _Logits(model, names).eval(),
                tuple(sample[n] for n in names),
                str(fp32),
                input_names=names,
                output_names=[f"{head}_logits"],
                dynamic_axes={
                    **{n: {0: "batch", 1: "sequence"} for n in names},
                    f"{head}_logits": {0: "batch"},
                },
                opset_version=17,
                dynamo=False,
            )
            expected = model(**{n: sample[n] for n in names}).logits.numpy()
        got = ort.InferenceSession(str(fp32)).run(None, {n: sample[n].numpy() for n in names})[0]
        diff = float(np.abs(got - expected).max())
        if diff > tolerance:
            raise ValueError(f"ONNX export of {checkpoint} differs from PyTorch by {diff:.2e}")
        quantize(fp32, pack_dir / graph_file, preset)
    tokenizer.backend_tokenizer.save(str(pack_dir / tok_file))
    manifest = read_manifest(pack_dir)
    graphs = {
        **manifest.graphs,
        key: GraphSpec(file=graph_file, inputs=names, tokenizer=tok_file, max_length=max_length),
    }
    head_kind: Literal["softmax", "sigmoid"] = "sigmoid" if (kind or KINDS[head]) == "sigmoid" else "softmax"
    spec = HeadSpec(
        graph=key,
        output=f"{head}_logits",
        kind=head_kind,
        labels=labels,
        thresholds={x: 0.5 for x in labels} if head_kind == "sigmoid" else {},
        source=f"hf:{checkpoint}",
    )
    files = {**manifest.files, graph_file: FileEntry("", 0), tok_file: FileEntry("", 0)}
    fields = {f: getattr(manifest, f) for f in manifest.__struct_fields__}
    fields.update(graphs=graphs, heads={**manifest.heads, head: spec}, files=files)
    updated = Manifest(**fields)
    write_manifest(pack_dir, updated)
    return read_manifest(pack_dir)
