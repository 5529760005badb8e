"""The runtime in a child process: same predictions, errors carried across, restarts, drains."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import models.process as process
from models.config import RuntimeConfig
from models.errors import NotReadyError, OverloadedError, PackError
from models.process import ProcessRuntime
from models.runtime import Runtime
from models.types import TextPrediction

CONFIG = RuntimeConfig(intra_op_threads=1)
REPO = Path(__file__).resolve().parents[2]
TEXTS = ["I want to cancel my account", "thank you so much, great help!", "why", "", "where is my order"]


@pytest.fixture
async def remote(v2_pack: Path) -> AsyncIterator[ProcessRuntime]:
    runtime = await asyncio.to_thread(ProcessRuntime.spawn, v2_pack, CONFIG)
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.close()


async def test_predictions_equal_the_in_process_runtime_embeddings_included(
    remote: ProcessRuntime, v2_pack: Path
) -> None:
    local = Runtime.load(v2_pack, CONFIG)
    expected = local.predict(TEXTS)
    got = await remote.submit(TEXTS)
    assert got == expected  # TextPrediction compares every field, the embeddings by value
    assert await remote.submit(TEXTS[:1]) == expected[:1]  # a lone text: run on the child's loop
    embedding = got[0].embedding
    assert isinstance(embedding, np.ndarray) and embedding.dtype == np.float32
    assert not embedding.flags.writeable  # read-only rows, as the in-process runtime hands out
    assert remote.labels == local.labels
    assert remote.batch_workers == local.batch_workers
    assert remote.info["pack"] == local.info["pack"] and remote.info["files"] == local.info["files"]
    assert remote.info["process"] == {"pid": remote.pid, "restarts": 0}
    assert remote.intent_prototypes is None and local.intent_prototypes is None  # the tiny pack has none
    assert remote.backlog == 0 and remote.queue_depth == 0


async def test_predict_blocks_a_worker_thread_and_refuses_the_loop_thread(remote: ProcessRuntime) -> None:
    got = await asyncio.to_thread(remote.predict, TEXTS[:2])
    assert got == await remote.submit(TEXTS[:2])
    with pytest.raises(RuntimeError, match="another thread"):
        remote.predict(TEXTS[:1])
    with pytest.raises(TypeError):
        await remote.submit("a bare string")  # type: ignore[arg-type]
    assert await remote.submit([]) == []


async def test_bulk_predict_stays_out_of_the_backlog_admission_control_reads(remote: ProcessRuntime) -> None:
    bulk = asyncio.ensure_future(
        asyncio.to_thread(remote.predict, [f"example {n} of a reason" for n in range(400)])
    )
    seen = []
    while not bulk.done():
        seen.append(remote.backlog)
        await asyncio.sleep(0.001)
    assert len(await bulk) == 400 and len(seen) > 3 and max(seen) == 0


async def test_hooks_run_in_the_parent(remote: ProcessRuntime) -> None:
    batches: list[tuple[int, int, float]] = []
    seen: list[list[TextPrediction]] = []
    remote.on_batch = lambda texts, tokens, seconds: batches.append((texts, tokens, seconds))
    remote.annotate = seen.append
    got = await remote.submit(TEXTS[:3])
    assert seen == [got]
    # The child's batch reports precede the answer they produced (its batch workers do not write).
    assert sum(texts for texts, _, _ in batches) == 3 and all(seconds > 0 for _, _, seconds in batches)


async def test_a_full_child_queue_answers_overloaded_with_a_retry_hint(v2_pack: Path) -> None:
    tight = RuntimeConfig(intra_op_threads=1, queue_size=1)
    runtime = await asyncio.to_thread(ProcessRuntime.spawn, v2_pack, tight)
    await runtime.start()
    try:
        outcomes = await asyncio.gather(
            *(runtime.submit([f"request number {n}"]) for n in range(60)), return_exceptions=True
        )
    finally:
        await runtime.close()
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert refused and all(isinstance(o, OverloadedError) and o.retry_after > 0 for o in refused)
    assert any(isinstance(o, list) for o in outcomes)
    assert "inference queue full" in str(refused[0])


def test_a_bad_pack_fails_spawn_with_the_childs_pack_error(
    fresh_pack: Path, edit: Callable[[Path, Callable[[dict[str, Any]], None]], None]
) -> None:
    (fresh_pack / "model.onnx").write_bytes(b"not a graph")
    with pytest.raises(PackError, match=r"sha256|model\.onnx"):
        ProcessRuntime.spawn(fresh_pack, CONFIG)


async def test_a_dead_child_fails_its_waiters_and_is_started_again(
    remote: ProcessRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(process, "RESTART_DELAY_S", 0.0)
    first = remote.pid
    os.kill(first, signal.SIGKILL)
    with pytest.raises(NotReadyError):  # 503 for the service: retry once the new child is warm
        for _ in range(200):  # until the loop has seen the socket close
            await remote.submit(["still there?"])
            await asyncio.sleep(0.01)
    for _ in range(600):
        if remote.ready:
            break
        await asyncio.sleep(0.05)
    assert remote.ready and remote.restarts == 1 and remote.pid != first
    assert remote.info["process"] == {"pid": remote.pid, "restarts": 1}
    assert len(await remote.submit(TEXTS)) == len(TEXTS)


async def test_close_answers_what_was_sent_then_the_child_exits(v2_pack: Path) -> None:
    runtime = await asyncio.to_thread(ProcessRuntime.spawn, v2_pack, CONFIG)
    await runtime.start()
    pending = [asyncio.ensure_future(runtime.submit([f"turn {n} about my bill"])) for n in range(20)]
    await asyncio.sleep(0)  # every request is written before close
    await runtime.close()
    results = await asyncio.gather(*pending)
    assert all(len(result) == 1 for result in results)
    assert runtime._child.process.poll() == 0
    with pytest.raises(NotReadyError):
        await runtime.submit(["after close"])
    await runtime.close()  # idempotent


def test_the_child_exits_when_its_parent_goes_away(v2_pack: Path) -> None:
    child = process._Child.start(v2_pack, CONFIG, 120)
    child.sock.close()  # what the kernel does when the parent dies
    assert child.process.wait(60) == 0


def test_the_parent_side_never_loads_onnxruntime() -> None:
    script = (
        "import sys, models.process, service.app\n"
        "assert 'onnxruntime' not in sys.modules, 'onnxruntime imported'\n"
        "assert 'models.runtime' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", script], cwd=REPO, check=True, timeout=120)


async def test_a_relative_pack_path_means_the_callers_folder(
    v2_pack: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(v2_pack.parent)
    runtime = await asyncio.to_thread(ProcessRuntime.spawn, Path(v2_pack.name), CONFIG)
    await runtime.start()
    try:
        assert runtime.info["path"] == str(v2_pack.resolve())
        assert len(await runtime.submit(TEXTS)) == len(TEXTS)
    finally:
        await runtime.close()


class CountingRuntime:
    """``_Inline``'s view of a runtime: a backlog to set and the texts it predicted."""

    def __init__(self, predictions: list[TextPrediction]) -> None:
        self.backlog = 0
        self.predicted: list[list[str]] = []
        self._predictions = predictions

    def predict(self, texts: Any) -> list[TextPrediction]:
        self.predicted.append(list(texts))
        return self._predictions[: len(texts)]


def test_inline_takes_lone_texts_on_an_idle_service_and_backs_off_under_concurrency(
    v2_pack: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [100.0]
    monkeypatch.setattr(process.time, "monotonic", lambda: clock[0])
    runtime = CountingRuntime(Runtime.load(v2_pack, CONFIG).predict(TEXTS[:1]))
    inline = process._Inline(runtime)
    one = process.Submit(1, ["hello"], 2000.0)
    assert inline.takes(one)
    inline.run(one.texts)
    assert runtime.predicted == [["hello"]]
    assert not inline.takes(process.Submit(2, ["a", "b"], 2000.0))  # several texts: the workers
    clock[0] += process.CONTENTION_GAP_S / 2  # the next request was already waiting
    assert not inline.takes(one)
    clock[0] += process.CONTENTION_HOLD_S / 2
    assert not inline.takes(one)  # still held
    clock[0] += process.CONTENTION_HOLD_S
    assert inline.takes(one)
    runtime.backlog = 3  # the workers hold texts: a lone one queues behind them, in order
    assert not inline.takes(one)
