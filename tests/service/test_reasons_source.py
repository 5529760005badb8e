"""Custom contact reasons in the service: index, embedding cache, hot reload, the policy link, the
analyzer and the HTTP endpoints.

Most tests embed with a deterministic bag-of-words stand-in (texts sharing words are close), so
they test the service logic, not a model; the last ones load the tiny test packs (v2 with a
sentence embedding, v1 without) built by ``tests/models/conftest.py``.
"""

from __future__ import annotations

import logging
import os
import zlib
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

from models.language import LanguageResult
from models.prototypes import IntentPrototypes
from models.types import ActResult, EmotionResult, IntentResult, SentimentResult, TextPrediction
from routing.errors import ReasonsError
from routing.policy import default_policy_text
from routing.reasons import load_reasons
from service.analysis import Analyzer
from service.metrics import Metrics
from service.policy_source import PolicySource
from service.reasons import (
    CARRIER_PHRASES,
    HELD_OUT_FOLDS,
    MATCH_ANNOTATION,
    SHRINKAGE,
    ActiveReasons,
    Atypicality,
    CarrierPairs,
    Discriminant,
    EmbeddingCache,
    ReasonIndex,
    ReasonSource,
    carrier_plan,
    default_reasons_text,
    example_texts,
    held_out_distances,
    indexed_texts,
    unit_rows,
)
from service.schemas import AnalyzeRequest, TurnIn
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DIM = 32

# The bag-of-words stand-in embedder below has its own cosine scale, lower than the pack's.
BRANCHES = """
[matching]
similarity_threshold = 0.55

[[reasons]]
id = "branch_hours"
category = "branches"
examples = ["when is the branch open", "branch opening hours", "is the branch open on sunday",
            "what time does the branch close", "branch hours today"]

[[reasons]]
id = "lost_luggage"
category = "travel"
examples = ["my luggage is lost", "the airline lost my bag", "lost luggage claim",
            "my suitcase never arrived", "where is my lost bag"]
"""


def bag(text: str) -> np.ndarray:
    """A deterministic unit vector: the sum of one random vector per word."""
    vector = np.zeros(DIM)
    for word in text.lower().split():
        vector += np.random.default_rng(zlib.crc32(word.encode())).normal(size=DIM)
    return vector / max(float(np.linalg.norm(vector)), 1e-12)


class FakeEmbedder:
    """Stands in for ``service.reasons.Embedder``; records what it was asked to embed."""

    def __init__(self, available: bool = True, prototypes: IntentPrototypes | None = None) -> None:
        self.key = "fake-pack"
        self.available = available
        self.prototypes = prototypes
        self.calls: list[list[str]] = []

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return np.stack([bag(t) for t in texts]).astype(np.float32)

    @property
    def embedded(self) -> list[str]:
        return [t for call in self.calls for t in call]


def bump_mtime(path: Path) -> None:
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def source_for(path: Path, metrics: Metrics | None = None, **kwargs: Any) -> ReasonSource:
    return ReasonSource(path, metrics or Metrics(), **kwargs)


# --- index and cache -----------------------------------------------------------


def test_index_matches_the_nearest_centroid_and_its_runner_up() -> None:
    reasons = load_reasons(BRANCHES)
    index = ReasonIndex.build(reasons, np.stack([bag(t) for t in example_texts(reasons)]))
    match = index.match(bag("is the branch open today"))
    assert match is not None and match.reason == "branch_hours" and match.runner_up == "lost_luggage"
    assert match.similarity > match.runner_up_similarity
    assert index.match(np.zeros(DIM)) is None  # no direction: no match
    assert index.match(np.ones(DIM + 1)) is None  # another pack's width: no match
    single = load_reasons(BRANCHES.split('[[reasons]]\nid = "lost_luggage"')[0])
    one = ReasonIndex.build(single, np.stack([bag(t) for t in example_texts(single)]))
    alone = one.match(bag("branch hours"))
    assert alone is not None and alone.reason == "branch_hours" and alone.runner_up is None


def test_similarity_blends_the_centroid_with_the_nearest_example() -> None:
    text = BRANCHES.replace("= 0.55", "= 0.55\nexample_weight = 0.4")
    reasons = load_reasons(text)
    vectors = np.stack([bag(t) for t in example_texts(reasons)])
    index = ReasonIndex.build(reasons, vectors)
    assert index.example_weight == 0.4
    query = bag("what time does the branch close today")
    match = index.match(query)
    hours = vectors[:5] / np.linalg.norm(vectors[:5], axis=1, keepdims=True)
    centroid = hours.mean(axis=0) / np.linalg.norm(hours.mean(axis=0))
    expected = 0.6 * float(centroid @ query) + 0.4 * float((hours @ query).max())
    assert match is not None and match.reason == "branch_hours"
    assert match.similarity + match.atypicality == pytest.approx(expected, abs=1e-5)
    plain = ReasonIndex.build(load_reasons(text.replace("= 0.4", "= 0")), vectors)
    centroid_only = plain.match(query)
    assert centroid_only is not None
    assert centroid_only.similarity + centroid_only.atypicality == pytest.approx(
        float(centroid @ query), abs=1e-5
    )


def test_distances_of_many_queries_are_the_distances_of_each() -> None:
    rng = np.random.default_rng(4)
    groups = [unit_rows(rng.normal(size=(7, 12)) + 2 * rng.normal(size=12)) for _ in range(4)]
    discriminant = Discriminant.fit(groups)
    queries = unit_rows(rng.normal(size=(9, 12)))
    each = np.stack([discriminant.distances(query) for query in queries])
    assert discriminant.distances_many(queries, chunk=4) == pytest.approx(each, rel=1e-4, abs=1e-4)


def test_carrier_plan_wraps_a_stable_sample_of_the_examples_in_callers_openings() -> None:
    reasons = load_reasons(BRANCHES)
    plan = carrier_plan(reasons)
    texts = example_texts(reasons)
    assert [row for row, _ in plan] == list(range(10))  # ten examples, at most 128 wrapped: all
    for row, wrapped in plan:
        opening = wrapped[: -len(texts[row]) - 1]
        assert opening in CARRIER_PHRASES and wrapped.endswith(" " + texts[row])
    assert indexed_texts(reasons) == texts + [wrapped for _, wrapped in plan]
    few = load_reasons(BRANCHES.replace("= 0.55", "= 0.55\ncarrier_pairs = 3"))
    assert len(carrier_plan(few)) == 3 and carrier_plan(few) == carrier_plan(few)
    assert carrier_plan(load_reasons(BRANCHES.replace("= 0.55", "= 0.55\ncarrier_pairs = 0"))) == []
    # Each example keeps its opening whatever else the file holds: an edit re-embeds only what changed.
    grown = load_reasons(BRANCHES.replace('"branch hours today"', '"branch hours today", "open late?"'))
    kept = {text for _, text in carrier_plan(grown)}
    assert {text for _, text in plan} < kept


def test_carrier_pairs_teach_the_discriminant_that_an_opening_is_no_reason() -> None:
    rng = np.random.default_rng(6)
    groups = [unit_rows(rng.normal(size=(8, 16)) + 3 * rng.normal(size=16)) for _ in range(3)]
    opening = unit_rows(rng.normal(size=(1, 16)))[0]
    units = np.concatenate(groups)
    wrapped = unit_rows(units[:12] + 0.8 * opening)
    pairs = CarrierPairs.of(units, list(range(12)), wrapped)
    assert pairs is not None and pairs.deviations.shape == (12, 16)
    assert pairs.deviations[0] == pytest.approx((wrapped[0] - units[0]) / np.sqrt(2), abs=1e-6)
    plain, taught = Discriminant.fit(groups), Discriminant.fit(groups, pairs.deviations)
    turn = unit_rows((groups[1].mean(axis=0) + 0.8 * opening)[None, :])[0]  # reason 1, behind the opening
    assert taught.distances(turn)[1] < plain.distances(turn)[1]
    # a fold leaves out the pairs of the examples it holds out
    held_out = np.zeros(len(units), dtype=bool)
    held_out[[0, 5]] = True
    assert len(pairs.without(held_out)) == 10


def test_the_index_takes_the_examples_alone_or_with_their_wrapped_forms() -> None:
    reasons = load_reasons(BRANCHES)
    typed = np.stack([bag(t) for t in example_texts(reasons)])
    both = np.stack([bag(t) for t in indexed_texts(reasons)])
    assert ReasonIndex.build(reasons, both).match(bag("is the branch open today")) is not None
    assert ReasonIndex.build(reasons, typed).match(bag("is the branch open today")) is not None
    with pytest.raises(ValueError, match="expected 10 or 20 vectors, got 15"):
        ReasonIndex.build(reasons, both[:15])


def test_held_out_distances_measure_each_example_with_a_fit_without_it() -> None:
    rng = np.random.default_rng(5)
    groups = [unit_rows(rng.normal(size=(6, 6)) + 3 * rng.normal(size=6)) for _ in range(3)]
    units, owners = np.concatenate(groups), np.repeat(np.arange(3), 6)
    distances = held_out_distances(units, owners, 3)
    # Fold 0 leaves out the examples at positions 0 and 5 of every reason.
    fold = Discriminant.fit([g[np.arange(6) % HELD_OUT_FOLDS != 0] for g in groups])
    assert distances[0] == pytest.approx(fold.distances(units[0]), rel=1e-5)
    assert distances[11] == pytest.approx(fold.distances(units[11]), rel=1e-5)
    # Measured by a fit that saw them, the examples would look closer than a new turn would.
    everyone = Discriminant.fit(groups)
    inside = [everyone.distances(unit)[owner] for unit, owner in zip(units, owners, strict=True)]
    assert np.mean(inside) < np.mean(distances[np.arange(18), owners])


def test_atypicality_costs_nothing_up_to_the_typical_distance_then_grows_linearly() -> None:
    distances, similarities = np.array([1.0, 2.0, 3.0]), np.array([0.7, 0.8, 0.9])
    atypicality = Atypicality.fit(distances, similarities, weight=1.0)
    assert atypicality is not None and atypicality.typical == pytest.approx(2.0)
    # One spread of distance beyond typical costs one spread of similarity (times the weight).
    assert atypicality.penalty(2.0 + float(np.std(distances))) == pytest.approx(float(np.std(similarities)))
    assert atypicality.penalty(0.5) == 0.0 and atypicality.penalty(2.0) == 0.0
    assert atypicality.penalty(4.0) == pytest.approx(2 * atypicality.penalty(3.0))
    half = Atypicality.fit(distances, similarities, weight=0.5)
    assert half is not None and half.penalty(4.0) == pytest.approx(atypicality.penalty(4.0) / 2)
    assert Atypicality.fit(distances, similarities, weight=0.0) is None  # off
    assert Atypicality.fit(np.array([2.0, 2.0]), similarities[:2], weight=1.0) is None  # no spread


def test_a_turn_off_the_directions_its_reason_varies_in_loses_similarity() -> None:
    reasons = load_reasons(BRANCHES)
    vectors = np.stack([bag(t) for t in example_texts(reasons)])
    index = ReasonIndex.build(reasons, vectors)
    assert index.atypicality is not None
    hours = unit_rows(vectors[:5])
    typical = unit_rows(hours.mean(axis=0, keepdims=True))[0]  # the reason's own centre
    centre = index.match(typical)
    assert centre is not None and centre.reason == "branch_hours" and centre.atypicality == 0.0
    # The centre plus twice a direction none of the examples vary in: still branch hours, atypical.
    outside = unit_rows((typical + 2 * unit_rows(np.ones((1, DIM)))[0])[None, :])[0]
    match = index.match(outside)
    assert match is not None and match.reason == "branch_hours" and match.atypicality > 0.0
    raw = index.similarity(0, outside)[0]
    assert match.similarity == pytest.approx(raw - match.atypicality, abs=1e-6)
    assert match.runner_up_similarity <= index.similarity(1, outside)[0] + 1e-6
    off = ReasonIndex.build(
        load_reasons(BRANCHES.replace("= 0.55", "= 0.55\natypicality_weight = 0")), vectors
    )
    assert off.atypicality is None
    plain = off.match(outside)
    assert plain is not None and plain.atypicality == 0.0 and plain.similarity == pytest.approx(raw, abs=1e-6)


def test_the_discriminant_is_the_mahalanobis_distance_under_the_shrunk_pooled_covariance() -> None:
    rng = np.random.default_rng(3)
    groups = [unit_rows(rng.normal(size=(5, 6)) + 3 * rng.normal(size=6)) for _ in range(3)]
    discriminant = Discriminant.fit(groups)
    deviations = np.concatenate([g - g.mean(axis=0) for g in groups])
    pooled = deviations.T @ deviations / len(deviations)
    shrunk = (1 - SHRINKAGE) * pooled + SHRINKAGE * np.trace(pooled) / 6 * np.eye(6)
    query = unit_rows(rng.normal(size=(1, 6)))[0]
    expected = [float((query - g.mean(0)) @ np.linalg.solve(shrunk, query - g.mean(0))) for g in groups]
    assert discriminant.distances(query) == pytest.approx(expected, rel=1e-6)


def test_a_turn_goes_to_the_reason_whose_examples_vary_its_way() -> None:
    """Nearest centroid by cosine says ``tight``; the turn differs from ``wide`` only the way
    ``wide``'s own examples differ from each other, so the discriminant says ``wide``."""
    wide = unit_rows(np.array([[1, 0.9, 0], [1, -0.9, 0], [1, 0.5, 0.05], [1, -0.5, -0.05], [1, 0, 0]]))
    tight = unit_rows(np.array([[0.7, 0, 0.7], [0.72, 0.02, 0.69], [0.69, -0.02, 0.72], [0.7, 0.01, 0.71]]))
    centroids = unit_rows(np.stack([wide.mean(axis=0), tight.mean(axis=0)]))
    index = ReasonIndex(
        ids=("wide", "tight"),
        centroids=centroids,
        examples={"wide": wide, "tight": tight},
        discriminant=Discriminant.fit([wide, tight]),
    )
    query = unit_rows(np.array([[1.0, 1.0, 0.5]]))[0]
    assert float(centroids[1] @ query) > float(centroids[0] @ query)  # cosine prefers tight
    match = index.match(query)
    assert match is not None and (match.reason, match.runner_up) == ("wide", "tight")
    # The similarities stay the cosines (the open-set threshold reads them): here the two disagree.
    assert match.similarity == pytest.approx(float(centroids[0] @ query), abs=1e-6)
    assert match.runner_up_similarity > match.similarity


def test_cache_embeds_each_text_once_and_survives_a_restart(tmp_path: Path) -> None:
    embedder = FakeEmbedder()
    cache = EmbeddingCache(tmp_path)
    first, fresh = cache.embed("pack-a", ["a b", "c d"], embedder)
    assert fresh == 2 and first.shape == (2, DIM)
    again, fresh = cache.embed("pack-a", ["c d", "e f", "a b"], embedder)
    assert fresh == 1 and embedder.embedded == ["a b", "c d", "e f"]
    assert np.allclose(again[0], first[1])
    # Another process with the same folder embeds nothing; another pack embeds everything again.
    restarted, other = EmbeddingCache(tmp_path), FakeEmbedder()
    assert restarted.embed("pack-a", ["e f", "a b"], other)[1] == 0 and other.calls == []
    assert restarted.embed("pack-b", ["a b"], other)[1] == 1
    assert not any(b"a b" in path.read_bytes() for path in tmp_path.iterdir())  # hashes, not texts


# --- the source: startup, reload, policy --------------------------------------


def test_default_reasons_load_and_wait_for_the_pack() -> None:
    source = ReasonSource(None, Metrics())
    assert source.active.source == "default" and source.active.status == "pending"
    assert source.reasons.ids == load_reasons(default_reasons_text()).ids
    source.attach(FakeEmbedder())
    assert source.active.status == "active" and source.active.index is not None
    disabled = ReasonSource(None, Metrics(), enabled=False)
    assert disabled.active.status == "disabled" and disabled.reasons.reasons == ()


def test_an_invalid_file_at_startup_fails_fast(tmp_path: Path) -> None:
    path = tmp_path / "reasons.toml"
    path.write_text(BRANCHES.replace('category = "travel"', 'category = "out_of_scope"'))
    with pytest.raises(ReasonsError) as info:
        source_for(path)
    assert info.value.errors == [
        "reason 'lost_luggage', field 'category': out_of_scope is what an unclear reason gets; "
        "choose a real category"
    ]


async def test_hot_reload_embeds_only_new_examples_and_a_bad_file_keeps_the_old_reasons(
    tmp_path: Path,
) -> None:
    path = tmp_path / "reasons.toml"
    path.write_text(BRANCHES)
    metrics = Metrics()
    source = source_for(path, metrics, cache=EmbeddingCache())
    embedder = FakeEmbedder()
    source.attach(embedder)
    before = source.active
    # the ten examples and, wrapped in a caller's opening, each of them again (``carrier_plan``)
    assert before.status == "active" and len(embedder.embedded) == 20
    assert await source.reload_if_modified() is False  # unchanged file: nothing to do

    path.write_text(
        BRANCHES.replace('"branch hours today"', '"branch hours today", "are branches open late"')
    )
    bump_mtime(path)
    assert await source.reload_if_modified() is True
    # the cache had the other ten and their wrapped forms: only the new example, typed and wrapped
    (wrapped,) = [text for row, text in carrier_plan(source.reasons) if row == 5]
    assert embedder.calls[-1] == ["are branches open late", wrapped]
    assert len(source.reasons.reason("branch_hours").examples) == 6  # type: ignore[union-attr]
    good = source.active

    path.write_text(BRANCHES.replace('id = "lost_luggage"', 'id = "Lost Luggage"'))
    bump_mtime(path)
    assert await source.reload_if_modified() is False  # logged and counted, never raised
    assert source.active is good
    assert await source.reload_if_modified() is False  # the bad file is not re-validated every tick
    rendered = metrics.render().decode()
    assert 'switchboard_reasons_reloads_total{result="invalid"} 1.0' in rendered
    assert 'switchboard_reasons_reloads_total{result="changed"} 1.0' in rendered
    assert "switchboard_reasons_active 2.0" in rendered
    with pytest.raises(ReasonsError):
        await source.reload_async()  # the explicit reload (endpoint, SIGHUP) reports why
    assert source.active is good


async def test_the_policy_is_recompiled_and_can_refuse_a_reload(tmp_path: Path) -> None:
    path = tmp_path / "reasons.toml"
    path.write_text(BRANCHES)
    source = source_for(path)
    policy_text = default_policy_text().replace(
        "[[rules]]",
        '[[rules]]\nid = "luggage"\nroute = "specialist"\nqueue = "general"\npriority = 50\n'
        'when = { signal = "reason.intent", eq = "lost_luggage" }\n\n[[rules]]',
        1,
    )
    policy_path = tmp_path / "policy.toml"
    policy_path.write_text(policy_text)
    policies = PolicySource(policy_path, Metrics(), reasons=source.reasons)
    source.bind(policies)
    source.attach(FakeEmbedder())
    assert policies.policy.reason_queues["travel"] == "general"
    # A new category is known to the policy as soon as the reasons reload.
    path.write_text(BRANCHES.replace('category = "branches"', 'category = "branch_services"'))
    bump_mtime(path)
    assert await source.reload_if_modified() is True
    assert policies.policy.reason_queues["branch_services"] == "general"
    assert "branches" not in policies.policy.reason_queues
    # Removing a reason the policy's rules use is refused, and nothing changes.
    path.write_text(BRANCHES.split('[[reasons]]\nid = "lost_luggage"')[0])
    bump_mtime(path)
    with pytest.raises(ReasonsError) as info:
        source.reload()
    assert "the active routing policy rejects these reasons" in info.value.errors[0]
    assert "lost_luggage" in info.value.errors[0]
    assert "lost_luggage" in source.reasons.ids and "lost_luggage" in policies.policy.extra_intents


def test_a_pack_without_an_embedding_disables_matching_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "reasons.toml"
    path.write_text(
        BRANCHES + '\n[[reasons]]\nid = "appointments_desk"\ncategory = "appointments"\n'
        'replaces = "book_appointment"\nexamples = ["a1", "a2", "a3", "a4", "a5"]\n'
    )
    source = source_for(path)
    with caplog.at_level(logging.WARNING, logger="switchboard.reasons"):
        source.attach(FakeEmbedder(available=False))
    assert source.active.status == "unavailable" and source.active.index is None
    assert "no sentence embedding" in source.active.detail
    assert any("no sentence embedding" in r.getMessage() for r in caplog.records)
    # Nothing is matched, but the replaced intent is still renamed.
    merged = source.active.merge(prediction("where is my bag", [("book_appointment", 0.9)], bag("lost bag")))
    assert merged is not None and merged.intents == [("appointments_desk", 0.9)]
    merged = source.active.merge(prediction("where is my bag", [("out_of_scope", 0.9)], bag("lost bag")))
    assert merged is not None and merged.intents == [("out_of_scope", 0.9)]


# --- the analyzer: a custom reason end to end ---------------------------------


def prediction(
    text: str, intents: list[tuple[str, float]], embedding: np.ndarray | None, act: str = "question"
) -> TextPrediction:
    return TextPrediction(
        sentiment=SentimentResult(
            label="neutral",
            score=0.0,
            confidence=0.8,
            probs={"negative": 0.1, "neutral": 0.8, "positive": 0.1},
        ),
        emotion=EmotionResult(labels=[], scores={}),
        intent=IntentResult(label=intents[0][0], confidence=intents[0][1], alternatives=intents),
        act=ActResult(label=act, confidence=0.9, probs={}),
        language=LanguageResult(code="en", confidence=0.9, supported=True),
        embedding=None if embedding is None else embedding.tolist(),
    )


def analyzer_with(source: ReasonSource, answers: dict[str, TextPrediction]) -> Analyzer:
    settings = Settings.from_env({"SWITCHBOARD_AUTH_DISABLED": "true"})
    metrics = Metrics()
    policies = PolicySource(None, metrics, reasons=source.reasons)
    source.bind(policies)

    return Analyzer(settings, policies, Answers(answers), {}, metrics, reasons=source)


class Answers:
    """Predictions looked up by text."""

    def __init__(self, answers: dict[str, TextPrediction]) -> None:
        self.answers = answers

    async def predict(self, texts: list[str]) -> list[TextPrediction]:
        return [self.answers[t] for t in texts]


async def test_a_custom_reason_is_reported_like_a_built_in_intent(tmp_path: Path) -> None:
    path = tmp_path / "reasons.toml"
    path.write_text(BRANCHES)
    source = source_for(path)
    source.attach(FakeEmbedder())
    text = "the airline lost my bag"
    answers = {
        "hi": prediction("hi", [("out_of_scope", 0.99)], bag("hi"), act="greeting"),
        text: prediction(text, [("out_of_scope", 0.97), ("lost_or_stolen_card", 0.02)], bag(text)),
    }
    analyzer = analyzer_with(source, answers)
    request = AnalyzeRequest(
        turns=[TurnIn(speaker="customer", text="hi"), TurnIn(speaker="customer", text=text)]
    )
    result = await analyzer.analyze(request)
    turn = result.turns[1].intent
    assert turn is not None and turn.label == "lost_luggage" and turn.source == "reasons"
    assert turn.category == "travel" and turn.similarity is not None and turn.similarity > 0.55
    assert result.turns[0].intent is not None and result.turns[0].intent.source == "model"
    reason = result.contact_reason
    assert (reason.intent, reason.category, reason.status, reason.source) == (
        "lost_luggage",
        "travel",
        "confident",
        "reasons",
    )
    assert (
        result.signals["reason.category"] == "travel"
        and result.signals["intent.current_category"] == "travel"
    )
    assert result.decision.queue == "general"  # "@reason" through the "*" queue
    body = msgspec.json.decode(msgspec.json.encode(result))
    assert body["turns"][1]["intent"]["source"] == "reasons"
    # the evidence is named: the reasons file's example closest to the turn (here the turn itself)
    assert turn.closest_example == text and turn.closest_example_similarity == pytest.approx(1.0, abs=1e-4)
    # an example itself sits where the reason's examples do: no atypicality penalty
    assert turn.atypicality == 0.0 and turn.similarity is not None and turn.similarity > 0.55
    explained = " ".join(item.text for item in result.decision.explanation)
    assert f"closest example: '{text}' (1.00)" in explained


async def test_a_confident_built_in_intent_is_not_overridden(tmp_path: Path) -> None:
    path = tmp_path / "reasons.toml"
    path.write_text(BRANCHES)
    source = source_for(path)
    source.attach(FakeEmbedder())
    text = "when is the branch open"
    analyzer = analyzer_with(source, {text: prediction(text, [("balance", 0.97)], bag(text))})
    result = await analyzer.analyze(AnalyzeRequest(turns=[TurnIn(speaker="customer", text=text)]))
    assert result.turns[0].intent is not None and result.turns[0].intent.label == "balance"
    assert result.contact_reason.intent == "balance" and result.contact_reason.source == "model"


# --- settings ----------------------------------------------------------------------


def test_settings() -> None:
    base = {"SWITCHBOARD_AUTH_DISABLED": "true"}
    default = Settings.from_env(base)
    assert default.reasons_path is None and default.reasons_enabled
    off = Settings.from_env({**base, "SWITCHBOARD_REASONS": "none"})
    assert off.reasons_path is None and not off.reasons_enabled
    own = Settings.from_env({**base, "SWITCHBOARD_REASONS": "/etc/sb/reasons.toml"})
    assert own.reasons_path == Path("/etc/sb/reasons.toml") and own.reasons_enabled


# --- with the tiny test packs ------------------------------------------------------


def test_embedder_reports_whether_the_pack_has_an_embedding(packs: dict[str, Path]) -> None:
    from models.runtime import Runtime
    from service.reasons import Embedder

    v2 = Embedder(Runtime.load(packs["v2"]))
    vectors = v2(["where is my order", "refund please"])
    assert v2.available and vectors.shape == (2, 8)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    v1 = Embedder(Runtime.load(packs["v1"]))
    assert not v1.available and v1.key != v2.key


def test_http_endpoints_show_and_reload_the_reasons(packs: dict[str, Path], tmp_path: Path) -> None:
    from litestar.testing import TestClient

    from service.app import create_app

    path = tmp_path / "reasons.toml"
    path.write_text((ROOT / "tests" / "service" / "fixtures" / "reasons_ok.toml").read_text())
    settings = Settings.from_env(
        {
            "SWITCHBOARD_AUTH_DISABLED": "true",
            "SWITCHBOARD_DATA_DIR": str(tmp_path / "var"),
            "SWITCHBOARD_STORE": "memory://",
            "SWITCHBOARD_PACK": str(packs["v2"]),
            "SWITCHBOARD_REASONS": str(path),
            "SWITCHBOARD_POLICY_RELOAD_INTERVAL": "0",
            "SWITCHBOARD_LOG_LEVEL": "WARNING",
        }
    )
    app = create_app(settings)
    with TestClient(app) as client:
        _wait(client)
        info = client.get("/v1/reasons").json()
        assert info["status"] == "active" and info["source"] == str(path)
        assert [r["id"] for r in info["reasons"]] == ["parcel_status", "login_help", "refund_status"]
        assert info["new_categories"] == ["deliveries"]
        assert (tmp_path / "var" / "reasons_cache").is_dir()  # examples embedded once, kept for restarts
        path.write_text(path.read_text().replace('id = "refund_status"', 'id = "refund status"'))
        failed = client.post("/v1/reasons/reload")
        assert failed.status_code == 422
        assert any("reason #3, field 'id'" in e["message"] for e in failed.json()["errors"])
        assert client.get("/v1/reasons").json()["hash"] == info["hash"]  # the old reasons stay
        path.write_text(path.read_text().replace('id = "refund status"', 'id = "refund_state"'))
        assert client.post("/v1/reasons/reload").json()["reasons"][2]["id"] == "refund_state"
        analysed = client.post(
            "/v1/analyze", json={"turns": [{"speaker": "customer", "text": "where is my order"}]}
        )
        assert analysed.status_code == 200
        assert analysed.json()["turns"][0]["intent"]["source"] in ("model", "reasons")


def _wait(client: Any) -> None:
    import time

    deadline = time.monotonic() + 60
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, "the tiny pack never became ready"
        time.sleep(0.05)


def test_active_reasons_merge_skips_turns_without_words() -> None:
    reasons = load_reasons(BRANCHES)
    index = ReasonIndex.build(reasons, np.stack([bag(t) for t in example_texts(reasons)]))
    active = ActiveReasons(reasons=reasons, index=index, source="", loaded_at="", status="active")
    quiet = prediction("[noise]", [("out_of_scope", 1.0)], bag("branch hours today"))
    quiet = msgspec.structs.replace(quiet, lexical=False)
    merged = active.merge(quiet)
    assert merged is not None and merged.intents == [("out_of_scope", 1.0)]
    loud = active.merge(prediction("branch hours today", [("out_of_scope", 1.0)], bag("branch hours today")))
    assert loud is not None and loud.intents[0][0] == "branch_hours"


def test_merge_uses_the_match_annotated_on_the_batch_worker_only_for_its_own_index() -> None:
    reasons = load_reasons(BRANCHES)
    vectors = np.stack([bag(t) for t in example_texts(reasons)])
    index = ReasonIndex.build(reasons, vectors)
    active = ActiveReasons(reasons=reasons, index=index, source="", loaded_at="", status="active")
    turn = prediction("branch hours today", [("out_of_scope", 1.0)], bag("branch hours today"))
    quiet = msgspec.structs.replace(
        prediction("[noise]", [("out_of_scope", 1.0)], bag("branch hours today")), lexical=False
    )
    active.annotate([turn, quiet])
    assert quiet.annotations == {}  # nothing to match in a turn without words
    stored_index, stored_match = turn.annotations[MATCH_ANNOTATION]
    assert stored_index is index and stored_match == index.match(bag("branch hours today"), "out_of_scope")
    assert stored_match is not None and stored_match.reason == "branch_hours"
    # merge reports the stored match (planted here as another reason) instead of matching again
    planted = msgspec.structs.replace(stored_match, reason="lost_luggage")
    turn.annotations[MATCH_ANNOTATION] = (index, planted)
    merged = active.merge(turn)
    assert merged is not None and merged.intents[0][0] == "lost_luggage"
    # a match made with another index (the file reloaded in between) is not trusted
    reloaded = replace(active, index=ReasonIndex.build(reasons, vectors))
    merged = reloaded.merge(turn)
    assert merged is not None and merged.intents[0][0] == "branch_hours"


def test_a_head_intent_further_from_the_turn_than_the_reason_yields_to_it(tmp_path: Path) -> None:
    """The pack's intent prototypes put the head's pick on the reasons' scale."""
    turn = "what time does the branch close today"
    # card_about_to_expire's prototypes: far from the turn (its own words only)
    far = np.stack([bag("my card expires next month")]).astype(np.float32)
    prototypes = IntentPrototypes(("card_about_to_expire",), far, far[:, None, :])
    path = tmp_path / "reasons.toml"
    path.write_text(BRANCHES)
    head = [("card_about_to_expire", 0.9), ("out_of_scope", 0.1)]
    labels = {}
    for name, embedder in (("with", FakeEmbedder(prototypes=prototypes)), ("without", FakeEmbedder())):
        source = source_for(path)
        source.attach(embedder)  # type: ignore[arg-type]
        merged = source.active.merge(prediction(turn, head, bag(turn)))
        assert merged is not None and merged.matched == "branch_hours"
        labels[name] = merged.intents[0][0]
    assert labels == {"with": "branch_hours", "without": "card_about_to_expire"}


# Appointment requests written for this test (not taken from any data set), 12 per reason.
APPOINTMENT_REQUESTS = {
    "book_appointment": [
        "can i make an appointment for next week",
        "i want to set up a meeting with a loan officer",
        "book me in with an advisor please",
        "do you have any appointments available on monday",
        "i would like to schedule a visit to the branch",
        "can i get an appointment with a mortgage specialist",
        "i'd like to come in and talk to somebody about refinancing",
        "is it possible to meet with a banker tomorrow morning",
        "i want to book a slot to open an account",
        "hi um yeah i was hoping to get an appointment",
        "could someone see me on friday about a car loan",
        "i need to speak to an advisor in person next week",
    ],
    "reschedule_appointment": [
        "i want to change the time of my appointment",
        "can we push my meeting to next tuesday",
        "i can't make it to my appointment on thursday can we move it",
        "i need a later time for my appointment",
        "could i switch my appointment to the afternoon",
        "my meeting with the advisor needs to be moved",
        "can you move me to a different day",
        "i have an appointment on the fifth but need to change it",
        "is there an earlier slot i could move my appointment to",
        "i'd like to rearrange my visit for next week",
        "uh my appointment is at two can we make it four",
        "please reschedule my meeting with the loan officer",
    ],
    "cancel_appointment": [
        "i need to cancel the appointment i booked",
        "please call off my meeting with the advisor",
        "i won't be able to come in so cancel it",
        "cancel my appointment on friday please",
        "i don't need the meeting anymore",
        "can you remove my appointment from the schedule",
        "i have to cancel my visit tomorrow",
        "please cancel my two o'clock",
        "i want to cancel my appointment with the mortgage advisor",
        "we don't need to meet after all please cancel",
        "yeah just cancel the appointment",
        "take me off the appointment list for monday",
    ],
}


# The same needs as a caller says them to a speech-to-text bridge, written for this test too.
SPOKEN_REQUESTS = {
    "branch_hours_and_locations": [
        "yeah hi i wanted to know what time you guys open tomorrow",
        "i was wondering if the branch is open on saturday",
        "um can you tell me your hours for the main street location",
        "i was calling to find out when you close today",
        "hi i need to know if you're open on the holiday",
        "yes i was trying to find the closest branch to me",
        "uh what time does the downtown office close",
        "i just wanted to check your weekend hours",
    ],
    "book_appointment": [
        "yeah i was calling to make an appointment",
        "hi um i wanted to set up a time to come in",
        "i was hoping to schedule a meeting with an advisor",
        "i need to book an appointment for next week please",
        "can i come in and see someone on thursday",
    ],
    "reschedule_appointment": [
        "i was calling because i need to move my appointment",
        "yeah um i have to change my appointment time",
        "i wanted to see if i could reschedule for friday",
    ],
    "cancel_appointment": [
        "hi i'm calling to cancel my appointment",
        "i need to cancel the meeting i had on monday",
        "yeah i won't make it tomorrow so i want to cancel",
    ],
}


@pytest.fixture(scope="module")
def default_reasons(test_pack: Path) -> tuple[Any, ReasonSource]:
    """The real pack and the bundled default reasons file, embedded with it."""
    from models.runtime import Runtime
    from service.reasons import Embedder

    runtime = Runtime.load(test_pack)
    source = ReasonSource(None, Metrics())
    source.attach(Embedder(runtime))
    return runtime, source


def right_per_reason(
    default_reasons: tuple[Any, ReasonSource], requests: dict[str, list[str]]
) -> dict[str, int]:
    runtime, source = default_reasons
    right: dict[str, int] = {}
    for truth, texts in requests.items():
        merged = [source.active.merge(p) for p in runtime.predict(texts)]
        labels = [m.intents[0][0] if m is not None and m.intents else "" for m in merged]
        right[truth] = sum(label == truth for label in labels)
    return right


def test_the_default_reasons_tell_booking_moving_and_cancelling_apart(
    default_reasons: tuple[Any, ReasonSource],
) -> None:
    """The intent head only knows booking; the default file splits it into three by examples."""
    right = right_per_reason(default_reasons, APPOINTMENT_REQUESTS)
    # Measured on packs 2.2 and 2.3: 10, 12 and 12 of 12 (34 of 36); the head alone says booking for most.
    assert sum(right.values()) >= 32 and min(right.values()) >= 9, right


def test_the_default_reasons_hear_callers(default_reasons: tuple[Any, ReasonSource]) -> None:
    """Carrier phrases ("i was calling to", "i wanted to know") lower a turn's similarity to
    examples written as chat; the default file has spoken examples too."""
    right = right_per_reason(default_reasons, SPOKEN_REQUESTS)
    # Measured: 15 of 19 on pack 2.2 (12 before the file had spoken examples), 14 on pack 2.3, 19 on
    # pack 2.3.1 with the atypicality penalty and its lower threshold (14 without), with or without
    # the carrier pairs.
    assert sum(right.values()) >= 17, right
