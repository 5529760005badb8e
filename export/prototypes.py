"""Intent prototypes for a finished pack: where each built-in intent sits in the pack's own embedding.

For every built-in intent (``out_of_scope`` aside), the training utterances of the
mixture are embedded with the pack itself (the int8 graph, as served), and the
intent keeps its centroid and ``k`` spherical k-means centres. The reasons
matcher compares a custom reason with the intent the head picked on that scale
(``models.prototypes``, ``routing.reasons.merge_intents``). Runs after
``quantize`` (``python -m export prototypes``, and inside ``build``); the file is
added to the manifest with its hash.
"""

from __future__ import annotations

import time
from pathlib import Path

import msgspec
import numpy as np

from export.recipe import Recipe, build_data
from models.manifest import FileEntry, read_manifest, write_manifest
from routing.taxonomy import OUT_OF_SCOPE

PROTOTYPES_FILE = "intent_prototypes.npz"
# Ten centres per intent: on the 45 few-shot reasons of ``bench reasons`` the rule
# recovers turns an over-sure head took without taking any Banking77 turn (fewer
# centres began to). 130 intents x 11 rows x 1,536 x fp16 is 4.4 MB.
CENTRES = 10
EMBED_CHUNK = 256


def spherical_kmeans(x: np.ndarray, k: int, seed: int, iterations: int = 25) -> np.ndarray:
    """``k`` unit centres of the unit rows ``x`` (cosine k-means); fewer rows than ``k``: the rows,
    the last one repeated. A centre that loses every row keeps its place."""
    if len(x) <= k:
        return np.concatenate([x, np.repeat(x[-1:], k - len(x), axis=0)])
    rng = np.random.default_rng(seed)
    centres = x[rng.choice(len(x), size=k, replace=False)].copy()
    for _ in range(iterations):
        assign = np.argmax(x @ centres.T, axis=1)
        moved = centres.copy()
        for c in range(k):
            members = x[assign == c]
            if len(members):
                mean = members.mean(axis=0)
                moved[c] = mean / max(float(np.linalg.norm(mean)), 1e-12)
        if np.allclose(moved, centres):
            break
        centres = moved
    return centres


def prototypes(vectors: dict[str, np.ndarray], k: int, seed: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Labels (sorted), unit centroids ``(n, d)`` and centres ``(n, k, d)`` from each label's unit rows."""
    labels = sorted(vectors)
    centroids = []
    centres = []
    for i, label in enumerate(labels):
        rows = vectors[label]
        mean = rows.mean(axis=0)
        centroids.append(mean / max(float(np.linalg.norm(mean)), 1e-12))
        centres.append(spherical_kmeans(rows, k, seed + i))
    return labels, np.stack(centroids), np.stack(centres)


def _forget_prototypes(pack_dir: Path) -> None:
    """Unlist the pack's prototypes file from its manifest (the file is rewritten next)."""
    manifest = read_manifest(pack_dir)
    if manifest.embedding is None or manifest.embedding.prototypes is None:
        return
    files = {name: entry for name, entry in manifest.files.items() if name != manifest.embedding.prototypes}
    embedding = msgspec.structs.replace(manifest.embedding, prototypes=None)
    write_manifest(pack_dir, msgspec.structs.replace(manifest, files=files, embedding=embedding))


def write_prototypes(pack_dir: Path, recipe: Recipe, k: int = CENTRES) -> dict[str, object]:
    """Embed the mixture's intent utterances with the pack, write ``PROTOTYPES_FILE`` into it and
    list it in the manifest; returns a small report (intents, utterances, seconds)."""
    from models.runtime import Runtime

    started = time.perf_counter()
    data = build_data(recipe)
    items = [
        s
        for group in ("requests", "sgd")
        for s in data.train.get(group, [])
        if s.intent and s.intent != OUT_OF_SCOPE
    ]
    _forget_prototypes(pack_dir)  # stale ones (another label set) would stop the pack loading
    runtime = Runtime.load(pack_dir)
    rows: list[np.ndarray] = []
    for start in range(0, len(items), EMBED_CHUNK):
        predictions = runtime.predict([s.text for s in items[start : start + EMBED_CHUNK]])
        rows += [np.asarray(p.embedding, dtype=np.float32) for p in predictions]
    matrix = np.stack(rows)
    matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    by_label: dict[str, list[int]] = {}
    for index, sample in enumerate(items):
        by_label.setdefault(str(sample.intent), []).append(index)
    labels, centroids, centres = prototypes(
        {label: matrix[index] for label, index in by_label.items()}, k, recipe.seed
    )
    np.savez(
        pack_dir / PROTOTYPES_FILE,
        labels=np.array(labels),
        centroids=centroids.astype(np.float16),
        centres=centres.astype(np.float16),
    )
    manifest = read_manifest(pack_dir)
    if manifest.embedding is None:
        raise ValueError(f"pack {pack_dir} has no sentence embedding to place prototypes in")
    files = {**manifest.files, PROTOTYPES_FILE: FileEntry(sha256="", bytes=0)}  # hashed on write
    embedding = msgspec.structs.replace(manifest.embedding, prototypes=PROTOTYPES_FILE)
    write_manifest(pack_dir, msgspec.structs.replace(manifest, files=files, embedding=embedding))
    return {
        "intents": len(labels),
        "utterances": len(items),
        "centres": k,
        "seconds": round(time.perf_counter() - started, 1),
    }
