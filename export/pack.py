"""Assemble a model pack folder: int8 graph, tokenizer, manifest.

``quantize`` calls ``build_pack`` with neutral calibration (temperature 1,
emotion thresholds 0.5); ``evaluate`` later fills in fitted calibration,
metrics and the model card, and rewrites the manifest (with fresh hashes).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from models.manifest import (
    EmbeddingSpec,
    FileEntry,
    GraphSpec,
    HeadSpec,
    Manifest,
    read_manifest,
    write_manifest,
)
from routing.taxonomy import ACT_LABELS, EMOTION_LABELS, INTENT_LABELS, SENTIMENT_LABELS

GRAPH_KEY = "multitask"
GRAPH_FILE = "model.int8.onnx"
LABELS = {
    "sentiment": list(SENTIMENT_LABELS),
    "emotion": list(EMOTION_LABELS),
    "intent": list(INTENT_LABELS),
    "act": list(ACT_LABELS),
}
KINDS = {"sentiment": "softmax", "emotion": "sigmoid", "intent": "softmax", "act": "softmax"}
EMBEDDING_OUTPUT = "sentence_embedding"
EMBEDDING_DIM = 384

LICENCES = {
    "banking77": ("PolyAI Banking77", "CC BY 4.0", "https://github.com/PolyAI-LDN/task-specific-datasets"),
    "bitext_customer_service": (
        "Bitext customer-service sample",
        "not stated; '(c) Bitext Innovations 2022' public sample",
        "https://github.com/bitext/customer-support-llm-chatbot-training-dataset",
    ),
    "clinc150": ("CLINC150 (oos-eval)", "CC BY 3.0", "https://github.com/clinc/oos-eval"),
    "semeval2017_task4a": (
        "SemEval-2017 Task 4A",
        "research use, Twitter terms",
        "https://alt.qcri.org/semeval2017/task4/",
    ),
    "tweeteval_sentiment": (
        "TweetEval sentiment (validation)",
        "original terms, Twitter terms",
        "https://github.com/cardiffnlp/tweeteval",
    ),
    "sst2": ("Stanford Sentiment Treebank (SST-2)", "research use", "https://nlp.stanford.edu/sentiment/"),
    "goemotions": (
        "GoEmotions",
        "Apache-2.0",
        "https://github.com/google-research/google-research/tree/master/goemotions",
    ),
    "sgd": (
        "Schema-Guided Dialogue (user turns)",
        "CC BY-SA 4.0",
        "https://github.com/google-research-datasets/dstc8-schema-guided-dialogue",
    ),
    "complaints": (
        "Complaints on Twitter (Preotiuc-Pietro et al., ACL 2019)",
        "research data; licence not stated",
        "https://github.com/danielpreotiuc/complaints-social-media",
    ),
}


def provenance(used: dict[str, dict[str, int]], data_dir: Path) -> list[dict[str, Any]]:
    """One record per data source used: counts, licence, origin repository and commit."""
    origin: dict[str, Any] = {}
    if (data_dir / "PROVENANCE.json").exists():
        origin = json.loads((data_dir / "PROVENANCE.json").read_text())
    records = []
    for source, counts in used.items():
        name, licence, url = LICENCES.get(source, (source, "user-supplied", ""))
        key = "tweeteval" if source.startswith("tweeteval") else source
        record: dict[str, Any] = {"source": source, "name": name, "licence": licence, "url": url, **counts}
        if key in origin:
            record["repo"] = origin[key].get("repo")
            record["commit"] = origin[key].get("commit")
        records.append(record)
    return records


def output_width(outputs: Sequence[Any], name: str) -> int | None:
    """The static last dimension of graph output ``name`` (ONNX ``ValueInfoProto``s), if it has one."""
    for output in outputs:
        if output.name == name:
            dims = output.type.tensor_type.shape.dim
            return int(dims[-1].dim_value) if dims and dims[-1].dim_value > 0 else None
    return None


def build_pack(
    int8_graph: Path,
    tokenizer_json: Path,
    pack_dir: Path,
    *,
    inputs: list[str],
    max_length: int,
    name: str,
    version: str,
    recipe: dict[str, Any],
    sources: list[dict[str, Any]],
    quantization: dict[str, Any],
    outputs: list[str] | None = None,
    embedding_dim: int = EMBEDDING_DIM,
) -> Manifest:
    """Copy the graph and tokenizer into ``pack_dir`` and write a fresh manifest.

    ``outputs`` are the graph's output names: a head is declared for each
    ``<head>_logits`` among them, and the embedding when ``sentence_embedding`` is one.
    """
    outputs = outputs or [f"{head}_logits" for head in ("sentiment", "emotion", "intent")]
    pack_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(int8_graph, pack_dir / GRAPH_FILE)
    shutil.copy(tokenizer_json, pack_dir / "tokenizer.json")
    heads = {
        head: HeadSpec(
            graph=GRAPH_KEY,
            output=f"{head}_logits",
            kind=KINDS[head],  # type: ignore[arg-type]
            labels=labels,
            thresholds={label: 0.5 for label in labels} if head == "emotion" else {},
        )
        for head, labels in LABELS.items()
        if f"{head}_logits" in outputs
    }
    embedding = (
        EmbeddingSpec(graph=GRAPH_KEY, output=EMBEDDING_OUTPUT, dim=embedding_dim)
        if EMBEDDING_OUTPUT in outputs
        else None
    )
    manifest = Manifest(
        name=name,
        version=version,
        graphs={GRAPH_KEY: GraphSpec(file=GRAPH_FILE, inputs=inputs, max_length=max_length)},
        heads=heads,
        embedding=embedding,
        files={GRAPH_FILE: FileEntry("", 0), "tokenizer.json": FileEntry("", 0)},
        created=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        recipe=recipe,
        provenance=sources,
        metrics={"quantization": quantization},
    )
    write_manifest(pack_dir, manifest)
    return read_manifest(pack_dir)
