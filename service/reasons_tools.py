"""Offline tools for custom contact reasons: ``switchboard reasons check`` and ``reasons suggest``.

``check_reasons`` measures a reasons file with the model pack: held-out
accuracy per reason (each example's reason picked as ``ReasonIndex.match``
picks it, by a discriminant fitted without it; its similarity blended from the
centroid and the nearest example with itself left out; through the same
open-set test and merge with the intent head as a live turn), the pairs a
customer could be confused between (two custom reasons, or a custom reason
and a built-in intent the intent head claims its examples for), and reasons
with too few or too similar examples.

``suggest_reasons`` reads exported conversations (``switchboard export``),
keeps the customer turns that stated a reason the pack could not name (intent
``out_of_scope``, or below ``NOT_SURE``, and not matched by the active custom
reasons), embeds them, clusters them with scikit-learn (k-means into many
small clusters, then average-linkage merging of clusters whose centroids are
close) and returns candidate reasons with their most typical utterances and
counts, ready to paste into a reasons file after review.

The export holds transcripts (personal data, redacted only if redaction was
on): nothing here logs their text. Texts are printed only as the command's
output, which is what the operator asked for.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import msgspec
import numpy as np

from models.prototypes import IntentPrototypes
from routing.reasons import (
    MIN_EXAMPLES,
    MergedIntents,
    ReasonMatch,
    ReasonSet,
    accepted,
    merge_intents,
)
from routing.taxonomy import OUT_OF_SCOPE
from service.reasons import (
    HELD_OUT_FOLDS,
    ActiveReasons,
    CarrierPairs,
    Embedder,
    blended,
    example_texts,
    fit_atypicality,
    held_out_distances,
    indexed_texts,
    unit_rows,
)

# Folds of ``reasons check``: each example is picked by a discriminant fitted without it.
# An example set smaller than this works but generalises poorly (warning, not error).
RECOMMENDED_EXAMPLES = 8
# The similarities below are on pack 2.3's embedding (layers 3-6). They were measured on pack 2.1's
# last-layer embedding and carried to each later pack by matching quantiles of the pairwise cosines
# of the same 720 CLINC training utterances under both embeddings (``python -m export similarity
# --from OLD_PACK``; pack 2.2 -> 2.3 moved 0.80 to 0.78, 0.85 to 0.84, 0.96 to 0.95, 0.70 to 0.68
# and 0.65 to 0.62).
# Two custom reasons whose centroids are this similar are easily confused (sibling CLINC intents
# such as oil_change_how / oil_change_when sat at 0.75-0.82 on pack 2.1, unrelated ones near 0.36).
CONFUSABLE_CENTROIDS = 0.78
# Examples of one reason this similar on average say nearly the same thing (median about 0.72).
LOW_VARIETY = 0.84
# Two examples this similar are near-duplicates.
NEAR_DUPLICATE = 0.95
# The intent head "claims" an example for a built-in intent at this probability or more...
HEAD_CLAIM = 0.5
# ...and a reason is confusable with that intent when it claims this share of its examples.
HEAD_CLAIM_SHARE = 0.5
# A turn whose top intent probability is below this is "not sure" (suggest reads these).
NOT_SURE = 0.5
# "matched" share (examples held out) under which a reason is reported as weak.
WEAK_MATCH = 0.7
REASON_ACTS = frozenset({"reason", "question", "unknown", ""})
# Clusters are cut where their texts are less similar than this on average (measured on CLINC150
# with pack 2.1: 0.6 then kept clusters 90% pure and found 41 of 45 held-out intents among 1,600
# mixed utterances; 0.68 is the same point on pack 2.3's embedding).
CLUSTER_SIMILARITY = 0.68
# A cluster less cohesive than this is not offered as a candidate reason.
MIN_COHESION = 0.62
# Most texts clustered directly (pairwise distances: ~150 MB and ~3 s at 6,000 on two cores).
MAX_DIRECT = 6000


# --- check ---------------------------------------------------------------------------------------


@dataclass
class ReasonReport:
    """One reason's held-out results."""

    id: str
    category: str
    examples: int
    held_out_accuracy: float
    matched: float
    own_similarity: float
    variety: float
    notes: list[str] = field(default_factory=list)


@dataclass
class PairReport:
    """Two contact reasons a customer could be confused between."""

    first: str
    second: str
    kind: str  # "custom" (two custom reasons) or "built-in" (second is a built-in intent)
    detail: str
    score: float


@dataclass
class CheckReport:
    """What ``reasons check`` prints."""

    reasons: list[ReasonReport]
    pairs: list[PairReport]
    warnings: list[str]

    @property
    def problems(self) -> int:
        """Warnings, confusable pairs and weak reasons (``--strict`` fails on any)."""
        return len(self.warnings) + len(self.pairs) + sum(1 for r in self.reasons if r.notes)


def check_reasons(
    reasons: ReasonSet,
    embedder: Embedder,
    progress: Callable[[Iterable[int]], Iterable[int]] | None = None,
) -> CheckReport:
    """Measure ``reasons`` with the pack behind ``embedder`` (see the module doc)."""
    texts = indexed_texts(reasons)
    examples = len(example_texts(reasons))
    vectors: list[np.ndarray] = []
    heads: list[list[tuple[str, float]]] = []
    steps = range(0, len(texts), 64)
    for start in progress(steps) if progress is not None else steps:
        chunk = texts[start : start + 64]
        predictions = embedder.predict(chunk)
        if any(p.embedding is None for p in predictions):
            raise ValueError("the model pack has no sentence embedding")
        vectors.append(unit_rows(np.asarray([p.embedding for p in predictions], dtype=np.float32)))
        heads += [list(p.intent.alternatives) for p in predictions]
    matrix = np.concatenate(vectors) if vectors else np.zeros((0, 1), dtype=np.float32)
    return analyse(reasons, matrix[:examples], heads[:examples], embedder.prototypes, matrix[examples:])


def held_out_picks(units: np.ndarray, owners: np.ndarray, reasons: int) -> np.ndarray:
    """For every example, the reasons in the order matching would pick them, with the example held
    out (``service.reasons.held_out_distances``)."""
    return np.argsort(held_out_distances(units, owners, reasons), axis=1)


def analyse(
    reasons: ReasonSet,
    vectors: np.ndarray,
    heads: Sequence[Sequence[tuple[str, float]]],
    prototypes: IntentPrototypes | None = None,
    wrapped: np.ndarray | None = None,
) -> CheckReport:
    """``check_reasons`` on already computed example vectors and intent-head outputs (in file order);
    with the pack's intent ``prototypes`` the merge weighs the head's intent as serving does, and with
    the vectors of the carrier-wrapped examples (``carrier_plan``) the discriminant learns from them."""
    ids = list(reasons.ids)
    owners = np.array([i for i, r in enumerate(reasons.reasons) for _ in r.examples], dtype=np.int64)
    sums = np.stack([vectors[owners == i].sum(axis=0) for i in range(len(ids))]) if ids else vectors[:0]
    counts = np.bincount(owners, minlength=len(ids)).astype(np.float32)
    centroids = unit_rows(sums / np.maximum(counts, 1)[:, None]) if ids else sums
    matched = np.zeros(len(vectors), dtype=bool)
    own_sim = np.zeros(len(vectors), dtype=np.float32)
    weight = reasons.matching.example_weight
    # Each example against every other (itself left out), for the nearest-example term.
    units = unit_rows(vectors)
    gram = units @ units.T
    np.fill_diagonal(gram, -np.inf)
    starts = np.concatenate([[0], np.cumsum(counts[:-1])]).astype(np.int64) if ids else np.zeros(0, np.int64)
    pairs = CarrierPairs.of_file(reasons, units, wrapped)
    distances = held_out_distances(units, owners, len(ids), pairs)
    picks = np.argsort(distances, axis=1)
    picked = picks[:, 0] if ids else np.zeros(len(vectors), dtype=np.int64)
    atypicality = fit_atypicality(units, owners, len(ids), reasons.matching, pairs, distances)

    def penalty(row: int, reason: int) -> float:
        return atypicality.penalty(float(distances[row, reason])) if atypicality is not None else 0.0

    for row, (vector, owner) in enumerate(zip(vectors, owners, strict=True)):
        sims = centroids @ vector
        if counts[owner] > 1:
            rest = unit_rows((sums[owner] - vector)[None, :])[0]
            sims[owner] = float(rest @ vector)
        if weight > 0.0:
            nearest = np.maximum.reduceat(gram[row], starts)
            if counts[owner] == 1:  # no other example of its own: its centroid term stands alone
                nearest[owner] = sims[owner]
            sims = blended(sims, nearest, weight)
        own_sim[row] = sims[owner]
        order = picks[row]
        atypical = penalty(row, order[0])
        match = ReasonMatch(
            reason=ids[order[0]],
            similarity=float(sims[order[0]]) - atypical,
            atypicality=atypical,
            runner_up=ids[order[1]] if len(order) > 1 else None,
            runner_up_similarity=float(sims[order[1]]) - penalty(row, order[1]) if len(order) > 1 else 0.0,
            head_similarity=(
                prototypes.similarity(heads[row][0][0], units[row], weight)
                if prototypes is not None and heads[row]
                else None
            ),
        )
        merged: MergedIntents = merge_intents(heads[row], match, reasons)
        matched[row] = bool(merged.intents) and merged.intents[0][0] == ids[owner]
    report = CheckReport(reasons=[], pairs=[], warnings=[])
    for index, reason in enumerate(reasons.reasons):
        mine = owners == index
        rows = vectors[mine]
        gram = rows @ rows.T
        upper = gram[np.triu_indices(len(rows), 1)]
        variety = float(upper.mean()) if len(upper) else 1.0
        entry = ReasonReport(
            id=reason.id,
            category=reason.category,
            examples=len(reason.examples),
            held_out_accuracy=float((picked[mine] == index).mean()),
            matched=float(matched[mine].mean()),
            own_similarity=float(own_sim[mine].mean()),
            variety=variety,
        )
        if len(reason.examples) < RECOMMENDED_EXAMPLES:
            entry.notes.append(f"only {len(reason.examples)} examples ({RECOMMENDED_EXAMPLES}+ recommended)")
        if variety >= LOW_VARIETY:
            entry.notes.append(f"examples too similar (mean similarity {variety:.2f}): vary the wording")
        for a, b in zip(*np.triu_indices(len(rows), 1), strict=True):
            if gram[a, b] >= NEAR_DUPLICATE:
                entry.notes.append(f"examples[{a}] and examples[{b}] are near-duplicates ({gram[a, b]:.2f})")
        if entry.matched < WEAK_MATCH:
            note = f"only {entry.matched:.0%} of its examples would be matched to it"
            missed = np.flatnonzero(mine & ~matched).tolist()
            kept = Counter(
                heads[row][0][0]
                for row in missed
                if heads[row]
                and heads[row][0][0] not in (OUT_OF_SCOPE, reason.id)
                and heads[row][0][1] >= HEAD_CLAIM
            )
            if kept:
                label, count = kept.most_common(1)[0]
                note += (
                    f" ({count} kept by the intent head's {label!r}; if it means the same, "
                    f'replaces = "{label}" gives the reason all of that intent\'s turns)'
                )
            entry.notes.append(note)
        report.reasons.append(entry)
    report.pairs += _custom_pairs(reasons, centroids, owners, picked)
    report.pairs += _built_in_pairs(reasons, owners, heads)
    if len(ids) == 1:
        report.warnings.append("one reason only: the ambiguity margin cannot be tested")
    return report


def _custom_pairs(
    reasons: ReasonSet, centroids: np.ndarray, owners: np.ndarray, picked: np.ndarray
) -> list[PairReport]:
    ids = list(reasons.ids)
    out: list[PairReport] = []
    if len(ids) < 2:
        return out
    sims = centroids @ centroids.T
    for a in range(len(ids)):
        for b in range(a + 1, len(ids)):
            a_to_b = int(((owners == a) & (picked == b)).sum())
            b_to_a = int(((owners == b) & (picked == a)).sum())
            confused = a_to_b + b_to_a
            total = int(((owners == a) | (owners == b)).sum())
            if sims[a, b] >= CONFUSABLE_CENTROIDS or confused >= max(2, math.ceil(0.1 * total)):
                out.append(
                    PairReport(
                        first=ids[a],
                        second=ids[b],
                        kind="custom",
                        detail=f"centroid similarity {sims[a, b]:.2f}; "
                        f"{confused} of {total} examples matched the other one",
                        score=float(sims[a, b]),
                    )
                )
    return sorted(out, key=lambda p: -p.score)


def _built_in_pairs(
    reasons: ReasonSet, owners: np.ndarray, heads: Sequence[Sequence[tuple[str, float]]]
) -> list[PairReport]:
    out: list[PairReport] = []
    for index, reason in enumerate(reasons.reasons):
        claims: Counter[str] = Counter()
        probabilities: dict[str, list[float]] = {}
        rows = np.flatnonzero(owners == index)
        for row in rows.tolist():
            head = heads[row]
            if not head:
                continue
            label, probability = head[0]
            # An intent the file replaces is the file's own reason now: a custom pair, not this.
            if label == OUT_OF_SCOPE or probability < HEAD_CLAIM or label in reasons.replaced:
                continue
            claims[label] += 1
            probabilities.setdefault(label, []).append(probability)
        for label, count in claims.most_common():
            share = count / max(1, len(rows))
            if share < HEAD_CLAIM_SHARE:
                break
            mean = sum(probabilities[label]) / count
            out.append(
                PairReport(
                    first=reason.id,
                    second=label,
                    kind="built-in",
                    detail=f"the intent head predicts {label!r} for {count} of {len(rows)} examples "
                    f"(mean probability {mean:.2f}); the custom reason only wins those turns when clearly "
                    f'stronger: consider replaces = "{label}", or examples that set it apart',
                    score=share,
                )
            )
    return out


def format_check(report: CheckReport, reasons: ReasonSet) -> str:
    """The table ``switchboard reasons check`` prints."""
    lines: list[str] = []
    width = max([len("reason"), *(len(r.id) for r in report.reasons)])
    cat_width = max([len("category"), *(len(r.category) for r in report.reasons)])
    columns = "examples  held_out  matched  own_sim  variety  notes"
    header = f"{'reason':<{width}}  {'category':<{cat_width}}  {columns}"
    lines += [header, "-" * len(header)]
    for r in report.reasons:
        notes = "; ".join(r.notes) if r.notes else "ok"
        lines.append(
            f"{r.id:<{width}}  {r.category:<{cat_width}}  {r.examples:>8}  {r.held_out_accuracy:>8.2f}  "
            f"{r.matched:>7.2f}  {r.own_similarity:>7.2f}  {r.variety:>7.2f}  {notes}"
        )
    settings = reasons.matching
    lines.append("")
    lines.append(
        f"held_out: share of examples whose reason is picked, as matching picks it, by a fit without them "
        f"({HELD_OUT_FOLDS} folds); matched: share of examples a live turn would "
        f"report as this reason (similarity >= {settings.similarity_threshold:g}, shared with the "
        f"runner-up within {settings.ambiguity_margin:g}, merged with the intent head); own_sim: mean "
        "similarity to the reason's centroid without the example; variety: mean similarity between its "
        "examples."
    )
    custom = [p for p in report.pairs if p.kind == "custom"]
    built_in = [p for p in report.pairs if p.kind == "built-in"]
    lines.append("")
    lines.append("Confusable custom reasons:" if custom else "Confusable custom reasons: none")
    lines += [f"  {p.first} <-> {p.second}: {p.detail}" for p in custom]
    lines.append(
        "Confusable with built-in intents:" if built_in else "Confusable with built-in intents: none"
    )
    lines += [f"  {p.first} <-> {p.second} (built-in): {p.detail}" for p in built_in]
    if report.warnings:
        lines.append("Warnings:")
        lines += [f"  {w}" for w in report.warnings]
    return "\n".join(lines)


# --- suggest -------------------------------------------------------------------------------------


class _Intent(msgspec.Struct):
    label: str = ""
    confidence: float = 0.0
    source: str = "model"


class _Act(msgspec.Struct):
    label: str = ""


class _Turn(msgspec.Struct):
    speaker: str = ""
    text: str = ""
    intent: _Intent | None = None
    act: _Act | None = None
    lexical: bool = True


class _Conversation(msgspec.Struct):
    turns: list[_Turn] = []


@dataclass
class Selection:
    """Customer turns of an export that stated a reason the pack could not name."""

    texts: Counter[str]
    conversations: int = 0
    customer_turns: int = 0
    unclear_turns: int = 0
    bad_lines: list[int] = field(default_factory=list)


def select_unclear(lines: Iterable[bytes]) -> Selection:
    """Read export JSONL; keep reason-bearing customer turns with intent out_of_scope or below NOT_SURE.

    Bad lines are skipped and their numbers kept (never their content).
    """
    decoder = msgspec.json.Decoder(_Conversation)
    selection = Selection(texts=Counter())
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            conversation = decoder.decode(line)
        except msgspec.DecodeError:
            selection.bad_lines.append(number)
            continue
        selection.conversations += 1
        for turn in conversation.turns:
            if turn.speaker != "customer" or not turn.lexical or not turn.text.strip():
                continue
            selection.customer_turns += 1
            act = turn.act.label if turn.act is not None else ""
            if act not in REASON_ACTS:
                continue
            intent = turn.intent
            if intent is None or intent.source == "reasons" or intent.label == "unknown":
                continue
            if intent.label == OUT_OF_SCOPE or intent.confidence < NOT_SURE:
                selection.unclear_turns += 1
                selection.texts[" ".join(turn.text.split())] += 1
    return selection


@dataclass
class Candidate:
    """One suggested reason: how many turns it covers and its most typical utterances."""

    id: str
    turns: int
    cohesion: float
    examples: list[tuple[str, int]]


def cluster(
    vectors: np.ndarray,
    weights: np.ndarray,
    *,
    similarity: float = CLUSTER_SIMILARITY,
    max_direct: int = MAX_DIRECT,
    seed: int = 13,
) -> np.ndarray:
    """Cluster labels for unit ``vectors`` (-1: in no cluster).

    Average-linkage agglomerative clustering on cosine distance, cut where
    clusters are less similar than ``similarity`` on average. Above
    ``max_direct`` texts (the pairwise distances grow with the square), a
    weighted sample of ``max_direct`` is clustered and every other text joins
    the cluster whose centroid is closest, if at least ``similarity`` close.
    """
    from sklearn.cluster import AgglomerativeClustering

    count = len(vectors)
    if count < 2:
        return np.zeros(count, dtype=np.int64)
    if count <= max_direct:
        sample = np.arange(count)
    else:
        rng = np.random.default_rng(seed)
        sample = np.sort(rng.choice(count, size=max_direct, replace=False, p=weights / weights.sum()))
    model = AgglomerativeClustering(
        n_clusters=None, metric="cosine", linkage="average", distance_threshold=1.0 - similarity
    ).fit(vectors[sample])
    sampled = np.asarray(model.labels_, dtype=np.int64)
    if count <= max_direct:
        return sampled
    names = np.unique(sampled)
    centroids = unit_rows(np.stack([vectors[sample[sampled == c]].mean(axis=0) for c in names]))
    labels = np.full(count, -1, dtype=np.int64)
    for start in range(0, count, 4096):
        sims = vectors[start : start + 4096] @ centroids.T
        best = sims.argmax(axis=1)
        close = sims[np.arange(len(best)), best] >= similarity
        labels[start : start + 4096] = np.where(close, names[best], -1)
    labels[sample] = sampled
    return labels


_WORD = re.compile(r"\b[a-z][a-z']+\b")
_STOP_WORDS = (
    "a about above after again all am an and any are as at be been before being but by can could did do "
    "does doing don't for from get got had has have having hello hey hi how i i'd i'm i've if in into is "
    "it it's its just like me my need no not of on or our out please so some that the their them then "
    "there these they this to too up us want was we what when where which who why will with would yes "
    "you your"
)
_STOP = frozenset(_STOP_WORDS.split())


def _name(texts: Sequence[str], corpus: Counter[str], used: set[str]) -> str:
    """A provisional id from the words this cluster uses much more than the rest."""
    words: Counter[str] = Counter()
    for text in texts:
        words.update(w for w in set(_WORD.findall(text.lower())) if w not in _STOP)
    scored = sorted(words, key=lambda w: (-words[w] / math.sqrt(1 + corpus[w]), w))
    base = "_".join(w.replace("'", "") for w in scored[:2]) or "reason"
    name = f"suggested_{base}"[:60]
    candidate, n = name, 2
    while candidate in used:
        candidate, n = f"{name}_{n}", n + 1
    used.add(candidate)
    return candidate


def suggest_reasons(
    selection: Selection,
    embed: Callable[[Sequence[str]], np.ndarray],
    *,
    active: ActiveReasons | None = None,
    min_turns: int = 5,
    similarity: float = CLUSTER_SIMILARITY,
    min_cohesion: float = MIN_COHESION,
    max_examples: int = 10,
    progress: Callable[[Iterable[int]], Iterable[int]] | None = None,
) -> tuple[list[Candidate], int]:
    """Candidate reasons from the unclear turns; returns (candidates, turns already matched by ``active``)."""
    texts = list(selection.texts)
    if not texts:
        return [], 0
    chunks: list[np.ndarray] = []
    steps = range(0, len(texts), 64)
    for start in progress(steps) if progress is not None else steps:
        chunks.append(embed(texts[start : start + 64]))
    vectors = np.concatenate(chunks)
    weights = np.array([selection.texts[t] for t in texts], dtype=np.float64)
    covered = 0
    if active is not None and active.index is not None:
        keep = []
        for row, vector in enumerate(vectors):
            if accepted(active.index.match(vector), active.reasons.matching):
                covered += int(weights[row])
            else:
                keep.append(row)
        texts = [texts[row] for row in keep]
        vectors, weights = vectors[keep], weights[keep]
    if not texts:
        return [], covered
    labels = cluster(vectors, weights, similarity=similarity)
    corpus: Counter[str] = Counter()
    for text in texts:
        corpus.update(set(_WORD.findall(text.lower())))
    used: set[str] = set(active.reasons.ids) if active is not None else set()
    out: list[Candidate] = []
    for label in np.unique(labels[labels >= 0]):
        rows = np.flatnonzero(labels == label)
        total = int(weights[rows].sum())
        if total < min_turns:
            continue
        centroid = unit_rows(np.average(vectors[rows], axis=0, weights=weights[rows])[None, :])[0]
        sims = vectors[rows] @ centroid
        cohesion = float(np.average(sims, weights=weights[rows]))
        if cohesion < min_cohesion:
            continue
        typical = rows[np.argsort(-sims)][:max_examples]
        examples = [(texts[row], int(weights[row])) for row in typical]
        out.append(
            Candidate(
                id=_name([texts[row] for row in rows], corpus, used),
                turns=total,
                cohesion=cohesion,
                examples=examples,
            )
        )
    out.sort(key=lambda c: (-c.turns, c.id))
    return out, covered


def format_suggestions(
    candidates: Sequence[Candidate], selection: Selection, covered: int, source: str
) -> str:
    """TOML to paste into a reasons file (after review), with the counts as comments."""
    lines = [
        f"# Candidate contact reasons from {source}: {selection.conversations} conversations, "
        f"{selection.customer_turns} customer turns, {selection.unclear_turns} stated a reason the pack "
        f"could not name (out_of_scope or below {NOT_SURE:g}); {covered} of those already match a custom "
        "reason.",
        f"# {len(candidates)} candidates. Review each: rename the id, choose the category, write the "
        f"description, keep the examples that fit (at least {MIN_EXAMPLES}), then run "
        "`switchboard reasons check`.",
    ]
    for number, candidate in enumerate(candidates, start=1):
        share = candidate.turns / max(1, selection.unclear_turns)
        lines += [
            "",
            f"# candidate {number}: {candidate.turns} turns ({share:.1%} of the unclear ones), "
            f"cohesion {candidate.cohesion:.2f}",
            "[[reasons]]",
            f'id = "{candidate.id}"',
            'category = "general_information"  # choose the category (a new one needs a queue via "*")',
            'description = ""',
            "examples = [",
        ]
        lines += [
            f"  {json.dumps(text, ensure_ascii=False)},  # {count} turn{'s' if count != 1 else ''}"
            for text, count in candidate.examples
        ]
        lines.append("]")
    return "\n".join(lines) + "\n"
