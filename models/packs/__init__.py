"""Model packs shipped with Switchboard (``default/`` is the one the service loads)."""

from __future__ import annotations

from pathlib import Path

DEFAULT_PACK: Path = Path(__file__).parent / "default"
"""Folder of the default pack (manifest.json + tokenizer.json + ONNX graph)."""
