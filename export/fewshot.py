"""Few-shot check of the pack's sentence embedding: can ten examples define a new contact reason?

Contact reasons a business defines itself are matched by nearest centroid on
the embedding the pack returns next to its heads (``sentence_embedding``). The
heads fine-tune the shared encoder, which can cost the embedding its
generality; this check measures it the way the issue states it: 45 intents
from three CLINC150 domains the pack does not cover, each defined by 10
examples from CLINC's train split, scored on CLINC's *validation* utterances
of those intents (the test split is not available to this project), against
the pretrained all-MiniLM-L6-v2 encoder in fp32 as the reference.

``python -m export fewshot --pack models/packs/default`` prints both.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from export.metrics import unit_rows
from models.runtime import Runtime, RuntimeConfig

DOMAINS = ("travel", "kitchen_and_dining", "auto_and_commute")
SHOTS = 10

Embed = Callable[[Sequence[str]], np.ndarray]


def clinc_fewshot(
    data_dir: Path, seed: int = 13, names: Sequence[str] = DOMAINS
) -> tuple[dict[str, list[str]], list[tuple[str, str]]]:
    """(intent -> its 10 training examples, [(validation text, intent)]) for the CLINC domains ``names``."""
    data = json.loads((data_dir / "clinc150" / "data_full.json").read_text())
    domains = json.loads((data_dir / "clinc150" / "domains.json").read_text())
    wanted = {intent for domain in names for intent in domains[domain]}
    by_intent: dict[str, list[str]] = {}
    for text, intent in data["train"]:
        if intent in wanted:
            by_intent.setdefault(intent, []).append(text)
    rng = random.Random(seed)
    shots = {intent: rng.sample(texts, SHOTS) for intent, texts in sorted(by_intent.items())}
    val = [(text, intent) for text, intent in data["val"] if intent in wanted]
    return shots, val


def centroid_accuracy(
    embed: Embed, shots: dict[str, list[str]], val: list[tuple[str, str]]
) -> dict[str, float]:
    """Nearest-centroid and 1-nearest-neighbour accuracy over L2-normalised embeddings."""
    names = list(shots)
    examples = [text for name in names for text in shots[name]]
    owners = np.array([i for i, name in enumerate(names) for _ in shots[name]])
    e = unit_rows(embed(examples))
    centroids = unit_rows(np.stack([e[owners == i].mean(0) for i in range(len(names))]))
    q = unit_rows(embed([text for text, _ in val]))
    truth = np.array([names.index(intent) for _, intent in val])
    nearest_centroid = (q @ centroids.T).argmax(1)
    nearest_example = owners[(q @ e.T).argmax(1)]
    return {
        "reasons": len(names),
        "queries": len(val),
        "centroid_accuracy": float((nearest_centroid == truth).mean()),
        "one_nn_accuracy": float((nearest_example == truth).mean()),
    }


def pack_embedder(pack_dir: Path) -> Embed:
    """Embeddings as the serving runtime returns them (normalised text, int8 graph, per-text runs)."""
    runtime = Runtime.load(pack_dir, RuntimeConfig())

    def embed(texts: Sequence[str]) -> np.ndarray:
        out = runtime.predict(list(texts))
        return np.array([p.embedding for p in out], dtype=np.float64)

    return embed


def pretrained_embedder() -> Embed:
    """The reference: all-MiniLM-L6-v2 in fp32 with mean pooling (needs the [export] extra)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from export.modeling import default_backbone, mean_pool

    path = default_backbone()
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()

    @torch.no_grad()
    def embed(texts: Sequence[str]) -> np.ndarray:
        rows = []
        for start in range(0, len(texts), 64):
            batch = tokenizer(
                list(texts[start : start + 64]), padding=True, truncation=True, return_tensors="pt"
            )
            hidden = model(**batch).last_hidden_state
            rows.append(mean_pool(hidden, batch["attention_mask"]).numpy())
        return np.concatenate(rows)

    return embed


def fewshot_report(pack_dir: Path, data_dir: Path, reference: bool = True) -> dict[str, Any]:
    """The pack's few-shot accuracy and (optionally) the pretrained encoder's, on the same split."""
    shots, val = clinc_fewshot(data_dir)
    report: dict[str, Any] = {
        "domains": list(DOMAINS),
        "pack": centroid_accuracy(pack_embedder(pack_dir), shots, val),
    }
    if reference:
        report["pretrained_fp32"] = centroid_accuracy(pretrained_embedder(), shots, val)
    return report
