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
p99 latency of the 200s and throughput (requests/s and customer turns/s); a
client that gets 429 waits for its Retry-After, as a well-behaved one would. Then an
open-loop overload run offers twice the measured saturation rate of
``append-1`` and reports how much got 200 vs 429 and the latency of both: the
service must shed the excess with 429 + Retry-After and keep p99 bounded.

The client shares the machine's CPUs with the server, so figures are a lower
bound of what the server alone does. Results: a table on stdout and JSON in
``bench/results/http.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from bench.turns import generate
from service.settings import hash_api_key

CONCURRENCY = (1, 16, 64)
TRANSCRIPT_TURNS = 20
TURNS_PER_CALL = 20  # append-1 conversations roll over after this many turns
DEFAULT_OUT = Path("bench/results/http.json")
AGENT_LINES = (
    "I'm sorry to hear that, let me check your account.",
    "Thanks for waiting, I can see the transaction here.",
    "Could you confirm the last four digits of the card?",
    "I understand, I'll raise this with the team now.",
    "Is there anything else I can help you with today?",
)
# Targets from the issue (2-core machine).
TARGET_APPEND_P50_MS = 8.0
TARGET_CUSTOMER_TURNS_PER_S = 300.0


@dataclass
class Cell:
    """One workload at one concurrency."""

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
    customer_turns_per_s: float


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
    server_p99_le_ms: float = 0.0  # from the server's own histogram: excludes client-side delays
    notes: list[str] = field(default_factory=list)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile in the unit of ``values`` (0.0 when empty)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def cpu_busy_share(seconds: float = 1.0) -> float | None:
    """Share of all CPUs busy over ``seconds`` (from /proc/stat; None where unavailable)."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return idle, sum(fields)

    try:
        idle0, total0 = sample()
        time.sleep(seconds)
        idle1, total1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    return round(1 - (idle1 - idle0) / max(1, total1 - total0), 3)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---- the server -------------------------------------------------------------------------------------


class ServiceProcess:
    """``python -m service.cli serve`` with a fresh data dir and API key."""

    def __init__(self, pack: Path | None, workers: int, log: Path) -> None:
        self.key = "sb_bench_" + secrets.token_urlsafe(16)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data = tempfile.mkdtemp(prefix="switchboard-bench-")
        env = {
            **os.environ,
            "SWITCHBOARD_API_KEYS": f"bench={hash_api_key(self.key)}",
            "SWITCHBOARD_DATA_DIR": self.data,
            "SWITCHBOARD_RATE_LIMIT": "0",
            "SWITCHBOARD_POLICY_RELOAD_INTERVAL": "0",
            "SWITCHBOARD_LOG_LEVEL": "WARNING",
            "SWITCHBOARD_WORKERS": str(workers),
        }
        if pack is not None:
            env["SWITCHBOARD_PACK"] = str(pack)
        self.log = log
        with log.open("wb") as handle:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "service.cli", "serve", "--port", str(self.port)],
                env=env,
                stdout=handle,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, timeout: float = 120.0) -> float:
        """Seconds from start until ``/readyz`` answered 200."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"service exited ({self.process.returncode}); see {self.log}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{self.url}/readyz", timeout=1) as reply,
            ):
                if reply.status == 200:
                    return time.monotonic() - started
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


class Workloads:
    """Request bodies from the generated contact-centre turns (deterministic)."""

    def __init__(self) -> None:
        self.texts = generate(600, seed=11)
        self._n = 0

    def _text(self) -> str:
        self._n += 1
        return self.texts[self._n % len(self.texts)]

    def append_one(self, client_id: int, sequence: int) -> tuple[str, bytes]:
        conversation = f"bench-{client_id}-{sequence // TURNS_PER_CALL}"
        body = {"turns": [{"speaker": "customer", "text": self._text(), "id": f"t{sequence}"}]}
        return f"/v1/conversations/{conversation}/turns?turns=new", json.dumps(body).encode()

    def analyze_twenty(self, client_id: int, sequence: int) -> tuple[str, bytes]:
        turns = []
        for n in range(TRANSCRIPT_TURNS):
            if n % 2 == 0:
                turns.append({"speaker": "customer", "text": self._text()})
            else:
                turns.append({"speaker": "agent", "text": AGENT_LINES[(sequence + n) % len(AGENT_LINES)]})
        body = {"conversation_id": f"bench-a-{client_id}-{sequence}", "turns": turns}
        return "/v1/analyze", json.dumps(body).encode()


WORKLOADS: dict[str, tuple[str, int]] = {"append-1": ("append_one", 1), "analyze-20": ("analyze_twenty", 10)}


async def closed_loop(
    session: aiohttp.ClientSession,
    base: str,
    make: Callable[[int, int], tuple[str, bytes]],
    concurrency: int,
    seconds: float,
    warmup_s: float,
) -> tuple[list[float], Counter[str], float]:
    """``concurrency`` clients each send back-to-back for ``seconds`` (after ``warmup_s``)."""
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    start = time.perf_counter()
    measure_from = start + warmup_s
    stop_at = measure_from + seconds

    async def client(client_id: int) -> None:
        sequence = 0
        while True:
            now = time.perf_counter()
            if now >= stop_at:
                return
            path, body = make(client_id, sequence)
            sequence += 1
            sent = time.perf_counter()
            async with session.post(base + path, data=body) as reply:
                await reply.read()
                status = reply.status
                retry_after = reply.headers.get("Retry-After")
            done = time.perf_counter()
            if sent >= measure_from and done <= stop_at:
                statuses[str(status)] += 1
                if status == 200:
                    latencies.append((done - sent) * 1000)
            if status == 429:  # a well-behaved client backs off as told
                await asyncio.sleep(min(float(retry_after or 1), max(0.0, stop_at - time.perf_counter())))

    await asyncio.gather(*(client(n) for n in range(concurrency)))
    return latencies, statuses, seconds


async def open_loop(
    session: aiohttp.ClientSession,
    base: str,
    make: Callable[[int, int], tuple[str, bytes]],
    rate: float,
    seconds: float,
) -> tuple[list[tuple[int, float]], int, bool]:
    """Send at a fixed ``rate`` regardless of answers (arrivals do not wait for the server)."""
    results: list[tuple[int, float]] = []
    errors = 0
    retry_after = False
    tasks: list[asyncio.Task[None]] = []

    async def one(sequence: int) -> None:
        nonlocal errors, retry_after
        path, body = make(10_000 + sequence % 512, sequence // 512)
        sent = time.perf_counter()
        try:
            async with session.post(base + path, data=body) as reply:
                await reply.read()
                if reply.status == 429 and reply.headers.get("Retry-After"):
                    retry_after = True
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
    return results, errors, retry_after


def make_cell(
    workload: str, concurrency: int, latencies: list[float], statuses: Counter[str], seconds: float
) -> Cell:
    customer_turns = WORKLOADS[workload][1]
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
        customer_turns_per_s=round(ok * customer_turns / seconds, 1),
    )


async def run(service: ServiceProcess, args: argparse.Namespace) -> dict[str, Any]:
    """Every cell, then the overload run."""
    workloads = Workloads()
    headers = {"Authorization": f"Bearer {service.key}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=2048, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    cells: list[Cell] = []
    async with aiohttp.ClientSession(headers=headers, connector=connector, timeout=timeout) as session:
        for workload, (method, _) in WORKLOADS.items():
            make: Callable[[int, int], tuple[str, bytes]] = getattr(workloads, method)
            for concurrency in args.concurrency:
                latencies, statuses, seconds = await closed_loop(
                    session, service.url, make, concurrency, args.duration, args.warmup
                )
                cell = make_cell(workload, concurrency, latencies, statuses, seconds)
                cells.append(cell)
                print(_row(cell), flush=True)
        saturation = max(c.requests_per_s for c in cells if c.workload == "append-1")
        rate = saturation * args.overload_factor
        print(
            f"overload: offering {rate:.0f} req/s "
            f"(x{args.overload_factor:g} saturation) for {args.overload_s:g} s"
        )
        before = await asyncio.to_thread(server_histogram, service.url)
        results, errors, retry_after = await open_loop(
            session, service.url, workloads.append_one, rate, args.overload_s
        )
        after = await asyncio.to_thread(server_histogram, service.url)
    overload = summarise_overload(results, errors, retry_after, rate, args.overload_s)
    overload.server_p99_le_ms = histogram_p99_ms(before, after)
    return {"cells": [asdict(c) for c in cells], "saturation_per_s": saturation, "overload": asdict(overload)}


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
    results: list[tuple[int, float]], errors: int, retry_after: bool, rate: float, seconds: float
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
    )


def targets(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The issue's targets, met or not."""
    cells = report["cells"]

    def cell(workload: str, concurrency: int) -> dict[str, Any] | None:
        return next((c for c in cells if c["workload"] == workload and c["concurrency"] == concurrency), None)

    one = cell("append-1", 1)
    busiest = max(
        (c["customer_turns_per_s"] for c in cells if c["concurrency"] == max(CONCURRENCY)), default=0.0
    )
    overload = report["overload"]
    deadline_ms = 2000.0
    return {
        "append_p50_c1_ms": {
            "value": one["p50_ms"] if one else None,
            "target": f"<= {TARGET_APPEND_P50_MS}",
            "met": bool(one and one["p50_ms"] <= TARGET_APPEND_P50_MS),
        },
        "customer_turns_per_s_c64": {
            "value": busiest,
            "target": f">= {TARGET_CUSTOMER_TURNS_PER_S}",
            "met": busiest >= TARGET_CUSTOMER_TURNS_PER_S,
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
    return (
        f"{cell.workload:<11} c={cell.concurrency:<3} p50 {cell.p50_ms:7.2f} ms  p99 {cell.p99_ms:7.2f} ms  "
        f"{cell.requests_per_s:7.1f} req/s  {cell.customer_turns_per_s:7.1f} customer turns/s  [{statuses}]"
    )


def print_report(report: dict[str, Any]) -> None:
    """The summary table."""
    print()
    print(f"{'workload':<11} {'conc':>4} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} {'cust turns/s':>13}")
    for cell in report["cells"]:
        print(
            f"{cell['workload']:<11} {cell['concurrency']:>4} {cell['p50_ms']:>8.2f} {cell['p99_ms']:>8.2f} "
            f"{cell['requests_per_s']:>8.1f} {cell['customer_turns_per_s']:>13.1f}"
        )
    o = report["overload"]
    print(
        f"\noverload x{report['overload_factor']:g}: offered {o['offered_per_s']:.0f}/s, "
        f"served {o['ok_per_s']:.0f}/s, 429 share {o['rejected_share']:.1%}; "
        f"p99 ok {o['ok_p99_ms']:.1f} ms, p99 429 {o['rejected_p99_ms']:.1f} ms, "
        f"p99 all {o['all_p99_ms']:.1f} ms, max {o['max_ms']:.1f} ms; statuses {o['status']}; "
        f"server-side p99 <= {o['server_p99_le_ms']:.0f} ms"
    )
    print("\ntargets:")
    for name, check in report["targets"].items():
        print(f"  {'ok  ' if check['met'] else 'MISS'} {name}: {check['value']} (target {check['target']})")


def markdown(report: dict[str, Any]) -> str:
    """The README table for a report (``python -m bench http --markdown``)."""
    meta = report.get("meta", {})
    lines = [
        f"HTTP end to end, `python -m bench http` ({meta.get('date', '?')}, {meta.get('cpus', '?')} CPUs, "
        f"{meta.get('workers', 1)} worker, client on the same machine; CPU busy before the run: "
        f"{meta.get('cpu_busy_share_before')}):",
        "",
        "| workload | concurrency | p50 ms | p99 ms | requests/s | customer turns/s | 429s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for cell in report["cells"]:
        refused = cell["status"].get("429", 0)
        lines.append(
            f"| {cell['workload']} | {cell['concurrency']} | {cell['p50_ms']:.1f} | {cell['p99_ms']:.1f} | "
            f"{cell['requests_per_s']:.0f} | {cell['customer_turns_per_s']:.0f} | {refused} |"
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
        "",
        "| target | value | met |",
        "| --- | --- | --- |",
    ]
    for name, check in report["targets"].items():
        lines.append(f"| {name} ({check['target']}) | {check['value']} | {'yes' if check['met'] else 'no'} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; returns 0 (figures are reported, not asserted)."""
    parser = argparse.ArgumentParser(prog="python -m bench http", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pack", type=Path, help="model pack (default: the bundled default pack)")
    parser.add_argument("--duration", type=float, default=6.0, help="measured seconds per cell")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each cell")
    parser.add_argument("--concurrency", type=int, nargs="+", default=list(CONCURRENCY))
    parser.add_argument("--overload-factor", type=float, default=2.0, help="multiple of saturation to offer")
    parser.add_argument("--overload-s", type=float, default=8.0, help="seconds of the overload run")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--markdown", action="store_true", help="print the README table of --out and exit")
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown(json.loads(args.out.read_text())))
        return 0

    busy_before = cpu_busy_share()
    log = Path(tempfile.mkstemp(prefix="switchboard-bench-", suffix=".log")[1])
    service = ServiceProcess(args.pack, args.workers, log)
    try:
        ready_s = service.wait_ready()
        print(f"service ready in {ready_s:.2f} s at {service.url} (log {log})", flush=True)
        report = _run_loop(run(service, args))
    finally:
        service.stop()
    report.update(
        {
            "benchmark": "http",
            "overload_factor": args.overload_factor,
            "ready_s": round(ready_s, 2),
            "meta": {
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "python": platform.python_version(),
                "machine": platform.machine(),
                "cpus": os.cpu_count(),
                "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
                "workers": args.workers,
                # Other work on the machine skews every figure: check this was ~0 before the run.
                "cpu_busy_share_before": busy_before,
                "duration_s": args.duration,
                "client": f"aiohttp {aiohttp.__version__} in the same machine",
                "server": "switchboard serve (uvicorn, uvloop, httptools), SQLite store, API-key auth on",
            },
        }
    )
    report["targets"] = targets(report)
    print_report(report)
    if busy_before is not None and busy_before > 0.1:
        print(
            f"\nWARNING: {busy_before:.0%} of the CPUs were busy before the run: other work skews the figures"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


def _run_loop(coro: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    try:
        import uvloop

        return uvloop.run(coro)  # type: ignore[arg-type]
    except ImportError:  # pragma: no cover - uvloop is a serving dependency
        return asyncio.run(coro)  # type: ignore[arg-type]


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
