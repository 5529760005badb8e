"""``python -m bench runtime``: the inference runtime against the stacks teams usually start from.

On the same generated contact-centre turns (8-64 tokens, ``bench.turns``), for
concurrency 1, 8 and 32 (clients that each send one utterance and wait):

(a) ``models.Runtime`` with the pack: micro-batching on (each text its own ONNX
    call, batch-invariant: the default), micro-batching on with one padded ONNX
    call per batch (faster, but a text's scores move with its neighbours), and
    micro-batching off (batch of one);
(b) the same three heads as three separate int8 ONNX models (``export.baseline``);
(c) three Hugging Face ``transformers`` pipelines, PyTorch fp32 (``export.baseline``).

Issue 9's latency bar, one utterance (<= 32 tokens, every head) at concurrency
1, is measured for the default thread plan (one intra-op thread) and for the
alternative, one ONNX session on every CPU (the old two-thread setting), in
alternating rounds of the same run, so both see the same background load; batch
throughput (``Runtime.predict`` of every turn) is measured the same way.

It prints p50/p99 latency and throughput per cell with the ratios between the
systems, checks the issue's targets, and writes ``runtime.json`` and
``runtime.png`` to ``--out``. (a) runs first, before torch is imported, so its
resident memory is measured as the service would see it. Absolute numbers
depend on the machine and on whatever else is running; ratios from one run
are the comparable figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import onnxruntime as ort

from bench.turns import generate
from models.cpu import cpu_quota
from models.pack import SessionFactory, SessionLike, ort_session
from models.packs import DEFAULT_PACK
from models.runtime import Runtime, RuntimeConfig
from models.tokenize import TextEncoder

DEFAULT_CHECKPOINT = Path("runs/default/checkpoint")
DEFAULT_OUT = Path("bench/results")
CONCURRENCY = (1, 8, 32)
SHORT_TOKENS = 32
ASYNC_WARMUP_S = 0.3
BENCH_DEADLINE_MS = 120_000  # latency is measured, not enforced: a busy machine must not abort the run

ONE_UTTERANCE_ROUNDS = 6
BATCH_ROUNDS = 3

SYSTEMS = {
    "runtime": "(a) Switchboard runtime, batching on",
    "runtime_all_cpus": "(a''') one ONNX session on every CPU (the old two-thread setting)",
    "runtime_one_thread": "(a'''') every text on one thread, lone ones too (the pack 2.3 setting)",
    "runtime_fused": "(a''''') the default plan with ONNX Runtime's SkipLayerNormalization fusion",
    "runtime_lone_text": "(a'''''') a lone text on every CPU whatever the warm-up measures",
    "runtime_unbatched": "(a') Switchboard runtime, batching off",
    "runtime_padded": "(a'') Switchboard runtime, padded batches (not batch-invariant)",
    "separate_onnx": "(b) three separate int8 ONNX models",
    "hf_pipelines": "(c) transformers pipelines, PyTorch fp32",
}


@dataclass
class Cell:
    """One measured (system, concurrency) cell."""

    system: str
    concurrency: int
    requests: int
    seconds: float
    throughput: float  # utterances per second
    p50_ms: float
    p99_ms: float
    mean_ms: float
    cpu_ms_per_utt: float  # process CPU time per utterance: robust to other load on the machine
    subset: str = "all"  # "all" turns or "short" (<= 32 tokens)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of ``values`` (0 when empty)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]


def summarise(system: str, concurrency: int, window: Window, subset: str = "all") -> Cell:
    """Turn a measured window into a Cell."""
    ms = [value * 1000 for value in window.latencies]
    elapsed = window.elapsed
    return Cell(
        system=system,
        concurrency=concurrency,
        requests=len(ms),
        seconds=round(elapsed, 3),
        throughput=round(len(ms) / elapsed, 1) if elapsed > 0 else 0.0,
        p50_ms=round(percentile(ms, 50), 3),
        p99_ms=round(percentile(ms, 99), 3),
        mean_ms=round(sum(ms) / len(ms), 3) if ms else 0.0,
        cpu_ms_per_utt=round(window.cpu_seconds * 1000 / len(ms), 3) if ms else 0.0,
        subset=subset,
    )


class Window:
    """The measuring window shared by all clients of one cell.

    Clients stop issuing requests once ``seconds`` have passed *and* at least
    ``min_requests`` were measured (slow systems still get enough samples), or
    at ``hard_limit`` seconds. Throughput = measured requests / (last completion - start).
    """

    def __init__(self, seconds: float, min_requests: int, hard_limit: float) -> None:
        self.start = time.perf_counter()
        self.soft_end = self.start + seconds
        self.hard_end = self.start + hard_limit
        self.min_requests = min_requests
        self.latencies: list[float] = []
        self.last_end = self.start
        self.cpu_start = self.cpu_end = time.process_time()
        self._lock = threading.Lock()

    def open(self) -> bool:
        """May a client issue another request?"""
        now = time.perf_counter()
        if now >= self.hard_end:
            return False
        return now < self.soft_end or len(self.latencies) < self.min_requests

    def record(self, started: float, ended: float) -> None:
        """Count one request (thread-safe)."""
        with self._lock:
            self.latencies.append(ended - started)
            self.last_end = max(self.last_end, ended)
            self.cpu_end = time.process_time()

    @property
    def elapsed(self) -> float:
        """Seconds from the start to the last completion."""
        return self.last_end - self.start

    @property
    def cpu_seconds(self) -> float:
        """CPU seconds this process used (all threads) from the start to the last completion."""
        return self.cpu_end - self.cpu_start


def _min_requests(concurrency: int) -> int:
    return max(30, 3 * concurrency)


async def async_clients(
    call: Callable[[str], Awaitable[Any]], turns: Sequence[str], concurrency: int, seconds: float
) -> Window:
    """``concurrency`` asyncio clients, each sending one turn and awaiting it.

    A short warm-up at the same concurrency runs first and is not counted.
    Returns the measured window.
    """
    counter = iter(range(10**9))

    async def client(window: Window) -> None:
        while window.open():
            started = time.perf_counter()
            await call(turns[next(counter) % len(turns)])
            window.record(started, time.perf_counter())

    warmup = Window(ASYNC_WARMUP_S, 0, ASYNC_WARMUP_S)
    await asyncio.gather(*(client(warmup) for _ in range(concurrency)))
    window = Window(seconds, _min_requests(concurrency), max(60.0, 10 * seconds))
    await asyncio.gather(*(client(window) for _ in range(concurrency)))
    return window


def thread_clients(
    call: Callable[[str], Any], turns: Sequence[str], concurrency: int, seconds: float
) -> Window:
    """``concurrency`` client threads; each calls once untimed (warm-up), then loops in the window."""
    holder: dict[str, Window] = {}
    hard_limit = max(120.0, 20 * seconds)

    def open_window() -> None:  # runs once, when every client has warmed up
        holder["window"] = Window(seconds, _min_requests(concurrency), hard_limit)

    barrier = threading.Barrier(concurrency + 1, action=open_window)

    def client(offset: int) -> None:
        call(turns[offset % len(turns)])
        barrier.wait()
        window = holder["window"]
        index = offset
        while window.open():
            started = time.perf_counter()
            call(turns[index % len(turns)])
            window.record(started, time.perf_counter())
            index += concurrency

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(concurrency)]
    for thread in threads:
        thread.start()
    barrier.wait()
    for thread in threads:
        thread.join()
    return holder["window"]


def rss_mb() -> float:
    """Resident set size of this process in MiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _event_loop_runner() -> Callable[[Awaitable[Any]], Any]:
    try:
        import uvloop

        return lambda coro: uvloop.run(coro)  # type: ignore[arg-type]
    except ImportError:  # pragma: no cover - uvloop is a service dependency
        return lambda coro: asyncio.run(coro)  # type: ignore[arg-type]


def bench_runtime(
    pack: Path, turns: Sequence[str], short: Sequence[str], args: argparse.Namespace
) -> tuple[list[Cell], dict[str, Any]]:
    """(a): batching on, padded and off, every concurrency; load/ready time and RSS."""
    cells: list[Cell] = []
    facts: dict[str, Any] = {}
    run = _event_loop_runner()
    for system, batching, invariant in (
        ("runtime", True, True),
        ("runtime_padded", True, False),
        ("runtime_unbatched", False, True),
    ):
        config = RuntimeConfig(batching=batching, spinning=args.spin, invariant=invariant)

        async def session(config: RuntimeConfig = config, system: str = system) -> None:
            started = time.perf_counter()
            runtime = Runtime.load(pack, config)
            await runtime.start()
            if system == "runtime":
                facts["ready_s"] = round(time.perf_counter() - started, 3)
                facts["rss_mb"] = round(rss_mb(), 1)
                facts["info"] = runtime.info
            try:

                async def call(text: str) -> Any:
                    return await runtime.submit([text], deadline_ms=BENCH_DEADLINE_MS)

                for concurrency in args.concurrency:
                    window = await async_clients(call, turns, concurrency, args.seconds)
                    cells.append(summarise(system, concurrency, window))
                    print(_row(cells[-1]), flush=True)
            finally:
                await runtime.close()

        run(session())
    return cells, facts


def all_cpus_config(spinning: bool) -> RuntimeConfig:
    """The alternative thread plan: every run on one session with the quota's intra-op threads."""
    return RuntimeConfig(spinning=spinning, invariant=False, single_thread_tokens=0)


def merged(system: str, windows: Sequence[Window], subset: str) -> Cell:
    """One cell from several concurrency-1 windows of the same system (rounds of an interleaved run)."""
    total = Window(0, 0, 0)
    total.latencies = [value for window in windows for value in window.latencies]
    total.start, total.last_end = 0.0, sum(window.elapsed for window in windows)
    total.cpu_start, total.cpu_end = 0.0, sum(window.cpu_seconds for window in windows)
    return summarise(system, 1, total, subset)


async def sequential(call: Callable[[str], Awaitable[Any]], texts: Sequence[str], seconds: float) -> Window:
    """One client sending ``texts`` in turn for ``seconds`` (no warm-up: the caller warms up)."""
    window = Window(seconds, 1, max(60.0, 10 * seconds))
    index = 0
    while window.open():
        started = time.perf_counter()
        await call(texts[index % len(texts)])
        window.record(started, time.perf_counter())
        index += 1
    return window


def _submitter(runtime: Runtime) -> Callable[[str], Awaitable[Any]]:
    async def call(text: str) -> Any:
        return await runtime.submit([text], deadline_ms=BENCH_DEADLINE_MS)

    return call


def fused_session(path: Path, options: ort.SessionOptions) -> SessionLike:
    """A session with every ONNX Runtime rewrite, ``models.pack.DISABLED_OPTIMIZERS`` included."""
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def bench_one_utterance(
    pack: Path, turns: Sequence[str], short: Sequence[str], args: argparse.Namespace
) -> tuple[list[Cell], dict[str, Any]]:
    """Issue 9's bar: the default plan vs every text on one thread vs one session on every CPU vs
    the default plan with ONNX Runtime's SkipLayerNormalization fusion vs the lone-text sessions
    kept whatever the warm-up measures, in rotating rounds of one run (no plan always goes first).

    Returns the one-utterance cells (``subset="short"``) and the batch throughput
    (``Runtime.predict`` of every turn, utterances/s, median of the rounds) of both plans.
    """
    plans = {
        "runtime": RuntimeConfig(spinning=args.spin),
        "runtime_one_thread": RuntimeConfig(spinning=args.spin, lone_text_all_cpus=False),
        "runtime_all_cpus": all_cpus_config(args.spin),
        "runtime_fused": RuntimeConfig(spinning=args.spin),
        "runtime_lone_text": RuntimeConfig(spinning=args.spin, lone_text_min_speedup=0.0),
    }
    factories: dict[str, SessionFactory] = {"runtime_fused": fused_session}
    windows: dict[str, list[Window]] = {name: [] for name in plans}
    batch: dict[str, list[float]] = {name: [] for name in plans}

    async def session() -> None:
        runtimes = {
            name: Runtime.load(pack, config, session_factory=factories.get(name, ort_session))
            for name, config in plans.items()
        }
        for runtime in runtimes.values():
            await runtime.start()
        try:
            calls = {name: _submitter(runtime) for name, runtime in runtimes.items()}
            for call in calls.values():
                await sequential(call, short, ASYNC_WARMUP_S)
            names = list(plans)
            for round_ in range(ONE_UTTERANCE_ROUNDS):
                for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                    windows[name].append(await sequential(calls[name], short, args.seconds / 2))
            for round_ in range(BATCH_ROUNDS):
                order = list(plans) if round_ % 2 == 0 else list(reversed(plans))
                for name in order:
                    started = time.perf_counter()
                    await asyncio.to_thread(runtimes[name].predict, turns)
                    batch[name].append(len(turns) / (time.perf_counter() - started))
        finally:
            for runtime in runtimes.values():
                await runtime.close()

    _event_loop_runner()(session())
    cells = [merged(name, windows[name], "short") for name in plans]
    for cell in cells:
        print(_row(cell), flush=True)
    throughput = {name: round(sorted(values)[len(values) // 2], 1) for name, values in batch.items()}
    for name, value in throughput.items():
        print(f"{name + ' predict(all turns)':<30} n={len(turns):<6} {value:>9.1f} utt/s", flush=True)
    return cells, {"batch_throughput": throughput}


def bench_threads(
    system: str, predict: Callable[[str], Any], turns: Sequence[str], args: argparse.Namespace
) -> list[Cell]:
    """(b) or (c): thread clients for every concurrency."""
    cells = []
    for concurrency in args.concurrency:
        window = thread_clients(predict, turns, concurrency, args.seconds)
        cells.append(summarise(system, concurrency, window))
        print(_row(cells[-1]), flush=True)
    return cells


def separate_graphs(checkpoint: Path, preset: str) -> Path:
    """Build or reuse (b)'s graphs in a child process, so torch never loads into this one for (b)."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "export.baseline",
            "graphs",
            "--checkpoint",
            str(checkpoint),
            "--preset",
            preset,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"building the separate ONNX baseline failed:\n{done.stderr[-3000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def agreement(
    runtime_pack: Path, others: dict[str, Callable[[str], dict[str, Any]]], turns: Sequence[str]
) -> dict[str, Any]:
    """How often the baselines pick the runtime's top intent and sentiment (same model, same answers?)."""
    runtime = Runtime.load(runtime_pack, RuntimeConfig())
    ours = runtime.predict(list(turns))
    labels = runtime.labels
    result: dict[str, Any] = {}
    for name, predict in others.items():
        same_intent = same_sentiment = 0
        for text, mine in zip(turns, ours, strict=True):
            theirs = predict(text)
            same_intent += _top(theirs["intent"], labels["intent"]) == mine.intent.label
            same_sentiment += _top(theirs["sentiment"], labels["sentiment"]) == mine.sentiment.label
        result[name] = {
            "texts": len(turns),
            "intent_top1_agreement": round(same_intent / len(turns), 4),
            "sentiment_agreement": round(same_sentiment / len(turns), 4),
        }
    return result


def _top(output: Any, labels: Sequence[str]) -> str:
    """Top label from either a probability list (b) or a pipeline result list (c)."""
    if output and isinstance(output[0], float):
        return labels[max(range(len(output)), key=output.__getitem__)]
    entries = output[0] if isinstance(output[0], list) else output
    return str(max(entries, key=lambda entry: entry["score"])["label"])


def find(cells: Sequence[Cell], system: str, concurrency: int, subset: str = "all") -> Cell | None:
    """The cell of a system at a concurrency, if measured."""
    for cell in cells:
        if (cell.system, cell.concurrency, cell.subset) == (system, concurrency, subset):
            return cell
    return None


def metric(cells: Sequence[Cell], system: str, concurrency: int, field: str) -> float:
    """One figure of a cell, 0 when the cell was not measured."""
    cell = find(cells, system, concurrency)
    return float(getattr(cell, field)) if cell is not None else 0.0


def ratios(cells: Sequence[Cell], concurrencies: Sequence[int]) -> dict[str, dict[str, float]]:
    """Throughput and p50-latency ratios of (a) over each alternative, per concurrency."""
    out: dict[str, dict[str, float]] = {}
    pairs = {
        "runtime_vs_separate_onnx": "separate_onnx",
        "runtime_vs_hf_pipelines": "hf_pipelines",
        "batching_on_vs_off": "runtime_unbatched",
        "invariant_vs_padded": "runtime_padded",
    }
    ours = find(cells, "runtime", 1, "short")
    for name, other in (
        ("default_vs_all_cpus_short", "runtime_all_cpus"),
        ("default_vs_one_thread_short", "runtime_one_thread"),
        ("default_vs_fused_short", "runtime_fused"),
        ("default_vs_lone_text_short", "runtime_lone_text"),
    ):
        theirs = find(cells, other, 1, "short")
        if ours is not None and theirs is not None and ours.p50_ms and ours.cpu_ms_per_utt:
            out[name] = {
                "p50_speedup_c1": round(theirs.p50_ms / ours.p50_ms, 2),
                "p99_speedup_c1": round(theirs.p99_ms / ours.p99_ms, 2),
                "cpu_per_utt_x_c1": round(theirs.cpu_ms_per_utt / ours.cpu_ms_per_utt, 2),
            }
    for name, other in pairs.items():
        for concurrency in concurrencies:
            ours, theirs = find(cells, "runtime", concurrency), find(cells, other, concurrency)
            if ours is None or theirs is None or not theirs.throughput or not ours.p50_ms:
                continue
            out.setdefault(name, {})[f"throughput_x_c{concurrency}"] = round(
                ours.throughput / theirs.throughput, 2
            )
            out[name][f"p50_speedup_c{concurrency}"] = round(theirs.p50_ms / ours.p50_ms, 2)
            if ours.cpu_ms_per_utt > 0:
                out[name][f"cpu_per_utt_x_c{concurrency}"] = round(
                    theirs.cpu_ms_per_utt / ours.cpu_ms_per_utt, 2
                )
    return out


def targets(
    cells: Sequence[Cell], ratio: dict[str, dict[str, float]], facts: dict[str, Any]
) -> dict[str, Any]:
    """The issue's targets, each with the measured value and whether it is met (None: not measured)."""
    short = find(cells, "runtime", 1, "short")
    c32 = find(cells, "runtime", 32)

    def check(value: float | None, limit: float, at_most: bool) -> dict[str, Any]:
        if value is None:
            return {"value": None, "limit": limit, "met": None}
        return {"value": value, "limit": limit, "met": value <= limit if at_most else value >= limit}

    def r(name: str, key: str) -> float | None:
        return ratio.get(name, {}).get(key)

    return {
        "p50_ms_short_c1 <= 3": check(short.p50_ms if short else None, 3, True),
        "p99_ms_short_c1 <= 8": check(short.p99_ms if short else None, 8, True),
        "throughput_vs_hf_c32 >= 6": check(r("runtime_vs_hf_pipelines", "throughput_x_c32"), 6, False),
        "throughput_vs_separate_c32 >= 2.5": check(
            r("runtime_vs_separate_onnx", "throughput_x_c32"), 2.5, False
        ),
        "throughput_c32 >= 400": check(c32.throughput if c32 else None, 400, False),
        "batching_on_vs_off_c32 >= 1.5": check(r("batching_on_vs_off", "throughput_x_c32"), 1.5, False),
        "rss_mb <= 350": check(facts.get("rss_mb"), 350, True),
        "ready_s <= 3": check(facts.get("ready_s"), 3, True),
    }


def _row(cell: Cell) -> str:
    name = cell.system + (" (<=32 tok)" if cell.subset == "short" else "")
    return (
        f"{name:<30} c={cell.concurrency:<3} n={cell.requests:<6} {cell.throughput:>9.1f} utt/s"
        f"   p50 {cell.p50_ms:>8.2f} ms   p99 {cell.p99_ms:>8.2f} ms   cpu {cell.cpu_ms_per_utt:>7.2f} ms/utt"
    )


def print_report(report: dict[str, Any]) -> None:
    """The human-readable summary: table, ratios, targets."""
    print("\n== cells ==")
    for cell in report["cells"]:
        print(_row(Cell(**cell)))
    if report.get("batch_throughput"):
        print(f"\n== batch throughput (Runtime.predict of {report['turns']['count']} turns, utt/s) ==")
        for name, value in report["batch_throughput"].items():
            print(f"{name:<28} {value}")
    print("\n== ratios ((a) over the alternative; >1 means (a) is better) ==")
    for name, values in report["ratios"].items():
        print(f"{name:<28} " + "  ".join(f"{key}={value}" for key, value in values.items()))
    print("\n== targets ==")
    for name, value in report["targets"].items():
        met = {True: "MET", False: "MISSED", None: "n/a"}[value["met"]]
        print(f"{name:<36} {value['value']!s:>10}  {met}")
    if report.get("agreement"):
        print("\n== agreement with (a) ==")
        for name, values in report["agreement"].items():
            print(f"{name:<16} {values}")


# README row labels: what each system is, in the words of the performance section.
MARKDOWN_LABELS = {
    ("runtime", "all"): "(a) this runtime, batch-invariant (default)",
    ("runtime_padded", "all"): "(a'') padded batches (not batch-invariant)",
    ("runtime_unbatched", "all"): "(a') batching off",
    ("runtime", "short"): (
        "(a) one utterance ≤ 32 tokens (default: a lone text on every CPU if the warm-up finds it faster)"
    ),
    ("runtime_one_thread", "short"): "(a'''') one utterance ≤ 32 tokens, every text on one thread",
    ("runtime_all_cpus", "short"): "(a''') one utterance ≤ 32 tokens, one session on every CPU",
    ("runtime_lone_text", "short"): (
        "(a'''''') one utterance ≤ 32 tokens, a lone text on every CPU whatever the warm-up measures"
    ),
    ("runtime_fused", "short"): (
        "(a''''') one utterance ≤ 32 tokens, ONNX Runtime's SkipLayerNormalization fusion on"
    ),
    ("separate_onnx", "all"): "(b) three separate int8 ONNX models",
    ("hf_pipelines", "all"): "(c) transformers pipelines, PyTorch fp32",
}


def markdown(report: dict[str, Any]) -> str:
    """The README tables for a report (``python -m bench runtime --markdown``): cells, then targets."""
    facts = report.get("machine", {})
    lines = [
        f"`{report.get('command', 'python -m bench runtime')}` ({report.get('date', 'date not recorded')}, "
        f"{facts.get('cpus', '?')} CPUs, load average at the end {facts.get('load_average')}, "
        f"pack {report['pack'].get('version')}):",
        "",
        "| system | concurrency | p50 ms | p99 ms | utterances/s | CPU ms/utt |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, label in MARKDOWN_LABELS.items():
        for cell in report["cells"]:
            if (cell["system"], cell["subset"]) == key:
                lines.append(
                    f"| {label} | {cell['concurrency']} | {cell['p50_ms']:.2f} | {cell['p99_ms']:.2f} | "
                    f"{cell['throughput']:.0f} | {cell['cpu_ms_per_utt']:.2f} |"
                )
    lines += ["", "| target | measured | met |", "|---|---:|---|"]
    for name, value in report["targets"].items():
        met = {True: "yes", False: "no", None: "n/a"}[value["met"]]
        lines.append(f"| {name} | {value['value']} | {met} |")
    return "\n".join(lines)


def write_chart(report: dict[str, Any], path: Path) -> None:
    """Throughput per concurrency and p50/p99 at concurrency 1, per system (PNG)."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = [Cell(**cell) for cell in report["cells"] if cell["subset"] == "all"]
    systems = [name for name in SYSTEMS if any(cell.system == name for cell in cells)]
    concurrencies = sorted({cell.concurrency for cell in cells})
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    width = 0.8 / max(1, len(systems))
    for index, system in enumerate(systems):
        values = [metric(cells, system, n, "throughput") for n in concurrencies]
        positions = [i + index * width for i in range(len(concurrencies))]
        bars = left.bar(positions, values, width, label=SYSTEMS[system])
        left.bar_label(bars, fmt="%.0f", fontsize=7)
    left.set_xticks([i + width * (len(systems) - 1) / 2 for i in range(len(concurrencies))])
    left.set_xticklabels([f"concurrency {n}" for n in concurrencies])
    left.set_ylabel("utterances / s (all three heads)")
    left.set_title("Throughput")
    left.set_ylim(0, 1.3 * max([cell.throughput for cell in cells] + [1]))
    left.legend(fontsize=8, loc="upper left")
    p50 = [metric(cells, system, 1, "p50_ms") for system in systems]
    p99 = [metric(cells, system, 1, "p99_ms") for system in systems]
    xs = range(len(systems))
    right.bar([x - 0.2 for x in xs], p50, 0.4, label="p50")
    right.bar([x + 0.2 for x in xs], p99, 0.4, label="p99")
    right.set_yscale("log")
    right.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    right.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    right.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    right.set_xticks(list(xs))
    right.set_xticklabels([s.replace("_", "\n") for s in systems], fontsize=8)
    right.set_ylabel("ms per utterance (log)")
    right.set_title("Latency of one utterance at concurrency 1")
    right.legend(fontsize=8)
    fig.suptitle(
        f"python -m bench runtime — pack {report['pack']['name']} — {report['machine']['cpus']} CPUs"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import onnxruntime

    quota = cpu_quota()
    return {
        "cpus": quota.cpus,
        "cpu_source": quota.source,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "load_average": [round(value, 2) for value in os.getloadavg()],
    }


def build_parser() -> argparse.ArgumentParser:
    """Options of ``python -m bench runtime``."""
    parser = argparse.ArgumentParser(prog="python -m bench runtime", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--pack", type=Path, default=DEFAULT_PACK, help="model pack folder (default: the default pack)"
    )
    parser.add_argument(
        "--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help="training checkpoint for (b), (c)"
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="folder for runtime.json and runtime.png"
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per cell")
    parser.add_argument("--concurrency", type=int, nargs="+", default=list(CONCURRENCY))
    parser.add_argument("--turns", type=int, default=600, help="generated turns to cycle through")
    parser.add_argument("--skip", nargs="*", default=[], choices=["separate_onnx", "hf_pipelines"])
    parser.add_argument("--preset", default="portable", help="int8 preset for (b) (export.quantize.PRESETS)")
    parser.add_argument("--spin", action="store_true", help="enable ONNX Runtime thread spinning in (a)")
    parser.add_argument(
        "--markdown", action="store_true", help="print the README tables of --out/runtime.json and exit"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; returns 0 (targets are reported, not enforced), 2 without a pack."""
    args = build_parser().parse_args(argv)
    if args.markdown:
        print(markdown(json.loads((args.out / "runtime.json").read_text())))
        return 0
    pack = args.pack
    if not (pack / "manifest.json").is_file():
        print(f"no model pack at {pack} (pass --pack DIR)", file=sys.stderr)
        return 2
    encoder = TextEncoder.from_file(pack / "tokenizer.json", max_length=10_000)
    generated = generate(args.turns)
    lengths = [len(ids) for ids in encoder.encode(generated)]
    turns = [text for text, n in zip(generated, lengths, strict=True) if 8 <= n <= 64]
    short = [text for text, n in zip(generated, lengths, strict=True) if 8 <= n <= SHORT_TOKENS]
    kept = [n for n in lengths if 8 <= n <= 64]
    mean = sum(kept) / len(kept)
    print(f"{len(turns)} turns of {min(kept)}-{max(kept)} tokens (mean {mean:.1f}); pack {pack}")

    cells, facts = bench_runtime(pack, turns, short, args)
    one_utterance, batch_facts = bench_one_utterance(pack, turns, short, args)
    cells += one_utterance
    facts.update(batch_facts)
    others: dict[str, Callable[[str], dict[str, Any]]] = {}
    needs_checkpoint = [s for s in ("separate_onnx", "hf_pipelines") if s not in args.skip]
    if needs_checkpoint and not (args.checkpoint / "heads.safetensors").is_file():
        print(f"no checkpoint at {args.checkpoint}: skipping {needs_checkpoint} (pass --checkpoint)")
        needs_checkpoint = []
    if "separate_onnx" in needs_checkpoint:
        from export.baseline import SeparateOnnxModels

        separate = SeparateOnnxModels(separate_graphs(args.checkpoint, args.preset))
        cells += bench_threads("separate_onnx", separate.predict, turns, args)
        others["separate_onnx"] = separate.predict
    if "hf_pipelines" in needs_checkpoint:
        from export.baseline import TransformersPipelines

        pipelines = TransformersPipelines(args.checkpoint)
        cells += bench_threads("hf_pipelines", pipelines.predict, turns, args)
        others["hf_pipelines"] = pipelines.predict

    ratio = ratios(cells, args.concurrency)
    info = facts.get("info", {})
    report = {
        "command": "python -m bench " + " ".join(["runtime", *(argv if argv is not None else sys.argv[2:])]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "pack": {
            "name": info.get("pack"),
            "version": info.get("version"),
            "path": str(pack),
            "files": info.get("files"),
        },
        "runtime": {
            "threads": info.get("threads"),
            "config": info.get("config"),
            "warmup_ms": info.get("warmup_ms"),
        },
        "turns": {"count": len(turns), "short_count": len(short), "min": min(kept), "max": max(kept)},
        "seconds_per_cell": args.seconds,
        "ready_s": facts.get("ready_s"),
        "rss_mb": facts.get("rss_mb"),
        "batch_throughput": facts.get("batch_throughput"),
        "cells": [asdict(cell) for cell in cells],
        "ratios": ratio,
        "targets": targets(cells, ratio, facts),
        "agreement": agreement(pack, others, turns[:100]) if others else {},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "runtime.json").write_text(json.dumps(report, indent=2) + "\n")
    write_chart(report, args.out / "runtime.png")
    print_report(report)
    print(f"\nwrote {args.out / 'runtime.json'} and {args.out / 'runtime.png'}")
    return 0
