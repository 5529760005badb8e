"""``python -m export fuse``: an existing pack's int8 graph rebuilt with fused attention.

A pack quantized before ``export.quantize`` fused attention keeps its trained (and refitted)
weights: each graph is dequantized (``export.dequantize``: the int8 weights exactly, as fp32),
its attention blocks fused, and quantized again with the pack's own preset. Weights already
on the int8 grid quantize back to the same integers (a per-channel symmetric scale comes from
the column's largest weight, which sits on the end of the grid), so the outputs should not
move. The command checks that: it runs the old and the new graph on probe texts, one at a time
and as one padded batch, and writes nothing unless every output agrees within ``tolerance``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from export.dequantize import dequantize_graph
from export.quantize import quantize
from models.manifest import GraphSpec, read_manifest, write_manifest
from models.pack import DISABLED_OPTIMIZERS
from models.tokenize import pad_batch

# Short and long, typed and spoken, in and out of scope: the probes only have to exercise every
# path of the graph (padding included), not to be representative.
PROBES: tuple[str, ...] = (
    "i lost my credit card",
    "you charged me twice and nobody answers",
    "thanks, that's all",
    "hi",
    "can i book an appointment at the branch on friday morning",
    "what time do you open on saturday",
    "my parcel never arrived and the tracking has not moved for a week, i want a refund",
    "uh yeah so um the the payment didn't go through like three times",
    "I am absolutely furious, this is the third time I have called about the same problem",
    "cancel my subscription please",
    "how do i reset my password",
    "what's the weather like in paris",
    "my card number is four one one one and it got declined",
    "I'd like to speak to a manager right now",
    "the app keeps crashing when I try to transfer money to my savings account",
    "great, thank you so much for your help today!",
)


class FuseError(RuntimeError):
    """The rebuilt graph does not answer like the pack's own; nothing was written."""


def _feeds(graph: GraphSpec, tokenizer: Tokenizer, texts: Sequence[str]) -> list[dict[str, np.ndarray]]:
    """One feed per text, then one padded batch of all of them."""
    ids = [np.array(tokenizer.encode(text).ids[: graph.max_length], np.int64) for text in texts]
    feeds = []
    # Padded with 0, BERT's [PAD]: the probes only need some padding to go through the graph.
    for input_ids, attention in [*(pad_batch([one], 0) for one in ids), pad_batch(ids, 0)]:
        types = np.zeros_like(input_ids)
        full = {"input_ids": input_ids, "attention_mask": attention, "token_type_ids": types}
        feeds.append({name: full[name] for name in graph.inputs})
    return feeds


def largest_difference(old: Path, new: Path, feeds: Sequence[dict[str, np.ndarray]]) -> float:
    """The largest absolute difference between any output of ``old`` and ``new`` on ``feeds``."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    disabled = list(DISABLED_OPTIMIZERS)  # as the runtime opens a graph
    cpu = ["CPUExecutionProvider"]
    sessions = [
        ort.InferenceSession(str(path), options, providers=cpu, disabled_optimizers=disabled)
        for path in (old, new)
    ]
    names = [output.name for output in sessions[0].get_outputs()]
    largest = 0.0
    for feed in feeds:
        before, after = (session.run(names, feed) for session in sessions)
        for a, b in zip(before, after, strict=True):
            largest = max(largest, float(np.abs(np.asarray(a) - np.asarray(b)).max()))
    return largest


def fuse_pack(
    pack_dir: Path, *, version: str | None = None, tolerance: float = 1e-5, probes: Sequence[str] = PROBES
) -> dict[str, Any]:
    """Rebuild every graph of ``pack_dir`` with fused attention (see the module docstring).

    Rewrites the graph files and the manifest (fresh hashes; ``version`` if given; the
    quantization record gains ``fused_attention`` and the new ``int8_bytes``). Returns per
    graph the number of fused blocks and the largest output difference. Raises ``FuseError``
    (nothing written) when a rebuilt graph differs by more than ``tolerance`` or fuses no
    attention block.
    """
    manifest = read_manifest(pack_dir)
    record = dict(manifest.metrics.get("quantization", {}))
    preset = str(record.get("preset", "portable"))
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        rebuilt: dict[str, Path] = {}
        for name, graph in manifest.graphs.items():
            old = pack_dir / graph.file
            fp32 = Path(tmp) / f"{name}.fp32.onnx"
            dequantize_graph(old, fp32)
            new = Path(tmp) / f"{name}.int8.onnx"
            settings = quantize(fp32, new, preset)
            tokenizer = Tokenizer.from_file(str(pack_dir / graph.tokenizer))
            difference = largest_difference(old, new, _feeds(graph, tokenizer, probes))
            if not settings["fused_attention"]:
                raise FuseError(f"graph {name!r}: no attention block matched the fusion pattern")
            if difference > tolerance:
                raise FuseError(f"graph {name!r}: outputs moved by {difference:.3g} (> {tolerance:g})")
            rebuilt[name] = new
            report[name] = {"fused_attention": settings["fused_attention"], "largest_difference": difference}
        for name, new in rebuilt.items():
            (pack_dir / manifest.graphs[name].file).write_bytes(new.read_bytes())
    fused = sum(int(r["fused_attention"]) for r in report.values())
    size = sum((pack_dir / manifest.graphs[name].file).stat().st_size for name in rebuilt)
    metrics = {**manifest.metrics, "quantization": {**record, "fused_attention": fused, "int8_bytes": size}}
    manifest = msgspec.structs.replace(manifest, metrics=metrics, version=version or manifest.version)
    write_manifest(pack_dir, manifest)
    return report
