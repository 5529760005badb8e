"""The pre-process / run / post-process pipeline: one pass per graph, mixed packs, failures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models.engine import Engine
from models.errors import InferenceError
from models.pack import load_pack, ort_session, reopen_sessions
from models.postprocess import softmax
from models.runtime import RuntimeConfig, session_options
from models.tokenize import TextEncoder, pad_batch

OPTIONS = session_options(RuntimeConfig(), intra_op_threads=1)
TEXTS = ["I want to cancel my account", "thank you so much great help", "where is my order", "why"]


def test_one_encoder_pass_when_heads_share_a_graph(tiny_pack: Path, recorder: Any) -> None:
    engine = Engine(load_pack(tiny_pack, OPTIONS, recorder), invariant=False)
    recorder.main.calls.clear()  # drop the load-time probe
    results = engine.predict(TEXTS, max_batch_size=32, max_batch_tokens=4096)
    assert recorder.main.calls == [len(TEXTS)]
    assert len(results) == len(TEXTS)


def test_batches_follow_size_limit(tiny_pack: Path, recorder: Any) -> None:
    engine = Engine(load_pack(tiny_pack, OPTIONS, recorder), invariant=False)
    recorder.main.calls.clear()
    engine.run_overhead_tokens = 1000.0  # runs are expensive: as few batches as the size limit allows
    engine.predict(TEXTS * 3, max_batch_size=5, max_batch_tokens=4096)
    assert sorted(recorder.main.calls) == [3, 4, 5] or sorted(recorder.main.calls) == [2, 5, 5]
    assert len(recorder.main.calls) == 3


def test_mixed_pack_runs_each_graph_once_and_takes_intent_from_its_graph(
    mixed_pack: Path, recorder: Any
) -> None:
    pack = load_pack(mixed_pack, OPTIONS, recorder)
    engine = Engine(pack, invariant=False)
    for session in recorder.sessions.values():
        session.calls.clear()
    results = engine.predict(TEXTS, max_batch_size=32, max_batch_tokens=4096)
    assert recorder.sessions["model.onnx"].calls == [len(TEXTS)]
    assert recorder.sessions["intent.onnx"].calls == [len(TEXTS)]

    # The intent head must equal the single-task graph run on its own (2 inputs, max_length 12).
    encoder = TextEncoder.from_file(mixed_pack / "tokenizer.json", max_length=12)
    ids, mask = pad_batch(encoder.encode(TEXTS), encoder.pad_id)
    (logits,) = ort_session(mixed_pack / "intent.onnx", OPTIONS).run(
        ["logits"], {"input_ids": ids, "attention_mask": mask}
    )
    expected = softmax(logits)
    labels = pack.heads["intent"].labels
    for row, result in zip(expected, results, strict=True):
        assert result.intent.label == labels[int(row.argmax())]
        assert result.intent.confidence == pytest.approx(float(row.max()), abs=1e-6)


def test_session_failure_becomes_inference_error(tiny_pack: Path, recorder: Any) -> None:
    engine = Engine(load_pack(tiny_pack, OPTIONS, recorder), invariant=False)
    recorder.main.fail = RuntimeError("onnx exploded")
    with pytest.raises(InferenceError, match="graph 'multitask' failed on a batch of 2: onnx exploded"):
        engine.predict(TEXTS[:2], max_batch_size=32, max_batch_tokens=4096)


def test_unexpected_output_shape_becomes_inference_error(tiny_pack: Path, recorder: Any) -> None:
    engine = Engine(load_pack(tiny_pack, OPTIONS, recorder), invariant=False)
    inner_run = recorder.main.inner.run

    def truncated(names: Any, feed: Any) -> Any:
        return [np.asarray(value)[:1] for value in inner_run(names, feed)]

    recorder.main.inner = type("Inner", (), {"run": staticmethod(truncated)})()
    with pytest.raises(InferenceError, match=r"returned shape \[1, 3\], expected \[2, 3\]"):
        engine.predict(TEXTS[:2], max_batch_size=32, max_batch_tokens=4096)


def test_empty_input_runs_nothing(tiny_pack: Path, recorder: Any) -> None:
    engine = Engine(load_pack(tiny_pack, OPTIONS, recorder), invariant=False)
    recorder.main.calls.clear()
    assert engine.predict([], max_batch_size=32, max_batch_tokens=4096) == []
    assert recorder.main.calls == []


def test_invariant_engine_runs_each_text_alone(tiny_pack: Path, recorder: Any) -> None:
    engine = Engine(load_pack(tiny_pack, OPTIONS, recorder), invariant=True)
    recorder.main.calls.clear()
    engine.predict(TEXTS, max_batch_size=32, max_batch_tokens=4096)
    assert recorder.main.calls == [1] * len(TEXTS)


def test_invariant_scores_do_not_depend_on_batch_neighbours(int8_pack: Path) -> None:
    """On a dynamic-int8 graph a padded batch changes a text's scores; per-text runs do not."""
    engine = Engine(load_pack(int8_pack, OPTIONS), invariant=True)
    neighbours = ["the bill is wrong I was charged twice and nobody called me back " * 3, *TEXTS]
    alone = engine.predict(["why"], max_batch_size=32, max_batch_tokens=4096)[0]
    inside = engine.predict([*neighbours, "why"], max_batch_size=32, max_batch_tokens=4096)[-1]
    assert alone == inside


def test_non_lexical_turns_are_quiet_and_carry_no_intent(tiny_pack: Path) -> None:
    engine = Engine(load_pack(tiny_pack, OPTIONS))
    noise, spoken_digits, repeat = engine.predict(
        ["[noise] um", "four one one one", "sorry, could you say that again?"], 32, 4096
    )
    for result in (noise, spoken_digits, repeat):
        assert result.lexical is False
        assert result.sentiment.label == "neutral" and result.sentiment.score == 0.0
        assert result.emotion.labels == []
        assert result.intent.alternatives == [] and result.intent.confidence == 0.0
    assert noise.act.label == spoken_digits.act.label == "non_lexical"
    assert repeat.act.label == "repeat_request"


def test_small_runs_use_the_single_thread_sessions_and_large_runs_the_packs(
    mixed_pack: Path, recorder: Any
) -> None:
    pack = load_pack(mixed_pack, OPTIONS, recorder)
    wide = dict(recorder.sessions)
    single = reopen_sessions(pack, OPTIONS, recorder)  # the recorder now holds the new sessions
    narrow = dict(recorder.sessions)
    assert set(wide) == set(narrow) == {"model.onnx", "intent.onnx"}
    engine = Engine(pack, invariant=False, single_thread_graphs=single, single_thread_tokens=10)
    for session in [*wide.values(), *narrow.values()]:
        session.calls.clear()
    small = engine.predict(["why"], max_batch_size=32, max_batch_tokens=4096)  # 1 text x 3 tokens
    assert [s.calls for s in narrow.values()] == [[1], [1]]
    assert [s.calls for s in wide.values()] == [[], []]
    engine.predict(TEXTS, max_batch_size=32, max_batch_tokens=4096)  # 4 texts x 8 tokens > 10
    assert [s.calls for s in narrow.values()] == [[1], [1]]
    assert [s.calls for s in wide.values()] == [[4], [4]]
    assert engine.predict(["why"] * 8, 32, 4096)[0] == small[0]  # same graphs, same answers


def test_only_a_lone_text_that_may_take_the_machine_uses_the_lone_text_sessions(
    tiny_pack: Path, recorder: Any
) -> None:
    pack = load_pack(tiny_pack, OPTIONS, recorder)
    own = recorder.main
    lone = reopen_sessions(pack, OPTIONS, recorder)  # the recorder's main session is now the new one
    engine = Engine(pack, lone_text_graphs=lone)
    own.calls.clear()
    tokens = engine.tokenize(TEXTS)
    engine.run(tokens[:1], parallel=True)
    assert recorder.main.calls == [1] and own.calls == []
    engine.run(tokens[:1], parallel=False)  # one of several busy workers: keep to one thread
    engine.run(tokens, parallel=True)  # several texts: one run each on the pack's sessions
    assert recorder.main.calls == [1] and own.calls == [1, 1, 1, 1, 1]


def test_without_single_thread_sessions_every_run_uses_the_packs(tiny_pack: Path, recorder: Any) -> None:
    engine = Engine(load_pack(tiny_pack, OPTIONS, recorder), invariant=False, single_thread_tokens=1000)
    assert engine.single_thread_tokens == 0
    recorder.main.calls.clear()
    engine.predict(["why"], 32, 4096)
    assert recorder.main.calls == [1]
