"""Loading a model pack: manifest checks, file integrity, tokenizers and ONNX sessions.

Everything that can be wrong with a pack is found here, at load time, with a
message that names the pack, the file/graph/head and what was expected:
missing or corrupt files (sha256 and size from the manifest), an invalid
manifest, heads pointing at unknown graphs or outputs, tensor names that the
graph does not have, and label counts that differ from the graph's output
width (checked statically where the ONNX shape is known and always with one
probe inference).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import msgspec
import numpy as np
import onnxruntime as ort

from models.errors import PackError
from models.manifest import (
    FORMAT_VERSION,
    HEAD_NAMES,
    MANIFEST_FILE,
    OPTIONAL_HEADS,
    EmbeddingSpec,
    GraphSpec,
    HeadSpec,
    Manifest,
    read_manifest,
    sha256_file,
)
from models.prototypes import IntentPrototypes, load_prototypes
from models.tokenize import TextEncoder, pad_batch

ALLOWED_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
REQUIRED_KINDS = {"sentiment": "softmax", "intent": "softmax", "act": "softmax"}
_ONNX_INT_TYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}


class TensorInfo(Protocol):
    """What the runtime reads from an ONNX input/output description."""

    @property
    def name(self) -> str: ...
    @property
    def shape(self) -> Sequence[Any]: ...
    @property
    def type(self) -> str: ...


class SessionLike(Protocol):
    """The slice of ``onnxruntime.InferenceSession`` the runtime uses (the test seam)."""

    def get_inputs(self) -> Sequence[TensorInfo]: ...
    def get_outputs(self) -> Sequence[TensorInfo]: ...
    def run(self, output_names: list[str] | None, input_feed: dict[str, Any]) -> Sequence[Any]: ...


SessionFactory = Callable[[Path, ort.SessionOptions], SessionLike]


# ONNX Runtime graph rewrites every session leaves out. SkipLayerNormFusion merges each residual Add
# with the LayerNormalization after it into one SkipLayerNormalization node, whose CPU kernel is
# slower than the two nodes it replaces (onnxruntime 1.32, one intra-op thread, AVX-512 VNNI):
# ``python -m bench runtime`` measures the two side by side (``runtime_fused``). The export scores
# and calibrates packs with the same list (``export.evaluate``), so the card describes the graph as
# it is served.
DISABLED_OPTIMIZERS: tuple[str, ...] = ("SkipLayerNormFusion",)


def ort_session(path: Path, options: ort.SessionOptions) -> SessionLike:
    """The production session factory: CPU execution provider only, without ``DISABLED_OPTIMIZERS``."""
    return ort.InferenceSession(
        str(path),
        sess_options=options,
        providers=["CPUExecutionProvider"],
        disabled_optimizers=list(DISABLED_OPTIMIZERS),
    )


@dataclass(frozen=True)
class GraphRunner:
    """One loaded graph: its session, which encoder feeds it, and the outputs the heads need."""

    key: str
    spec: GraphSpec
    session: SessionLike
    encoder_key: str
    input_dtypes: Mapping[str, type]
    outputs: tuple[str, ...]

    def feed(self, seqs: Sequence[np.ndarray], pad_id: int) -> dict[str, np.ndarray]:
        """The input tensors for a batch of id arrays, padded to the longest one."""
        ids, mask = pad_batch(seqs, pad_id)
        tensors = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        return {name: tensors[name].astype(dtype, copy=False) for name, dtype in self.input_dtypes.items()}


@dataclass(frozen=True)
class LoadedPack:
    """A verified pack, ready to run."""

    path: Path
    manifest: Manifest
    encoders: Mapping[str, TextEncoder]
    graphs: Mapping[str, GraphRunner]
    heads: Mapping[str, HeadSpec]
    prototypes: IntentPrototypes | None = None  # the intent prototypes file, when the pack has one


def _fail(pack_dir: Path, message: str) -> PackError:
    return PackError(f"pack {pack_dir}: {message}")


def parse_manifest(pack_dir: Path) -> Manifest:
    """Read and decode ``manifest.json``; PackError on a missing file or invalid content."""
    if not (pack_dir / MANIFEST_FILE).is_file():
        raise _fail(pack_dir, f"{MANIFEST_FILE} not found")
    try:
        manifest = read_manifest(pack_dir)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise _fail(pack_dir, f"invalid {MANIFEST_FILE}: {exc}") from exc
    if manifest.format_version != FORMAT_VERSION:
        raise _fail(
            pack_dir, f"format_version {manifest.format_version} is not supported (expected {FORMAT_VERSION})"
        )
    return manifest


def _head_problems(name: str, head: HeadSpec, manifest: Manifest) -> list[str]:
    problems = []
    where = f"head {name!r}"
    if head.graph not in manifest.graphs:
        problems.append(f"{where} uses graph {head.graph!r}, not in graphs {sorted(manifest.graphs)}")
    if not head.labels:
        problems.append(f"{where} has no labels")
    duplicates = sorted({label for label in head.labels if head.labels.count(label) > 1})
    if duplicates:
        problems.append(f"{where} has duplicate labels {duplicates}")
    if not head.temperature > 0:
        problems.append(f"{where} temperature must be > 0, got {head.temperature}")
    unknown = sorted(set(head.thresholds) - set(head.labels))
    if unknown:
        problems.append(f"{where} has thresholds for unknown labels {unknown}")
    required_kind = REQUIRED_KINDS.get(name)
    if required_kind is not None and head.kind != required_kind:
        problems.append(f"{where} must be {required_kind}, got {head.kind}")
    if name == "sentiment" and not {"positive", "negative"} <= set(head.labels):
        problems.append(f"{where} needs labels 'positive' and 'negative' for its score, got {head.labels}")
    return problems


def check_manifest(pack_dir: Path, manifest: Manifest) -> None:
    """Cross-field checks the schema cannot express; raises one PackError listing every problem."""
    problems = []
    unknown_heads = sorted(set(manifest.heads) - set(HEAD_NAMES) - set(OPTIONAL_HEADS))
    if unknown_heads:
        problems.append(
            f"unknown heads {unknown_heads} (expected {list(HEAD_NAMES)}, optionally {list(OPTIONAL_HEADS)})"
        )
    missing_heads = [name for name in HEAD_NAMES if name not in manifest.heads]
    if missing_heads:
        problems.append(f"missing heads {missing_heads}")
    for name, head in manifest.heads.items():
        problems.extend(_head_problems(name, head, manifest))
    used = {head.graph for head in manifest.heads.values()}
    if manifest.embedding is not None and manifest.embedding.graph not in manifest.graphs:
        problems.append(
            f"embedding uses graph {manifest.embedding.graph!r}, not in graphs {sorted(manifest.graphs)}"
        )
    prototypes = manifest.embedding.prototypes if manifest.embedding is not None else None
    if prototypes is not None and prototypes not in manifest.files:
        problems.append(f"embedding prototypes file {prototypes!r} is not listed in files")
    for key, graph in manifest.graphs.items():
        if key not in used:
            problems.append(f"graph {key!r} serves no head")
        bad_inputs = sorted(set(graph.inputs) - set(ALLOWED_INPUTS))
        if bad_inputs:
            problems.append(
                f"graph {key!r} has unsupported inputs {bad_inputs} (allowed {list(ALLOWED_INPUTS)})"
            )
        if "input_ids" not in graph.inputs:
            problems.append(f"graph {key!r} must take input_ids")
        for role, file in (("file", graph.file), ("tokenizer", graph.tokenizer)):
            if file not in manifest.files:
                problems.append(f"graph {key!r} {role} {file!r} is not listed in files")
    if problems:
        raise _fail(pack_dir, "; ".join(problems))


def verify_files(pack_dir: Path, manifest: Manifest) -> None:
    """Every listed file exists inside the pack with the recorded size and sha256."""
    root = pack_dir.resolve()
    for name, entry in sorted(manifest.files.items()):
        path = (pack_dir / name).resolve()
        if not path.is_relative_to(root):
            raise _fail(pack_dir, f"file {name!r} points outside the pack")
        if not path.is_file():
            raise _fail(pack_dir, f"file {name!r} is missing")
        size = path.stat().st_size
        if size != entry.bytes:
            raise _fail(pack_dir, f"file {name!r} is corrupt: {size} bytes, manifest says {entry.bytes}")
        digest = sha256_file(path)
        if digest != entry.sha256:
            raise _fail(pack_dir, f"file {name!r} is corrupt: sha256 {digest}, manifest says {entry.sha256}")


def _load_encoders(pack_dir: Path, manifest: Manifest) -> dict[str, TextEncoder]:
    """One encoder per distinct (tokenizer file, max_length): heads sharing it tokenize once."""
    encoders: dict[str, TextEncoder] = {}
    for graph in manifest.graphs.values():
        key = _encoder_key(graph)
        if key in encoders:
            continue
        try:
            encoders[key] = TextEncoder.from_file(
                pack_dir / graph.tokenizer, graph.max_length, manifest.truncation
            )
        except Exception as exc:  # tokenizers raises plain Exception subclasses
            raise _fail(pack_dir, f"tokenizer {graph.tokenizer!r} cannot be used: {exc}") from exc
    return encoders


def _encoder_key(graph: GraphSpec) -> str:
    return f"{graph.tokenizer}@{graph.max_length}"


def _static_width(info: TensorInfo) -> int | None:
    shape = list(info.shape or [])
    return shape[-1] if shape and isinstance(shape[-1], int) else None


def _check_session(
    pack_dir: Path,
    key: str,
    graph: GraphSpec,
    session: SessionLike,
    heads: Mapping[str, HeadSpec],
    embedding: EmbeddingSpec | None = None,
) -> dict[str, type]:
    """Tensor names/types/shapes of the session against the manifest; returns input dtypes."""
    inputs = {info.name: info for info in session.get_inputs()}
    if set(inputs) != set(graph.inputs):
        raise _fail(
            pack_dir, f"graph {key!r} takes inputs {sorted(inputs)}, manifest says {sorted(graph.inputs)}"
        )
    dtypes: dict[str, type] = {}
    for name, info in inputs.items():
        if info.type not in _ONNX_INT_TYPES:
            raise _fail(pack_dir, f"graph {key!r} input {name!r} is {info.type}, expected int64 or int32")
        dtypes[name] = _ONNX_INT_TYPES[info.type]
    outputs = {info.name: info for info in session.get_outputs()}
    for head_name, head in heads.items():
        if head.output not in outputs:
            raise _fail(
                pack_dir,
                f"head {head_name!r}: graph {key!r} has no output {head.output!r}"
                f" (outputs {sorted(outputs)})",
            )
        width = _static_width(outputs[head.output])
        if width is not None and width != len(head.labels):
            raise _fail(
                pack_dir,
                f"head {head_name!r}: output {head.output!r} has {width} columns"
                f" but {len(head.labels)} labels",
            )
    if embedding is not None and embedding.output not in outputs:
        raise _fail(pack_dir, f"embedding: graph {key!r} has no output {embedding.output!r}")
    return dtypes


def _probe(pack_dir: Path, runner: GraphRunner, encoder: TextEncoder, heads: Mapping[str, HeadSpec]) -> None:
    """One tiny inference: proves the graph runs and that every output has one column per label."""
    feed = runner.feed(encoder.encode(["probe"]), encoder.pad_id)
    try:
        values = runner.session.run(list(runner.outputs), feed)
    except Exception as exc:
        raise _fail(pack_dir, f"graph {runner.key!r} failed its probe run: {exc}") from exc
    by_name = dict(zip(runner.outputs, values, strict=True))
    for head_name, head in heads.items():
        shape = np.shape(by_name[head.output])
        if shape != (1, len(head.labels)):
            raise _fail(
                pack_dir,
                f"head {head_name!r}: output {head.output!r} has shape {list(shape)} for one text,"
                f" expected [1, {len(head.labels)}] (one column per label)",
            )


def load_pack(
    pack_dir: Path, options: ort.SessionOptions, session_factory: SessionFactory = ort_session
) -> LoadedPack:
    """Verify and load a pack; raises PackError naming the first problem found."""
    pack_dir = Path(pack_dir)
    if not pack_dir.is_dir():
        raise _fail(pack_dir, "folder not found")
    manifest = parse_manifest(pack_dir)
    check_manifest(pack_dir, manifest)
    verify_files(pack_dir, manifest)
    encoders = _load_encoders(pack_dir, manifest)
    graphs: dict[str, GraphRunner] = {}
    for key, spec in manifest.graphs.items():
        heads = {name: head for name, head in manifest.heads.items() if head.graph == key}
        try:
            session = session_factory(pack_dir / spec.file, options)
        except Exception as exc:
            raise _fail(pack_dir, f"graph {key!r} ({spec.file}) cannot be loaded: {exc}") from exc
        embedding = manifest.embedding if manifest.embedding and manifest.embedding.graph == key else None
        dtypes = _check_session(pack_dir, key, spec, session, heads, embedding)
        names = [head.output for head in heads.values()] + ([embedding.output] if embedding else [])
        outputs = tuple(dict.fromkeys(names))
        runner = GraphRunner(key, spec, session, _encoder_key(spec), dtypes, outputs)
        _probe(pack_dir, runner, encoders[runner.encoder_key], heads)
        graphs[key] = runner
    prototypes = None
    if manifest.embedding is not None and manifest.embedding.prototypes is not None:
        prototypes = load_prototypes(
            pack_dir / manifest.embedding.prototypes,
            manifest.embedding.dim,
            tuple(manifest.heads["intent"].labels),
        )
    return LoadedPack(pack_dir, manifest, encoders, graphs, dict(manifest.heads), prototypes)


def reopen_sessions(
    pack: LoadedPack, options: ort.SessionOptions, session_factory: SessionFactory = ort_session
) -> dict[str, GraphRunner]:
    """A second set of runners for an already verified pack: same graphs, new sessions with ``options``.

    Used for a session set with another thread count; the files were checked by
    ``load_pack`` and are not hashed again. Raises PackError when a graph does not load.
    """
    runners: dict[str, GraphRunner] = {}
    for key, runner in pack.graphs.items():
        try:
            session = session_factory(pack.path / runner.spec.file, options)
        except Exception as exc:
            raise _fail(pack.path, f"graph {key!r} ({runner.spec.file}) cannot be loaded: {exc}") from exc
        runners[key] = replace(runner, session=session)
    return runners
