"""The committed default pack: it loads, verifies, and gives sensible answers on obvious turns."""

from __future__ import annotations

import asyncio

import pytest

from models.packs import DEFAULT_PACK
from models.runtime import Runtime, RuntimeConfig
from routing.taxonomy import EMOTION_LABELS, INTENT_LABELS, SENTIMENT_LABELS, category_of


@pytest.fixture(scope="module")
def runtime() -> Runtime:
    return Runtime.load(DEFAULT_PACK, RuntimeConfig())


def test_pack_matches_the_shared_taxonomy(runtime: Runtime) -> None:
    assert runtime.labels == {
        "sentiment": list(SENTIMENT_LABELS),
        "emotion": list(EMOTION_LABELS),
        "intent": list(INTENT_LABELS),
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


@pytest.mark.parametrize("text", ["thank you so much, great help", "that's brilliant, thanks a lot!"])
def test_grateful_turns_are_positive(runtime: Runtime, text: str) -> None:
    (result,) = runtime.predict([text])
    assert result.sentiment.label == "positive", result.sentiment
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
    top_emotion = max(result.emotion.scores, key=result.emotion.scores.__getitem__)
    assert top_emotion in {"anger", "frustration"}, result.emotion


def test_batched_matches_single_on_the_real_pack(runtime: Runtime) -> None:
    """Same sentiment and contact-reason category; probabilities within 0.15.

    int8 dynamic quantization scales activations per tensor, i.e. over the whole
    batch, so neighbours move probabilities a little (measured on 256 validation
    texts: median 0.001, p95 0.055, max 0.2). Exact batch invariance (1e-5) holds
    for float graphs and is tested on them in test_runtime.py; a caller who needs
    it on the int8 pack runs with ``RuntimeConfig(batching=False)``.
    """
    texts = [
        "I want to cancel my account",
        "thank you so much, great help",
        "my card was declined at the shop and I don't know why, can you check what's going on with it please",
        "where is my refund",
    ]
    batched = runtime.predict(texts)
    for text, many in zip(texts, batched, strict=True):
        (one,) = runtime.predict([text])
        # near-synonym intents (track_refund / Refund_not_showing_up) may swap; their category may not
        assert category_of(one.intent.label) == category_of(many.intent.label)
        assert one.sentiment.label == many.sentiment.label
        assert one.sentiment.score == pytest.approx(many.sentiment.score, abs=0.15)


def test_ready_within_three_seconds() -> None:
    async def start() -> float:
        loop = asyncio.get_running_loop()
        started = loop.time()
        runtime = Runtime.load(DEFAULT_PACK, RuntimeConfig())
        await runtime.start()
        elapsed = loop.time() - started
        assert len(await runtime.submit(["hello"])) == 1
        await runtime.close()
        return elapsed

    assert asyncio.run(start()) < 10  # the 3 s target is measured by the benchmark; this guards regressions


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
