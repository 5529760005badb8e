"""The model-pack manifest: the one file format that ties a pack together.

A pack is a folder holding ONNX graphs, a ``tokenizer.json`` and
``manifest.json``. The manifest says which graph serves which head, the label
order of every output, calibration (temperatures, thresholds), the tokenizer
limits, and the sha256 of every file so a loader can refuse a corrupt pack.
``export/`` writes it; ``models/`` reads it. Pure data, no I/O here except the
two explicit helpers at the bottom.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

import msgspec

HeadName = Literal["sentiment", "emotion", "intent", "act"]
HEAD_NAMES: tuple[HeadName, ...] = ("sentiment", "emotion", "intent")  # every pack has these
OPTIONAL_HEADS: tuple[HeadName, ...] = ("act",)  # pack v2: conversation act
MANIFEST_FILE = "manifest.json"
FORMAT_VERSION = 1


class FileFormat(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=False):
    """Base for every on-disk format: unknown fields are an error, not ignored."""


class FileEntry(FileFormat):
    """One file of the pack, relative to the pack folder."""

    sha256: str
    bytes: int


class GraphSpec(FileFormat):
    """One ONNX graph: its file and the tensor names it takes."""

    file: str
    inputs: list[str]  # subset of input_ids / attention_mask / token_type_ids
    tokenizer: str = "tokenizer.json"
    max_length: int = 128


class HeadSpec(FileFormat):
    """How one head is produced: which graph and output, labels, calibration.

    ``kind`` is ``softmax`` (one label) or ``sigmoid`` (multi-label, each label
    compared with its own threshold). Calibrated probabilities are
    ``softmax(logits / temperature)`` or ``sigmoid(logits / temperature)``.
    """

    graph: str  # key into Manifest.graphs
    output: str  # output tensor name in that graph
    kind: Literal["softmax", "sigmoid"]
    labels: list[str]
    temperature: float = 1.0
    thresholds: dict[str, float] = {}
    source: str = "multitask"  # "multitask" or "hf:<checkpoint>" for `export hf`


class EmbeddingSpec(FileFormat):
    """The pooled sentence embedding a graph exposes next to its heads (same encoder pass).

    ``normalized`` says whether the output is already L2-normalised. ``prototypes``
    (optional) names the pack file with each built-in intent's prototypes in this
    embedding (``models.prototypes``).
    """

    graph: str
    output: str
    dim: int
    normalized: bool = True
    prototypes: str | None = None


class Manifest(FileFormat):
    """The whole pack description (``manifest.json``)."""

    name: str
    version: str
    graphs: dict[str, GraphSpec]
    heads: dict[str, HeadSpec]  # keys: sentiment, emotion, intent (+ act)
    files: dict[str, FileEntry]  # every file except manifest.json itself
    # ISO 639-1 codes the heads were trained for; other languages are reported, not scored.
    languages: list[str] = msgspec.field(default_factory=lambda: ["en"])
    embedding: EmbeddingSpec | None = None
    format_version: int = FORMAT_VERSION
    truncation: Literal["head_tail", "head"] = "head_tail"
    created: str = ""
    recipe: dict[str, Any] = {}
    provenance: list[dict[str, Any]] = []
    metrics: dict[str, Any] = {}


def sha256_file(path: Path) -> str:
    """Return the hex sha256 of a file, streamed in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(pack_dir: Path) -> Manifest:
    """Decode ``pack_dir/manifest.json``; raises msgspec errors on bad content."""
    return msgspec.json.decode((pack_dir / MANIFEST_FILE).read_bytes(), type=Manifest)


def write_manifest(pack_dir: Path, manifest: Manifest) -> None:
    """Write the manifest as indented JSON, with fresh hashes of every listed file."""
    files = {
        name: FileEntry(sha256=sha256_file(pack_dir / name), bytes=(pack_dir / name).stat().st_size)
        for name in sorted(manifest.files)
    }
    final = msgspec.structs.replace(manifest, files=files)
    raw = msgspec.json.format(msgspec.json.encode(final), indent=2)
    (pack_dir / MANIFEST_FILE).write_bytes(raw + b"\n")
