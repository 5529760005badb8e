"""The runtime in a child process: the model's Python off the event loop's interpreter lock.

In one process the event loop and the batch workers share one GIL. The workers'
tokenizing, post-processing and delivery hold it for a few hundred microseconds a
text, and every time the loop gives the lock up (a syscall, ``os.urandom``, a
thread hand-off) it waits for a worker to reach ONNX Runtime before it runs again.
Measured with ``python -m bench http`` at 64 clients on 2 cores, a fifth of both
CPUs stayed idle that way. ``ProcessRuntime`` keeps the whole ``Runtime`` (pack,
micro-batcher, warm-up) in a child process that the service starts and owns, and
offers the same interface to the service: the loop only encodes texts and decodes
results.

Wire format: frames of a 4-byte little-endian length and a msgpack body (tagged
array-like Structs, below) over one Unix socket pair. The parent's first frame is
``Start`` (pack, configuration); the child answers ``Ready`` (its runtime's info and
labels) or ``StartFailed`` (error kind, message) and exits. Then the parent sends
``Submit`` (through the child's micro-batcher) or ``Predict`` (on a child thread,
outside the queue, as ``Runtime.predict``) and finally ``Close``; the child answers
each with ``Answer`` (the predictions) or ``Failure`` (error kind, message, retry
hint), preceded by a ``Batch`` report of each ONNX run since the previous answer
(the ``on_batch`` hook runs in the parent). Embeddings travel as msgpack extension
1 (raw float32).

On an idle service the child's loop runs a one-text request itself (``_Inline``):
the hand-off to a batch worker and back (a task, a future and its timer, the
queue's lock, the loop's wake-up and the task's resumption) is Python on both
sides, a measurable part of a lone turn's latency.

The child exits when its socket closes, so it never outlives the service; it
ignores SIGINT and SIGTERM (a terminal's Ctrl-C reaches the whole process group)
and drains its queue when the parent closes it. A child that dies fails every
waiting request with ``NotReadyError`` (503) and is started again.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Union

import msgspec
import numpy as np

from models.config import RuntimeConfig
from models.errors import (
    DeadlineExceededError,
    InferenceError,
    ModelError,
    NotReadyError,
    OverloadedError,
    PackError,
)
from models.manifest import read_manifest
from models.prototypes import IntentPrototypes, load_prototypes
from models.types import TextPrediction, checked_texts

if TYPE_CHECKING:
    from models.runtime import Runtime

# (texts, padded tokens, seconds) of one ONNX run, as ``models.engine.BatchHook``.
BatchHook = Callable[[int, int, float], None]

_log = logging.getLogger("switchboard.models.process")

_LENGTH = struct.Struct("<I")
_EMBEDDING_EXT = 1
# Seconds a waiter gets beyond its deadline before the parent gives up on the child's answer
# (the child enforces the deadline itself; this covers a child that stopped answering).
DEADLINE_GRACE_S = 1.0
# Seconds ``spawn`` waits for the child to load and warm the pack.
START_TIMEOUT_S = 300.0
# Seconds ``close`` waits for the child to drain and exit before killing it.
CLOSE_TIMEOUT_S = 30.0
# Pause before starting a child again after one died (a crash loop must not spin the CPU).
RESTART_DELAY_S = 1.0
CONTENTION_GAP_S = 0.0005
CONTENTION_HOLD_S = 0.1

_ERRORS: dict[str, type[ModelError]] = {
    "overloaded": OverloadedError,
    "deadline": DeadlineExceededError,
    "not_ready": NotReadyError,
    "pack": PackError,
    "inference": InferenceError,
}


# -- the wire ------------------------------------------------------------------------------------


class Start(msgspec.Struct, tag="start", array_like=True):
    """Parent to child, first: the pack and the runtime configuration."""

    pack_dir: str
    config: dict[str, Any]


class Ready(msgspec.Struct, tag="ready", array_like=True):
    """Child to parent, first: the pack is loaded and warm."""

    info: dict[str, Any]
    labels: dict[str, list[str]]


class StartFailed(msgspec.Struct, tag="start_failed", array_like=True):
    """Child to parent, first: the pack did not load (the child then exits)."""

    kind: str
    message: str


class Submit(msgspec.Struct, tag="submit", array_like=True):
    """Texts for the child's micro-batcher (``Runtime.submit``)."""

    request: int
    texts: list[str]
    deadline_ms: float


class Predict(msgspec.Struct, tag="predict", array_like=True):
    """Texts for ``Runtime.predict`` on a child thread, outside the queue (bulk embedding)."""

    request: int
    texts: list[str]
    deadline_ms: float


class Close(msgspec.Struct, tag="close", array_like=True):
    """Drain, answer what is held, exit."""


class Answer(msgspec.Struct, tag="ok", array_like=True):
    """The predictions of one request, in input order."""

    request: int
    predictions: list[TextPrediction]


class Failure(msgspec.Struct, tag="error", array_like=True):
    """A request's models-layer error: its kind (see ``_ERRORS``), message and retry hint."""

    request: int
    kind: str
    message: str
    retry_after: float = 0.0


class Batch(msgspec.Struct, tag="batch", array_like=True):
    """One ONNX micro-batch the child ran (for the parent's ``on_batch`` hook)."""

    texts: int
    tokens: int
    seconds: float


def _error_kind(exc: BaseException) -> str:
    for kind, cls in _ERRORS.items():
        if isinstance(exc, cls):
            return kind
    return "inference"


def _error(kind: str, message: str, retry_after: float = 0.0) -> ModelError:
    """The models-layer error a child reported, rebuilt in the parent (its class decides the HTTP status)."""
    if kind == "overloaded":
        return OverloadedError(message, retry_after)
    return _ERRORS.get(kind, InferenceError)(message)


def _enc_hook(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return msgspec.msgpack.Ext(_EMBEDDING_EXT, np.ascontiguousarray(obj, dtype=np.float32).tobytes())
    raise NotImplementedError(f"cannot send {type(obj).__name__} to the model process")


def _ext_hook(code: int, data: memoryview) -> Any:
    if code != _EMBEDDING_EXT:
        raise ValueError(f"unknown msgpack extension {code}")
    vector = np.frombuffer(data, dtype=np.float32).copy()  # its own buffer, not the frame's
    vector.flags.writeable = False  # as the in-process runtime hands out its rows
    return vector


def _dec_hook(tp: Any, obj: Any) -> Any:
    if tp is np.ndarray and isinstance(obj, np.ndarray):
        return obj
    raise NotImplementedError(f"cannot decode {tp}")


_encoder = msgspec.msgpack.Encoder(enc_hook=_enc_hook)
_to_child = msgspec.msgpack.Decoder(Start | Submit | Predict | Close)
_to_parent = msgspec.msgpack.Decoder(
    Ready | StartFailed | Answer | Failure | Batch, ext_hook=_ext_hook, dec_hook=_dec_hook
)


def _frame(message: msgspec.Struct) -> bytes:
    body = _encoder.encode(message)
    return _LENGTH.pack(len(body)) + body


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    """The next frame's body; ``asyncio.IncompleteReadError`` when the other side closed."""
    header = await reader.readexactly(_LENGTH.size)
    return await reader.readexactly(_LENGTH.unpack(header)[0])


def _recv(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise EOFError("the other side closed the socket")
        chunks += chunk
    return bytes(chunks)


def _recv_frame(sock: socket.socket) -> bytes:
    """The next frame's body on a blocking socket; EOFError when the other side closed."""
    return _recv(sock, int(_LENGTH.unpack(_recv(sock, _LENGTH.size))[0]))


class ProcessRuntime:
    """A ``Runtime`` in a child process, with the ``Runtime`` interface the service uses.

    ``spawn`` (blocking) starts the child and waits until its pack is loaded and warm;
    ``start`` (on the serving loop) connects the loop to it. ``queue_depth`` and
    ``backlog`` count the texts sent and not answered yet. ``annotate`` and
    ``on_batch`` run in this process, on the loop.
    """

    def __init__(self, pack_dir: Path, config: RuntimeConfig, child: _Child) -> None:
        self._pack_dir = pack_dir
        self._config = config
        self._child = child
        self._prototypes = _parent_prototypes(pack_dir)
        self._ids = itertools.count()
        self._waiting: dict[int, tuple[asyncio.Future[list[TextPrediction]], int]] = {}
        self._inflight = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._restart_task: asyncio.Task[None] | None = None
        self._ready = False
        self._closed = False
        self.restarts = 0
        self.on_batch: BatchHook | None = None
        self.annotate: Callable[[list[TextPrediction]], None] | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    @classmethod
    def spawn(cls, pack_dir: Path, config: RuntimeConfig, timeout: float = START_TIMEOUT_S) -> ProcessRuntime:
        """Start the child, load and warm the pack there; blocks until it is ready.

        Raises the child's ``PackError`` for a bad pack and ``InferenceError`` when the
        child exits or does not answer within ``timeout`` seconds.
        """
        child = _Child.start(Path(pack_dir), config, timeout)
        try:
            return cls(Path(pack_dir), config, child)
        except BaseException:
            child.stop(0)
            raise

    async def start(self) -> None:
        """Connect the running loop to the child (call once, from the loop that will submit)."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        await self._connect()

    async def _connect(self) -> None:
        sock = self._child.sock
        sock.setblocking(False)
        reader, self._writer = await asyncio.open_unix_connection(sock=sock)
        self._reader_task = asyncio.create_task(
            self._read(reader, self._writer), name="switchboard-model-process"
        )
        self._ready = True

    async def close(self) -> None:
        """Stop taking requests; the child finishes what it holds, answers and exits. Idempotent."""
        if self._closed:
            return
        self._ready = False
        self._closed = True
        if self._restart_task is not None:
            self._restart_task.cancel()
        if self._writer is not None:
            with contextlib.suppress(OSError, RuntimeError):
                self._writer.write(_frame(Close()))
                await self._writer.drain()
        await asyncio.to_thread(self._child.stop, CLOSE_TIMEOUT_S)
        if self._reader_task is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._reader_task, CLOSE_TIMEOUT_S)
        self._fail_all("the runtime is closed")
        if self._writer is not None:
            self._writer.close()

    # -- the Runtime interface ------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """True while a warm child is connected and until ``close``."""
        return self._ready

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self._child.process.pid

    @property
    def info(self) -> dict[str, Any]:
        """The child runtime's ``info``, plus ``process``: the child's pid and how often it restarted."""
        return {
            **self._child.ready.info,
            "ready": self._ready,
            "process": {"pid": self.pid, "restarts": self.restarts},
        }

    @property
    def labels(self) -> dict[str, list[str]]:
        """Label order of every head, as in the pack manifest."""
        return {name: list(labels) for name, labels in self._child.ready.labels.items()}

    @property
    def intent_prototypes(self) -> IntentPrototypes | None:
        """The pack's intent prototypes, read in this process (reason matching runs here)."""
        return self._prototypes

    @property
    def batch_workers(self) -> int:
        """Batches that run side by side in the child."""
        return int(self._child.ready.info["threads"]["batch_workers"])

    @property
    def queue_depth(self) -> int:
        """Texts sent to the child and not answered yet."""
        return self._inflight

    @property
    def backlog(self) -> int:
        """Texts a new request would wait behind: everything sent and not answered yet."""
        return self._inflight

    async def submit(self, texts: Sequence[str], deadline_ms: float | None = None) -> list[TextPrediction]:
        """Predict through the child's micro-batcher; results in input order.

        Raises what ``Runtime.submit`` raises (rebuilt from the child's answer), and
        ``NotReadyError`` when the child dies with the request unanswered.
        """
        if not self._ready:
            raise NotReadyError("the runtime is not ready (starting, restarting or closed)")
        checked = checked_texts(texts)
        if not checked:
            return []
        deadline = deadline_ms if deadline_ms is not None else self._config.default_deadline_ms
        request = next(self._ids)
        predictions = await self._call(
            request, Submit(request, list(checked), deadline), len(checked), deadline
        )
        if self.annotate is not None:
            with contextlib.suppress(Exception):  # a consumer's extra must never fail inference
                self.annotate(predictions)
        return predictions

    def predict(self, texts: Sequence[str]) -> list[TextPrediction]:
        """Predict outside the micro-batcher (as ``Runtime.predict``), blocking the calling thread.

        Call from a thread other than the serving loop's (the reasons' embedder runs in
        ``asyncio.to_thread``); RuntimeError on the loop's own thread, NotReadyError
        before ``start``.
        """
        loop = self._loop
        if loop is None:
            raise NotReadyError("the runtime is not started")
        if threading.get_ident() == self._loop_thread:
            raise RuntimeError("ProcessRuntime.predict blocks: call it from another thread")
        checked = checked_texts(texts)
        if not checked:
            return []
        # Bulk embedding (a reasons file) is not held to one request's deadline.
        deadline = self._config.default_deadline_ms * max(1, len(checked))
        request = next(self._ids)
        # Not counted in ``backlog``, as ``Runtime.predict`` is not: it runs beside the queue, and
        # embedding a reloaded reasons file must not make admission control refuse live turns.
        call = self._call(request, Predict(request, list(checked), deadline), 0, deadline)
        # A stopped loop would leave this thread waiting for ever: the child's deadline, plus grace.
        return asyncio.run_coroutine_threadsafe(call, loop).result(deadline / 1000 + 2 * DEADLINE_GRACE_S)

    async def _call(
        self, request: int, message: Submit | Predict, texts: int, deadline_ms: float
    ) -> list[TextPrediction]:
        writer = self._writer
        if writer is None or not self._ready:
            raise NotReadyError("the runtime is not ready (starting, restarting or closed)")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[TextPrediction]] = loop.create_future()
        self._waiting[request] = (future, texts)
        self._inflight += texts
        timer = loop.call_later(deadline_ms / 1000 + DEADLINE_GRACE_S, _expire, future, deadline_ms)
        try:
            writer.write(_frame(message))
            return await future
        finally:
            timer.cancel()
            entry = self._waiting.pop(request, None)
            if entry is not None:
                self._inflight -= entry[1]

    # -- answers -------------------------------------------------------------------------------

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                self._dispatch(_to_parent.decode(await _read_frame(reader)))
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        except msgspec.DecodeError as exc:
            _log.error("model process sent a malformed frame", extra={"detail": str(exc)})
            self._child.process.kill()
        self._ready = False
        # 503, not 500: the service is unavailable until the new child is warm, and callers retry.
        self._fail_all("the model process exited with requests unanswered; starting it again")
        if not self._closed:
            writer.close()
            _log.error("model process exited; starting it again", extra={"code": self._child.process.poll()})
            self._restart_task = asyncio.create_task(
                self._restart(), name="switchboard-model-process-restart"
            )

    def _dispatch(self, message: Ready | StartFailed | Answer | Failure | Batch) -> None:
        if isinstance(message, Batch):
            hook = self.on_batch
            if hook is not None:
                with contextlib.suppress(Exception):  # metrics must never fail inference
                    hook(message.texts, message.tokens, message.seconds)
            return
        if not isinstance(message, Answer | Failure):
            return  # start frames only come first, on the blocking socket
        entry = self._waiting.get(message.request)
        if entry is None or entry[0].done():
            return  # the waiter gave up (deadline, cancelled)
        if isinstance(message, Answer):
            entry[0].set_result(message.predictions)
        else:
            entry[0].set_exception(_error(message.kind, message.message, message.retry_after))

    def _fail_all(self, message: str) -> None:
        """Fail every waiter with its own ``NotReadyError`` (a shared instance would collect
        every awaiter's traceback)."""
        for future, _ in list(self._waiting.values()):
            if not future.done():
                future.set_exception(NotReadyError(message))

    async def _restart(self) -> None:
        self._child.stop(0)
        while not self._closed:
            await asyncio.sleep(RESTART_DELAY_S)
            try:
                child = await asyncio.to_thread(_Child.start, self._pack_dir, self._config, START_TIMEOUT_S)
            except ModelError as exc:
                _log.error("model process failed to start again", extra={"detail": str(exc)})
                continue
            if self._closed:
                child.stop(0)
                return
            self._child = child
            self.restarts += 1
            await self._connect()
            _log.info(
                "model process started again", extra={"pid": child.process.pid, "restarts": self.restarts}
            )
            return


ServingRuntime = Union["Runtime", ProcessRuntime]
"""What the service serves through: the runtime in this process or in a child."""


def _expire(future: asyncio.Future[list[TextPrediction]], deadline_ms: float) -> None:
    if not future.done():
        future.set_exception(
            DeadlineExceededError(
                f"no answer from the model process within the {deadline_ms:.0f} ms deadline"
            )
        )


def _parent_prototypes(pack_dir: Path) -> IntentPrototypes | None:
    manifest = read_manifest(pack_dir)  # the child has verified the pack
    if manifest.embedding is None or manifest.embedding.prototypes is None or "intent" not in manifest.heads:
        return None
    return load_prototypes(
        pack_dir / manifest.embedding.prototypes,
        manifest.embedding.dim,
        tuple(manifest.heads["intent"].labels),
    )


class _Child:
    """One child process, the parent's end of its socket and what it said when it became ready."""

    def __init__(self, process: subprocess.Popen[bytes], sock: socket.socket, ready: Ready) -> None:
        self.process = process
        self.sock = sock
        self.ready = ready

    @classmethod
    def start(cls, pack_dir: Path, config: RuntimeConfig, timeout: float) -> _Child:
        """Start ``python -m models.process FD`` and wait for its ``Ready`` (blocking)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        process = subprocess.Popen(
            [sys.executable, "-m", "models.process", str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            cwd=Path(__file__).resolve().parent.parent,  # the child imports this very package
        )
        theirs.close()
        try:
            ours.settimeout(timeout)
            # The child runs in the package's folder: a relative pack path would name another folder there.
            ours.sendall(_frame(Start(str(pack_dir.resolve()), asdict(config))))
            first = _to_parent.decode(_recv_frame(ours))
        except (OSError, EOFError, msgspec.DecodeError) as exc:
            cls(process, ours, Ready({}, {})).stop(0)
            raise InferenceError(f"the model process did not start: {exc or type(exc).__name__}") from exc
        if not isinstance(first, Ready):
            cls(process, ours, Ready({}, {})).stop(CLOSE_TIMEOUT_S)
            if isinstance(first, StartFailed):
                raise _error(first.kind, first.message)
            raise InferenceError(f"the model process sent {type(first).__name__} before Ready")
        ours.settimeout(None)
        return cls(process, ours, first)

    def stop(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the process to exit, then kill it; close the socket."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.sock.close()


# -- the child ---------------------------------------------------------------------------------


class _Idle(Protocol):
    """What ``_Inline`` needs of a runtime."""

    @property
    def backlog(self) -> int: ...

    def predict(self, texts: Sequence[str]) -> list[TextPrediction]: ...


class _Inline:
    """Whether the child's loop runs a request itself instead of handing it to a batch worker.

    A lone text on an idle service saves the hand-off to a batch worker and back;
    but while the loop runs a text it reads nothing, so a request that arrives meanwhile waits.
    A frame that arrives within ``CONTENTION_GAP_S`` of an inline run's end is taken as a sign
    of concurrent clients, and for ``CONTENTION_HOLD_S`` every request goes to the workers.
    """

    def __init__(self, runtime: _Idle) -> None:
        self._runtime = runtime
        self._finished = -1.0
        self._held_until = 0.0

    def takes(self, message: Submit) -> bool:
        """Whether to run ``message`` on the loop now (call once per received request)."""
        now = time.monotonic()
        if now - self._finished < CONTENTION_GAP_S:
            self._held_until = now + CONTENTION_HOLD_S
        return len(message.texts) == 1 and now >= self._held_until and self._runtime.backlog == 0

    def run(self, texts: list[str]) -> list[TextPrediction]:
        """``Runtime.predict`` on the calling thread, remembering when it ended."""
        try:
            return self._runtime.predict(texts)
        finally:
            self._finished = time.monotonic()


async def _serve_child(sock: socket.socket) -> None:
    from models.runtime import Runtime  # onnxruntime is loaded here, in the child only

    start = _to_child.decode(_recv_frame(sock))
    if not isinstance(start, Start):
        raise SystemExit("the first frame must be Start")
    try:
        runtime = Runtime.load(Path(start.pack_dir), msgspec.convert(start.config, RuntimeConfig))
        await runtime.start()
    except Exception as exc:
        sock.sendall(_frame(StartFailed(_error_kind(exc), str(exc))))
        return
    sock.setblocking(False)
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    # The hook runs on a batch worker thread, and a transport is not thread-safe: the reports wait
    # here (deque appends are atomic) and go out with the next answer, which that batch produced.
    batches: collections.deque[Batch] = collections.deque()
    runtime.on_batch = lambda texts, tokens, seconds: batches.append(Batch(texts, tokens, seconds))

    def send(message: Answer | Failure) -> None:
        frames = []
        while batches:
            frames.append(_frame(batches.popleft()))
        frames.append(_frame(message))
        # One write, one send(2): the parent is woken once for the reports and the answer together.
        writer.write(b"".join(frames))

    writer.write(_frame(Ready(runtime.info, runtime.labels)))
    pending: set[asyncio.Task[None]] = set()

    async def answer(message: Submit | Predict) -> None:
        try:
            if isinstance(message, Predict):
                result = await asyncio.to_thread(runtime.predict, message.texts)
            else:
                result = await runtime.submit(message.texts, message.deadline_ms)
            send(Answer(message.request, result))
        except Exception as exc:
            retry_after = float(getattr(exc, "retry_after", 0.0))
            send(Failure(message.request, _error_kind(exc), str(exc), retry_after))

    inline = _Inline(runtime)
    try:
        while True:
            message = _to_child.decode(await _read_frame(reader))
            if isinstance(message, Close):
                break
            if isinstance(message, Submit) and inline.takes(message):
                try:
                    send(Answer(message.request, inline.run(message.texts)))
                except Exception as exc:
                    send(Failure(message.request, _error_kind(exc), str(exc)))
                continue
            if isinstance(message, Submit | Predict):
                task = asyncio.create_task(answer(message))
                pending.add(task)
                task.add_done_callback(pending.discard)
    except (asyncio.IncompleteReadError, ConnectionError, OSError):
        pass  # the parent is gone: nobody waits for answers
    if pending:  # answer everything received before the runtime stops taking requests
        await asyncio.wait(pending, timeout=CLOSE_TIMEOUT_S)
    await runtime.close()
    with contextlib.suppress(OSError, ConnectionError):
        await writer.drain()
        writer.close()


def main(argv: Sequence[str] | None = None) -> None:
    """Child entry point: ``python -m models.process FD`` (started by ``ProcessRuntime.spawn``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    # The parent decides when the child ends (it closes the socket); a terminal's Ctrl-C
    # reaches the whole process group and must not kill the model before the drain.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sock = socket.socket(fileno=int(args[0]))
    import uvloop

    uvloop.run(_serve_child(sock))


if __name__ == "__main__":
    main()
