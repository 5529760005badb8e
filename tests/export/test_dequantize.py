"""The fp32 reference rebuilt from the int8 graph (export/dequantize.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from tokenizers import Tokenizer

onnx = pytest.importorskip("onnx")

from export.dequantize import DequantizeError, dequantize_graph  # noqa: E402
from models.packs import DEFAULT_PACK as DEFAULT_PACK_DIR  # noqa: E402

pytestmark = pytest.mark.export

TEXTS = ["i lost my credit card", "you charged me twice and nobody answers", "thanks, that's all"]


def _run(graph: Path, text: str) -> list[np.ndarray]:
    ids = np.array([Tokenizer.from_file(str(DEFAULT_PACK_DIR / "tokenizer.json")).encode(text).ids], np.int64)
    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    return [np.asarray(v)[0] for v in session.run(None, feed)]


def test_every_int8_matmul_becomes_fp32_and_the_outputs_stay_close(tmp_path: Path) -> None:
    out = tmp_path / "reference.onnx"
    replaced = dequantize_graph(DEFAULT_PACK_DIR / "model.int8.onnx", out)
    ops = {node.op_type for node in onnx.load(str(out)).graph.node}
    assert replaced == 28  # 22 MatMulInteger and 6 QAttention (fused attention blocks)
    assert not ops & {"MatMulInteger", "DynamicQuantizeLinear", "QAttention"}
    assert "Attention" in ops
    for text in TEXTS:
        int8, fp32 = _run(DEFAULT_PACK_DIR / "model.int8.onnx", text), _run(out, text)
        assert len(int8) == len(fp32) == 5
        for a, b in zip(int8, fp32, strict=True):
            assert a.argmax() == b.argmax()
        assert np.abs(int8[-1] - fp32[-1]).max() < 0.05  # the unit-length sentence embedding


def test_a_matmul_outside_the_quantize_dynamic_chain_is_refused(tmp_path: Path) -> None:
    model = onnx.load(str(DEFAULT_PACK_DIR / "model.int8.onnx"))
    node = next(n for n in model.graph.node if n.op_type == "MatMulInteger")
    casts = [n for n in model.graph.node if n.op_type == "Cast" and node.output[0] in n.input]
    casts[0].op_type = "Identity"
    broken = tmp_path / "broken.onnx"
    onnx.save(model, str(broken))
    with pytest.raises(DequantizeError, match="expected one Cast"):
        dequantize_graph(broken, tmp_path / "out.onnx")
