"""``python -m bench hugepages``: one-turn appends with the service on transparent huge pages or not.

glibc 2.35 and later back malloc's large blocks with transparent huge pages when
``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` is set (where the kernel's THP mode is
``madvise`` or ``always``); the model process inherits the service's environment, so
one variable covers the int8 weights every run walks and the language identifier's
automaton. The service does not set it: this benchmark is how to tell whether it pays.
Two servers run side by side, ``off`` (the default environment) and ``on`` (the
tunable set), and one client sends one-turn appends (fresh conversation and turn ids,
as ``bench http``'s ``append-1``) at concurrency 1 to each in turn, in blocks: a VM's
speed drifts by 10-15% within an hour, more than the effect measured, and alternating
blocks puts every drift on both servers alike. Each round starts with the other
server, and the first requests of a block are not timed (the idle server's caches went
cold while the other one ran).

Reported per server: p50 and p99 of the timed appends, the block medians, the model
process's ``AnonHugePages`` (what the tunable actually got from the kernel: about the
same as ``off`` where transparent huge pages are off or glibc is older than 2.35) and
the tree's RSS; and the paired comparison: the median and mean of ``on - off`` per
round and the rounds ``on`` was faster.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.http import (
    Ids,
    RawConnection,
    ServiceProcess,
    Workloads,
    kib_to_mb,
    percentile,
    process_tree,
    rss_kib,
    run_loop,
)

DEFAULT_OUT = Path(__file__).parent / "results" / "hugepages.json"
MODES = {"off": {}, "on": {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}}


def model_process_pid(server_pid: int) -> int | None:
    """The pid of ``server_pid``'s model process (a descendant running ``models.process``), if any."""
    for pid in process_tree(server_pid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"models.process" in cmdline.split(b"\0"):
            return pid
    return None


def anon_huge_kb(pid: int | None) -> int | None:
    """``AnonHugePages`` of process ``pid`` in kB (None when it cannot be read)."""
    if pid is None:
        return None
    try:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    for line in rollup.splitlines():
        if line.startswith("AnonHugePages:"):
            return int(line.split()[1])
    return None


async def block(
    connection: RawConnection, workloads: Workloads, step: str, first: int, size: int, skip: int
) -> list[float]:
    """``size`` one-turn appends numbered from ``first`` (fresh ids); the latencies (ms) after ``skip``."""
    workload = workloads.get("append-1", step)
    latencies = []
    for n in range(first, first + size):
        path, body = workload.make(0, n)
        sent = time.perf_counter()
        status, _, payload = await connection.post(path, body)
        done = time.perf_counter()
        turns, duplicates = workload.count(payload) if status == 200 else (0, 0)
        if status != 200 or turns != 1 or duplicates:
            raise RuntimeError(f"{step}: append {n} answered {status} ({turns} turns, {duplicates} dup)")
        if n - first >= skip:
            latencies.append((done - sent) * 1000)
    return latencies


async def alternate(
    services: dict[str, ServiceProcess], ids: Ids, rounds: int, size: int, skip: int
) -> dict[str, list[list[float]]]:
    """``rounds`` rounds of one block per server, the first server of each round alternating."""
    workloads = Workloads(ids)
    connections = {
        mode: RawConnection(
            service.url,
            {"Authorization": f"Bearer {service.key}", "Content-Type": "application/json"},
        )
        for mode, service in services.items()
    }
    blocks: dict[str, list[list[float]]] = {mode: [] for mode in services}
    order = list(services)
    try:
        for number in range(rounds):
            for mode in order if number % 2 == 0 else order[::-1]:
                first = number * size
                blocks[mode].append(
                    await block(connections[mode], workloads, f"hp-{mode}", first, size, skip)
                )
    finally:
        for connection in connections.values():
            await connection.close()
    return blocks


def summarize(blocks: dict[str, list[list[float]]]) -> dict[str, Any]:
    """Per mode: p50/p99 of every timed append (nearest rank, as ``bench http``) and the block
    medians; ``on - off`` per round."""
    out: dict[str, Any] = {}
    for mode, runs in blocks.items():
        every = [x for run in runs for x in run]
        out[mode] = {
            "appends": len(every),
            "p50_ms": round(percentile(every, 50), 3),
            "p99_ms": round(percentile(every, 99), 3),
            "block_p50_ms": [round(statistics.median(run), 3) for run in runs],
        }
    diffs = [on - off for on, off in zip(out["on"]["block_p50_ms"], out["off"]["block_p50_ms"], strict=True)]
    out["paired"] = {
        "rounds": len(diffs),
        "median_on_minus_off_ms": round(statistics.median(diffs), 3),
        "mean_on_minus_off_ms": round(statistics.fmean(diffs), 3),
        "rounds_on_faster": sum(diff < 0 for diff in diffs),
        "p50_off_over_on": round(out["off"]["p50_ms"] / out["on"]["p50_ms"], 3),
    }
    return out


def report_lines(report: dict[str, Any]) -> list[str]:
    """The printed summary of a report."""
    lines = []
    for mode in MODES:
        row = report[mode]
        lines.append(
            f"huge pages {mode:3s}: p50 {row['p50_ms']:.2f} ms  p99 {row['p99_ms']:.2f} ms "
            f"({row['appends']} appends); {row['model_in']} AnonHugePages {row['anon_huge_kb']} kB, "
            f"tree RSS {row['rss_mb']} MB"
        )
    paired = report["paired"]
    lines.append(
        f"on - off per round: median {paired['median_on_minus_off_ms']:+.3f} ms, mean "
        f"{paired['mean_on_minus_off_ms']:+.3f} ms, on faster in {paired['rounds_on_faster']}/"
        f"{paired['rounds']} rounds; p50 off / on {paired['p50_off_over_on']}"
    )
    return lines


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench hugepages", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pack", type=Path, default=None, help="model pack (default: the bundled one)")
    parser.add_argument("--rounds", type=int, default=20, help="rounds of one block per server (default 20)")
    parser.add_argument("--block", type=int, default=250, help="appends per block (default 250)")
    parser.add_argument(
        "--skip", type=int, default=50, help="untimed appends opening each block (default 50)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="2 rounds of 30 (a smoke run); writes only --out"
    )
    parser.add_argument("--out", type=Path, default=None, help=f"JSON results (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.block, args.skip = 2, 30, 5
    if args.out is None and not args.quick:
        args.out = DEFAULT_OUT
    if args.rounds < 1 or args.block <= args.skip or args.skip < 0:
        parser.error("need --rounds >= 1 and 0 <= --skip < --block")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run both servers, alternate the blocks, print and write the comparison."""
    args = parse_args(argv)
    ids = Ids.new()
    log = Path(tempfile.mkstemp(prefix="switchboard-bench-hugepages-", suffix=".log")[1])
    services: dict[str, ServiceProcess] = {}
    try:
        for mode, env in MODES.items():
            services[mode] = ServiceProcess(args.pack, 1, log, env=env)
        for service in services.values():
            service.wait_ready()
        started = time.monotonic()
        blocks = run_loop(alternate(services, ids, args.rounds, args.block, args.skip))
        report = summarize(blocks)
        for mode, service in services.items():
            # On a 1-CPU quota the model runs in the web process (SWITCHBOARD_MODEL_PROCESS=auto).
            child = model_process_pid(service.process.pid)
            report[mode]["model_in"] = "model process" if child is not None else "web process"
            report[mode]["anon_huge_kb"] = anon_huge_kb(child if child is not None else service.process.pid)
            report[mode]["rss_mb"] = kib_to_mb(rss_kib(process_tree(service.process.pid)))
    finally:
        for service in services.values():
            service.stop()
    report["meta"] = {
        "benchmark": "hugepages",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "run": ids.nonce,
        "rounds": args.rounds,
        "block": args.block,
        "skip": args.skip,
        "run_s": round(time.monotonic() - started, 1),
        "server": "switchboard serve, 1 worker, SQLite store, API-key auth on; on: glibc.malloc.hugetlb=1",
    }
    for line in report_lines(report):
        print(line)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0
