"""The runtime facade the service uses: load a pack, predict, micro-batch, report.

Serving needs only onnxruntime, tokenizers and numpy: nothing here (or in any
module it imports) imports torch or transformers; a test enforces it.

Thread plan (batch-invariant, the default): ``intra_op_threads`` (default: the
CPUs this process may really use, see ``models.cpu``) become that many batch
workers on the micro-batcher's queue (and as many row workers for a lone window
or ``predict``), each running whole texts through ONNX Runtime with one
intra-op thread.
Texts of a batch therefore each run on one thread: a short text gains little
from intra-op parallelism and pays for it in CPU, while a batch uses the whole
quota with texts side by side (32 texts: 59 ms vs 103 ms one after the other,
91 ms as one padded batch). The exception is a text that is the only work at
the time (``lone_text_all_cpus``, on by default): it runs on a second set of
sessions with every CPU whose threads spin while the run lasts and stop at its
end. Without spinning a second thread is no faster (waking it for each of the
graph's ~60 parallel operators costs what it saves); spinning left on after a
run would burn the core the event loop needs. ``python -m bench runtime``, one
utterance <= 32 tokens at concurrency 1 on two cores: p50 2.72 ms vs 3.74 ms
with every text on one thread in one run, 3.30 vs 4.22 ms in a later one (1.38x
and 1.28x), for 1.3-1.4x the CPU per utterance. Once two windows overlap, every
text keeps one thread for a while (``models.batching.CONTENTION_HOLD_S``).
Whether that pays depends on the CPU: the warm-up times a lone text both ways
and keeps the lone-text sessions only when they answer at least
``lone_text_min_speedup`` times sooner (``python -m bench runtime`` compares the
default with ``runtime_lone_text``, which keeps them whatever the warm-up measures).

Thread plan (``invariant=False``): padded runs of up to ``single_thread_tokens``
tokens (texts x longest) use one-thread sessions, larger runs sessions with
``intra_op_threads`` threads (see ``models.engine``). Always one inter-op thread
with sequential execution: the graph is a chain, so parallel operator scheduling
only adds contention. Padded batches run on one worker thread, so intra-op
threads are never oversubscribed by the async path.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import onnxruntime as ort

from models.batching import MicroBatcher
from models.config import RuntimeConfig
from models.cpu import CpuQuota, cpu_quota, release_free_heap
from models.engine import DEFAULT_RUN_OVERHEAD_TOKENS, BatchHook, Engine
from models.errors import DeadlineExceededError, NotReadyError
from models.pack import GraphRunner, LoadedPack, SessionFactory, load_pack, ort_session, reopen_sessions
from models.prototypes import IntentPrototypes
from models.types import TextPrediction, checked_texts

WARMUP_TEXT = (
    "hi I was charged twice for my subscription this month and I would like a refund "
    "because I already cancelled it last week and nobody called me back"
)
WARMUP_ROUNDS = 3
LONE_TEXT_ROUNDS = 15
DEFAULT_CONFIG = RuntimeConfig()  # frozen: one shared default is safe


def session_options(
    config: RuntimeConfig, intra_op_threads: int, spinning: bool | None = None
) -> ort.SessionOptions:
    """ONNX Runtime options for serving: all graph optimizations, sequential execution.

    ``spinning`` None follows ``config.spinning``.
    """
    spin = config.spinning if spinning is None else spinning
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = config.inter_op_threads
    # Memory patterns only pay off for fixed shapes; ours change with every batch.
    options.enable_mem_pattern = False
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    options.log_severity_level = 3
    return options


def lone_text_options(config: RuntimeConfig, intra_op_threads: int) -> ort.SessionOptions:
    """Options for the sessions a lone text runs on: every CPU, spinning only while a run lasts.

    Without spinning, waking the second thread for each of the graph's ~60 parallel
    operators costs more than it saves; with spinning left on after the run, the idle
    thread would burn a core the event loop needs. Threads never change the result:
    the integer matrix products and the per-row reductions are split, not reordered.
    """
    options = session_options(config, intra_op_threads, spinning=True)
    options.add_session_config_entry("session.force_spinning_stop", "1")
    return options


class Runtime:
    """A loaded pack plus its micro-batcher. Build with ``Runtime.load``.

    ``on_batch`` (optional) is called after every ONNX batch with
    ``(texts, real tokens, seconds)``; it runs on the inference thread, so it
    must be quick and thread-safe. Exceptions it raises are ignored.
    ``annotate`` (optional) gets every batch's predictions of ``submit`` on the
    batch worker, before they are delivered, to store what its consumer computes
    from them in ``TextPrediction.annotations`` off the event loop (the service's
    reason match); thread-safe, exceptions ignored.
    """

    def __init__(
        self,
        pack: LoadedPack,
        config: RuntimeConfig,
        quota: CpuQuota,
        intra_op: int,
        load_ms: float,
        single_thread_graphs: dict[str, GraphRunner] | None = None,
        lone_text_graphs: dict[str, GraphRunner] | None = None,
    ) -> None:
        self._pack = pack
        self._config = config
        self._quota = quota
        self._intra_op = intra_op
        self._load_ms = load_ms
        threads = config.intra_op_threads or quota.cpus
        self._lone_text_threads = threads  # while the engine keeps its lone-text sessions
        workers = threads if config.invariant else 1
        self._engine = Engine(
            pack,
            invariant=config.invariant,
            workers=workers,
            single_thread_graphs=single_thread_graphs,
            single_thread_tokens=config.single_thread_tokens,
            lone_text_graphs=lone_text_graphs,
        )
        self._batcher = MicroBatcher(
            self._engine,
            config,
            self._emit_batch,
            workers=workers if config.batching else 1,
            annotate=self._emit_annotations,
        )
        self._ready = False
        self._closed = False
        self._warmup_ms: dict[str, float] = {}
        self.on_batch: BatchHook | None = None
        self.annotate: Callable[[list[TextPrediction]], None] | None = None

    @classmethod
    def load(
        cls,
        pack_dir: Path,
        config: RuntimeConfig = DEFAULT_CONFIG,
        *,
        session_factory: SessionFactory = ort_session,
    ) -> Runtime:
        """Verify and load a pack (sha256 of every file, manifest vs graphs); PackError on any problem.

        ``session_factory(path, options)`` builds each ONNX session; tests inject
        slow or failing sessions through it.
        """
        started = time.perf_counter()
        quota = cpu_quota()
        threads = config.intra_op_threads or quota.cpus
        # Per-text runs parallelise across texts, not inside one (see the module docstring).
        intra_op = 1 if config.invariant else threads
        pack = load_pack(Path(pack_dir), session_options(config, intra_op), session_factory)
        single: dict[str, GraphRunner] | None = None
        if intra_op > 1 and config.single_thread_tokens > 0:
            single = reopen_sessions(pack, session_options(config, 1), session_factory)
        lone: dict[str, GraphRunner] | None = None
        if config.invariant and config.lone_text_all_cpus and threads > 1:
            lone = reopen_sessions(pack, lone_text_options(config, threads), session_factory)
        load_ms = (time.perf_counter() - started) * 1000
        return cls(pack, config, quota, intra_op, load_ms, single, lone)

    @property
    def intent_prototypes(self) -> IntentPrototypes | None:
        """The pack's intent prototypes (``models.prototypes``), None for a pack without them."""
        return self._pack.prototypes

    @property
    def batch_workers(self) -> int:
        """Batches that run side by side (admission control divides queue waits by it)."""
        return self._batcher.workers

    def _emit_batch(self, texts: int, tokens: int, seconds: float) -> None:
        hook = self.on_batch
        if hook is not None:
            with contextlib.suppress(Exception):  # metrics must never fail inference
                hook(texts, tokens, seconds)

    def _emit_annotations(self, predictions: list[TextPrediction]) -> None:
        hook = self.annotate
        if hook is not None:
            with contextlib.suppress(Exception):  # a consumer's extra must never fail inference
                hook(predictions)

    def predict(self, texts: Sequence[str]) -> list[TextPrediction]:
        """Predict synchronously on the caller's thread (batched within the config limits).

        Works right after ``load``; raises InferenceError if the model fails, TypeError
        unless ``texts`` is a sequence of strings.
        """
        return self._engine.predict(
            checked_texts(texts), self._config.max_batch_size, self._config.max_batch_tokens, self._emit_batch
        )

    def _warm_up(self) -> dict[str, float]:
        """Run each batch size a few times; the timings (ms per batch) double as a micro-benchmark.

        They also calibrate length bucketing: ``t(size) = overhead + size * length * per_token``
        from the smallest and largest batch gives the fixed cost of one run in tokens.
        """
        sizes = sorted({1, min(8, self._config.max_batch_size), self._config.max_batch_size})
        timings: dict[str, float] = {}
        length = 0
        for size in sizes:
            tokens = self._engine.tokenize([WARMUP_TEXT] * size)
            length = self._engine.length(tokens[0])
            self._engine.infer(tokens)  # first run allocates buffers: not timed
            best = float("inf")
            for _ in range(WARMUP_ROUNDS):  # best of N: the least disturbed estimate
                started = time.perf_counter()
                self._engine.infer(tokens)
                best = min(best, time.perf_counter() - started)
            timings[str(size)] = round(best * 1000, 3)
        self._engine.run_overhead_tokens = run_overhead_tokens(timings, length)
        if self._engine.has_lone_text_graphs:
            timings.update(self._choose_lone_text_plan())
        return timings

    def _choose_lone_text_plan(self) -> dict[str, float]:
        """Time a lone text on the lone-text sessions and on one thread, alternating; drop the
        lone-text sessions unless they are ``lone_text_min_speedup`` times faster (median ms of each)."""
        tokens = self._engine.tokenize([WARMUP_TEXT])
        samples: dict[bool, list[float]] = {True: [], False: []}
        for round_ in range(LONE_TEXT_ROUNDS + 2):
            for every_cpu in (True, False) if round_ % 2 == 0 else (False, True):
                started = time.perf_counter()
                self._engine.run(tokens, parallel=every_cpu)
                if round_ >= 2:  # the first runs of a session allocate its buffers
                    samples[every_cpu].append(time.perf_counter() - started)
        lone, one = (statistics.median(samples[key]) * 1000 for key in (True, False))
        if one < lone * self._config.lone_text_min_speedup:
            self._engine.drop_lone_text_graphs()
        return {"lone_text_every_cpu": round(lone, 3), "lone_text_one_thread": round(one, 3)}

    async def start(self) -> None:
        """Warm up (off the event loop), then start the batching worker; ``ready`` afterwards."""
        if self._closed:
            raise NotReadyError("the runtime is closed")
        if self._ready:
            return
        self._warmup_ms = await asyncio.to_thread(self._warm_up)
        release_free_heap()
        self._batcher.start()
        self._ready = True

    async def submit(self, texts: Sequence[str], deadline_ms: float | None = None) -> list[TextPrediction]:
        """Predict through the micro-batcher; results in input order.

        Raises NotReadyError before ``start``/after ``close``, OverloadedError
        (with ``retry_after`` seconds) when the queue is full,
        DeadlineExceededError when no result is ready within ``deadline_ms``
        (default ``config.default_deadline_ms``), InferenceError when the batch fails,
        TypeError unless ``texts`` is a sequence of strings.
        """
        if not self._ready:
            raise NotReadyError("the runtime is not ready (call start() first, or it is closed)")
        texts = checked_texts(texts)
        if not texts:
            return []
        timeout = (deadline_ms if deadline_ms is not None else self._config.default_deadline_ms) / 1000
        future = self._batcher.submit(texts, time.monotonic() + timeout)
        timer = asyncio.get_running_loop().call_later(timeout, _expire, future, timeout)
        try:
            return await future
        finally:
            timer.cancel()

    async def close(self) -> None:
        """Stop taking requests and finish the queued ones (graceful drain); idempotent."""
        self._ready = False
        self._closed = True
        await asyncio.to_thread(self._batcher.close)
        self._engine.close()

    @property
    def ready(self) -> bool:
        """True after ``start`` finished warming up and until ``close``."""
        return self._ready

    @property
    def labels(self) -> dict[str, list[str]]:
        """Label order of every head, as in the pack manifest."""
        return {name: list(head.labels) for name, head in self._pack.heads.items()}

    @property
    def queue_depth(self) -> int:
        """Texts waiting for the inference worker."""
        return self._batcher.queue_depth

    @property
    def backlog(self) -> int:
        """Texts a new request would wait behind: queued plus the window being run."""
        return self._batcher.backlog

    @property
    def info(self) -> dict[str, Any]:
        """JSON-ready description: pack, files with sha256, heads, thread plan, batching, warm-up timings.

        ``threads.intra_op`` is the intra-op thread count of the pack's sessions;
        ``threads.single_thread_tokens`` > 0 says padded runs up to that many tokens
        use one-thread sessions (0: no such sessions); ``threads.lone_text`` is the
        intra-op threads a lone text runs on (1: no lone-text sessions).
        """
        manifest = self._pack.manifest
        return {
            "pack": manifest.name,
            "version": manifest.version,
            "path": str(self._pack.path),
            "files": {name: entry.sha256 for name, entry in manifest.files.items()},
            "graphs": {
                key: {"file": graph.file, "inputs": list(graph.inputs), "max_length": graph.max_length}
                for key, graph in manifest.graphs.items()
            },
            "heads": {
                name: {
                    "graph": head.graph,
                    "output": head.output,
                    "kind": head.kind,
                    "labels": len(head.labels),
                    "temperature": head.temperature,
                    "source": head.source,
                }
                for name, head in manifest.heads.items()
            },
            "truncation": manifest.truncation,
            "threads": {
                "intra_op": self._intra_op,
                "single_thread_tokens": self._engine.single_thread_tokens,
                "lone_text": self._lone_text_threads if self._engine.has_lone_text_graphs else 1,
                "row_workers": self._engine.workers,
                "batch_workers": self._batcher.workers,
                "inter_op": self._config.inter_op_threads,
                "cpus": self._quota.cpus,
                "cpu_source": self._quota.source,
                "affinity": self._quota.affinity,
                "cgroup_quota": self._quota.cgroup_quota,
            },
            "config": asdict(self._config),
            "load_ms": round(self._load_ms, 3),
            "warmup_ms": dict(self._warmup_ms),
            "run_overhead_tokens": round(self._engine.run_overhead_tokens, 1),
            "ready": self._ready,
        }


def run_overhead_tokens(timings: dict[str, float], length: int) -> float:
    """Fixed cost of one ONNX run in padded tokens, from warm-up timings of equal-length texts.

    Clamped to [16, 512]; the default is kept when the timings are inconsistent (noise).
    """
    sizes = sorted(int(size) for size in timings)
    small, large = sizes[0], sizes[-1]
    if large == small or length <= 0:
        return DEFAULT_RUN_OVERHEAD_TOKENS
    per_token = (timings[str(large)] - timings[str(small)]) / ((large - small) * length)
    overhead = timings[str(small)] - small * length * per_token
    if per_token <= 0 or overhead <= 0:
        return DEFAULT_RUN_OVERHEAD_TOKENS
    return min(512.0, max(16.0, overhead / per_token))


def _expire(future: asyncio.Future[list[TextPrediction]], timeout: float) -> None:
    if not future.done():
        future.set_exception(DeadlineExceededError(f"no result within the {timeout * 1000:.0f} ms deadline"))
