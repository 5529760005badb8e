"""Custom contact reasons in the service: the active reasons file, its example embeddings, matching.

The reasons file comes from ``SWITCHBOARD_REASONS`` (a TOML file), or, when
unset, routing's bundled ``default_reasons.toml``; ``SWITCHBOARD_REASONS=none``
turns custom reasons off. It is parsed and validated at startup (an invalid
file stops the service, like an invalid policy), and its examples are embedded
with the model pack's sentence embedding once the pack is loaded, before the
service reports ready. A linear discriminant over the example embeddings
(``Discriminant``) picks the reason a customer turn belongs to and its
runner-up; each one's similarity is the cosine to its centroid (the normalised
mean of its examples) blended with the cosine to its nearest example; and
``routing.reasons.merge_intents`` decides what the turn's intent evidence becomes.

Reloads work like the policy's (``service.policy_source``): the file's mtime
is polled every ``SWITCHBOARD_POLICY_RELOAD_INTERVAL`` seconds, ``SIGHUP``
reloads it, and so does ``POST /v1/reasons/reload``. A file that does not
validate, or that the active policy rejects (a rule naming a reason that is
gone, a new category without a queue), never replaces the active reasons: the
old ones stay and the error is logged, counted and returned by the endpoint.

Example embeddings are cached by pack and text (in memory, and under
``$DATA_DIR/reasons_cache`` for restarts), so a reload embeds only new texts.
A pack without a sentence embedding (pack v1) disables matching with a warning
at startup; the file is still validated and the policy still knows its ids
and categories, and ``replaces`` still renames the built-in intents.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import os
import tempfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np

from models.prototypes import IntentPrototypes, blended
from models.types import TextPrediction
from routing.errors import PolicyError, ReasonsError
from routing.policy import Policy
from routing.reasons import MergedIntents, ReasonMatch, ReasonSet, empty_reasons, load_reasons, merge_intents
from service.body_guard import toml_nesting_error
from service.errors import SettingsError
from service.metrics import Metrics
from service.policy_source import FileStamp, file_stamp, utc_now

_log = logging.getLogger("switchboard.reasons")

ReasonsStatus = Literal["active", "pending", "unavailable", "disabled", "failed"]
NO_EMBEDDING = (
    "custom contact reasons are not matched: the model pack has no sentence embedding "
    "(a v1 pack); load a pack that has one (v2) to match them"
)
# Texts per runtime call while embedding examples (progress granularity).
EMBED_CHUNK = 64


def default_reasons_text() -> str:
    """The bundled default reasons file (``routing/default_reasons.toml``), a package resource."""
    return resources.files("routing").joinpath("default_reasons.toml").read_text(encoding="utf-8")


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


# --- embedding ---------------------------------------------------------------


class Embedder:
    """Sentence embeddings from a loaded runtime (anything with ``predict`` and ``info``).

    ``key`` identifies what determines the vectors (the pack's graphs and
    tokenizers), for the cache. ``available`` is False for a pack without an
    embedding output.
    """

    def __init__(self, runtime: Any) -> None:
        self._runtime = runtime
        self.key = pack_key(runtime.info)
        self.prototypes: IntentPrototypes | None = getattr(runtime, "intent_prototypes", None)
        probe = runtime.predict(["hello, I have a question about my account"])
        self.available = bool(probe) and probe[0].embedding is not None

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """Unit embeddings of ``texts`` as an (n, d) float32 array (the runtime's own batching)."""
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        predictions: list[TextPrediction] = self._runtime.predict(list(texts))
        vectors = [p.embedding for p in predictions]
        if any(v is None for v in vectors):
            raise ReasonsError([NO_EMBEDDING])
        return unit_rows(np.asarray(vectors, dtype=np.float32))

    def predict(self, texts: Sequence[str]) -> list[TextPrediction]:
        """Every head's prediction (``reasons check`` also reads the intent head)."""
        return list(self._runtime.predict(list(texts)))


def pack_key(info: dict[str, Any]) -> str:
    """sha256 over the files that determine predictions: the ONNX graphs and tokenizers."""
    files = info.get("files", {})
    parts = [
        f"{name}:{digest}"
        for name, digest in sorted(files.items())
        if name.endswith(".onnx") or name.endswith("tokenizer.json")
    ]
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()


def _text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class EmbeddingCache:
    """Example embeddings by (pack key, text), in memory and, with ``folder``, on disk.

    On disk: one ``<pack key>.npz`` per pack with the texts' sha256 (never the
    texts) and their vectors, written atomically. An unreadable cache file is
    ignored (and rewritten).
    """

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder
        self._memory: dict[str, dict[str, np.ndarray]] = {}

    def _entries(self, key: str) -> dict[str, np.ndarray]:
        entries = self._memory.get(key)
        if entries is None:
            entries = self._read(key)
            self._memory[key] = entries
        return entries

    def _path(self, key: str) -> Path | None:
        return None if self.folder is None else self.folder / f"{key[:32]}.npz"

    def _read(self, key: str) -> dict[str, np.ndarray]:
        path = self._path(key)
        if path is None or not path.is_file():
            return {}
        try:
            with np.load(path) as data:
                keys, vectors = data["keys"], data["vectors"]
                return {str(k): vectors[i] for i, k in enumerate(keys)}
        except (OSError, ValueError, KeyError):
            _log.warning("reasons embedding cache unreadable; rebuilding it", extra={"path": str(path)})
            return {}

    def _write(self, key: str, entries: dict[str, np.ndarray]) -> None:
        path = self._path(key)
        if path is None or not entries:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(fd, "wb") as handle:
                np.savez(handle, keys=np.array(list(entries)), vectors=np.stack(list(entries.values())))
            os.replace(tmp, path)
        except OSError:
            _log.warning("reasons embedding cache not written", extra={"path": str(path)})

    def embed(
        self, key: str, texts: Sequence[str], embed: Callable[[Sequence[str]], np.ndarray]
    ) -> tuple[np.ndarray, int]:
        """Vectors of ``texts`` (embedding only those not cached); returns (vectors, newly embedded)."""
        entries = self._entries(key)
        keys = [_text_key(text) for text in texts]
        missing = list(dict.fromkeys(k for k in keys if k not in entries))
        if missing:
            by_key = dict(zip(keys, texts, strict=True))
            fresh: list[np.ndarray] = []
            for start in range(0, len(missing), EMBED_CHUNK):
                fresh.append(embed([by_key[k] for k in missing[start : start + EMBED_CHUNK]]))
            vectors = np.concatenate(fresh)
            for k, vector in zip(missing, vectors, strict=True):
                entries[k] = vector.astype(np.float32)
            self._write(key, entries)
        if not keys:
            return np.zeros((0, 0), dtype=np.float32), 0
        return np.stack([entries[k] for k in keys]), len(missing)


# --- the index ---------------------------------------------------------------


# The within-reason covariance is shrunk this far towards a multiple of the identity: a file has
# tens to thousands of examples for a 1,536-wide embedding, too few to trust every direction.
SHRINKAGE = 0.5
# Directions of within-reason variation kept; the rest share one variance (bounds load and turn cost).
RANK = 256


@dataclass(frozen=True)
class Discriminant:
    """Linear discriminant analysis over the reasons: which reason's examples a turn sits among.

    Every reason gets the mean of its unit example vectors; all share one
    within-reason covariance, estimated from the examples' deviations from
    their own reason's mean and shrunk halfway towards the identity (scaled
    to the same total variance), in ``RANK`` principal directions plus one
    variance for the rest. A turn belongs to the reason at the smallest
    Mahalanobis distance. Unlike the nearest centroid by cosine, this knows
    which directions the examples of a reason vary in (the wording of one
    request) and which separate reasons: on the 45 CLINC reasons of ``bench
    reasons`` (pack 2.3.1) it picks the right one for 95.0% of the turns (95.3% from the
    typed examples alone, ``--carrier-pairs 0``) against 94.7% (``--cosine-pick``).
    ``extra`` deviations (``CarrierPairs``) widen the covariance along the ways callers
    wrap a request, which the typed examples do not show.
    """

    means: np.ndarray  # (reasons, d)
    basis: np.ndarray  # (d, r): principal directions of the within-reason variation
    means_in_basis: np.ndarray  # (reasons, r)
    inverse: np.ndarray  # (r,): 1 / variance along each direction, less ``inverse_rest``
    inverse_rest: float  # 1 / the variance of every other direction
    mean_norms: np.ndarray  # (reasons,): each mean's squared length

    @classmethod
    def fit(cls, examples: Sequence[np.ndarray], extra: np.ndarray | None = None) -> Discriminant:
        """From each reason's unit example vectors (rows), in reason order; ``extra``: more
        within-reason deviations (rows) to learn the covariance from (``CarrierPairs``)."""
        # float32 keeps a large file's deviations at the size of its vectors (a 2,000-example file: 12 MB).
        means = np.stack([rows.mean(axis=0, dtype=np.float64) for rows in examples])
        deviations = np.concatenate(
            [(rows - mean).astype(np.float32) for rows, mean in zip(examples, means, strict=True)]
            + ([extra.astype(np.float32)] if extra is not None and len(extra) else [])
        )
        n, width = deviations.shape
        total = float(np.square(deviations).sum(dtype=np.float64)) / max(n, 1)
        rank = min(RANK, n, width)
        basis, variances = _principal(deviations, rank)
        rest = max(total - float(variances.sum()), 0.0) / max(width - rank, 1)
        isotropic = SHRINKAGE * total / width
        variance = (1.0 - SHRINKAGE) * variances + isotropic
        variance_rest = (1.0 - SHRINKAGE) * rest + isotropic
        if variance_rest <= 0.0:  # every example of every reason identical: plain Euclidean distance
            inverse, inverse_rest = np.zeros(rank), 1.0
        else:
            inverse_rest = 1.0 / variance_rest
            inverse = 1.0 / variance - inverse_rest
        # float32 from here on: a turn's distances are a few small products, as fast as possible.
        means32, basis32 = means.astype(np.float32), basis.astype(np.float32)
        return cls(
            means=means32,
            basis=basis32,
            means_in_basis=means32 @ basis32,
            inverse=inverse.astype(np.float32),
            inverse_rest=float(inverse_rest),
            mean_norms=(means32**2).sum(axis=1),
        )

    def distances(self, query: np.ndarray, means: np.ndarray | None = None) -> np.ndarray:
        """Squared Mahalanobis distance of a unit ``query`` to every reason's mean (or to ``means``)."""
        query = np.asarray(query, dtype=np.float32)
        if means is None:
            means, in_basis, norms = self.means, self.means_in_basis, self.mean_norms
        else:
            means = np.asarray(means, dtype=np.float32)
            in_basis, norms = means @ self.basis, (means**2).sum(axis=1)
        offset = float(query @ query) - 2.0 * (means @ query) + norms
        projected = (query @ self.basis)[None, :] - in_basis
        return np.asarray(offset * self.inverse_rest + (projected**2) @ self.inverse)

    def distances_many(self, queries: np.ndarray, chunk: int = 512) -> np.ndarray:
        """``distances`` of many unit queries (rows) at once: (queries, reasons).

        The square of each projected difference is expanded, so a chunk is a few matrix
        products instead of a (queries, reasons, directions) array.
        """
        queries = np.asarray(queries, dtype=np.float32)
        weighted = self.means_in_basis * self.inverse
        mean_terms = self.mean_norms * self.inverse_rest + (self.means_in_basis**2) @ self.inverse
        out = np.empty((len(queries), len(self.means)), dtype=np.float32)
        for start in range(0, len(queries), chunk):
            rows = queries[start : start + chunk]
            projected = rows @ self.basis
            own = (rows * rows).sum(axis=1) * self.inverse_rest + (projected**2) @ self.inverse
            cross = rows @ self.means.T * self.inverse_rest + projected @ weighted.T
            out[start : start + chunk] = own[:, None] - 2.0 * cross + mean_terms[None, :]
        return out


def _principal(deviations: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """The top ``rank`` principal directions (d, rank) of the rows and their variances.

    A randomized range finder on the covariance with a fixed seed, so the same
    examples always give the same directions, in a fraction of a second for a
    2,000 x 1,536 file (an exact decomposition of the 1,536-wide covariance takes seconds).
    """
    n, width = deviations.shape
    if rank == 0:
        return np.zeros((width, 0)), np.zeros(0)
    probe = np.random.default_rng(0).standard_normal((width, min(rank + 10, width))).astype(deviations.dtype)
    sample = deviations.T @ (deviations @ probe)
    range_basis, _ = np.linalg.qr(sample)
    _, singular, right = np.linalg.svd(deviations @ range_basis, full_matrices=False)
    return range_basis @ right.T[:, :rank], (singular[:rank].astype(np.float64) ** 2) / n


# Folds of the held-out fits (``held_out_distances``): each leaves out every fifth example of a reason.
HELD_OUT_FOLDS = 5


@dataclass(frozen=True)
class CarrierPairs:
    """Examples embedded as typed and behind a caller's opening (``carrier_plan``): ``rows`` are the
    examples' positions in file order, ``deviations`` each pair's within-pair scatter, (wrapped -
    typed) / sqrt(2): what the pair's two members add to the covariance about their own mean."""

    rows: np.ndarray
    deviations: np.ndarray

    @classmethod
    def of(cls, units: np.ndarray, rows: Sequence[int], wrapped: np.ndarray) -> CarrierPairs | None:
        """From the examples' unit vectors, the wrapped examples' rows and their vectors; None if none."""
        if not len(rows):
            return None
        index = np.asarray(rows, dtype=np.int64)
        return cls(index, ((unit_rows(wrapped) - units[index]) / math.sqrt(2.0)).astype(np.float32))

    @classmethod
    def of_file(
        cls, reasons: ReasonSet, units: np.ndarray, wrapped: np.ndarray | None
    ) -> CarrierPairs | None:
        """The pairs of ``carrier_plan(reasons)``, given the vectors of its wrapped texts (None: none)."""
        if wrapped is None:
            return None
        return cls.of(units, [row for row, _ in carrier_plan(reasons)], wrapped)

    def without(self, held_out: np.ndarray) -> np.ndarray:
        """The deviations of the pairs whose example is not ``held_out`` (a boolean mask over examples)."""
        return self.deviations[~held_out[self.rows]]


def held_out_distances(
    units: np.ndarray, owners: np.ndarray, reasons: int, pairs: CarrierPairs | None = None
) -> np.ndarray:
    """Every example's squared distance to every reason's mean (n, reasons), with the example held out.

    The discriminant is refitted ``HELD_OUT_FOLDS`` times, each time without every
    ``HELD_OUT_FOLDS``-th example of each reason (and its carrier pair), and those
    examples are measured by it: an example never shapes the covariance or the
    mean it is measured against, which would flatter it (in-sample distances come
    out smaller than a new turn's). A reason with a single example keeps it in
    every fold.
    """
    distances = np.zeros((len(units), reasons), dtype=np.float32)
    if reasons == 0:
        return distances
    position = np.zeros(len(units), dtype=np.int64)
    for index in range(reasons):
        rows = np.flatnonzero(owners == index)
        position[rows] = np.arange(len(rows))
    sizes = np.bincount(owners, minlength=reasons)
    for fold in range(HELD_OUT_FOLDS):
        out = (position % HELD_OUT_FOLDS == fold) & (sizes[owners] > 1)
        if not out.any():
            continue
        discriminant = Discriminant.fit(
            [units[(owners == index) & ~out] for index in range(reasons)],
            pairs.without(out) if pairs is not None else None,
        )
        distances[out] = discriminant.distances_many(units[out])
    alone = sizes[owners] == 1  # nothing to hold out: fitted with it
    if alone.any():
        extra = pairs.deviations if pairs is not None else None
        everyone = Discriminant.fit([units[owners == index] for index in range(reasons)], extra)
        distances[alone] = everyone.distances_many(units[alone])
    return distances


def own_similarities(units: np.ndarray, owners: np.ndarray, reasons: int, weight: float) -> np.ndarray:
    """Every example's ``blended`` similarity to its own reason with itself left out.

    The centroid term is the normalised mean of the reason's other examples and
    the nearest-example term its nearest other example; an example that is its
    reason's only one is compared with itself (similarity 1).
    """
    out = np.ones(len(units), dtype=np.float32)
    for index in range(reasons):
        rows = np.flatnonzero(owners == index)
        if len(rows) < 2:
            continue
        mine = units[rows]
        total = mine.sum(axis=0)
        rest = unit_rows(total[None, :] - mine)
        centroid = (rest * mine).sum(axis=1)
        gram = mine @ mine.T
        np.fill_diagonal(gram, -np.inf)
        out[rows] = blended(centroid, gram.max(axis=1), weight)
    return out


@dataclass(frozen=True)
class Atypicality:
    """The open-set penalty of a turn that sits further from a reason than the reason's own examples.

    The similarity alone (a cosine) cannot tell a turn among a reason's examples
    from one that is about as close by cosine but lies off the directions the
    examples vary in; the discriminant's distance can (the Mahalanobis
    out-of-distribution score). A turn whose squared distance to the reason it
    is matched to exceeds ``typical`` (the mean held-out distance of the file's
    own examples to their reason) loses ``per_unit`` similarity per unit beyond
    it. ``per_unit`` is ``weight`` times the spread of the examples' own
    similarities over the spread of their distances, so one spread of distance
    beyond typical costs ``weight`` spreads of similarity, whatever the file's
    scale; a turn at a typical distance or closer keeps its similarity.
    """

    typical: float
    per_unit: float

    @classmethod
    def fit(cls, distances: np.ndarray, similarities: np.ndarray, weight: float) -> Atypicality | None:
        """From the examples' held-out distances and similarities to their own reason; None when
        ``weight`` is 0 or the distances do not vary (nothing to scale by)."""
        spread = float(np.std(distances)) if len(distances) > 1 else 0.0
        if weight <= 0.0 or spread <= 0.0:
            return None
        return cls(typical=float(np.mean(distances)), per_unit=weight * float(np.std(similarities)) / spread)

    def penalty(self, distance: float) -> float:
        """Similarity a turn at squared ``distance`` from a reason loses (0 up to ``typical``)."""
        return self.per_unit * max(0.0, distance - self.typical)


def fit_atypicality(
    units: np.ndarray,
    owners: np.ndarray,
    reasons: int,
    matching: Any,
    pairs: CarrierPairs | None = None,
    held_out: np.ndarray | None = None,
) -> Atypicality | None:
    """``Atypicality`` of a file's unit example vectors (reasons with two or more examples count);
    ``held_out``: their ``held_out_distances`` when the caller has them already."""
    if reasons == 0 or matching.atypicality_weight <= 0.0:
        return None
    counted = np.bincount(owners, minlength=reasons)[owners] > 1
    if held_out is None:
        held_out = held_out_distances(units, owners, reasons, pairs)
    distances = held_out[np.arange(len(units)), owners]
    similarities = own_similarities(units, owners, reasons, matching.example_weight)
    return Atypicality.fit(distances[counted], similarities[counted], matching.atypicality_weight)


@dataclass(frozen=True)
class ReasonIndex:
    """Each reason's centroid (unit rows, file order), its example vectors, the example weight and
    the discriminant that picks the reason a turn belongs to."""

    ids: tuple[str, ...]
    centroids: np.ndarray
    examples: dict[str, np.ndarray]
    example_weight: float = 0.0
    texts: dict[str, tuple[str, ...]] = field(default_factory=dict)
    discriminant: Discriminant | None = None
    prototypes: IntentPrototypes | None = None
    atypicality: Atypicality | None = None

    @classmethod
    def build(
        cls, reasons: ReasonSet, vectors: np.ndarray, prototypes: IntentPrototypes | None = None
    ) -> ReasonIndex:
        """From the vectors of ``indexed_texts`` (every reason's examples in file order, then the
        carrier-wrapped ones; the examples alone leave the carriers out) and the pack's intent
        prototypes (``head_similarity`` of a match; None: the head alone)."""
        count = sum(len(reason.examples) for reason in reasons.reasons)
        wanted = count + len(carrier_plan(reasons))
        if len(vectors) not in (count, wanted):
            raise ValueError(f"expected {count} or {wanted} vectors, got {len(vectors)}")
        wrapped = vectors[count:] if len(vectors) > count else None
        vectors = vectors[:count]
        examples: dict[str, np.ndarray] = {}
        start = 0
        for reason in reasons.reasons:
            examples[reason.id] = unit_rows(vectors[start : start + len(reason.examples)]).astype(np.float32)
            start += len(reason.examples)
        owners = np.array([i for i, rows in enumerate(examples.values()) for _ in rows], dtype=np.int64)
        units = np.concatenate(list(examples.values())) if examples else np.zeros((0, 1), np.float32)
        pairs = CarrierPairs.of_file(reasons, units, wrapped)
        centroids = (
            unit_rows(np.stack([rows.mean(axis=0) for rows in examples.values()]))
            if examples
            else np.zeros((0, 0), dtype=np.float32)
        )
        return cls(
            ids=reasons.ids,
            centroids=centroids.astype(np.float32),
            examples=examples,
            example_weight=reasons.matching.example_weight,
            texts={reason.id: tuple(reason.examples) for reason in reasons.reasons},
            discriminant=(
                Discriminant.fit(list(examples.values()), pairs.deviations if pairs is not None else None)
                if examples
                else None
            ),
            prototypes=prototypes,
            atypicality=fit_atypicality(units, owners, len(examples), reasons.matching, pairs),
        )

    def similarity(self, reason: int, query: np.ndarray) -> tuple[float, int, float]:
        """The ``blended`` similarity of a unit query to one reason, its closest example and that cosine."""
        per_example = self.examples[self.ids[reason]] @ query
        closest = int(np.argmax(per_example))
        nearest = float(per_example[closest])
        centroid = np.asarray(self.centroids[reason] @ query)
        score = float(blended(centroid, np.asarray(nearest), self.example_weight))
        return score, closest, nearest

    def match(
        self, vector: Sequence[float] | np.ndarray, head_intent: str | None = None
    ) -> ReasonMatch | None:
        """The two reasons a turn's embedding is nearest (``Discriminant``), with their similarities.

        The reasons are picked by the discriminant; each one's ``similarity`` (what the open-set
        threshold and the ambiguity margin read) is its ``blended`` cosine. A turn costs two small
        products with the means and the principal directions, plus the two reasons' examples.
        ``head_intent``: the intent the head put first; with the pack's prototypes, the match
        carries the turn's similarity to it by the same blend (``head_similarity``).
        """
        if not self.ids:
            return None
        query = np.asarray(vector, dtype=np.float32)
        norm = float(np.linalg.norm(query))
        if query.shape[-1] != self.centroids.shape[1] or norm == 0.0:
            return None
        query = query / norm
        distances: np.ndarray | None = None
        if self.discriminant is not None:
            distances = self.discriminant.distances(query)
            order = np.argsort(distances)[:2]
        else:  # the highest blended cosine, every reason compared
            scores = [self.similarity(reason, query)[0] for reason in range(len(self.ids))]
            order = np.argsort(-np.asarray(scores))[:2]

        def penalty(reason: int) -> float:
            if self.atypicality is None or distances is None:
                return 0.0
            return self.atypicality.penalty(float(distances[reason]))

        first = int(order[0])
        score, closest, nearest = self.similarity(first, query)
        texts = self.texts.get(self.ids[first], ())
        second = int(order[1]) if len(order) > 1 else None
        atypical = penalty(first)
        return ReasonMatch(
            reason=self.ids[first],
            similarity=score - atypical,
            atypicality=atypical,
            runner_up=self.ids[second] if second is not None else None,
            runner_up_similarity=(
                self.similarity(second, query)[0] - penalty(second) if second is not None else 0.0
            ),
            example=texts[closest] if closest < len(texts) else None,
            example_similarity=nearest,
            head_similarity=(
                self.prototypes.similarity(head_intent, query, self.example_weight)
                if self.prototypes is not None and head_intent is not None
                else None
            ),
        )


def example_texts(reasons: ReasonSet) -> list[str]:
    """Every example, reason by reason in file order."""
    return [text for reason in reasons.reasons for text in reason.examples]


# Openings callers put before their request on the phone. A sample of a file's examples is also
# embedded behind one of them (``carrier_plan``): typed examples alone cannot show the discriminant
# that "hi, I was calling to ask ..." says nothing about which reason it is, and a call's turns are
# full of such openings (their similarity to typed examples falls with every word they add).
CARRIER_PHRASES = (
    "hi i was calling to ask",
    "yeah i wanted to know",
    "um i was wondering",
    "hello yes i need to know",
    "i'm calling because",
)


def carrier_plan(reasons: ReasonSet) -> list[tuple[int, str]]:
    """``(example row, wrapped text)`` for ``matching.carrier_pairs`` of the file's examples.

    Rows are positions in ``example_texts`` order. Which examples are wrapped, and in
    which opening, follows from each example's own text (a checksum), so a file always
    wraps the same ones the same way, and an edit re-embeds only the edited examples'
    wrapped forms (plus at most one that a new example displaces from the sample).
    """
    texts = example_texts(reasons)
    sums = [zlib.crc32(text.encode("utf-8")) for text in texts]
    count = min(len(texts), reasons.matching.carrier_pairs)
    rows = sorted(sorted(range(len(texts)), key=lambda row: (sums[row], row))[:count])
    return [(row, f"{CARRIER_PHRASES[sums[row] % len(CARRIER_PHRASES)]} {texts[row]}") for row in rows]


def indexed_texts(reasons: ReasonSet) -> list[str]:
    """What a reasons file's index embeds: its examples (``example_texts``), then the carrier-wrapped ones."""
    return example_texts(reasons) + [text for _, text in carrier_plan(reasons)]


# --- the active reasons ------------------------------------------------------


@dataclass(frozen=True)
class ActiveReasons:
    """A validated reasons file, its index (``None`` until embedded, or without an embedding),
    where it came from, when it was loaded and whether it is matched (``status``)."""

    reasons: ReasonSet
    index: ReasonIndex | None
    source: str
    loaded_at: str
    status: ReasonsStatus
    detail: str = ""

    def merge(self, prediction: TextPrediction) -> MergedIntents | None:
        """A customer turn's intents with the custom reasons joined (``None``: nothing to join).

        Uses the match ``annotate`` stored on the batch worker when it was made with this
        index; otherwise (a reload in between, a prediction from elsewhere) matches here.
        """
        reasons = self.reasons
        if not reasons.reasons:
            return None
        head = prediction.intent.alternatives
        match = None
        vector = _matchable(prediction)
        if self.index is not None and vector is not None:
            stored = prediction.annotations.get(MATCH_ANNOTATION)
            if stored is not None and stored[0] is self.index:
                match = stored[1]
            else:
                match = self.index.match(vector, head[0][0])
        return merge_intents(head, match, reasons)

    def annotate(self, predictions: Sequence[TextPrediction]) -> None:
        """Store each matchable prediction's reason match, with the index it was made with
        (``Runtime.annotate``: on the batch worker, so the event loop does not pay for it)."""
        index = self.index
        if index is None or not self.reasons.reasons:
            return
        for prediction in predictions:
            vector = _matchable(prediction)
            if vector is not None:
                match = index.match(vector, prediction.intent.alternatives[0][0])
                prediction.annotations[MATCH_ANNOTATION] = (index, match)


# ``TextPrediction.annotations`` key of a stored reason match: ``(ReasonIndex, ReasonMatch | None)``.
MATCH_ANNOTATION = "switchboard.reason_match"


def _matchable(prediction: TextPrediction) -> np.ndarray | None:
    """The embedding of a turn that can state a reason (lexical, in a supported language, with
    intents), else None."""
    if prediction.intent.alternatives and prediction.lexical and prediction.language.supported:
        return prediction.embedding
    return None


@dataclass(frozen=True)
class _Prepared:
    active: ActiveReasons
    policy: Policy | None
    policy_text: str | None


class ReasonSource:
    """Holds the active reasons; swaps them (and the policy compiled against them) on a reload.

    ``path`` None means the bundled default, unless ``enabled`` is False.
    ``attach`` gives it the pack's embedder once the pack is loaded.
    """

    def __init__(
        self,
        path: Path | None,
        metrics: Metrics,
        *,
        enabled: bool = True,
        cache: EmbeddingCache | None = None,
    ) -> None:
        self.path = path
        self.enabled = enabled
        self._metrics = metrics
        self._cache = cache or EmbeddingCache()
        self._embedder: Embedder | None = None
        self._policies: Any = None
        self._stamp: FileStamp | None = None
        self._active = self._parse()  # ReasonsError/SettingsError at startup: fail fast
        self._stamp = file_stamp(self.path)
        self._metrics.reasons_active.set(0)

    # -- reading --

    @property
    def active(self) -> ActiveReasons:
        """The reasons in force now (read once per request)."""
        return self._active

    @property
    def reasons(self) -> ReasonSet:
        """Shortcut for ``active.reasons``."""
        return self._active.reasons

    def _read(self) -> tuple[str, str]:
        if not self.enabled:
            return "", "disabled"
        if self.path is None:
            return default_reasons_text(), "default"
        try:
            return self.path.read_text(encoding="utf-8"), str(self.path)
        except (OSError, UnicodeDecodeError) as exc:
            raise SettingsError(
                f"SWITCHBOARD_REASONS: cannot read {self.path} ({type(exc).__name__})"
            ) from exc

    def _parse(self) -> ActiveReasons:
        text, source = self._read()
        nesting = toml_nesting_error(text)  # the TOML parser recurses once per level: refuse first
        if nesting is not None:
            raise ReasonsError([nesting])
        reasons = load_reasons(text) if self.enabled else empty_reasons()
        status: ReasonsStatus = "disabled" if not self.enabled else "pending"
        return ActiveReasons(reasons=reasons, index=None, source=source, loaded_at=utc_now(), status=status)

    # -- wiring --

    def bind(self, policies: Any) -> None:
        """The ``PolicySource`` whose policy must validate against every new reasons file."""
        self._policies = policies

    def annotate(self, predictions: list[TextPrediction]) -> None:
        """``ActiveReasons.annotate`` with the reasons in force now (a ``Runtime.annotate`` hook)."""
        self._active.annotate(predictions)

    def attach(self, embedder: Embedder | None) -> None:
        """Embed the active reasons' examples with the pack (blocking: call it off the event loop)."""
        self._embedder = embedder
        active = self._active
        self._active = self._indexed(active)
        self._report(self._active, active)

    def _indexed(self, active: ActiveReasons) -> ActiveReasons:
        if active.status == "disabled" or not active.reasons.reasons:
            return replace(active, index=None, status="disabled" if not self.enabled else "active")
        embedder = self._embedder
        if embedder is None:
            return replace(active, index=None, status="pending")
        if not embedder.available:
            return replace(active, index=None, status="unavailable", detail=NO_EMBEDDING)
        vectors, fresh = self._cache.embed(embedder.key, indexed_texts(active.reasons), embedder)
        if fresh:
            _log.info("reasons examples embedded", extra={"texts": fresh, "source": active.source})
        index = ReasonIndex.build(active.reasons, vectors, embedder.prototypes)
        return replace(active, index=index, status="active", detail="")

    def _report(self, new: ActiveReasons, old: ActiveReasons | None) -> None:
        count = len(new.reasons.reasons) if new.status == "active" else 0
        self._metrics.reasons_active.set(count)
        if new.status == "unavailable" and (old is None or old.status != "unavailable"):
            _log.warning(NO_EMBEDDING, extra={"reasons": len(new.reasons.reasons), "source": new.source})
        elif new.status == "active" and new.reasons.reasons:
            _log.info(
                "custom contact reasons active",
                extra={"reasons": len(new.reasons.reasons), "hash": new.reasons.hash, "source": new.source},
            )

    # -- reloading --

    def prepare(self) -> _Prepared:
        """Read, validate, check against the active policy and embed (blocking; activates nothing).

        Raises ``ReasonsError`` (invalid file, or rejected by the active policy) or ``SettingsError``.
        """
        stamp = file_stamp(self.path)
        candidate = self._parse()
        policy, policy_text = self._policy_for(candidate.reasons)
        self._stamp = stamp
        return _Prepared(active=self._indexed(candidate), policy=policy, policy_text=policy_text)

    def _policy_for(self, reasons: ReasonSet) -> tuple[Policy | None, str | None]:
        """The active policy compiled against ``reasons``; ``ReasonsError`` if it rejects them."""
        if self._policies is None:
            return None, None
        text = self._policies.active.text
        try:
            return self._policies.candidate(reasons), text
        except PolicyError as exc:
            raise ReasonsError(
                [f"the active routing policy rejects these reasons: {message}" for message in exc.errors]
            ) from None

    def commit(self, prepared: _Prepared) -> bool:
        """Activate prepared reasons (and their policy) at once. True if the reasons changed."""
        previous = self._active
        new = prepared.active
        changed = new.reasons.hash != previous.reasons.hash or new.status != previous.status
        policy = prepared.policy
        if self._policies is not None and self._policies.active.text != prepared.policy_text:
            policy, _ = self._policy_for(new.reasons)  # the policy file was reloaded meanwhile
        if policy is not None and self._policies is not None:
            self._policies.rebind(new.reasons, policy)
        self._active = new if changed else previous
        self._metrics.reasons_reloads.labels(result="changed" if changed else "unchanged").inc()
        if changed:
            self._report(new, previous)
        return changed

    def _rejected(self, exc: Exception) -> None:
        self._metrics.reasons_reloads.labels(result="invalid").inc()
        _log.error(
            "reasons reload rejected; keeping the active reasons",
            # The validator's messages name reasons and fields, never example texts.
            extra={"source": self._active.source, "errors": list(getattr(exc, "errors", [str(exc)]))[:20]},
        )

    def reload(self) -> bool:
        """Re-read, validate, embed and activate (blocking). True if the active reasons changed.

        Raises ``ReasonsError``/``SettingsError`` (old reasons kept) when the file is unusable.
        """
        try:
            return self.commit(self.prepare())
        except (ReasonsError, SettingsError) as exc:
            self._rejected(exc)
            raise

    async def reload_async(self) -> bool:
        """``reload`` with the embedding off the event loop and the swap on it (atomic for requests)."""
        try:
            return self.commit(await asyncio.to_thread(self.prepare))
        except (ReasonsError, SettingsError) as exc:
            self._rejected(exc)
            raise

    async def reload_if_modified(self) -> bool:
        """Reload when the file's stamp changed since the last load; never raises."""
        stamp = file_stamp(self.path)
        if self.path is None or stamp is None or stamp == self._stamp:
            return False
        try:
            return await self.reload_async()
        except (ReasonsError, SettingsError):
            self._stamp = stamp  # not re-validated (and re-logged) every tick
            return False
        except Exception as exc:  # embedding failed: keep the old reasons, try again next tick
            _log.error(
                "reasons reload failed; keeping the active reasons", extra={"exc_type": type(exc).__name__}
            )
            return False

    async def watch(self, interval_s: float) -> None:
        """Poll for file changes forever (cancel the task to stop)."""
        while True:
            await asyncio.sleep(interval_s)
            await self.reload_if_modified()

    async def reload_quietly(self) -> None:
        """For SIGHUP: reload, with failures logged and counted, never raised."""
        with contextlib.suppress(ReasonsError, SettingsError):
            await self.reload_async()


def source_from_settings(settings: Any, metrics: Metrics) -> ReasonSource:
    """The reasons file the settings name (``SWITCHBOARD_REASONS``), validated; embedding cache in
    ``$DATA_DIR/reasons_cache``. Raises ``ReasonsError``/``SettingsError``."""
    return ReasonSource(
        settings.reasons_path,
        metrics,
        enabled=settings.reasons_enabled,
        cache=EmbeddingCache(Path(settings.data_dir) / "reasons_cache"),
    )


def attach_runtime(source: ReasonSource, runtime: Any) -> None:
    """Embed ``source``'s examples with a loaded runtime (blocking); warns when the pack has no embedding."""
    source.attach(Embedder(runtime))
