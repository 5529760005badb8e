"""``python -m bench http``: the real service over real HTTP, end to end.

Starts ``switchboard serve`` (uvicorn + uvloop, one worker, the default pack,
the embedded SQLite store, API-key auth on, rate limit off) on a free port and
drives it with an aiohttp client from this process:

* ``append-1``: ``POST /v1/conversations/{id}/turns?turns=new`` with one
  customer turn (each client's conversation rolls over every 20 turns, like a
  call), the live-conversation hot path including the SQLite write;
* ``analyze-20``: ``POST /v1/analyze`` with a 20-turn transcript (10 customer,
  10 agent turns);

each closed-loop at concurrency 1, 16 and 64 for a fixed time, reporting p50 /
p99 latency of the 200s, requests/s and turns/s. Every conversation and turn id
is unique to the run, the step and the client (``Ids``): a resent turn id is an
idempotent retry the service answers without scoring or writing, which would
overstate throughput. ``turns/s`` of ``append-1`` therefore counts what the
service reports it scored and stored (the response's ``appended``), and any
``duplicates`` it reports are counted and fail the run. A client that gets 429
waits for its Retry-After, as a well-behaved one would.

Then:

* an open-loop overload run offers twice the measured saturation rate of
  ``append-1`` and reports how much got 200 vs 429 and the latency of both: the
  service must shed the excess with 429 + Retry-After and keep p99 bounded;
* growth: one conversation per mark, built up with 50-turn appends to 10, 500,
  1,000 and 1,960 turns; then one-turn appends go to the four in turn (round-robin,
  the first of each round rotating), so a drift of the host's speed during the step
  weighs on every mark alike; per mark the p50 with the default response and with
  ``?turns=new``, and the default response's size;
* memory: 64 clients GET the last growth conversation (2,000 turns or more) back
  to back while the server's RSS (``VmRSS`` of its process tree) is polled;
* workers: ``append-1`` at concurrency 64 against fresh servers with 1 and 2
  uvicorn workers, so the default worker count is measured;
* model process: ``append-1`` at concurrency 1 and 64, one worker, against fresh servers
  with ``SWITCHBOARD_MODEL_PROCESS=on`` (the model in a child process, the default
  on 2+ CPUs) and ``off`` (in the web process), so the default placement is measured.

The client shares the machine's CPUs with the server, so figures are a lower
bound of what the server alone does. Results: a table on stdout and JSON in
``bench/results/http.json`` (``--quick``: shorter steps, nothing written unless
``--out`` is given).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import msgspec

from bench.turns import generate
from service.settings import hash_api_key

CONCURRENCY = (1, 16, 64)
TRANSCRIPT_TURNS = 20
TURNS_PER_CALL = 20  # append-1 conversations roll over after this many turns
GROWTH_MARKS = (10, 500, 1000, 1960)
GROWTH_CHUNK = 50  # turns per request while building the growth conversation up
GET_TURNS = 2000  # the conversation the memory step reads
GET_CLIENTS = 64
# Above the marks plus their timed appends: the default cap (2,000) would 422 the growth run.
MAX_CONVERSATION_TURNS = 4000
DEFAULT_OUT = Path("bench/results/http.json")
AGENT_LINES = (
    "I'm sorry to hear that, let me check your account.",
    "Thanks for waiting, I can see the transaction here.",
    "Could you confirm the last four digits of the card?",
    "I understand, I'll raise this with the team now.",
    "Is there anything else I can help you with today?",
)
# Targets from the issues (2-core machine).
TARGET_APPEND_P50_MS = 4.0
TARGET_TURNS_PER_S = 400.0
TARGET_GROWTH_RATIO = 1.3
TARGET_GROWTH_BYTES = 20_000
TARGET_GET_RSS_MB = 350.0


@dataclass
class CpuSplit:
    """Where the CPU went during one cell, in ms per turn the cell counted (``Cell.turns_per_s``).

    ``threads``: the server's CPU by thread group (``thread_group``); ``server``: their sum;
    ``client``: this benchmark's own process; ``machine_idle_share``: the share of all CPUs'
    time nobody used (``/proc/stat``), which is what a CPU-bound server leaves on the table.
    """

    threads: dict[str, float]
    server: float
    client: float
    machine_idle_share: float | None


@dataclass
class Cell:
    """One workload at one concurrency.

    ``turns_per_s``: for ``append-1`` the turns the service reported scoring and
    storing (``appended``) per second; for ``analyze-20`` the customer turns sent.
    ``duplicates``: turns the service skipped as already stored (must be 0).
    """

    workload: str
    concurrency: int
    requests: int
    seconds: float
    status: dict[str, int]
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    requests_per_s: float
    turns_per_s: float
    duplicates: int = 0
    cpu: CpuSplit | None = None


@dataclass
class Overload:
    """The open-loop run at a multiple of saturation."""

    offered_per_s: float
    seconds: float
    sent: int
    status: dict[str, int]
    ok_per_s: float
    rejected_share: float
    ok_p50_ms: float
    ok_p99_ms: float
    rejected_p99_ms: float
    all_p99_ms: float
    max_ms: float
    retry_after_seen: bool
    errors: int = 0
    duplicates: int = 0
    server_p99_le_ms: float = 0.0  # from the server's own histogram: excludes client-side delays
    notes: list[str] = field(default_factory=list)


@dataclass
class GrowthPoint:
    """One-turn appends to one conversation holding ``turns`` turns (and up to ``samples`` more)."""

    turns: int
    samples: int
    default_p50_ms: float
    default_p90_ms: float
    default_bytes: int  # median size of the response without ``?turns=``
    new_p50_ms: float
    new_bytes: int  # median size with ``?turns=new``
    status: dict[str, int]


@dataclass
class GetLoad:
    """Concurrent GETs of one long conversation and the server's memory meanwhile."""

    turns_stored: int
    clients: int
    seconds: float
    status: dict[str, int]
    gets_per_s: float
    p50_ms: float
    p99_ms: float
    response_bytes: int  # median
    turns_returned: int  # turns in one default GET response
    rss_before_mb: float
    rss_max_mb: float
    rss_samples: int


class Counts(msgspec.Struct):
    """The fields of an append's response the bench checks (the rest is skipped while decoding)."""

    appended: list[int] = []
    duplicates: int = 0


_COUNTS = msgspec.json.Decoder(Counts)


def append_counts(body: bytes) -> tuple[int, int]:
    """``(turns scored and stored, turns skipped as duplicates)`` from an append's JSON response."""
    counts = _COUNTS.decode(body)
    return len(counts.appended), counts.duplicates


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile in the unit of ``values`` (0.0 when empty)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = min(len(ordered), max(1, math.ceil(q * len(ordered) / 100)))
    return ordered[rank - 1]


def _machine_ticks() -> tuple[int, int] | None:
    """``(idle, total)`` clock ticks of all CPUs since boot (/proc/stat; idle counts iowait too)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return fields[3] + (fields[4] if len(fields) > 4 else 0), sum(fields)
    except (OSError, ValueError, IndexError):
        return None


def cpu_busy_share(seconds: float = 1.0) -> float | None:
    """Share of all CPUs busy over ``seconds`` (from /proc/stat; None where unavailable)."""
    before = _machine_ticks()
    time.sleep(seconds)
    after = _machine_ticks()
    if before is None or after is None:
        return None
    return round(1 - (after[0] - before[0]) / max(1, after[1] - before[1]), 3)


class CpuAccount:
    """CPU time spent on the machine during a run that was not this process or its reaped children.

    The CPUs are shared: a figure measured while other work ran is not the service's. Call
    ``foreign_share`` after every server this process started has been waited for.
    """

    def __init__(self) -> None:
        self._busy0 = self._busy_s()
        self._own0 = self._own_s()
        self._wall0 = time.monotonic()

    @staticmethod
    def _busy_s() -> float | None:
        ticks = _machine_ticks()
        return None if ticks is None else (ticks[1] - ticks[0]) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _own_s() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def foreign_share(self) -> float | None:
        """Share of all CPUs' time since construction used by other processes (None where unknown)."""
        busy = self._busy_s()
        if busy is None or self._busy0 is None:
            return None
        capacity = (time.monotonic() - self._wall0) * (os.cpu_count() or 1)
        foreign = (busy - self._busy0) - (self._own_s() - self._own0)
        return round(max(0.0, foreign) / max(capacity, 1e-9), 3)


# Thread groups of a one-worker server, by the OS thread names the service sets (models.cpu.name_os_thread).
THREAD_GROUPS = ("event loop", "model process loop", "batch workers", "SQLite", "unnamed")


def thread_group(tid: int, pid: int, name: str, process: int | None = None) -> str:
    """The group of thread ``tid`` named ``name`` (its ``comm``) of server ``pid``'s process tree.

    ``process`` is the process the thread belongs to (default ``pid``). uvicorn with one
    worker runs the event loop on the server's main thread (tid == pid); the model process
    (``models.process``, a child) runs its own loop on its main thread, which only moves
    frames; the batch workers (``sb-batch-N``) and their row pool (``sb-rows_N``), in
    whichever process holds the model, tokenize, run ONNX and post-process; every
    ``SqliteRunner`` thread's name holds ``sqlite``. ``unnamed``: threads the service does
    not create itself, mostly ONNX Runtime's intra-op pool of the lone-text sessions (a lone
    turn runs on both cores, and that pool spins while it runs) and the loops' default
    executors.
    """
    if tid == pid:
        return "event loop"
    if tid == process:
        return "model process loop"
    if name.startswith(("sb-batch", "sb-rows")):
        return "batch workers"
    if "sqlite" in name:
        return "SQLite"
    return "unnamed"


def thread_cpu_s(pid: int) -> dict[int, tuple[str, float, int]]:
    """``tid -> (OS thread name, CPU seconds user + system, its process)`` for every thread of
    ``pid`` and of its descendants (the model process), from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    out: dict[int, tuple[str, float, int]] = {}
    for process in process_tree(pid):
        with contextlib.suppress(OSError):  # a process that ended meanwhile
            for task in Path(f"/proc/{process}/task").iterdir():
                try:
                    name = (task / "comm").read_text().strip()
                    fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:  # the thread ended between the listing and the read
                    continue
                out[int(task.name)] = (name, (int(fields[11]) + int(fields[12])) / ticks, process)
    return out


class CpuProbe:
    """Snapshots the server's threads, this process and the machine; ``split`` gives the difference.

    Linux only (``/proc``); ``start`` returns None elsewhere or when the server is gone. A thread
    that ends inside the window leaves ``/proc`` with its CPU time, which is then not counted (the
    service's own threads live as long as it does).
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._threads = thread_cpu_s(pid)
        self._client = self._own_s()
        self._machine = _machine_ticks()
        self._end: tuple[dict[int, tuple[str, float, int]], float, tuple[int, int] | None] | None = None

    def stop(self) -> None:
        """Take the end snapshot now (``split`` takes it itself when this was not called)."""
        with contextlib.suppress(OSError):
            self._end = (thread_cpu_s(self.pid), self._own_s(), _machine_ticks())

    @classmethod
    def start(cls, pid: int | None) -> CpuProbe | None:
        """A probe of server ``pid`` from now (None: no pid, no /proc, or no such process)."""
        if pid is None:
            return None
        try:
            return cls(pid)
        except OSError:
            return None

    @staticmethod
    def _own_s() -> float:
        t = os.times()
        return t.user + t.system

    def split(self, turns: int) -> CpuSplit | None:
        """CPU ms per turn since the snapshot (None when no turn was counted or the server is gone)."""
        if turns <= 0:
            return None
        if self._end is None:
            self.stop()
        if self._end is None:
            return None
        now, client, machine = self._end
        groups = dict.fromkeys(THREAD_GROUPS, 0.0)
        for tid, (name, cpu, process) in now.items():
            before = self._threads.get(tid)
            groups[thread_group(tid, self.pid, name, process)] += cpu - (before[1] if before else 0.0)
        idle = None
        if machine is not None and self._machine is not None and machine[1] > self._machine[1]:
            idle = round((machine[0] - self._machine[0]) / (machine[1] - self._machine[1]), 3)
        per_turn = {group: round(seconds * 1000 / turns, 3) for group, seconds in groups.items()}
        return CpuSplit(
            threads=per_turn,
            server=round(sum(groups.values()) * 1000 / turns, 3),
            client=round((client - self._client) * 1000 / turns, 3),
            machine_idle_share=idle,
        )


def wait_idle(timeout_s: float, threshold: float = 0.1) -> float | None:
    """Wait up to ``timeout_s`` for the CPU busy share to drop below ``threshold``; return the last share."""
    deadline = time.monotonic() + timeout_s
    busy = cpu_busy_share()
    while busy is not None and busy >= threshold and time.monotonic() < deadline:
        busy = cpu_busy_share(2.0)
    return busy


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages (None where unavailable)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (uvicorn's worker processes), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: the parent pid follows the last ')'.
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    tree, pending = [], [pid]
    while pending:
        current = pending.pop()
        tree.append(current)
        pending.extend(children.get(current, []))
    return tree


def rss_kib(pids: Iterable[int]) -> int:
    """Summed ``VmRSS`` (KiB) of ``pids``; processes that are gone count 0."""
    total = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
                break
    return total


def kib_to_mb(kib: int) -> float:
    """KiB (what /proc reports as ``kB``) to decimal megabytes, the unit of the targets."""
    return round(kib * 1024 / 1e6, 1)


class RssPoller:
    """Polls the RSS of a process tree from a thread (the event loop is busy driving clients)."""

    def __init__(self, pid: int, interval_s: float = 0.02) -> None:
        self.pids = process_tree(pid)
        self.interval_s = interval_s
        self.max_kib = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.max_kib = max(self.max_kib, rss_kib(self.pids))
            self.samples += 1
            self._stop.wait(self.interval_s)

    def __enter__(self) -> RssPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# ---- the server -------------------------------------------------------------------------------------


class ServiceProcess:
    """``python -m service.cli serve`` with a fresh data dir and API key.

    ``env`` adds or overrides settings; ``data``, ``port`` and ``key`` reuse a data dir,
    port or API key (the fault benchmark restarts a killed server on its own data).
    """

    def __init__(
        self,
        pack: Path | None,
        workers: int,
        log: Path,
        *,
        env: dict[str, str] | None = None,
        data: str | None = None,
        port: int | None = None,
        key: str | None = None,
    ) -> None:
        self.key = key or "sb_bench_" + secrets.token_urlsafe(16)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data = data or tempfile.mkdtemp(prefix="switchboard-bench-")
        self.workers = workers
        self.env = {
            **os.environ,
            "SWITCHBOARD_API_KEYS": f"bench={hash_api_key(self.key)}",
            "SWITCHBOARD_DATA_DIR": self.data,
            "SWITCHBOARD_RATE_LIMIT": "0",
            "SWITCHBOARD_POLICY_RELOAD_INTERVAL": "0",
            "SWITCHBOARD_LOG_LEVEL": "WARNING",
            "SWITCHBOARD_WORKERS": str(workers),
            "SWITCHBOARD_MAX_CONVERSATION_TURNS": str(MAX_CONVERSATION_TURNS),
            **(env or {}),
        }
        if pack is not None:
            self.env["SWITCHBOARD_PACK"] = str(pack)
        self.log = log
        self.process = self._spawn()

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as handle:
            return subprocess.Popen(
                [sys.executable, "-m", "service.cli", "serve", "--port", str(self.port)],
                env=self.env,
                stdout=handle,
                stderr=subprocess.STDOUT,
            )

    def restart(self) -> None:
        """Start the server again (same port, data and key) once the previous process has exited."""
        if self.process.poll() is None:
            raise RuntimeError("the service is still running")
        self.process = self._spawn()

    def wait_ready(self, timeout: float = 120.0) -> float:
        """Seconds from start until ``/readyz`` answered 200 (and, with workers, until all can be)."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"service exited ({self.process.returncode}); see {self.log}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{self.url}/readyz", timeout=1) as reply,
            ):
                if reply.status == 200:
                    ready = time.monotonic() - started
                    if self.workers > 1:
                        # Only the first worker answered; keep-alive connections opened before the
                        # others accept would all pin to it, so give them as long again to load.
                        time.sleep(max(2.0, ready))
                    return ready
            time.sleep(0.1)
        raise RuntimeError(f"service not ready after {timeout:.0f} s; see {self.log}")

    def stop(self) -> None:
        """SIGTERM (graceful drain), then kill if it lingers."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()


# ---- the workloads -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ids:
    """Conversation and turn ids unique to one run (``nonce``), step and client.

    The service is idempotent on turn ids: a request that resends a stored id is a
    retry, answered without scoring or writing. A benchmark that reused ids across
    steps or runs would measure retries, not appends.
    """

    nonce: str

    @classmethod
    def new(cls) -> Ids:
        """Ids for a fresh run (random nonce)."""
        return cls(secrets.token_hex(4))

    def conversation(self, step: str, client: int, call: int) -> str:
        """The ``call``-th conversation of ``client`` in ``step``."""
        return f"bench-{self.nonce}-{step}-{client}-{call}"

    def turn(self, step: str, client: int, sequence: int) -> str:
        """The ``sequence``-th turn ``client`` sends in ``step``."""
        return f"{self.nonce}-{step}-{client}-{sequence}"


Maker = Callable[[int, int], tuple[str, bytes]]
CountReply = Callable[[bytes], tuple[int, int]]


@dataclass(frozen=True)
class Workload:
    """How one workload builds request ``(path, body)`` and counts ``(turns, duplicates)`` of a reply."""

    make: Maker
    count: CountReply


class Workloads:
    """Request bodies from the generated contact-centre turns (deterministic texts, unique ids)."""

    def __init__(self, ids: Ids) -> None:
        self.ids = ids
        self.texts = generate(600, seed=11)
        self._n = 0

    def text(self) -> str:
        """The next generated customer text."""
        self._n += 1
        return self.texts[self._n % len(self.texts)]

    def get(self, name: str, step: str) -> Workload:
        """The workload ``name`` (``append-1`` or ``analyze-20``) with ids of ``step``."""
        if name == "append-1":
            return Workload(lambda client, sequence: self.append_one(step, client, sequence), append_counts)
        if name == "analyze-20":
            customer = TRANSCRIPT_TURNS // 2
            return Workload(
                lambda client, sequence: self.analyze_twenty(step, client, sequence), lambda _: (customer, 0)
            )
        raise ValueError(f"unknown workload {name!r}")

    def append_one(self, step: str, client: int, sequence: int) -> tuple[str, bytes]:
        """One customer turn with a fresh id; the client's conversation rolls over every call."""
        conversation = self.ids.conversation(step, client, sequence // TURNS_PER_CALL)
        turn = {"speaker": "customer", "text": self.text(), "id": self.ids.turn(step, client, sequence)}
        return f"/v1/conversations/{conversation}/turns?turns=new", json.dumps({"turns": [turn]}).encode()

    def turns(self, step: str, first: int, count: int) -> bytes:
        """An append body of ``count`` alternating customer/agent turns numbered from ``first``."""
        turns = [
            self._customer(step, n)
            if n % 2 == 0
            else {
                "speaker": "agent",
                "text": AGENT_LINES[n % len(AGENT_LINES)],
                "id": self.ids.turn(step, 0, n),
            }
            for n in range(first, first + count)
        ]
        return json.dumps({"turns": turns}).encode()

    def _customer(self, step: str, number: int) -> dict[str, str]:
        return {"speaker": "customer", "text": self.text(), "id": self.ids.turn(step, 0, number)}

    def customer_turn(self, step: str, number: int) -> bytes:
        """An append body of one customer turn numbered ``number`` (a fresh id, a generated text)."""
        return json.dumps({"turns": [self._customer(step, number)]}).encode()

    def analyze_twenty(self, step: str, client: int, sequence: int) -> tuple[str, bytes]:
        """A 20-turn transcript (stateless: nothing stored)."""
        turns = []
        for n in range(TRANSCRIPT_TURNS):
            if n % 2 == 0:
                turns.append({"speaker": "customer", "text": self.text()})
            else:
                turns.append({"speaker": "agent", "text": AGENT_LINES[(sequence + n) % len(AGENT_LINES)]})
        body = {"conversation_id": self.ids.conversation(step, client, sequence), "turns": turns}
        return "/v1/analyze", json.dumps(body).encode()


WORKLOADS = ("append-1", "analyze-20")


class RawConnection:
    """One keep-alive HTTP/1.1 connection speaking just enough HTTP for these requests.

    The client shares the server's two cores: aiohttp spends about 1 ms of Python per request
    here, which the server's latency and throughput would be charged for. This client costs a
    small fraction of that, so the closed-loop cells measure the server, not the client.
    """

    def __init__(self, base: str, headers: Mapping[str, str]) -> None:
        parts = urlsplit(base)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self._fixed = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        """Send one POST; return the status, the (lower-cased) headers and the body."""
        if self._writer is None or self._reader is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\n{self._fixed}Content-Length: {len(body)}\r\n\r\n"
        )
        self._writer.write(head.encode("latin-1") + body)
        status_line = await self._reader.readline()
        if not status_line:
            raise ConnectionError("the server closed the connection")
        status = int(status_line.split(b" ", 2)[1])
        headers: dict[str, str] = {}
        while (line := await self._reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" not in headers:
            raise ConnectionError(f"no Content-Length in the answer (headers {sorted(headers)})")
        payload = await self._reader.readexactly(int(headers["content-length"]))
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, headers, payload

    async def close(self) -> None:
        """Close the socket (the next ``post`` reconnects)."""
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        self._reader = self._writer = None


async def closed_loop(
    session: aiohttp.ClientSession,
    base: str,
    workload: Workload,
    concurrency: int,
    seconds: float,
    warmup_s: float,
) -> tuple[list[float], Counter[str], int, int]:
    """``concurrency`` clients each send back-to-back for ``seconds`` (after ``warmup_s``).

    Returns the latencies (ms) and statuses of the measured requests, the turns the
    measured 200s scored, and the duplicates reported by any reply (warm-up included).
    """
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    scored = duplicates = 0
    start = time.perf_counter()
    measure_from = start + warmup_s
    stop_at = measure_from + seconds

    headers = {name: value for name, value in session.headers.items()}

    async def client(client_id: int) -> None:
        connection = RawConnection(base, headers)
        try:
            await _client_loop(client_id, connection)
        finally:
            await connection.close()

    async def _client_loop(client_id: int, connection: RawConnection) -> None:
        nonlocal scored, duplicates
        sequence = 0
        while True:
            now = time.perf_counter()
            if now >= stop_at:
                return
            path, body = workload.make(client_id, sequence)
            sequence += 1
            sent = time.perf_counter()
            status, reply_headers, payload = await connection.post(path, body)
            retry_after = reply_headers.get("retry-after")
            done = time.perf_counter()
            turns, skipped = workload.count(payload) if status == 200 else (0, 0)
            duplicates += skipped
            if sent >= measure_from and done <= stop_at:
                statuses[str(status)] += 1
                if status == 200:
                    latencies.append((done - sent) * 1000)
                    scored += turns
            if status == 429:  # a well-behaved client backs off as told
                await asyncio.sleep(min(float(retry_after or 1), max(0.0, stop_at - time.perf_counter())))

    await asyncio.gather(*(client(n) for n in range(concurrency)))
    return latencies, statuses, scored, duplicates


async def open_loop(
    session: aiohttp.ClientSession,
    base: str,
    workload: Workload,
    rate: float,
    seconds: float,
) -> tuple[list[tuple[int, float]], int, bool, int]:
    """Send at a fixed ``rate`` regardless of answers (arrivals do not wait for the server).

    Returns ``(status, ms)`` per answered request, transport errors, whether a 429
    carried Retry-After, and the duplicates reported.
    """
    results: list[tuple[int, float]] = []
    errors = duplicates = 0
    retry_after = False
    tasks: list[asyncio.Task[None]] = []

    async def one(sequence: int) -> None:
        nonlocal errors, retry_after, duplicates
        path, body = workload.make(sequence % 512, sequence // 512)
        sent = time.perf_counter()
        try:
            async with session.post(base + path, data=body) as reply:
                payload = await reply.read()
                if reply.status == 429 and reply.headers.get("Retry-After"):
                    retry_after = True
                if reply.status == 200:
                    duplicates += workload.count(payload)[1]
                results.append((reply.status, (time.perf_counter() - sent) * 1000))
        except (TimeoutError, aiohttp.ClientError):
            errors += 1

    start = time.perf_counter()
    total = int(rate * seconds)
    for sequence in range(total):
        target = start + sequence / rate
        delay = target - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(sequence)))
    await asyncio.gather(*tasks)
    return results, errors, retry_after, duplicates


def make_cell(
    workload: str,
    concurrency: int,
    latencies: list[float],
    statuses: Counter[str],
    seconds: float,
    scored: int,
    duplicates: int = 0,
) -> Cell:
    """Summarise one closed-loop step (``scored``: turns the measured 200s scored)."""
    ok = statuses.get("200", 0)
    return Cell(
        workload=workload,
        concurrency=concurrency,
        requests=sum(statuses.values()),
        seconds=seconds,
        status=dict(statuses),
        p50_ms=round(percentile(latencies, 50), 2),
        p90_ms=round(percentile(latencies, 90), 2),
        p99_ms=round(percentile(latencies, 99), 2),
        max_ms=round(max(latencies, default=0.0), 2),
        requests_per_s=round(ok / seconds, 1),
        turns_per_s=round(scored / seconds, 1),
        duplicates=duplicates,
    )


async def run_cell(
    session: aiohttp.ClientSession,
    base: str,
    workloads: Workloads,
    name: str,
    step: str,
    concurrency: int,
    args: argparse.Namespace,
    server_pid: int | None = None,
) -> Cell:
    """One closed-loop step of workload ``name`` with ids of ``step``.

    With ``server_pid`` (a one-worker server) the cell also records where the CPU went
    (``CpuSplit``) over its measured window.
    """
    probe: list[CpuProbe | None] = []

    async def measuring() -> None:
        # The window closed_loop counts: from the end of the warm-up for ``duration`` seconds.
        await asyncio.sleep(args.warmup)
        probe.append(CpuProbe.start(server_pid))
        await asyncio.sleep(args.duration)
        if probe[0] is not None:
            probe[0].stop()

    started = asyncio.ensure_future(measuring())
    latencies, statuses, scored, duplicates = await closed_loop(
        session, base, workloads.get(name, step), concurrency, args.duration, args.warmup
    )
    await started
    cell = make_cell(name, concurrency, latencies, statuses, args.duration, scored, duplicates)
    if probe and probe[0] is not None:
        # The measured window's turns: the 200s that closed inside it (what turns/s counts).
        cell.cpu = probe[0].split(round(cell.turns_per_s * args.duration))
    return cell


# ---- growth and memory ----------------------------------------------------------------------------------


async def _post(session: aiohttp.ClientSession, url: str, body: bytes) -> tuple[int, bytes, float]:
    sent = time.perf_counter()
    async with session.post(url, data=body) as reply:
        payload = await reply.read()
        return reply.status, payload, (time.perf_counter() - sent) * 1000


async def build_up(
    session: aiohttp.ClientSession, base: str, workloads: Workloads, step: str, stored: int, target: int
) -> int:
    """Append ``GROWTH_CHUNK``-turn requests to ``step``'s conversation until it holds ``target`` turns."""
    url = f"{base}/v1/conversations/{workloads.ids.conversation(step, 0, 0)}/turns?turns=new"
    while stored < target:
        count = min(GROWTH_CHUNK, target - stored)
        status, payload, _ = await _post(session, url, workloads.turns(step, stored, count))
        if status != 200:
            raise RuntimeError(f"building the growth conversation: {status} {payload[:300]!r}")
        appended, duplicates = append_counts(payload)
        if appended != count or duplicates:
            raise RuntimeError(f"growth append scored {appended}/{count} turns, {duplicates} duplicates")
        stored += count
    return stored


def growth_step(mark: int) -> str:
    """The step name (and so the conversation and turn ids) of the growth conversation of ``mark``."""
    return f"growth-{mark}"


def growth_schedule(marks: int, samples: int) -> list[tuple[int, bool]]:
    """``(mark index, ?turns=new)`` for every timed append: ``samples`` per mark, round-robin.

    Round ``n`` sends one append to every mark, starting at mark ``n % marks``, so no mark is
    always first after a pause; its appends ask for ``?turns=new`` when ``n`` is odd, so each
    mark's two columns alternate too.
    """
    return [((n + k) % marks, n % 2 == 1) for n in range(samples) for k in range(marks)]


async def growth(
    session: aiohttp.ClientSession, base: str, workloads: Workloads, samples: int
) -> tuple[list[GrowthPoint], int]:
    """Time one-turn appends (default response and ``?turns=new``) at each of ``GROWTH_MARKS``,
    one conversation per mark, in ``growth_schedule`` order after one untimed round.

    Returns the points and the turns the last mark's conversation holds at the end.
    """
    stored = [await build_up(session, base, workloads, growth_step(mark), 0, mark) for mark in GROWTH_MARKS]
    timed: list[tuple[list[tuple[float, int]], list[tuple[float, int]]]] = [([], []) for _ in GROWTH_MARKS]
    statuses: list[Counter[str]] = [Counter() for _ in GROWTH_MARKS]
    warm_up = [(index, False) for index in range(len(GROWTH_MARKS))]
    for round_, (index, new) in enumerate(warm_up + growth_schedule(len(GROWTH_MARKS), samples)):
        step = growth_step(GROWTH_MARKS[index])
        query = "?turns=new" if new else ""
        url = f"{base}/v1/conversations/{workloads.ids.conversation(step, 0, 0)}/turns{query}"
        # Both columns time customer turns (scored by every head); agent turns are shorter.
        status, payload, ms = await _post(session, url, workloads.customer_turn(step, stored[index]))
        if status == 200:
            if append_counts(payload) != (1, 0):
                raise RuntimeError(f"growth sample did not append exactly one new turn at {stored[index]}")
            stored[index] += 1
        if round_ < len(warm_up):
            continue
        statuses[index][str(status)] += 1
        if status == 200:
            timed[index][1 if new else 0].append((ms, len(payload)))
    points = [
        GrowthPoint(
            turns=mark,
            samples=samples,
            default_p50_ms=round(percentile([ms for ms, _ in default], 50), 2),
            default_p90_ms=round(percentile([ms for ms, _ in default], 90), 2),
            default_bytes=int(percentile([b for _, b in default], 50)),
            new_p50_ms=round(percentile([ms for ms, _ in new], 50), 2),
            new_bytes=int(percentile([b for _, b in new], 50)),
            status=dict(counts),
        )
        for mark, (default, new), counts in zip(GROWTH_MARKS, timed, statuses, strict=True)
    ]
    return points, stored[-1]


def growth_ratio(points: Sequence[dict[str, Any]]) -> float | None:
    """p50 of the default one-turn append at the last mark over the first (None without both)."""
    if len(points) < 2 or not points[0]["default_p50_ms"]:
        return None
    return round(points[-1]["default_p50_ms"] / points[0]["default_p50_ms"], 2)


async def get_load(
    session: aiohttp.ClientSession,
    base: str,
    conversation: str,
    turns_stored: int,
    pid: int,
    clients: int,
    seconds: float,
) -> GetLoad:
    """``clients`` closed-loop GETs of ``conversation`` for ``seconds``, polling the server's RSS."""
    url = f"{base}/v1/conversations/{conversation}"
    pids = process_tree(pid)
    before = rss_kib(pids)
    latencies: list[float] = []
    sizes: list[int] = []
    statuses: Counter[str] = Counter()
    returned = 0

    async def client() -> None:
        nonlocal returned
        while time.perf_counter() < stop_at:
            sent = time.perf_counter()
            async with session.get(url) as reply:
                payload = await reply.read()
                status = reply.status
            latencies.append((time.perf_counter() - sent) * 1000)
            statuses[str(status)] += 1
            sizes.append(len(payload))
            if status == 200 and not returned:
                returned = len(json.loads(payload).get("turns", []))

    with RssPoller(pid) as poller:
        stop_at = time.perf_counter() + seconds
        await asyncio.gather(*(client() for _ in range(clients)))
    return GetLoad(
        turns_stored=turns_stored,
        clients=clients,
        seconds=seconds,
        status=dict(statuses),
        gets_per_s=round(statuses.get("200", 0) / seconds, 1),
        p50_ms=round(percentile(latencies, 50), 2),
        p99_ms=round(percentile(latencies, 99), 2),
        response_bytes=int(percentile(sizes, 50)),
        turns_returned=returned,
        rss_before_mb=kib_to_mb(before),
        rss_max_mb=kib_to_mb(max(poller.max_kib, before)),
        rss_samples=poller.samples,
    )


# ---- the run --------------------------------------------------------------------------------------------


def _session(key: str) -> aiohttp.ClientSession:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=2048, force_close=False)
    return aiohttp.ClientSession(
        headers=headers, connector=connector, timeout=aiohttp.ClientTimeout(total=60)
    )


async def run(service: ServiceProcess, args: argparse.Namespace, ids: Ids) -> dict[str, Any]:
    """Every cell, the overload run, growth and memory, against ``service``."""
    workloads = Workloads(ids)
    cells: list[Cell] = []
    async with _session(service.key) as session:
        for name in WORKLOADS:
            for concurrency in args.concurrency:
                cell = await run_cell(
                    session,
                    service.url,
                    workloads,
                    name,
                    f"{name}-c{concurrency}",
                    concurrency,
                    args,
                    server_pid=service.process.pid if service.workers == 1 else None,
                )
                cells.append(cell)
                print(_row(cell), flush=True)
        saturation = max(c.requests_per_s for c in cells if c.workload == "append-1")
        rate = saturation * args.overload_factor
        print(
            f"overload: offering {rate:.0f} req/s "
            f"(x{args.overload_factor:g} saturation) for {args.overload_s:g} s",
            flush=True,
        )
        before = await asyncio.to_thread(server_histogram, service.url)
        results, errors, retry_after, duplicates = await open_loop(
            session, service.url, workloads.get("append-1", "overload"), rate, args.overload_s
        )
        after = await asyncio.to_thread(server_histogram, service.url)
        overload = summarise_overload(results, errors, retry_after, rate, args.overload_s, duplicates)
        overload.server_p99_le_ms = histogram_p99_ms(before, after)

    # A fresh pool: the overload run leaves keep-alive connections the server may close while it
    # drains its backlog (its keep-alive timeout), and a request written into one fails.
    async with _session(service.key) as session:
        points, stored = await growth(session, service.url, workloads, args.growth_samples)
        for point in points:
            print(_growth_row(point), flush=True)
        longest = growth_step(GROWTH_MARKS[-1])
        stored = await build_up(session, service.url, workloads, longest, stored, GET_TURNS)
        memory = await get_load(
            session,
            service.url,
            ids.conversation(longest, 0, 0),
            stored,
            service.process.pid,
            GET_CLIENTS,
            args.get_s,
        )
        print(_memory_row(memory), flush=True)
    return {
        "cells": [asdict(c) for c in cells],
        "saturation_per_s": saturation,
        "overload": asdict(overload),
        "growth": [asdict(p) for p in points],
        "memory": asdict(memory),
    }


async def append_on_fresh_server(
    args: argparse.Namespace,
    ids: Ids,
    log: Path,
    label: str,
    workers: int,
    env: dict[str, str],
    concurrencies: Sequence[int] | None = None,
) -> list[Cell]:
    """``append-1`` at each of ``concurrencies`` (default: the highest of the run) against one
    fresh server with ``workers`` and ``env``."""
    service = ServiceProcess(args.pack, workers, log, env=env)
    cells = []
    try:
        await asyncio.to_thread(service.wait_ready)
        async with _session(service.key) as session:
            for concurrency in concurrencies or [max(args.concurrency)]:
                cell = await run_cell(
                    session,
                    service.url,
                    Workloads(ids),
                    "append-1",
                    f"{label}-c{concurrency}",
                    concurrency,
                    args,
                )
                print(f"{label}: {_row(cell)}", flush=True)
                cells.append(cell)
    finally:
        await asyncio.to_thread(service.stop)
    return cells


async def compare_workers(args: argparse.Namespace, ids: Ids, log: Path) -> list[dict[str, Any]]:
    """``append-1`` at the highest concurrency against a fresh server per worker count."""
    runs = []
    for workers in args.compare_workers:
        [cell] = await append_on_fresh_server(args, ids, log, f"workers{workers}", workers, {})
        runs.append({"workers": workers, **asdict(cell)})
    return runs


async def compare_model_process(args: argparse.Namespace, ids: Ids, log: Path) -> list[dict[str, Any]]:
    """``append-1`` at concurrency 1 and the highest, one worker, against a fresh server per
    ``SWITCHBOARD_MODEL_PROCESS`` mode: the model in a child process or in the web process."""
    runs = []
    concurrencies = sorted({1, max(args.concurrency)})
    for mode in args.compare_model_process:
        env = {"SWITCHBOARD_MODEL_PROCESS": mode}
        label = f"model-process-{mode}"
        for cell in await append_on_fresh_server(args, ids, log, label, 1, env, concurrencies):
            runs.append({"model_process": mode, **asdict(cell)})
    return runs


def workers_ratio(runs: Sequence[dict[str, Any]]) -> float | None:
    """Turns/s of the last run over the first (None without two runs)."""
    if len(runs) < 2 or not runs[0]["turns_per_s"]:
        return None
    return round(runs[-1]["turns_per_s"] / runs[0]["turns_per_s"], 2)


def model_process_ratio(runs: Sequence[dict[str, Any]]) -> float | None:
    """Turns/s with the model process (``on``) over without (``off``) at the highest concurrency
    both ran; None unless both did."""
    top = max((run["concurrency"] for run in runs), default=0)
    by_mode = {run["model_process"]: run["turns_per_s"] for run in runs if run["concurrency"] == top}
    if not by_mode.get("off") or "on" not in by_mode:
        return None
    return round(by_mode["on"] / by_mode["off"], 2)


APPEND_ROUTE = "/v1/conversations/{conversation_id}/turns"


def server_histogram(url: str) -> dict[tuple[str, float], float]:
    """Cumulative bucket counts of the append route's server-side latency, by (status, upper bound)."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    buckets: dict[tuple[str, float], float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "switchboard_http_request_duration_seconds":
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket") and sample.labels.get("route") == APPEND_ROUTE:
                key = (sample.labels["status"], float(sample.labels["le"]))
                buckets[key] = buckets.get(key, 0.0) + sample.value
    return buckets


def histogram_p99_ms(before: dict[tuple[str, float], float], after: dict[tuple[str, float], float]) -> float:
    """Upper bucket bound (ms) holding the 99th percentile of requests between two scrapes (all statuses)."""
    bounds = sorted({le for _, le in after})
    cumulative = [
        sum(after.get((s, le), 0.0) - before.get((s, le), 0.0) for s in {s for s, _ in after})
        for le in bounds
    ]
    if not cumulative or cumulative[-1] <= 0:
        return 0.0
    threshold = 0.99 * cumulative[-1]
    upper = next(le for le, count in zip(bounds, cumulative, strict=True) if count >= threshold)
    return upper * 1000 if upper != float("inf") else float("inf")


def summarise_overload(
    results: list[tuple[int, float]],
    errors: int,
    retry_after: bool,
    rate: float,
    seconds: float,
    duplicates: int = 0,
) -> Overload:
    """Counts and latencies of the open-loop run."""
    statuses = Counter(str(status) for status, _ in results)
    ok = [ms for status, ms in results if status == 200]
    rejected = [ms for status, ms in results if status == 429]
    everything = [ms for _, ms in results]
    sent = len(results) + errors
    return Overload(
        offered_per_s=round(rate, 1),
        seconds=seconds,
        sent=sent,
        status=dict(statuses),
        ok_per_s=round(len(ok) / seconds, 1),
        rejected_share=round(len(rejected) / max(1, sent), 3),
        ok_p50_ms=round(percentile(ok, 50), 2),
        ok_p99_ms=round(percentile(ok, 99), 2),
        rejected_p99_ms=round(percentile(rejected, 99), 2),
        all_p99_ms=round(percentile(everything, 99), 2),
        max_ms=round(max(everything, default=0.0), 2),
        retry_after_seen=retry_after,
        errors=errors,
        duplicates=duplicates,
    )


def total_duplicates(report: dict[str, Any]) -> int:
    """Duplicates any step of ``report`` saw (every id is fresh, so anything but 0 is a bench bug)."""
    return (
        sum(c.get("duplicates", 0) for c in report.get("cells", []))
        + sum(r.get("duplicates", 0) for r in report.get("workers", []))
        + report.get("overload", {}).get("duplicates", 0)
    )


def targets(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The issues' targets, met or not (a step the report lacks is not met)."""
    cells = report["cells"]

    def cell(workload: str, concurrency: int) -> dict[str, Any] | None:
        return next((c for c in cells if c["workload"] == workload and c["concurrency"] == concurrency), None)

    one = cell("append-1", 1)
    busiest = cell("append-1", max(CONCURRENCY))
    turns_c64 = busiest["turns_per_s"] if busiest else None
    overload = report["overload"]
    deadline_ms = 2000.0
    points = report.get("growth", [])
    ratio = growth_ratio(points)
    last_bytes = points[-1]["default_bytes"] if points else None
    rss = report.get("memory", {}).get("rss_max_mb")
    duplicates = total_duplicates(report)
    return {
        "append_p50_c1_ms": {
            "value": one["p50_ms"] if one else None,
            "target": f"<= {TARGET_APPEND_P50_MS}",
            "met": bool(one and one["p50_ms"] <= TARGET_APPEND_P50_MS),
        },
        "unique_turns_per_s_c64": {
            "value": turns_c64,
            "target": f">= {TARGET_TURNS_PER_S:g} (turns the service scored and stored)",
            "met": turns_c64 is not None and turns_c64 >= TARGET_TURNS_PER_S,
        },
        "duplicates": {"value": duplicates, "target": "0 (every turn id is fresh)", "met": duplicates == 0},
        "growth_p50_ratio": {
            "value": ratio,
            "target": f"<= {TARGET_GROWTH_RATIO} (one-turn append at turn {GROWTH_MARKS[-1]} vs "
            f"{GROWTH_MARKS[0]}, default response)",
            "met": ratio is not None and ratio <= TARGET_GROWTH_RATIO,
        },
        "growth_default_bytes": {
            "value": last_bytes,
            "target": f"< {TARGET_GROWTH_BYTES} (default response at turn {GROWTH_MARKS[-1]})",
            "met": last_bytes is not None and last_bytes < TARGET_GROWTH_BYTES,
        },
        "get_rss_max_mb": {
            "value": rss,
            "target": f"<= {TARGET_GET_RSS_MB:g} ({GET_CLIENTS} concurrent GETs of a {GET_TURNS}-turn "
            "conversation)",
            "met": rss is not None and rss <= TARGET_GET_RSS_MB,
        },
        "overload_sheds_with_429": {
            "value": overload["rejected_share"],
            "target": "> 0 with Retry-After, no 5xx",
            "met": overload["rejected_share"] > 0
            and overload["retry_after_seen"]
            and not any(s.startswith("5") for s in overload["status"]),
        },
        "overload_p99_bounded_ms": {
            "value": overload["all_p99_ms"],
            "target": f"<= {deadline_ms:.0f} (the inference deadline), client-observed",
            "met": 0 < overload["all_p99_ms"] <= deadline_ms,
        },
        "overload_server_p99_bounded_ms": {
            "value": overload["server_p99_le_ms"],
            "target": f"<= {deadline_ms:.0f}, server-side histogram bucket",
            "met": 0 < overload["server_p99_le_ms"] <= deadline_ms,
        },
    }


def _row(cell: Cell) -> str:
    statuses = ",".join(f"{k}:{v}" for k, v in sorted(cell.status.items()))
    row = (
        f"{cell.workload:<11} c={cell.concurrency:<3} p50 {cell.p50_ms:7.2f} ms  p99 {cell.p99_ms:7.2f} ms  "
        f"{cell.requests_per_s:7.1f} req/s  {cell.turns_per_s:7.1f} turns/s  "
        f"dup {cell.duplicates}  [{statuses}]"
    )
    if cell.cpu is not None:
        row += "\n" + _cpu_row(asdict(cell.cpu))
    return row


def _cpu_row(cpu: dict[str, Any]) -> str:
    groups = ", ".join(f"{group} {ms:.2f}" for group, ms in cpu["threads"].items())
    idle = cpu["machine_idle_share"]
    return (
        f"    CPU ms per turn: {groups}; server {cpu['server']:.2f}, client {cpu['client']:.2f}; "
        f"machine idle {'?' if idle is None else f'{idle:.0%}'}"
    )


def _growth_row(point: GrowthPoint) -> str:
    return (
        f"growth at {point.turns:>4} turns: one-turn append p50 {point.default_p50_ms:7.2f} ms "
        f"({point.default_bytes} B default), {point.new_p50_ms:7.2f} ms ({point.new_bytes} B ?turns=new)"
    )


def _memory_row(memory: GetLoad) -> str:
    return (
        f"{memory.clients} clients GET a {memory.turns_stored}-turn conversation: {memory.gets_per_s:.0f}/s, "
        f"p50 {memory.p50_ms:.1f} ms, {memory.response_bytes} B ({memory.turns_returned} turns); "
        f"server RSS {memory.rss_before_mb:.0f} -> max {memory.rss_max_mb:.0f} MB"
    )


def print_report(report: dict[str, Any]) -> None:
    """The summary tables."""
    print()
    print(f"{'workload':<11} {'conc':>4} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} {'turns/s':>8} {'dup':>4}")
    for cell in report["cells"]:
        print(
            f"{cell['workload']:<11} {cell['concurrency']:>4} {cell['p50_ms']:>8.2f} {cell['p99_ms']:>8.2f} "
            f"{cell['requests_per_s']:>8.1f} {cell['turns_per_s']:>8.1f} {cell['duplicates']:>4}"
        )
    o = report["overload"]
    print(
        f"\noverload x{report['overload_factor']:g}: offered {o['offered_per_s']:.0f}/s, "
        f"served {o['ok_per_s']:.0f}/s, 429 share {o['rejected_share']:.1%}; "
        f"p99 ok {o['ok_p99_ms']:.1f} ms, p99 429 {o['rejected_p99_ms']:.1f} ms, "
        f"p99 all {o['all_p99_ms']:.1f} ms, max {o['max_ms']:.1f} ms; statuses {o['status']}; "
        f"server-side p99 <= {o['server_p99_le_ms']:.0f} ms"
    )
    print(f"\n{'turns':>6} {'p50 ms':>8} {'p90 ms':>8} {'bytes':>9} {'new p50':>8} {'new B':>7}")
    for p in report["growth"]:
        print(
            f"{p['turns']:>6} {p['default_p50_ms']:>8.2f} {p['default_p90_ms']:>8.2f} "
            f"{p['default_bytes']:>9} {p['new_p50_ms']:>8.2f} {p['new_bytes']:>7}"
        )
    m = report["memory"]
    print(
        f"\nGET x{m['clients']} of {m['turns_stored']} turns: {m['gets_per_s']:.0f}/s, "
        f"p50 {m['p50_ms']:.1f} ms, p99 {m['p99_ms']:.1f} ms, {m['response_bytes']} B/response, "
        f"RSS {m['rss_before_mb']:.0f} -> {m['rss_max_mb']:.0f} MB ({m['rss_samples']} samples)"
    )
    if report.get("workers"):
        runs = _runs_text(report["workers"], _workers_label)
        print(
            f"\nworkers at c={report['workers'][0]['concurrency']}: {runs}; ratio {report['workers_ratio']}"
        )
    if report.get("model_process"):
        runs = _runs_text(report["model_process"], _mode_label)
        print(f"model process: {runs}; on over off {report['model_process_ratio']}")
    print("\ntargets:")
    for name, check in report["targets"].items():
        print(f"  {'ok  ' if check['met'] else 'MISS'} {name}: {check['value']} (target {check['target']})")


def _workers_label(run: dict[str, Any]) -> str:
    return f"{run['workers']} worker(s)"


def _mode_label(run: dict[str, Any]) -> str:
    return f"`{run['model_process']}` at {run['concurrency']}"


def _runs_text(runs: Sequence[dict[str, Any]], label: Callable[[dict[str, Any]], str]) -> str:
    """``label: N turns/s, p50 X ms, p99 Y ms`` for each run, joined with semicolons."""
    return "; ".join(
        f"{label(r)}: {r['turns_per_s']:.0f} turns/s, p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.0f} ms"
        for r in runs
    )


def markdown(report: dict[str, Any]) -> str:
    """The README tables for a report (``python -m bench http --markdown``)."""
    meta = report.get("meta", {})
    lines = [
        f"HTTP end to end, `python -m bench http` ({meta.get('date', '?')}, {meta.get('cpus', '?')} CPUs, "
        f"{meta.get('workers', 1)} worker, client on the same machine; CPU busy before the run: "
        f"{meta.get('cpu_busy_share_before')}, load average {meta.get('load_average_before')}; "
        f"other processes' CPU share during it: {meta.get('foreign_cpu_share_during')}). "
        "Every turn id is fresh; turns/s counts what the service scored and stored:",
        "",
        "| workload | concurrency | p50 ms | p99 ms | requests/s | turns/s | 429s | duplicates |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for cell in report["cells"]:
        refused = cell["status"].get("429", 0)
        lines.append(
            f"| {cell['workload']} | {cell['concurrency']} | {cell['p50_ms']:.1f} | {cell['p99_ms']:.1f} | "
            f"{cell['requests_per_s']:.0f} | {cell['turns_per_s']:.0f} | {refused} | {cell['duplicates']} |"
        )
    split = [cell for cell in report["cells"] if cell.get("cpu")]
    if split:
        lines += [
            "",
            "Where the CPU went, in ms per turn counted above (the server's threads by their OS names, "
            "this benchmark's client, and the share of both CPUs nobody used):",
            "",
            "| workload | concurrency | " + " | ".join(THREAD_GROUPS) + " | server | client | machine idle |",
            "| --- | ---: | " + " | ".join("---:" for _ in THREAD_GROUPS) + " | ---: | ---: | ---: |",
        ]
        for cell in split:
            cpu = cell["cpu"]
            idle = cpu["machine_idle_share"]
            lines.append(
                f"| {cell['workload']} | {cell['concurrency']} | "
                + " | ".join(f"{cpu['threads'].get(group, 0.0):.2f}" for group in THREAD_GROUPS)
                + f" | {cpu['server']:.2f} | {cpu['client']:.2f} | {'?' if idle is None else f'{idle:.0%}'} |"
            )
    o = report["overload"]
    no_5xx = not any(s.startswith("5") for s in o["status"])
    lines += [
        "",
        f"Overload at {report.get('overload_factor', 2):g}x saturation "
        f"({o['offered_per_s']:.0f} requests/s offered for {o['seconds']:g} s): "
        f"{o['ok_per_s']:.0f}/s served, "
        f"{o['rejected_share']:.0%} refused with 429 + Retry-After, no 5xx: {no_5xx}; "
        f"p99 of served {o['ok_p99_ms']:.0f} ms, of refusals {o['rejected_p99_ms']:.0f} ms "
        f"(server-side p99 <= {o['server_p99_le_ms']:.0f} ms).",
    ]
    if report.get("growth"):
        lines += [
            "",
            "One conversation growing (one-turn appends, p50 of the default response and of `?turns=new`):",
            "",
            "| turns stored | p50 ms | response bytes | p50 ms `?turns=new` | bytes `?turns=new` |",
            "| ---: | ---: | ---: | ---: | ---: |",
        ]
        lines += [
            f"| {p['turns']} | {p['default_p50_ms']:.1f} | {p['default_bytes']} | {p['new_p50_ms']:.1f} | "
            f"{p['new_bytes']} |"
            for p in report["growth"]
        ]
    if report.get("memory"):
        m = report["memory"]
        lines += [
            "",
            f"{m['clients']} clients GET a {m['turns_stored']}-turn conversation for {m['seconds']:g} s: "
            f"{m['gets_per_s']:.0f} GETs/s, p50 {m['p50_ms']:.0f} ms, {m['response_bytes']} bytes "
            f"({m['turns_returned']} turns) per response; server RSS {m['rss_before_mb']:.0f} MB before, "
            f"{m['rss_max_mb']:.0f} MB at most.",
        ]
    if report.get("workers"):
        runs = _runs_text(report["workers"], _workers_label)
        lines += [
            "",
            f"`append-1` at concurrency {report['workers'][0]['concurrency']} by uvicorn worker count "
            f"(fresh server each): {runs}; ratio {report.get('workers_ratio')}.",
        ]
    if report.get("model_process"):
        runs = _runs_text(report["model_process"], _mode_label)
        lines += [
            "",
            "`append-1`, one worker, by `SWITCHBOARD_MODEL_PROCESS` (fresh server each): "
            f"{runs}; turns/s `on` over `off` at the highest concurrency "
            f"{report.get('model_process_ratio')}.",
        ]
    lines += ["", "| target | value | met |", "| --- | --- | --- |"]
    for name, check in report["targets"].items():
        lines.append(f"| {name} ({check['target']}) | {check['value']} | {'yes' if check['met'] else 'no'} |")
    return "\n".join(lines)


QUICK = {
    "duration": 2.0,
    "warmup": 0.5,
    "concurrency": [1, 64],
    "overload_s": 3.0,
    "growth_samples": 10,
    "get_s": 2.0,
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options; ``--quick`` shortens every step it did not get explicitly."""
    parser = argparse.ArgumentParser(prog="python -m bench http", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pack", type=Path, help="model pack (default: the bundled default pack)")
    parser.add_argument("--quick", action="store_true", help="short steps (a smoke run); writes only --out")
    parser.add_argument("--duration", type=float, help="measured seconds per cell (default 6)")
    parser.add_argument("--warmup", type=float, help="unmeasured seconds before each cell (default 1)")
    parser.add_argument("--concurrency", type=int, nargs="+", help="closed-loop clients (default 1 16 64)")
    parser.add_argument("--overload-factor", type=float, default=2.0, help="multiple of saturation to offer")
    parser.add_argument("--overload-s", type=float, help="seconds of the overload run (default 8)")
    parser.add_argument(
        "--growth-samples", type=int, help="timed one-turn appends per growth mark (default 80)"
    )
    parser.add_argument("--get-s", type=float, help="seconds of the concurrent-GET memory step (default 5)")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes for the main run")
    parser.add_argument(
        "--compare-workers",
        type=int,
        nargs="*",
        default=[1, 2],
        help="worker counts to compare at the highest concurrency (none: skip)",
    )
    parser.add_argument(
        "--compare-model-process",
        nargs="*",
        choices=("on", "off"),
        default=["on", "off"],
        help="SWITCHBOARD_MODEL_PROCESS modes to compare at the highest concurrency, one worker (none: skip)",
    )
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="first wait up to this long for the CPUs to be idle (busy share < 0.1 over 2 s)",
    )
    parser.add_argument("--out", type=Path, help=f"JSON results (default {DEFAULT_OUT}; none with --quick)")
    parser.add_argument("--markdown", action="store_true", help="print the README tables of --out and exit")
    args = parser.parse_args(argv)
    defaults = {
        "duration": 6.0,
        "warmup": 1.0,
        "concurrency": list(CONCURRENCY),
        "overload_s": 8.0,
        "growth_samples": 80,
        "get_s": 5.0,
    }
    for name, value in (QUICK if args.quick else defaults).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.out is None and not args.quick:
        args.out = DEFAULT_OUT
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 unless a reply reported duplicates (figures are reported, not asserted)."""
    args = parse_args(argv)
    if args.markdown:
        print(markdown(json.loads((args.out or DEFAULT_OUT).read_text())))
        return 0

    busy_before = wait_idle(args.wait_idle)
    load_before = load_average()
    ids = Ids.new()
    log = Path(tempfile.mkstemp(prefix="switchboard-bench-", suffix=".log")[1])
    started = time.monotonic()
    account = CpuAccount()
    service = ServiceProcess(args.pack, args.workers, log)
    try:
        ready_s = service.wait_ready()
        print(f"service ready in {ready_s:.2f} s at {service.url} (log {log}), run {ids.nonce}", flush=True)
        report = run_loop(run(service, args, ids))
    finally:
        service.stop()
    report["workers"] = run_loop(compare_workers(args, ids, log)) if args.compare_workers else []
    report["workers_ratio"] = workers_ratio(report["workers"])
    modes = args.compare_model_process
    report["model_process"] = run_loop(compare_model_process(args, ids, log)) if modes else []
    report["model_process_ratio"] = model_process_ratio(report["model_process"])
    report.update(
        {
            "benchmark": "http",
            "overload_factor": args.overload_factor,
            "ready_s": round(ready_s, 2),
            "run_s": round(time.monotonic() - started, 1),
            "meta": {
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "run": ids.nonce,
                "quick": args.quick,
                "python": platform.python_version(),
                "machine": platform.machine(),
                "cpus": os.cpu_count(),
                "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
                "workers": args.workers,
                # Other work on the machine skews every figure: check these were ~0 before the run.
                "cpu_busy_share_before": busy_before,
                "load_average_before": load_before,
                "load_average_after": load_average(),
                # CPU others used while this ran (this process and its servers excluded).
                "foreign_cpu_share_during": account.foreign_share(),
                "duration_s": args.duration,
                "max_conversation_turns": MAX_CONVERSATION_TURNS,
                "client": f"aiohttp {aiohttp.__version__} in the same machine",
                "server": "switchboard serve (uvicorn, uvloop, httptools), SQLite store, API-key auth on",
            },
        }
    )
    report["targets"] = targets(report)
    print_report(report)
    foreign = report["meta"]["foreign_cpu_share_during"]
    if (busy_before or 0.0) > 0.1 or (foreign or 0.0) > 0.05:
        print(
            f"\nWARNING: CPU busy share before the run {busy_before} (load average {load_before}), "
            f"other processes' share during it {foreign}: other work skews the figures"
        )
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {args.out} in {report['run_s']:.0f} s")
    duplicates = total_duplicates(report)
    if duplicates:
        print(f"\nERROR: the service reported {duplicates} duplicate turns: the bench resent stored ids")
        return 1
    return 0


def run_loop(coro: Awaitable[Any]) -> Any:
    """Run ``coro`` on uvloop (asyncio where uvloop is missing) and return its result."""
    try:
        import uvloop

        return uvloop.run(coro)  # type: ignore[arg-type]
    except ImportError:  # pragma: no cover - uvloop is a serving dependency
        return asyncio.run(coro)  # type: ignore[arg-type]


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
