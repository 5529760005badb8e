"""The committed default pack: it loads, verifies, and gives sensible answers on obvious turns."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from models.packs import DEFAULT_PACK
from models.runtime import Runtime, RuntimeConfig
from routing.taxonomy import ACT_LABELS, EMOTION_LABELS, INTENT_LABELS, SENTIMENT_LABELS, category_of


@pytest.fixture(scope="module")
def runtime() -> Runtime:
    return Runtime.load(DEFAULT_PACK, RuntimeConfig())


def test_pack_matches_the_shared_taxonomy(runtime: Runtime) -> None:
    assert runtime.labels == {
        "sentiment": list(SENTIMENT_LABELS),
        "emotion": list(EMOTION_LABELS),
        "intent": list(INTENT_LABELS),
        "act": list(ACT_LABELS),
    }
    info = runtime.info
    assert info["pack"] and info["version"]
    assert all(len(digest) == 64 for digest in info["files"].values())


@pytest.mark.parametrize(
    "text",
    ["I want to cancel my account", "please close my account, I'm leaving", "delete my account now"],
)
def test_cancellation_turns(runtime: Runtime, text: str) -> None:
    (result,) = runtime.predict([text])
    assert category_of(result.intent.label) == "cancellation", result.intent


GRATEFUL = [
    "thank you so much, great help",
    "that's brilliant, thanks a lot!",
    "thanks a lot",
    "thank you that was really helpful",
    "you've been amazing, thank you",
    "i really appreciate your help",
    "cheers mate that's sorted",
    "thanks",
]


def test_grateful_turns_are_positive(runtime: Runtime) -> None:
    """Thanks read positive with gratitude or joy; a borderline one may stay neutral, never negative."""
    results = runtime.predict(GRATEFUL)
    positive = [r for r in results if r.sentiment.label == "positive"]
    assert len(positive) >= 6, [(t, r.sentiment.label) for t, r in zip(GRATEFUL, results, strict=True)]
    assert not any(r.sentiment.label == "negative" for r in results)
    for result in positive:
        assert result.sentiment.score > 0.3
        top_emotion = max(result.emotion.scores, key=result.emotion.scores.__getitem__)
        assert top_emotion in {"gratitude", "joy"}, result.emotion


@pytest.mark.parametrize(
    "text",
    [
        "this is the third time I'm calling and it's still broken, I'm furious",
        "you charged me twice and nobody is helping, this is ridiculous",
    ],
)
def test_angry_turns_are_negative(runtime: Runtime, text: str) -> None:
    (result,) = runtime.predict([text])
    assert result.sentiment.label == "negative", result.sentiment
    assert result.sentiment.score < -0.3
    # Routing reads the reported labels (at most two): one of them must name the anger.
    assert {"anger", "frustration"} & set(result.emotion.labels), result.emotion


def test_batched_matches_single_on_the_real_pack(runtime: Runtime) -> None:
    """Each text runs alone inside its micro-batch: its scores never depend on its neighbours."""
    texts = [
        "I want to cancel my account",
        "thank you so much, great help",
        "my card was declined at the shop and I don't know why, can you check what's going on with it please",
        "where is my refund",
    ]
    batched = runtime.predict(texts)
    for text, many in zip(texts, batched, strict=True):
        (one,) = runtime.predict([text])
        assert one == many


@pytest.mark.parametrize(
    "text",
    [
        "How do I track my card?",
        "i lost my credit card",
        "how do I change my PIN",
        "can i book an appointment for friday",
        "I can help with billing. Could you describe the charge?",
    ],
)
def test_calm_requests_are_not_negative_and_carry_no_emotion(runtime: Runtime, text: str) -> None:
    (result,) = runtime.predict([text])
    assert result.sentiment.label != "negative", result.sentiment
    assert not {"anger", "frustration", "gratitude", "joy"} & set(result.emotion.labels), result.emotion


@pytest.mark.parametrize(
    "text", ["[noise]", "um uh", "mm hmm", "the amount is eighty one", "four one one one", "okay"]
)
def test_non_lexical_turns_are_neutral_and_quiet(runtime: Runtime, text: str) -> None:
    (result,) = runtime.predict([text])
    if not result.lexical:
        assert result.act.label == "non_lexical"
    assert result.sentiment.label == "neutral"
    assert set(result.emotion.labels) <= {"neutral"}  # the "neutral" emotion label is no emotion


def test_a_callers_self_introduction_does_not_reach_the_model(runtime: Runtime) -> None:
    introduced, bare = runtime.predict(
        ["hi my name is rob and i want to cancel my card", "i want to cancel my card"]
    )
    assert introduced.intent == bare.intent and introduced.sentiment == bare.sentiment
    assert introduced.act.label == "reason"


def test_a_turn_that_only_asks_to_wait_is_a_hold_whatever_intent_the_model_reads(runtime: Runtime) -> None:
    (hold,) = runtime.predict(["hold on let me grab my card"])
    assert hold.act.label == "hold" and hold.act.confidence == 1.0 and hold.lexical
    assert hold.sentiment.label == "neutral"


def test_acts_of_typical_turns(runtime: Runtime) -> None:
    reason, closing, greeting = runtime.predict(
        ["I need to check my account balance", "no that's all, thank you so much", "hello there"]
    )
    assert reason.act.label == "reason"
    assert closing.act.label == "thanks_or_closing"
    assert greeting.act.label == "greeting"


def test_embedding_is_unit_length(runtime: Runtime) -> None:
    (result,) = runtime.predict(["where is my refund"])
    # layers 3-6 of the 384-wide encoder, concatenated (export.modeling: sentence_embedding)
    assert result.embedding is not None and len(result.embedding) == 1536
    assert sum(x * x for x in result.embedding) == pytest.approx(1.0, abs=1e-3)


def test_ready_within_ten_seconds() -> None:
    """A guard against a load + start an order of magnitude slower, not the 3 s target: the
    runtime benchmark checks that (``ready_s`` 0.82 s on a quiet machine). Measured here at
    3.9-6.4 s with two cores shared by about ten busy processes, so 10 s and no less."""

    async def start() -> float:
        loop = asyncio.get_running_loop()
        started = loop.time()
        runtime = Runtime.load(DEFAULT_PACK, RuntimeConfig())
        await runtime.start()
        elapsed = loop.time() - started
        assert len(await runtime.submit(["hello"])) == 1
        await runtime.close()
        return elapsed

    assert asyncio.run(start()) < 10


def test_committed_manifest_hashes_and_size() -> None:
    from models.manifest import read_manifest, sha256_file

    manifest = read_manifest(DEFAULT_PACK)
    assert {"model.int8.onnx", "tokenizer.json", "MODEL_CARD.md"} <= set(manifest.files)
    for name, entry in manifest.files.items():
        path = DEFAULT_PACK / name
        assert path.stat().st_size == entry.bytes, name
        assert sha256_file(path) == entry.sha256, name
    total = sum(p.stat().st_size for p in DEFAULT_PACK.rglob("*") if p.is_file())
    assert total <= 30 * 1024 * 1024
    assert manifest.heads["emotion"].kind == "sigmoid" and set(manifest.heads["emotion"].thresholds) == set(
        EMOTION_LABELS
    )
    assert all(spec.temperature > 0 for spec in manifest.heads.values())


def test_every_pack_file_ships_in_the_wheel() -> None:
    """``pip install .`` (the Docker image) carries only the package-data patterns: a pack file they
    miss would be listed in the manifest but absent, and the runtime refuses such a pack."""
    import fnmatch
    import tomllib

    from models.manifest import read_manifest

    pyproject = tomllib.loads((DEFAULT_PACK.parents[2] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["models.packs"]
    for name in [*read_manifest(DEFAULT_PACK).files, "manifest.json"]:
        assert any(fnmatch.fnmatch(f"default/{name}", pattern) for pattern in patterns), name


def test_the_pack_serves_intent_prototypes_for_every_built_in_intent(runtime: Runtime) -> None:
    prototypes = runtime.intent_prototypes
    assert prototypes is not None
    assert set(prototypes.labels) == set(INTENT_LABELS) - {"out_of_scope"}
    (result,) = runtime.predict(["my card is about to expire"])
    assert result.embedding is not None
    query = np.asarray(result.embedding, dtype=np.float32)
    own = prototypes.similarity("card_about_to_expire", query, 0.3)
    other = prototypes.similarity("order_checks", query, 0.3)
    assert own is not None and other is not None and own > other + 0.1
