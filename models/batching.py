"""Micro-batching: concurrent async requests coalesced into few ONNX runs.

Requests go from the event loop into a bounded queue; a dedicated worker
thread takes a *window* of requests, tokenizes them, cuts the window into
length-bucketed batches and runs them, then hands the results back to each
request's event loop in a single ``call_soon_threadsafe`` per loop. ONNX and
the tokenizer release the GIL, so the event loop keeps serving while a batch
runs.

``workers`` > 1 (the batch-invariant plan: one ONNX call per text on one
intra-op thread) starts that many worker threads on the one queue, each
running its own window's texts one after another (a window that is the only
work at the time, such as one 20-turn transcript, still spreads its texts over
the engine's row workers). Why not one thread with a
pool for the rows: that thread's tokenizing, post-processing and delivery
(which hold the GIL) left both cores without model work between windows;
with independent workers one tokenizes while the other runs ONNX. A worker
takes at most its share of the queue (queued texts / workers), so a burst is
split between them instead of landing on whichever woke first.

Coalescing waits at most ``max_wait_s`` for more requests, and only when the
previous window held more than one request: with one client there is nobody
to wait for, so a lone request runs at once (no added latency), while under
concurrency the short wait lets the clients whose results were just delivered
submit again and join the next batch.

Fail-fast rules: a full queue raises ``OverloadedError`` at submit time;
expired requests are dropped (``DeadlineExceededError``) before their batch
runs; an exception while processing a window fails every request of that
window; ``close`` stops intake and drains what is queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from models.cpu import name_os_thread
from models.engine import BatchHook, Engine
from models.errors import DeadlineExceededError, InferenceError, NotReadyError, OverloadedError
from models.types import TextPrediction

if TYPE_CHECKING:  # models.runtime imports this module; the config is only a type here
    from models.runtime import RuntimeConfig

Outcome = list[TextPrediction] | BaseException
# How long after two windows overlapped the workers keep to one thread per text.
CONTENTION_HOLD_S = 0.1


@dataclass(eq=False)
class Request:
    """One submitted request: its texts, where to deliver, and by when (monotonic seconds)."""

    texts: Sequence[str]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[list[TextPrediction]]
    deadline: float
    enqueued: float = field(default_factory=time.monotonic)


def _batch_error(cause: BaseException, requests: int) -> InferenceError:
    """A fresh error per waiter (one shared instance would collect every awaiter's traceback)."""
    error = InferenceError(f"inference failed for a batch of {requests} requests: {cause}")
    error.__cause__ = cause
    return error


def _settle(outcomes: list[tuple[asyncio.Future[list[TextPrediction]], Outcome]]) -> None:
    """Runs on the event loop: deliver results, skipping futures already done (expired/cancelled)."""
    for future, outcome in outcomes:
        if future.done():
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


class MicroBatcher:
    """Bounded queue + ``workers`` worker threads running ``Engine`` batches.

    Its limits come from ``RuntimeConfig``: ``max_batch_size``, ``max_batch_tokens``,
    ``max_wait_ms``, ``queue_size`` (texts) and ``batching``. With ``workers`` > 1 each
    worker runs its window's texts on its own thread (``Engine.infer(parallel=False)``).
    """

    def __init__(
        self,
        engine: Engine,
        config: RuntimeConfig,
        on_batch: BatchHook | None = None,
        workers: int = 1,
        annotate: Callable[[list[TextPrediction]], None] | None = None,
    ) -> None:
        self._engine = engine
        self._config = config
        self.workers = max(1, workers)
        self._max_wait_s = config.max_wait_ms / 1000
        self._on_batch = on_batch
        self._annotate = annotate
        self._items: deque[Request] = deque()
        self._queued_texts = 0
        self._running_texts = 0
        self._busy_workers = 0  # workers holding a window (read unlocked as a hint)
        # Until this monotonic time a window does not count as the only work: two windows overlapped
        # less than ``CONTENTION_HOLD_S`` ago, so more are likely to arrive while it runs.
        self._contended_until = 0.0
        self._cond = threading.Condition()
        self._closed = False
        self._threads: list[threading.Thread] = []
        # Seconds per text, smoothed: turns queue depth into a retry-after hint.
        self._seconds_per_text = 0.005

    @property
    def queue_depth(self) -> int:
        """Texts waiting in the queue (not counting the batch being run)."""
        return self._queued_texts

    @property
    def backlog(self) -> int:
        """Texts a newly queued request waits behind: the queue plus the window being run.

        Admission control must count the running window too: a request queued just as a
        large window starts waits for all of it, which ``queue_depth`` alone hides.
        """
        return self._queued_texts + self._running_texts

    @property
    def batch_size(self) -> int:
        """Largest batch the worker forms (1 when batching is switched off)."""
        return self._config.max_batch_size if self._config.batching else 1

    def start(self) -> None:
        """Start the worker threads (idempotent)."""
        if not self._threads:
            self._threads = [
                threading.Thread(target=self._work, name=f"sb-batch-{n}", daemon=True)
                for n in range(self.workers)
            ]
            for thread in self._threads:
                thread.start()

    def submit(self, texts: Sequence[str], deadline: float) -> asyncio.Future[list[TextPrediction]]:
        """Queue texts for the worker; call from a running event loop.

        Raises NotReadyError when closed or not started, OverloadedError when
        the queue cannot take ``len(texts)`` more texts (an oversized request is
        still accepted into an empty queue).
        """
        loop = asyncio.get_running_loop()
        request = Request(texts, loop, loop.create_future(), deadline)
        with self._cond:
            if self._closed or not self._threads:
                raise NotReadyError("the runtime is not running (not started or closed)")
            if self._items and self._queued_texts + len(texts) > self._config.queue_size:
                retry_after = max(0.001, self._queued_texts * self._seconds_per_text / self.workers)
                raise OverloadedError(
                    f"inference queue full ({self._queued_texts}/{self._config.queue_size} texts)",
                    retry_after,
                )
            self._items.append(request)
            self._queued_texts += len(texts)
            self._cond.notify()
        return request.future

    def close(self, timeout: float | None = None) -> None:
        """Stop intake, let the workers drain the queue, and join them (blocking)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout)

    # -- worker thread -------------------------------------------------------------------------

    def _pop_locked(self, window: list[Request], texts: int) -> int:
        request = self._items.popleft()
        self._queued_texts -= len(request.texts)
        window.append(request)
        return texts + len(request.texts)

    def _take_queued_locked(self, window: list[Request], texts: int, limit: int) -> int:
        """Move queued requests into the window while they fit ``limit`` texts."""
        while self._items and texts + len(self._items[0].texts) <= limit:
            texts = self._pop_locked(window, texts)
        return texts

    def _share_locked(self, texts: int) -> int:
        """Most texts one worker's window takes: the batch size, or its share of the queue."""
        if self.workers == 1:
            return self._config.max_batch_size
        queued = texts + self._queued_texts
        return max(1, min(self._config.max_batch_size, -(-queued // self.workers)))

    def _collect(self, wait_for_more: bool) -> list[Request]:
        """Block for the next window of requests; [] once closed and drained."""
        window: list[Request] = []
        with self._cond:
            while not self._items and not self._closed:
                self._cond.wait()
            if not self._items:
                return window
            texts = self._pop_locked(window, 0)
            if not self._config.batching:
                self._running_texts += texts
                return window
            texts = self._take_queued_locked(window, texts, self._share_locked(texts))
            if not wait_for_more or self._max_wait_s <= 0 or self.workers > 1:
                # Several workers: an idle one takes the next request at once, so waiting
                # for a fuller window would only add latency.
                self._running_texts += texts
                return window
            until = time.monotonic() + self._max_wait_s
            while texts < self._config.max_batch_size and not self._closed:
                if self._items and texts + len(self._items[0].texts) > self._config.max_batch_size:
                    break
                remaining = until - time.monotonic()
                if remaining <= 0:
                    break
                if not self._items:
                    self._cond.wait(remaining)
                texts = self._take_queued_locked(window, texts, self._config.max_batch_size)
            self._running_texts += texts
        return window

    def _work(self) -> None:
        name_os_thread()
        coalesced = 1
        while True:
            window = self._collect(wait_for_more=coalesced > 1)
            if not window:
                return
            coalesced = len(window)
            pending = set(window)
            with self._cond:
                self._busy_workers += 1
                if self._busy_workers > 1 or self._items:
                    self._contended_until = time.monotonic() + CONTENTION_HOLD_S
            try:
                self._process(window, pending)
            except BaseException as exc:  # nobody may hang: every undelivered waiter gets the error
                failed = [request for request in window if request in pending]
                self._deliver([(request, _batch_error(exc, len(failed))) for request in failed], pending)
            finally:
                self._release(pending)
                with self._cond:
                    self._busy_workers -= 1

    def _process(self, window: list[Request], pending: set[Request]) -> None:
        """Drop expired requests, run the rest in length-bucketed batches, deliver as batches finish.

        Short texts run first and their requests are answered before the longer
        batches of the same window run.
        """
        now = time.monotonic()
        live: list[Request] = []
        for request in window:
            if request.future.done():  # expired or cancelled on the loop side: skip the work
                self._release([request])
                pending.discard(request)
            elif request.deadline <= now:
                waited_ms = (now - request.enqueued) * 1000
                error = DeadlineExceededError(f"deadline passed after {waited_ms:.1f} ms in queue")
                self._deliver([(request, error)], pending)
            else:
                live.append(request)
        texts = [text for request in live for text in request.texts]
        if not texts:
            return
        owner = [index for index, request in enumerate(live) for _ in request.texts]
        first = [0] * len(live)
        for index in range(len(owner) - 1, -1, -1):
            first[owner[index]] = index
        missing = [len(request.texts) for request in live]
        results: list[TextPrediction | None] = [None] * len(texts)
        started = time.perf_counter()
        tokens = self._engine.tokenize(texts)
        # A lone window (the other workers idle, nothing queued: one many-text request at low
        # load) may still spread its texts over the engine's row workers.
        parallel = self.workers == 1 or self._alone()
        for group in self._engine.plan(tokens, self.batch_size, self._config.max_batch_tokens):
            predictions = self._engine.infer([tokens[i] for i in group], self._on_batch, parallel)
            if self._annotate is not None:
                self._annotate(predictions)
            finished: list[tuple[Request, Outcome]] = []
            for index, prediction in zip(group, predictions, strict=True):
                results[index] = prediction
                missing[owner[index]] -= 1
                if missing[owner[index]] == 0:
                    request = live[owner[index]]
                    start = first[owner[index]]
                    done = results[start : start + len(request.texts)]
                    finished.append((request, [r for r in done if r is not None]))
            self._deliver(finished, pending)
        elapsed = time.perf_counter() - started
        self._seconds_per_text = 0.8 * self._seconds_per_text + 0.2 * elapsed / len(texts)

    def _alone(self) -> bool:
        """Whether this worker's window is the only work now and has been for a while (a hint).

        A lone window may spread its texts over the row workers, and a lone text runs on every
        CPU. Both pay only when nothing arrives meanwhile: a worker starting a window while
        another still runs would share the cores with a spreading one, which cost throughput at
        a few concurrent clients before this hold.
        """
        return self._busy_workers == 1 and not self._items and time.monotonic() >= self._contended_until

    def _release(self, requests: Iterable[Request]) -> None:
        """Take delivered (or dropped) requests' texts out of ``backlog``."""
        count = sum(len(request.texts) for request in requests)
        if count:
            with self._cond:
                self._running_texts -= count

    def _deliver(self, outcomes: list[tuple[Request, Outcome]], pending: set[Request]) -> None:
        """One thread-safe callback per event loop carrying all of its results.

        A delivered request leaves ``backlog`` before its waiter can run, so a caller that
        has its answer never sees its own texts still counted.
        """
        self._release([request for request, _ in outcomes if request in pending])
        for request, _ in outcomes:
            pending.discard(request)
        by_loop: dict[
            asyncio.AbstractEventLoop, list[tuple[asyncio.Future[list[TextPrediction]], Outcome]]
        ] = {}
        for request, outcome in outcomes:
            by_loop.setdefault(request.loop, []).append((request.future, outcome))
        for loop, items in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop has nobody waiting any more
                loop.call_soon_threadsafe(_settle, items)
