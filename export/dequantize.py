"""An fp32 reference graph rebuilt from a dynamic-int8 one: the int8 weights, fp32 activations.

``export evaluate`` compares the pack's int8 graph with the run's fp32 graph.
When that fp32 graph is gone (a pack refitted after its training run's folder
was cleaned up), this rebuilds a reference: every ``DynamicQuantizeLinear ->
MatMulInteger -> Cast -> Mul`` chain that ``onnxruntime.quantization.quantize_dynamic``
wrote becomes one fp32 ``MatMul`` with the dequantized weight, and every
``DynamicQuantizeLinear -> QAttention`` (a fused attention block, ``export.quantize``)
one fp32 ``Attention`` with the dequantized QKV weight. The comparison
then measures what quantizing the *activations* costs, not what quantizing the
weights cost; the card says which reference it used.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper


class DequantizeError(ValueError):
    """The graph holds a quantized MatMul in a pattern this module does not rebuild."""


def dequantize_graph(int8: Path, out: Path) -> int:
    """Write ``out``: ``int8`` with every dynamic-int8 MatMul (and QAttention) replaced by an fp32
    one; returns how many nodes were replaced.

    Raises DequantizeError when a ``MatMulInteger`` or ``QAttention`` is not in the chain
    ``quantize_dynamic`` writes.
    """
    model = onnx.load(str(int8))
    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    producers = {name: node for node in graph.node for name in node.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    dropped: set[int] = set()
    replacement: dict[int, onnx.NodeProto] = {}
    for node in graph.node:
        if node.op_type == "QAttention":
            replacement[id(node)] = _attention(node, producers, inits, graph)
            continue
        if node.op_type != "MatMulInteger":
            continue
        quant = producers.get(node.input[0])
        cast = _only(consumers.get(node.output[0], []), "Cast", node.name)
        mul = _only(consumers.get(cast.output[0], []), "Mul", node.name)
        scales = producers.get(next(i for i in mul.input if i != cast.output[0]))
        if (
            quant is None
            or quant.op_type != "DynamicQuantizeLinear"
            or scales is None
            or scales.op_type != "Mul"
        ):
            raise DequantizeError(f"{node.name!r} is not a dynamic-int8 MatMul chain")
        weight_name, zero_name = node.input[1], node.input[3]
        scale_name = next(i for i in scales.input if i != quant.output[1])
        weight = numpy_helper.to_array(inits[weight_name]).astype(np.float32)
        zero = numpy_helper.to_array(inits[zero_name]).astype(np.float32)
        scale = numpy_helper.to_array(inits[scale_name]).astype(np.float32)
        name = _fp32_name(weight_name, inits)
        graph.initializer.append(numpy_helper.from_array((weight - zero) * scale, name))
        replacement[id(node)] = onnx.helper.make_node(
            "MatMul", [quant.input[0], name], [mul.output[0]], name=node.name + "_fp32"
        )
        dropped.update({id(cast), id(mul), id(scales)})

    kept = [replacement.get(id(node), node) for node in graph.node if id(node) not in dropped]
    used = {name for node in kept for name in node.input}
    kept = [node for node in kept if node.op_type != "DynamicQuantizeLinear" or node.output[0] in used]
    used = {name for node in kept for name in node.input} | {o.name for o in graph.output}
    del graph.node[:]
    graph.node.extend(kept)
    live = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(live)
    onnx.checker.check_model(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))
    return len(replacement)


def _attention(
    node: onnx.NodeProto,
    producers: dict[str, onnx.NodeProto],
    inits: dict[str, onnx.TensorProto],
    graph: onnx.GraphProto,
) -> onnx.NodeProto:
    """The fp32 ``Attention`` a ``QAttention`` was quantized from (same attributes, same mask)."""
    inputs = list(node.input) + [""] * (8 - len(node.input))
    quant = producers.get(inputs[0])
    names = [inputs[1], inputs[4]] + ([inputs[7]] if inputs[7] else [])
    if quant is None or quant.op_type != "DynamicQuantizeLinear" or not all(n in inits for n in names):
        raise DequantizeError(f"{node.name!r} is not a dynamically quantized QAttention")
    weight, scale, *zero = (numpy_helper.to_array(inits[n]).astype(np.float32) for n in names)
    name = _fp32_name(inputs[1], inits)
    graph.initializer.append(numpy_helper.from_array((weight - (zero[0] if zero else 0.0)) * scale, name))
    args = [quant.input[0], name, inputs[2], inputs[5]]
    while args[-1] == "":  # an absent mask is left out, not passed as ""
        args.pop()
    return onnx.helper.make_node(
        "Attention",
        args,
        list(node.output),
        name=node.name + "_fp32",
        domain="com.microsoft",
        **{attr.name: onnx.helper.get_attribute_value(attr) for attr in node.attribute},
    )


def _fp32_name(quantized: str, inits: dict[str, onnx.TensorProto]) -> str:
    """The name the weight had before ``quantize_dynamic`` appended ``_quantized``: quantizing the
    rebuilt graph again (``export.fuse``) then gives every weight its old name, which
    ``export.served_head`` looks the intent head up by."""
    name = quantized.removesuffix("_quantized")
    return name if name not in inits and name != quantized else quantized + "_dequantized"


def _only(nodes: list[onnx.NodeProto], op: str, where: str) -> onnx.NodeProto:
    if len(nodes) != 1 or nodes[0].op_type != op:
        raise DequantizeError(f"{where!r}: expected one {op} after it, found {[n.op_type for n in nodes]}")
    return nodes[0]
