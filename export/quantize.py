"""Dynamic int8 quantization with onnxruntime, portable across x86 CPUs.

Why this configuration (``portable``, the default): dynamic quantization makes
activations uint8. With int8 (s8) weights onnxruntime uses its U8S8 kernels,
which on AVX2 CPUs without VNNI multiply-add pairs into int16 with saturation
(``vpmaddubsw``) and can silently lose accuracy; the usual workaround,
``reduce_range``, cost six points of macro-recall in our calibration run. With
uint8 weights (U8U8) the kernels widen to int16 before multiplying and never
saturate, so the same file gives the same answers on AVX2-only and AVX-512 VNNI
machines. Per-channel weight scales keep the accuracy of fp32 (per-tensor
scales flipped ~6% of sentiment predictions).

So the default ``portable`` preset keeps the fast s8 kernels but with 7-bit
weights (``reduce_range``) and per-channel scales: 255 x 63 x 2 = 32130 fits in
int16, so AVX2 cannot saturate, while per-channel scales win back most of what
7-bit weights lose. ``vnni`` (full 8-bit s8 weights) is for fleets known to
have VNNI; ``u8u8`` never saturates but runs about half as fast on VNNI CPUs.
``python -m export evaluate`` reports fp32 agreement for every preset.
The word-embedding ``Gather`` is quantized too: it is most of the fp32 size.
The intent memory's similarity ``MatMul`` (``/memory/``) stays fp32: its cosines
are divided by a temperature of 0.02-0.05, so an int8 error of 0.005 moves a
logit by 0.1-0.25 (a quantized memory lowered Banking77 in our build; the test
suite checks that the memory stays fp32).

Before quantizing, ``fuse_attention`` fuses each self-attention block into one
``Attention`` op (and bias + GELU into ``BiasGelu``), which quantizes to
``QAttention``: the same int8 arithmetic in one kernel instead of about twenty
nodes. On the default pack the outputs were bit for bit those of the unfused
graph and one utterance ran about 5% faster on one thread (``python -m export
fuse`` rebuilds an existing pack's graph this way and checks the outputs).
SkipLayerNormalization stays unfused (slower on our CPUs: see
``models.pack.DISABLED_OPTIMIZERS``) and so does EmbedLayerNormalization (the
word-embedding ``Gather`` is quantized on its own, as before).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import onnx
from onnxruntime.quantization import QuantType, quantize_dynamic

FP32_SCOPES = ("/memory/",)

PRESETS: dict[str, dict[str, object]] = {
    "portable": {"weight_type": QuantType.QInt8, "per_channel": True, "reduce_range": True},
    "vnni": {"weight_type": QuantType.QInt8, "per_channel": True, "reduce_range": False},
    "u8u8": {"weight_type": QuantType.QUInt8, "per_channel": True, "reduce_range": False},
}


def fuse_attention(fp32: Path, out: Path) -> int:
    """Write ``out``: ``fp32`` with its BERT self-attention blocks fused into ``Attention`` ops.

    Returns how many blocks were fused (0: no block matched the pattern; ``out`` is then
    ``fp32`` with at most bias + GELU fused). Head count and width are read off the graph.
    """
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions("bert")
    options.enable_skip_layer_norm = False
    options.enable_embed_layer_norm = False
    model = optimize_model(
        str(fp32), model_type="bert", optimization_options=options, opt_level=0, use_gpu=False
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save_model_to_file(str(out))
    return int(model.get_fused_operator_statistics().get("Attention", 0))


def quantize(fp32: Path, int8: Path, preset: str = "portable", *, fuse: bool = True) -> dict[str, object]:
    """Quantize MatMul/Gemm weights of ``fp32`` into ``int8`` (attention fused first unless
    ``fuse`` is False); returns the settings, sizes and how many attention blocks were fused."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    settings = PRESETS[preset]
    int8.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        source, fused = fp32, 0
        if fuse:
            source = Path(tmp) / "fused.fp32.onnx"
            fused = fuse_attention(fp32, source)
        graph = onnx.load(str(source), load_external_data=False).graph
        keep_fp32 = [node.name for node in graph.node if node.name.startswith(FP32_SCOPES)]
        quantize_dynamic(
            str(source),
            str(int8),
            op_types_to_quantize=["MatMul", "Gemm", "Gather", "Attention"],
            weight_type=settings["weight_type"],
            per_channel=bool(settings["per_channel"]),
            reduce_range=bool(settings["reduce_range"]),
            nodes_to_exclude=keep_fp32,
            extra_options={"MatMulConstBOnly": True, "DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    return {
        "preset": preset,
        "weight_type": str(settings["weight_type"]),
        "per_channel": settings["per_channel"],
        "reduce_range": settings["reduce_range"],
        "fused_attention": fused,
        "fp32_bytes": fp32.stat().st_size,
        "int8_bytes": int8.stat().st_size,
    }
