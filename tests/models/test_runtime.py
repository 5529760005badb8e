"""Runtime facade: predictions, batched == single, readiness, info, and no torch on the serving path."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import msgspec
import onnxruntime as ort
import pytest

from models.config import LONE_TEXT_MIN_SPEEDUP
from models.engine import DEFAULT_RUN_OVERHEAD_TOKENS
from models.pack import SessionLike, ort_session
from models.runtime import Runtime, RuntimeConfig, run_overhead_tokens
from models.types import TextPrediction

CONFIG = RuntimeConfig(intra_op_threads=1)
REPO = Path(__file__).resolve().parents[2]
TEXTS = [
    "I want to cancel my account",
    "thank you so much, great help!",
    "why",
    "",
    "the bill is wrong I was charged twice " * 6 + "and I am angry",  # longer than max_length
    "where is my order package today",
    "password reset login still not working again why",
]


@pytest.fixture(scope="module")
def runtime(tiny_pack: Path) -> Runtime:
    return Runtime.load(tiny_pack, CONFIG)


def as_dict(prediction: TextPrediction) -> dict[str, Any]:
    built: dict[str, Any] = msgspec.to_builtins(prediction)
    return built


def assert_close(left: object, right: object, tol: float = 1e-5) -> None:
    """Structural equality with float tolerance (labels, order and keys must match exactly)."""
    if isinstance(left, float) and isinstance(right, float):
        assert left == pytest.approx(right, abs=tol)
    elif isinstance(left, dict) and isinstance(right, dict):
        assert list(left) == list(right)
        for key in left:
            assert_close(left[key], right[key], tol)
    elif isinstance(left, list | tuple) and isinstance(right, list | tuple):
        assert len(left) == len(right)
        for a, b in zip(left, right, strict=True):
            assert_close(a, b, tol)
    else:
        assert left == right


def test_predict_returns_one_result_per_text_with_consistent_fields(runtime: Runtime) -> None:
    results = runtime.predict(TEXTS)
    assert len(results) == len(TEXTS)
    for text, result in zip(TEXTS, results, strict=True):
        if not result.lexical:  # "" has no lexical content: quiet, no intent evidence
            assert text == ""
            assert result.sentiment.label == "neutral" and result.emotion.labels == []
            assert result.intent.alternatives == [] and result.act.label == "non_lexical"
            continue
        sentiment = result.sentiment
        assert sum(sentiment.probs.values()) == pytest.approx(1.0)
        assert sentiment.score == pytest.approx(sentiment.probs["positive"] - sentiment.probs["negative"])
        assert sentiment.confidence == max(sentiment.probs.values())
        assert sentiment.probs[sentiment.label] == sentiment.confidence
        emotion = result.emotion
        assert len(emotion.scores) == 8
        assert all(emotion.scores[label] >= 0.4 for label in emotion.labels)
        assert [emotion.scores[label] for label in emotion.labels] == sorted(
            (emotion.scores[label] for label in emotion.labels), reverse=True
        )
        intent = result.intent
        assert len(intent.alternatives) == 5
        assert intent.alternatives[0] == (intent.label, intent.confidence)
        assert [p for _, p in intent.alternatives] == sorted(
            (p for _, p in intent.alternatives), reverse=True
        )


def test_emotion_thresholds_come_from_the_manifest(runtime: Runtime) -> None:
    for result in runtime.predict(TEXTS):
        scores = result.emotion.scores
        over = [
            label
            for label, score in sorted(scores.items(), key=lambda item: -item[1])
            if score >= {"anger": 0.4, "neutral": 0.7}.get(label, 0.5)
        ]
        emotional = [label for label in over if label != "neutral"]
        if result.sentiment.label == "negative":
            emotional = [label for label in emotional if label not in ("gratitude", "joy")]
        # at most two emotions, strongest first; neutral only when nothing else fired
        expected = emotional[:2] if emotional else [label for label in over if label == "neutral"][:1]
        assert result.emotion.labels == expected


def test_batched_results_equal_one_at_a_time(runtime: Runtime) -> None:
    batched = runtime.predict(TEXTS)
    single = [runtime.predict([text])[0] for text in TEXTS]
    for one, many in zip(single, batched, strict=True):
        assert_close(as_dict(one), as_dict(many))


def test_results_do_not_depend_on_batch_neighbours(runtime: Runtime) -> None:
    alone = runtime.predict(["why"])[0]
    with_long_neighbours = runtime.predict([TEXTS[4], "why", TEXTS[6]])[1]
    assert_close(as_dict(alone), as_dict(with_long_neighbours))


def test_predict_of_nothing(runtime: Runtime) -> None:
    assert runtime.predict([]) == []


def test_predict_rejects_non_strings(runtime: Runtime) -> None:
    with pytest.raises(TypeError, match="single string"):
        runtime.predict("a bare string")
    with pytest.raises(TypeError, match=r"texts\[1\] is int"):
        runtime.predict(["ok", 3])  # type: ignore[list-item]


async def test_submit_matches_predict_and_info_after_warm_up(tiny_pack: Path) -> None:
    runtime = Runtime.load(tiny_pack, CONFIG)
    assert not runtime.ready
    await runtime.start()
    try:
        assert runtime.ready
        submitted = await runtime.submit(TEXTS)
        for a, b in zip(submitted, runtime.predict(TEXTS), strict=True):
            assert_close(as_dict(a), as_dict(b))
        info = runtime.info
        assert set(info["warmup_ms"]) == {"1", "8", "32"} and all(v > 0 for v in info["warmup_ms"].values())
        assert info["pack"] == "tiny" and info["ready"] is True
        assert set(info["files"]) == {"model.onnx", "tokenizer.json"}
        assert info["threads"]["intra_op"] == 1 and info["threads"]["inter_op"] == 1
        assert info["heads"]["intent"]["labels"] == 6
        json.dumps(info)  # JSON-ready for /v1/models
    finally:
        await runtime.close()
    assert not runtime.ready


async def test_annotate_sees_every_submitted_prediction_on_the_batch_worker(tiny_pack: Path) -> None:
    runtime = Runtime.load(tiny_pack, CONFIG)
    seen: list[tuple[str, int]] = []

    def annotate(predictions: list[TextPrediction]) -> None:
        for prediction in predictions:
            prediction.annotations["test.thread"] = threading.current_thread().name
            seen.append((threading.current_thread().name, len(predictions)))

    runtime.annotate = annotate
    await runtime.start()
    try:
        submitted = await runtime.submit(TEXTS)
        assert [p.annotations["test.thread"] for p in submitted] == [name for name, _ in seen][-len(TEXTS) :]
        assert threading.current_thread().name not in {name for name, _ in seen}
        assert runtime.predict(TEXTS)[0].annotations == {}  # the synchronous path is not annotated
        assert submitted[0] == runtime.predict(TEXTS[:1])[0]  # annotations are not model output

        def broken(predictions: list[TextPrediction]) -> None:
            raise RuntimeError("a consumer's bug")

        runtime.annotate = broken
        again = await runtime.submit(TEXTS)  # an annotate error never fails inference
        assert [p.intent.label for p in again] == [p.intent.label for p in submitted]
    finally:
        await runtime.close()


def test_run_overhead_calibration_from_warm_up_timings() -> None:
    # t = 1 ms + size * 10 tokens * 0.05 ms: the overhead is 20 tokens' worth.
    timings = {str(size): 1 + size * 10 * 0.05 for size in (1, 8, 32)}
    assert run_overhead_tokens(timings, 10) == pytest.approx(20)
    assert (
        run_overhead_tokens({"1": 5.0, "32": 4.0}, 10) == DEFAULT_RUN_OVERHEAD_TOKENS
    )  # noise: keep default
    assert run_overhead_tokens({"1": 100.0, "32": 100.1}, 10) == 512  # clamped


def test_default_thread_plan_follows_cpu_quota(tiny_pack: Path) -> None:
    from models.cpu import cpu_quota

    info = Runtime.load(tiny_pack).info
    # batch-invariant (default): one row worker per CPU, each with one intra-op thread
    assert info["threads"]["row_workers"] == cpu_quota().cpus
    assert info["threads"]["intra_op"] == 1
    padded = Runtime.load(tiny_pack, RuntimeConfig(invariant=False)).info
    assert padded["threads"]["intra_op"] == cpu_quota().cpus
    assert padded["threads"]["row_workers"] == 1


class ThreadSpy:
    """A session factory building real sessions and recording each one's thread count and run sizes.

    ``delays``: seconds added to every run of the sessions with that many intra-op threads.
    """

    def __init__(self, delays: dict[int, float] | None = None) -> None:
        self.sessions: list[tuple[int, list[int]]] = []
        self.delays = delays or {}

    def __call__(self, path: Path, options: ort.SessionOptions) -> SessionLike:
        inner = ort_session(path, options)
        runs: list[int] = []
        self.sessions.append((options.intra_op_num_threads, runs))
        delay = self.delays.get(options.intra_op_num_threads, 0.0)

        class Spied:
            def get_inputs(self) -> object:
                return inner.get_inputs()

            def get_outputs(self) -> object:
                return inner.get_outputs()

            def run(self, names: list[str] | None, feed: dict[str, object]) -> object:
                runs.append(int(feed["input_ids"].shape[0]))  # type: ignore[attr-defined]
                time.sleep(delay)
                return inner.run(names, feed)

        return Spied()  # type: ignore[return-value]

    def runs(self, threads: int) -> list[int]:
        return [size for count, runs in self.sessions if count == threads for size in runs]

    def clear(self) -> None:
        """Forget every run so far."""
        for _, runs in self.sessions:
            runs.clear()


def test_padded_plan_runs_small_batches_on_one_thread_and_large_ones_on_the_quota(tiny_pack: Path) -> None:
    spy = ThreadSpy()
    config = RuntimeConfig(intra_op_threads=2, invariant=False, single_thread_tokens=12)
    runtime = Runtime.load(tiny_pack, config, session_factory=spy)
    assert sorted(count for count, _ in spy.sessions) == [1, 2]  # one graph, two session sets
    assert runtime.info["threads"]["single_thread_tokens"] == 12
    assert runtime.info["threads"]["intra_op"] == 2
    spy.sessions[0][1].clear()  # forget the load-time probe
    alone = runtime.predict(["why"])  # 3 tokens
    assert spy.runs(1) == [1] and spy.runs(2) == []
    many = runtime.predict(["cancel my account please"] * 4)  # 4 texts x 6 tokens > 12
    assert spy.runs(1) == [1] and spy.runs(2) == [4]
    # both session sets compute the same thing
    assert_close(as_dict(alone[0]), as_dict(runtime.predict(["why"] * 8)[1]))
    assert many[0].intent.label == runtime.predict(["cancel my account please"])[0].intent.label


@pytest.mark.parametrize(
    "config",
    [
        RuntimeConfig(intra_op_threads=1),  # invariant on one CPU: no lone-text sessions
        RuntimeConfig(intra_op_threads=2, lone_text_all_cpus=False),  # lone-text sessions switched off
        RuntimeConfig(intra_op_threads=1, invariant=False),  # one thread anyway
        RuntimeConfig(intra_op_threads=2, invariant=False, single_thread_tokens=0),  # switched off
    ],
)
def test_one_session_set_when_no_run_would_use_another_thread_count(
    tiny_pack: Path, config: RuntimeConfig
) -> None:
    spy = ThreadSpy()
    runtime = Runtime.load(tiny_pack, config, session_factory=spy)
    assert len(spy.sessions) == 1
    assert runtime.info["threads"]["single_thread_tokens"] == 0


def test_a_lone_text_runs_on_every_cpu_and_rows_of_a_batch_on_one_thread_each(tiny_pack: Path) -> None:
    spy = ThreadSpy()
    runtime = Runtime.load(tiny_pack, RuntimeConfig(intra_op_threads=2), session_factory=spy)
    assert sorted(count for count, _ in spy.sessions) == [1, 2]  # the pack's sessions, the lone-text ones
    assert runtime.info["threads"]["lone_text"] == 2
    assert runtime.info["threads"]["intra_op"] == 1
    spy.sessions[0][1].clear()  # forget the load-time probe
    alone = runtime.predict(["why"])
    assert spy.runs(2) == [1] and spy.runs(1) == []
    batch = runtime.predict(["cancel my account please", "why", "where is my order"])
    assert spy.runs(2) == [1] and spy.runs(1) == [1, 1, 1]  # per-text runs, one thread each
    assert as_dict(alone[0]) == as_dict(batch[1])  # thread count never changes a result


async def test_the_warm_up_drops_lone_text_sessions_that_answer_no_sooner(tiny_pack: Path) -> None:
    spy = ThreadSpy(delays={2: 0.003})  # the every-CPU sessions are the slow ones
    runtime = Runtime.load(tiny_pack, RuntimeConfig(intra_op_threads=2), session_factory=spy)
    assert runtime.info["threads"]["lone_text"] == 2
    await runtime.start()
    try:
        warmup = runtime.info["warmup_ms"]
        assert warmup["lone_text_every_cpu"] > warmup["lone_text_one_thread"] + 2
        assert runtime.info["threads"]["lone_text"] == 1
        spy.clear()
        await runtime.submit(["why"])
        assert (spy.runs(1), spy.runs(2)) == ([1], [])  # a lone text now runs on one thread
    finally:
        await runtime.close()


async def test_the_warm_up_keeps_lone_text_sessions_that_answer_sooner(tiny_pack: Path) -> None:
    spy = ThreadSpy(delays={1: 0.003})  # one thread is the slow way
    runtime = Runtime.load(tiny_pack, RuntimeConfig(intra_op_threads=2), session_factory=spy)
    await runtime.start()
    try:
        warmup = runtime.info["warmup_ms"]
        assert warmup["lone_text_one_thread"] > warmup["lone_text_every_cpu"] * LONE_TEXT_MIN_SPEEDUP
        assert runtime.info["threads"]["lone_text"] == 2
        spy.clear()
        await runtime.submit(["why"])
        assert (spy.runs(1), spy.runs(2)) == ([], [1])
    finally:
        await runtime.close()


def test_lone_text_sessions_follow_the_cpu_quota_by_default(tiny_pack: Path) -> None:
    from models.cpu import cpu_quota

    info = Runtime.load(tiny_pack).info
    cpus = cpu_quota().cpus
    assert info["threads"]["lone_text"] == (cpus if cpus > 1 else 1)
    assert Runtime.load(tiny_pack, RuntimeConfig(invariant=False)).info["threads"]["lone_text"] == 1


def test_one_config_default_queue_size() -> None:
    assert RuntimeConfig().queue_size == 512


@pytest.mark.parametrize(
    "kwargs",
    [
        {"single_thread_tokens": -1},
        {"max_batch_size": 0},
        {"queue_size": 0},
        {"intra_op_threads": 0},
        {"max_wait_ms": -1},
        {"default_deadline_ms": 0},
        {"lone_text_min_speedup": -1},
    ],
)
def test_config_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="RuntimeConfig"):
        RuntimeConfig(**kwargs)  # type: ignore[arg-type]


def test_serving_path_never_imports_torch_or_transformers(tiny_pack: Path) -> None:
    script = f"""
import asyncio, sys
from pathlib import Path
from models.engine import DEFAULT_RUN_OVERHEAD_TOKENS
from models.config import LONE_TEXT_MIN_SPEEDUP
from models.runtime import Runtime, RuntimeConfig, run_overhead_tokens
import models, models.batching, models.cpu, models.engine, models.pack, models.packs, models.tokenize

runtime = Runtime.load(Path({str(tiny_pack)!r}), RuntimeConfig(intra_op_threads=1))
assert runtime.predict(["cancel my account"])[0].intent.label

async def main():
    await runtime.start()
    await runtime.submit(["thank you"])
    await runtime.close()

asyncio.run(main())
leaked = sorted(name for name in sys.modules if name.split(".")[0] in ("torch", "transformers"))
print("LEAKED", leaked)
sys.exit(1 if leaked else 0)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "LEAKED []" in done.stdout


def test_v2_pack_returns_acts_and_embeddings(v2_pack: Path) -> None:
    runtime = Runtime.load(v2_pack, CONFIG)
    thanks, greeting, noise = runtime.predict(["thank you so much", "hello there", "[noise]"])
    assert thanks.act.label in thanks.act.probs
    assert sum(thanks.act.probs.values()) == pytest.approx(1.0)
    assert greeting.act.label == "greeting"
    assert noise.act.label == "non_lexical"
    assert thanks.embedding is not None and len(thanks.embedding) == 8


def test_unsupported_language_is_reported_not_scored(v2_pack: Path) -> None:
    runtime = Runtime.load(v2_pack, CONFIG)
    (result,) = runtime.predict(["Ich möchte mein Konto kündigen, bitte sofort"])
    assert result.language.code == "de" and result.language.supported is False
    assert result.sentiment.label == "unknown" and result.sentiment.probs == {}
    assert result.emotion.labels == [] and result.intent.label == "unknown"
    assert result.act.label == "unknown"
