"""Inference runtime: load a model pack, tokenize, micro-batch, run ONNX on CPU.

Public API: ``models.runtime`` (``Runtime``, ``RuntimeConfig``), ``models.types``
(results), ``models.errors`` (the one error hierarchy), ``models.packs.DEFAULT_PACK``
and ``models.manifest`` (the pack format). Nothing here imports torch or transformers.
"""
