"""Micro-batching: coalescing, overload, deadlines, failure propagation, drain on close.

Sessions are real tiny ONNX sessions wrapped in a gate (``ScriptedSession``):
closing the gate parks the worker inside a batch, which makes queueing
scenarios deterministic without sleeps-as-synchronisation.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import onnxruntime as ort
import pytest

from models import batching
from models.errors import DeadlineExceededError, InferenceError, NotReadyError, OverloadedError
from models.pack import ort_session
from models.runtime import Runtime, RuntimeConfig
from models.types import TextPrediction
from tests.models.conftest import ScriptedSession


@asynccontextmanager
async def running(pack: Path, recorder: Any, **config: Any) -> AsyncIterator[Runtime]:
    # invariant=False: these tests count how requests coalesce into ONNX runs
    options = {"invariant": False, **config}
    runtime = Runtime.load(pack, RuntimeConfig(intra_op_threads=1, **options), session_factory=recorder)
    await runtime.start()
    recorder.main.calls.clear()  # forget probe + warm-up runs
    try:
        yield runtime
    finally:
        recorder.main.gate.set()
        await runtime.close()


async def park_worker(runtime: Runtime, recorder: Any) -> asyncio.Task[list[TextPrediction]]:
    """Close the gate and submit one request; returns once the worker is blocked inside its batch."""
    session = recorder.main
    session.gate.clear()
    session.entered.clear()
    first = asyncio.create_task(runtime.submit(["where is my order"], deadline_ms=10_000))
    assert await asyncio.to_thread(session.entered.wait, 5)
    return first


async def enqueue(runtime: Runtime, texts: list[list[str]], **kwargs: Any) -> list[asyncio.Task[Any]]:
    tasks = [asyncio.create_task(runtime.submit(t, **kwargs)) for t in texts]
    await asyncio.sleep(0)  # let every task run up to its await: all are queued now
    return tasks


async def test_waiting_requests_are_coalesced_into_one_run(tiny_pack: Path, recorder: Any) -> None:
    async with running(tiny_pack, recorder) as runtime:
        first = await park_worker(runtime, recorder)
        texts = [["cancel my account"], ["thank you", "great help"], ["why"], ["refund today"]]
        tasks = await enqueue(runtime, texts)
        assert runtime.queue_depth == 5
        recorder.main.gate.set()
        results = await asyncio.gather(first, *tasks)
        assert recorder.main.calls == [1, 5]
        assert runtime.queue_depth == 0
        for request, result in zip(texts, results[1:], strict=True):
            alone = runtime.predict(request)
            assert len(result) == len(request)
            for got, want in zip(result, alone, strict=True):
                assert got.intent.label == want.intent.label and got.emotion.labels == want.emotion.labels
                assert got.sentiment.score == pytest.approx(want.sentiment.score, abs=1e-5)
                assert got.intent.confidence == pytest.approx(want.intent.confidence, abs=1e-5)


async def test_backlog_counts_the_running_window_too(tiny_pack: Path, recorder: Any) -> None:
    async with running(tiny_pack, recorder) as runtime:
        assert runtime.backlog == 0
        first = await park_worker(runtime, recorder)  # one text inside a running batch
        tasks = await enqueue(runtime, [["cancel my account"], ["thank you", "great help"]])
        assert (runtime.queue_depth, runtime.backlog) == (3, 4)
        recorder.main.gate.set()
        await asyncio.gather(first, *tasks)
        assert runtime.backlog == 0


async def test_batching_off_runs_one_text_at_a_time(tiny_pack: Path, recorder: Any) -> None:
    async with running(tiny_pack, recorder, batching=False) as runtime:
        first = await park_worker(runtime, recorder)
        tasks = await enqueue(runtime, [["cancel my account"], ["thank you", "great help"], ["why"]])
        recorder.main.gate.set()
        await asyncio.gather(first, *tasks)
        assert recorder.main.calls == [1, 1, 1, 1, 1]


async def test_max_batch_size_caps_a_coalesced_batch(tiny_pack: Path, recorder: Any) -> None:
    async with running(tiny_pack, recorder, max_batch_size=3) as runtime:
        first = await park_worker(runtime, recorder)
        tasks = await enqueue(runtime, [["a"], ["b"], ["c"], ["d"], ["e"]])
        recorder.main.gate.set()
        await asyncio.gather(first, *tasks)
        assert recorder.main.calls == [1, 3, 2]


async def test_full_queue_raises_overloaded_at_once(tiny_pack: Path, recorder: Any) -> None:
    async with running(tiny_pack, recorder, queue_size=4) as runtime:
        first = await park_worker(runtime, recorder)
        tasks = await enqueue(runtime, [["a"], ["b", "c"], ["d"]])
        with pytest.raises(OverloadedError, match=r"queue full \(4/4 texts\)") as info:
            await runtime.submit(["one too many"])
        assert info.value.retry_after > 0
        recorder.main.gate.set()
        assert [len(r) for r in await asyncio.gather(first, *tasks)] == [1, 1, 2, 1]


async def test_oversized_request_is_accepted_into_an_empty_queue(tiny_pack: Path, recorder: Any) -> None:
    async with running(tiny_pack, recorder, queue_size=2, max_batch_size=4) as runtime:
        results = await runtime.submit(["a", "b", "c", "d", "e", "f"])
        assert len(results) == 6
        # never more than max_batch_size per run; the planner may balance the two runs
        assert sum(recorder.main.calls) == 6 and max(recorder.main.calls) <= 4
        assert len(recorder.main.calls) == 2


async def test_deadline_fires_while_worker_is_busy_and_expired_work_never_runs(
    tiny_pack: Path, recorder: Any
) -> None:
    async with running(tiny_pack, recorder) as runtime:
        first = await park_worker(runtime, recorder)
        with pytest.raises(DeadlineExceededError, match="50 ms deadline"):
            await runtime.submit(["too late"], deadline_ms=50)
        recorder.main.gate.set()
        await first
        await runtime.submit(["next"])  # the worker has gone past the expired request
        assert recorder.main.calls == [1, 1]  # first + next: the expired one was dropped


async def test_default_deadline_comes_from_config(tiny_pack: Path, recorder: Any) -> None:
    async with running(tiny_pack, recorder, default_deadline_ms=30) as runtime:
        first = await park_worker(runtime, recorder)
        with pytest.raises(DeadlineExceededError):
            await runtime.submit(["waits forever"])
        recorder.main.gate.set()
        await first


async def test_failing_batch_fails_every_waiter_and_runtime_recovers(tiny_pack: Path, recorder: Any) -> None:
    async with running(tiny_pack, recorder) as runtime:
        first = await park_worker(runtime, recorder)
        tasks = await enqueue(runtime, [["a"], ["b"], ["c"]])
        recorder.main.fail = RuntimeError("kaboom")
        recorder.main.gate.set()
        outcomes = await asyncio.gather(first, *tasks, return_exceptions=True)
        assert all(isinstance(o, InferenceError) and "kaboom" in str(o) for o in outcomes), outcomes
        assert recorder.main.calls == [1, 3]  # the three waiters shared one failed batch
        recorder.main.fail = None
        assert len(await runtime.submit(["works again"])) == 1


async def test_close_drains_queued_requests_and_refuses_new_ones(tiny_pack: Path, recorder: Any) -> None:
    runtime = Runtime.load(
        tiny_pack, RuntimeConfig(intra_op_threads=1, invariant=False), session_factory=recorder
    )
    await runtime.start()
    first = await park_worker(runtime, recorder)
    tasks = await enqueue(runtime, [["a"], ["b"]])
    closing = asyncio.create_task(runtime.close())
    await asyncio.sleep(0)
    assert not runtime.ready
    with pytest.raises(NotReadyError):
        await runtime.submit(["after close"])
    recorder.main.gate.set()
    results = await asyncio.gather(first, *tasks)
    await closing
    assert [len(r) for r in results] == [1, 1, 1]


async def test_submit_before_start_is_not_ready(tiny_pack: Path) -> None:
    runtime = Runtime.load(tiny_pack, RuntimeConfig(intra_op_threads=1))
    with pytest.raises(NotReadyError, match="start"):
        await runtime.submit(["hello"])


async def test_cannot_restart_after_close(tiny_pack: Path) -> None:
    runtime = Runtime.load(tiny_pack, RuntimeConfig(intra_op_threads=1))
    await runtime.start()
    await runtime.close()
    with pytest.raises(NotReadyError):
        await runtime.start()


async def test_on_batch_hook_sees_every_run_and_cannot_break_inference(
    tiny_pack: Path, recorder: Any
) -> None:
    async with running(tiny_pack, recorder) as runtime:
        seen: list[tuple[int, int, float]] = []
        runtime.on_batch = lambda texts, tokens, seconds: seen.append((texts, tokens, seconds))
        await runtime.submit(["cancel my account", "why"])
        assert [(texts, tokens) for texts, tokens, _ in seen] == [(2, 5 + 3)]  # real tokens incl. specials
        assert seen[0][2] > 0

        def broken(*_: Any) -> None:
            raise ValueError("metrics backend down")

        runtime.on_batch = broken
        assert len(await runtime.submit(["still fine"])) == 1


async def test_bad_input_is_rejected_before_it_can_share_a_batch(tiny_pack: Path, recorder: Any) -> None:
    async with running(tiny_pack, recorder) as runtime:
        with pytest.raises(TypeError, match=r"texts\[0\] is NoneType"):
            await runtime.submit([None])  # type: ignore[list-item]
        assert runtime.queue_depth == 0 and recorder.main.calls == []


async def test_empty_submit_returns_nothing(tiny_pack: Path, recorder: Any) -> None:
    async with running(tiny_pack, recorder) as runtime:
        assert await runtime.submit([]) == []
        assert recorder.main.calls == []


async def test_many_concurrent_clients_all_get_their_own_results(tiny_pack: Path, recorder: Any) -> None:
    async with running(tiny_pack, recorder, max_batch_size=8) as runtime:
        texts = [f"order {n} " + "why " * (n % 9) for n in range(64)]
        expected = [r.intent.label for r in runtime.predict(texts)]
        results = await asyncio.gather(*(runtime.submit([t]) for t in texts))
        assert [r[0].intent.label for r in results] == expected
        assert max(recorder.main.calls) <= 8


async def test_two_workers_run_two_windows_side_by_side(tiny_pack: Path, recorder: Any) -> None:
    # The batch-invariant plan on two CPUs: each worker runs its own window on its own thread
    # (no lone-text sessions, so that every run goes through the one gated session).
    config = RuntimeConfig(intra_op_threads=2, invariant=True, lone_text_all_cpus=False)
    runtime = Runtime.load(tiny_pack, config, session_factory=recorder)
    await runtime.start()
    assert runtime.batch_workers == 2
    session = recorder.main
    try:
        session.gate.clear()
        texts = [["cancel my account"], ["thank you", "great help"], ["refund today"], ["why"]]
        tasks = await enqueue(runtime, texts, deadline_ms=10_000)
        deadline = asyncio.get_running_loop().time() + 5
        while session.inside < 2:  # both workers are inside a run at the same moment
            assert asyncio.get_running_loop().time() < deadline, "the second worker never started a run"
            await asyncio.sleep(0.005)
        assert runtime.backlog == 5
        session.gate.set()
        results = await asyncio.gather(*tasks)
        assert session.peak == 2 and set(session.calls) == {1}  # per-text runs, never padded
        assert runtime.backlog == 0
        for request, result in zip(texts, results, strict=True):
            assert [r.intent.label for r in result] == [r.intent.label for r in runtime.predict(request)]
    finally:
        session.gate.set()
        await runtime.close()


async def test_one_worker_runs_one_window_at_a_time(tiny_pack: Path, recorder: Any) -> None:
    async with running(tiny_pack, recorder) as runtime:
        assert runtime.batch_workers == 1
        first = await park_worker(runtime, recorder)
        tasks = await enqueue(runtime, [["thank you"], ["refund today"]])
        await asyncio.sleep(0.05)
        assert recorder.main.inside == 1
        recorder.main.gate.set()
        await asyncio.gather(first, *tasks)
        assert recorder.main.peak == 1


async def test_a_lone_many_text_request_still_uses_every_row_worker(tiny_pack: Path, recorder: Any) -> None:
    config = RuntimeConfig(intra_op_threads=2, lone_text_all_cpus=False)  # one gated session
    runtime = Runtime.load(tiny_pack, config, session_factory=recorder)
    await runtime.start()
    session = recorder.main
    try:
        session.gate.clear()
        texts = ["cancel my account", "thank you", "refund today", "why", "great help"]
        task = asyncio.create_task(runtime.submit(texts, deadline_ms=10_000))
        deadline = asyncio.get_running_loop().time() + 5
        while session.inside < 2:  # one window, two of its texts running at the same moment
            assert asyncio.get_running_loop().time() < deadline, "the window's texts ran one at a time"
            await asyncio.sleep(0.005)
        session.gate.set()
        result = await task
        assert [r.intent.label for r in result] == [r.intent.label for r in runtime.predict(texts)]
    finally:
        session.gate.set()
        await runtime.close()


class GatedSpy:
    """A session factory of ``ScriptedSession``s that share one gate, recording each run's thread count."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.sessions: list[ScriptedSession] = []
        self.runs: list[int] = []  # intra-op threads of each run's session, in the order the runs began

    @property
    def inside(self) -> int:
        """Runs inside any session right now."""
        return sum(session.inside for session in self.sessions)

    def __call__(self, path: Path, options: ort.SessionOptions) -> ScriptedSession:
        threads, runs = options.intra_op_num_threads, self.runs

        class Counted(ScriptedSession):
            def run(self, output_names: list[str] | None, input_feed: dict[str, Any]) -> Any:
                runs.append(threads)  # list.append is atomic: no lock needed across worker threads
                return super().run(output_names, input_feed)

        session = Counted(ort_session(path, options))
        session.gate = self.gate
        self.sessions.append(session)
        return session


async def test_a_lone_text_keeps_to_one_thread_while_windows_overlapped_recently(
    tiny_pack: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batching, "CONTENTION_HOLD_S", 0.5)
    spy = GatedSpy()
    config = RuntimeConfig(intra_op_threads=2, lone_text_min_speedup=0.0)  # kept whatever the warm-up says
    runtime = Runtime.load(tiny_pack, config, session_factory=spy)
    await runtime.start()
    try:
        spy.gate.clear()
        spy.runs.clear()
        tasks = await enqueue(runtime, [["cancel my account"], ["refund today"]], deadline_ms=10_000)
        deadline = asyncio.get_running_loop().time() + 5
        while spy.inside < 2:  # two windows running at the same moment: contention
            assert asyncio.get_running_loop().time() < deadline, "the two windows never overlapped"
            await asyncio.sleep(0.005)
        spy.gate.set()
        await asyncio.gather(*tasks)
        spy.runs.clear()
        await runtime.submit(["why"])  # alone now, but right after the overlap
        assert spy.runs == [1]
        await asyncio.sleep(0.6)  # the hold has passed: a lone text takes every CPU again
        await runtime.submit(["why"])
        assert spy.runs == [1, 2]
    finally:
        spy.gate.set()
        await runtime.close()


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="Linux /proc only")
async def test_batch_workers_carry_their_name_at_the_os_level(tiny_pack: Path, recorder: Any) -> None:
    async with running(tiny_pack, recorder, invariant=True) as runtime:
        await runtime.submit(["where is my order"], deadline_ms=10_000)
        workers = [t for t in threading.enumerate() if t.name.startswith("sb-batch-")]
        assert len(workers) == runtime.batch_workers
        for worker in workers:
            assert Path(f"/proc/self/task/{worker.native_id}/comm").read_text().strip() == worker.name
