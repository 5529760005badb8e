"""``python -m bench loop``: what one append costs the event loop, which bounds one worker's throughput.

At high concurrency one worker is limited by its event loop: every request's Python (HTTP,
routing, storage) runs there, the model runs on the batch workers. This benchmark calls the
real app in-process over ASGI on this thread's own loop (no network, so the figures are the
loop's work alone) with the default pack and a fresh SQLite data dir, and reads the loop
thread's CPU time around each request (``time.thread_time``). Every request is a one-turn
append with a fresh conversation-local turn id (20 turns per conversation, new conversations
after that), so every turn is scored and stored.

1. With the model in this process (``SWITCHBOARD_MODEL_PROCESS=off``): reason matching where the
   runtime puts it (``Runtime.annotate``: on the batch worker) against on the event loop (the
   hook off, ``ActiveReasons.merge`` matches), alternating request by request so that both see
   the same machine: p50 loop CPU and wall per append, and the ratio.
2. One SQLite call (``SELECT 1``): ``SqliteRunner.run`` against ``run_in_executor`` on a
   one-thread executor with its own connection (the usual way), loop CPU and wall per call.
3. With the model in its own process (the default): a lone turn's text sent to the model before
   the conversation is locked and loaded (``ConversationService.send_ahead``) against sent when
   the append first waits, on the load (the usual way of a task started with the request),
   alternating request by request: p50 wall and loop CPU per append, and the wall ratio. At
   concurrency 1 every step before the model is the model's latency too.
4. Same app: a lone append's store write on the event loop's thread (``inline``, when it is
   the only append in flight and the SQLite runner is idle) against handed to the SQLite
   thread, alternating request by request: p50 wall and loop CPU per append, and the wall
   ratio. The hand-off wakes the idle thread and then the idle loop, after the model's answer.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import secrets
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.turns import generate

TURNS_PER_CONVERSATION = 20
WARMUP = 30


def median_pair(samples: Sequence[tuple[float, float]]) -> dict[str, float]:
    """p50 of ``(loop CPU ms, wall ms)`` samples."""
    return {
        "cpu_ms_p50": round(statistics.median(s[0] for s in samples), 4) if samples else 0.0,
        "wall_ms_p50": round(statistics.median(s[1] for s in samples), 4) if samples else 0.0,
        "samples": len(samples),
    }


async def timed(call: Callable[[], Awaitable[Any]]) -> tuple[float, float]:
    """``(loop CPU ms, wall ms)`` of awaiting ``call()`` on this thread's loop."""
    cpu, wall = time.thread_time(), time.perf_counter()
    await call()
    return (time.thread_time() - cpu) * 1000, (time.perf_counter() - wall) * 1000


class InProcess:
    """The app on this loop: ASGI lifespan and one-turn appends with fresh ids."""

    def __init__(self, app: Any, key: str) -> None:
        self.app = app
        self.key = key
        self.nonce = secrets.token_hex(4)
        self.appended = 0  # appends made so far: every turn id is fresh across the parts run on one app
        self._lifespan: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._lifespan_out: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def serving(cls, folder: Path, model_process: str, pack: Path | None = None) -> InProcess:
        """The real app with a fresh API key, data in ``folder``, no rate limit, and the model in
        this process (``model_process`` ``off``) or in its own (``on``); not started."""
        from service.app import create_app
        from service.settings import Settings, hash_api_key

        key = "sb_bench_" + secrets.token_urlsafe(16)
        env = {
            "SWITCHBOARD_API_KEYS": f"bench={hash_api_key(key)}",
            "SWITCHBOARD_DATA_DIR": str(folder),
            "SWITCHBOARD_RATE_LIMIT": "0",
            "SWITCHBOARD_POLICY_RELOAD_INTERVAL": "0",
            "SWITCHBOARD_LOG_LEVEL": "WARNING",
            "SWITCHBOARD_MODEL_PROCESS": model_process,
        }
        if pack is not None:
            env["SWITCHBOARD_PACK"] = str(pack)
        return cls(create_app(Settings.from_env(env)), key)

    async def start(self, timeout: float = 300.0) -> None:
        """Run the lifespan startup and wait for ``/readyz``."""
        self._task = asyncio.create_task(
            self.app(
                {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
                self._lifespan.get,
                self._lifespan_out.put,
            )
        )
        await self._lifespan.put({"type": "lifespan.startup"})
        message = await self._lifespan_out.get()
        if message["type"] != "lifespan.startup.complete":
            raise RuntimeError(f"startup failed: {message}")
        deadline = time.monotonic() + timeout
        while (await self.request("GET", "/readyz", b""))[0] != 200:
            if time.monotonic() > deadline:
                raise RuntimeError("the app did not become ready")
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        """Run the lifespan shutdown."""
        await self._lifespan.put({"type": "lifespan.shutdown"})
        if self._task is not None:
            await self._task

    async def request(self, method: str, path: str, body: bytes, query: bytes = b"") -> tuple[int, bytes]:
        """One HTTP request through the ASGI app: ``(status, body)``."""
        pending = [{"type": "http.request", "body": body, "more_body": False}]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return pending.pop(0) if pending else {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        headers = [
            (b"host", b"bench"),
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {self.key}".encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query,
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
            "state": {},
        }
        await self.app(scope, receive, send)
        return int(sent[0]["status"]), b"".join(m.get("body", b"") for m in sent[1:])

    async def append(self, text: str) -> None:
        """Append one customer turn (fresh id); raises unless the service answered 200."""
        sequence = self.appended
        self.appended += 1
        conversation = f"bench-loop-{self.nonce}-{sequence // TURNS_PER_CONVERSATION}"
        body = json.dumps({"turns": [{"speaker": "customer", "text": text, "id": f"t{sequence}"}]}).encode()
        path = f"/v1/conversations/{conversation}/turns"
        status, reply = await self.request("POST", path, body, b"turns=new")
        if status != 200:
            raise RuntimeError(f"append answered {status}: {reply[:200]!r}")


async def alternating(
    service: InProcess, requests: int, seed: int, switch: Callable[[bool], None]
) -> tuple[dict[str, float], dict[str, float]]:
    """p50 loop CPU and wall of one-turn appends with ``switch(True)`` and ``switch(False)``
    on alternate requests (after ``WARMUP`` unmeasured ones), so that both see the same
    machine; leaves ``switch(True)`` on. Returns (on, off)."""
    texts = generate(600, seed=seed)
    samples: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    for n in range(requests * 2 + WARMUP):
        on = n % 2 == 0
        switch(on)
        sample = await timed(functools.partial(service.append, texts[n % len(texts)]))
        if n >= WARMUP:
            samples[on].append(sample)
    switch(True)
    return median_pair(samples[True]), median_pair(samples[False])


async def matching_where(service: InProcess, requests: int) -> dict[str, Any]:
    """Part 1: the reason match on the batch worker vs on the event loop, alternating."""
    runtime = service.app.state.service.gate.runtime
    hook = runtime.annotate
    if hook is None:
        raise RuntimeError("the runtime has no annotate hook (a pack without a sentence embedding?)")

    def on_worker(on: bool) -> None:
        runtime.annotate = hook if on else None

    on_worker_p50, on_loop_p50 = await alternating(service, requests, 11, on_worker)
    return {
        "batch_worker": on_worker_p50,
        "event_loop": on_loop_p50,
        "loop_cpu_ratio": round(on_loop_p50["cpu_ms_p50"] / on_worker_p50["cpu_ms_p50"], 3),
    }


async def flag_on_and_off(
    service: InProcess, requests: int, seed: int, flag: str, names: tuple[str, str]
) -> dict[str, Any]:
    """The conversation service's boolean ``flag`` on and off on alternate requests: p50 of each
    under ``names`` (on, off), and the wall ratio off / on."""
    conversations = service.app.state.service.conversations

    def switch(on: bool) -> None:
        setattr(conversations, flag, on)

    on_p50, off_p50 = await alternating(service, requests, seed, switch)
    return {
        names[0]: on_p50,
        names[1]: off_p50,
        "wall_ratio": round(off_p50["wall_ms_p50"] / on_p50["wall_ms_p50"], 3),
    }


async def sending_ahead(service: InProcess, requests: int) -> dict[str, Any]:
    """Part 3: a lone turn's text sent to the model ahead of the lock and the load, or on the load."""
    return await flag_on_and_off(service, requests, 13, "send_ahead", ("sent_ahead", "sent_after"))


async def writing_inline(service: InProcess, requests: int) -> dict[str, Any]:
    """Part 4: a lone append's write on the event loop's thread, or handed to the SQLite thread."""
    return await flag_on_and_off(service, requests, 17, "inline_writes", ("inline", "sqlite_thread"))


async def model_process_parts(service: InProcess, requests: int) -> dict[str, Any]:
    """Parts 3 and 4, on one app with the model in its own process."""
    return {
        "lone_turn_to_the_model": await sending_ahead(service, requests),
        "lone_append_write": await writing_inline(service, requests),
    }


async def sqlite_hops(folder: Path, calls: int) -> dict[str, Any]:
    """Part 2: one ``SELECT 1`` through ``SqliteRunner`` vs ``run_in_executor``."""
    from service.sqlite_runner import SqliteRunner

    runner = SqliteRunner(folder / "runner.sqlite3", "CREATE TABLE IF NOT EXISTS t (k INTEGER);")
    executor = ThreadPoolExecutor(max_workers=1)
    loop = asyncio.get_running_loop()
    conn = await loop.run_in_executor(
        executor, lambda: sqlite3.connect(folder / "executor.sqlite3", isolation_level=None)
    )

    def select(connection: sqlite3.Connection) -> Any:
        return connection.execute("SELECT 1").fetchone()

    try:
        runs: dict[str, list[tuple[float, float]]] = {"sqlite_runner": [], "run_in_executor": []}
        for n in range(calls * 2 + WARMUP):
            mine = n % 2 == 0
            if mine:
                sample = await timed(lambda: runner.run(select))
            else:
                sample = await timed(lambda: loop.run_in_executor(executor, select, conn))
            if n >= WARMUP:
                runs["sqlite_runner" if mine else "run_in_executor"].append(sample)
    finally:
        await runner.close()
        await loop.run_in_executor(executor, conn.close)
        executor.shutdown()
    ours, usual = median_pair(runs["sqlite_runner"]), median_pair(runs["run_in_executor"])
    return {
        "sqlite_runner": ours,
        "run_in_executor": usual,
        "loop_cpu_ratio": round(usual["cpu_ms_p50"] / ours["cpu_ms_p50"], 3),
    }


async def measured(
    service: InProcess, requests: int, part: Callable[[InProcess, int], Awaitable[dict[str, Any]]]
) -> dict[str, Any]:
    """``part(service, requests)`` between the app's startup and its shutdown."""
    await service.start()
    try:
        return await part(service, requests)
    finally:
        await service.stop()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """The four parts, each app with a fresh data dir."""
    folder = Path(tempfile.mkdtemp(prefix="switchboard-bench-loop-"))
    # The model in this process: where the reason match runs (batch worker or loop) is a
    # choice only there; with a model process it always runs on the loop as answers arrive.
    matching = await measured(
        InProcess.serving(folder / "in-process", "off", args.pack), args.requests, matching_where
    )
    parts = await measured(
        InProcess.serving(folder / "model-process", "on", args.pack), args.requests, model_process_parts
    )
    return {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cpus": os.cpu_count(),
        "requests_per_variant": args.requests,
        "reason_matching": matching,
        "sqlite_call": await sqlite_hops(folder, args.calls),
        **parts,
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m bench loop", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pack", type=Path, help="model pack (default: the bundled default pack)")
    parser.add_argument("--requests", type=int, default=300, help="one-turn appends per variant")
    parser.add_argument("--calls", type=int, default=3000, help="SQLite calls per variant")
    parser.add_argument("--out", type=Path, help="also write the JSON results here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its figures (reported, not asserted)."""
    args = parse_args(argv)
    report = asyncio.run(run(args))
    text = json.dumps(report, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0
