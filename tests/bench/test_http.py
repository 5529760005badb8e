"""``python -m bench http``: the pure helpers (ids, counting, summaries, targets, formatting).

The benchmark itself needs a running server and minutes of CPU; these check what
decides whether its figures mean anything: every request carries fresh ids, the
counts come from the service's reply, and the targets read the right fields. One
test runs the growth step, at small marks, against a real server.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import pytest

from bench import http
from models.cpu import name_os_thread
from service.schemas import AnalyzeRequest, AppendRequest


def _reply(appended: list[int], duplicates: int) -> bytes:
    return json.dumps(
        {"conversation_id": "c", "turns": [{"index": 0}], "appended": appended, "duplicates": duplicates}
    ).encode()


def test_ids_never_repeat_across_steps_clients_sequences_or_runs() -> None:
    first, second = http.Ids.new(), http.Ids.new()
    assert first.nonce != second.nonce
    pairs = {
        (ids.conversation(step, client, sequence // http.TURNS_PER_CALL), ids.turn(step, client, sequence))
        for ids in (first, second)
        for step in ("append-1-c1", "append-1-c64", "overload")
        for client in range(70)
        for sequence in range(45)
    }
    assert len(pairs) == 2 * 3 * 70 * 45
    assert len({turn for _, turn in pairs}) == len(pairs)


def test_append_bodies_are_valid_requests_with_fresh_ids() -> None:
    workloads = http.Workloads(http.Ids("abcd1234"))
    seen: set[tuple[str, str]] = set()
    for step in ("append-1-c1", "append-1-c16"):
        workload = workloads.get("append-1", step)
        for sequence in range(2 * http.TURNS_PER_CALL):
            path, body = workload.make(3, sequence)
            request = msgspec.json.decode(body, type=AppendRequest)
            assert path.startswith("/v1/conversations/bench-abcd1234-") and path.endswith("/turns?turns=new")
            assert len(request.turns) == 1 and request.turns[0].id is not None
            seen.add((path, request.turns[0].id))
    assert len(seen) == 2 * 2 * http.TURNS_PER_CALL
    # A conversation rolls over every TURNS_PER_CALL turns, like a call.
    assert len({path for path, _ in seen}) == 2 * 2


def test_growth_chunks_alternate_speakers_and_number_ids_by_position() -> None:
    workloads = http.Workloads(http.Ids("n"))
    request = msgspec.json.decode(workloads.turns("growth", 10, 4), type=AppendRequest)
    assert [t.speaker for t in request.turns] == ["customer", "agent", "customer", "agent"]
    assert [t.id for t in request.turns] == [f"n-growth-0-{n}" for n in range(10, 14)]


def test_growth_samples_are_customer_turns_whatever_their_position() -> None:
    # Both growth columns must time the same work: an agent line is shorter than a customer turn.
    workloads = http.Workloads(http.Ids("n"))
    for number in (10, 11):
        request = msgspec.json.decode(workloads.customer_turn("growth", number), type=AppendRequest)
        assert [t.speaker for t in request.turns] == ["customer"]
        assert [t.id for t in request.turns] == [f"n-growth-0-{number}"]


def test_growth_schedule_visits_every_mark_each_round_and_rotates_the_first() -> None:
    schedule = http.growth_schedule(4, 6)
    assert len(schedule) == 24
    rounds = [schedule[n * 4 : (n + 1) * 4] for n in range(6)]
    for n, round_ in enumerate(rounds):
        assert sorted(index for index, _ in round_) == [0, 1, 2, 3]
        assert round_[0][0] == n % 4
        assert {new for _, new in round_} == {n % 2 == 1}
    for mark in range(4):
        columns = [new for index, new in schedule if index == mark]
        assert columns.count(True) == columns.count(False) == 3


def test_each_growth_mark_has_its_own_conversation_and_turn_ids() -> None:
    workloads = http.Workloads(http.Ids("cafe"))
    steps = [http.growth_step(mark) for mark in http.GROWTH_MARKS]
    conversations = {workloads.ids.conversation(step, 0, 0) for step in steps}
    turn_ids = {
        t["id"] for step in steps for t in msgspec.json.decode(workloads.customer_turn(step, 10))["turns"]
    }
    assert len(conversations) == len(turn_ids) == len(http.GROWTH_MARKS)


def test_growth_step_against_a_real_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "GROWTH_MARKS", (3, 60))
    service = http.ServiceProcess(None, 1, tmp_path / "server.log", data=str(tmp_path / "var"))
    try:
        service.wait_ready()
        workloads = http.Workloads(http.Ids.new())

        async def measure() -> tuple[list[http.GrowthPoint], int, list[int]]:
            async with http._session(service.key) as session:
                points, stored = await http.growth(session, service.url, workloads, 4)
                stored_now = []
                for mark in http.GROWTH_MARKS:
                    conversation = workloads.ids.conversation(http.growth_step(mark), 0, 0)
                    async with session.get(f"{service.url}/v1/conversations/{conversation}") as reply:
                        assert reply.status == 200
                        stored_now.append(len((await reply.json())["turns"]))
                return points, stored, stored_now

        points, stored, stored_now = asyncio.run(measure())
    finally:
        service.stop()
    assert [p.turns for p in points] == [3, 60]
    # One untimed append per mark, then 4 timed ones, 2 per column, every one a 200.
    assert stored_now == [3 + 5, 60 + 5] and stored == 65
    for point in points:
        assert point.status == {"200": 4} and point.samples == 4
        assert point.default_p50_ms > 0 and point.new_p50_ms > 0 and point.default_bytes > 0


def test_analyze_bodies_are_valid_and_count_their_customer_turns() -> None:
    workload = http.Workloads(http.Ids("n")).get("analyze-20", "analyze-20-c1")
    path, body = workload.make(0, 0)
    request = msgspec.json.decode(body, type=AnalyzeRequest)
    assert path == "/v1/analyze" and len(request.turns) == http.TRANSCRIPT_TURNS
    assert workload.count(b"{}") == (sum(t.speaker == "customer" for t in request.turns), 0)


def test_unknown_workload_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown workload"):
        http.Workloads(http.Ids("n")).get("append-2", "s")


def test_append_counts_read_appended_and_duplicates() -> None:
    assert http.append_counts(_reply([4], 0)) == (1, 0)
    assert http.append_counts(_reply([], 1)) == (0, 1)
    assert http.append_counts(b'{"turns": []}') == (0, 0)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert http.percentile(values, 50) == 50.0
    assert http.percentile(values, 99) == 99.0
    assert http.percentile(list(reversed(values)), 100) == 100.0
    assert http.percentile([5.0, 1.0, 3.0], 50) == 3.0
    assert http.percentile([1.0, 2.0], 1) == 1.0
    assert http.percentile([], 50) == 0.0


def test_make_cell_counts_scored_turns_not_requests() -> None:
    cell = http.make_cell("append-1", 64, [1.0, 2.0, 3.0], Counter({"200": 3, "429": 1}), 2.0, 2, 1)
    assert cell.requests == 4 and cell.requests_per_s == 1.5
    assert cell.turns_per_s == 1.0 and cell.duplicates == 1
    assert cell.p50_ms == 2.0 and cell.max_ms == 3.0


def test_summarise_overload() -> None:
    results = [(200, 10.0), (200, 30.0), (429, 1.0), (429, 2.0)]
    overload = http.summarise_overload(results, 1, True, 100.0, 2.0, duplicates=0)
    assert overload.sent == 5 and overload.status == {"200": 2, "429": 2}
    assert overload.ok_per_s == 1.0 and overload.rejected_share == 0.4
    assert overload.all_p99_ms == 30.0 and overload.errors == 1


def test_histogram_p99_uses_the_difference_between_scrapes() -> None:
    before = {("200", 0.01): 100.0, ("200", 0.1): 100.0, ("200", float("inf")): 100.0}
    after = {("200", 0.01): 100.0, ("200", 0.1): 199.0, ("200", float("inf")): 200.0}
    assert http.histogram_p99_ms(before, after) == 100.0
    assert http.histogram_p99_ms(after, after) == 0.0


def test_ratios() -> None:
    points = [{"default_p50_ms": 4.0}, {"default_p50_ms": 5.0}, {"default_p50_ms": 6.0}]
    assert http.growth_ratio(points) == 1.5
    assert http.growth_ratio(points[:1]) is None
    assert http.workers_ratio([{"turns_per_s": 300.0}, {"turns_per_s": 420.0}]) == 1.4
    assert http.workers_ratio([{"turns_per_s": 0.0}, {"turns_per_s": 1.0}]) is None


def test_kib_to_mb_is_decimal() -> None:
    assert http.kib_to_mb(341_797) == 350.0


def test_rss_of_this_process_tree() -> None:
    assert http.process_tree(os.getpid())[0] == os.getpid()
    assert http.rss_kib([os.getpid()]) > 0
    assert http.rss_kib([2**22 + 7]) == 0  # above pid_max: gone processes count 0


def _report(**changes: Any) -> dict[str, Any]:
    cell = {
        "workload": "append-1",
        "concurrency": 1,
        "requests": 10,
        "seconds": 6.0,
        "status": {"200": 10},
        "p50_ms": 3.5,
        "p90_ms": 4.0,
        "p99_ms": 5.0,
        "max_ms": 6.0,
        "requests_per_s": 250.0,
        "turns_per_s": 250.0,
        "duplicates": 0,
    }
    report: dict[str, Any] = {
        "cells": [cell, {**cell, "concurrency": 64, "p50_ms": 50.0, "turns_per_s": 410.0}],
        "overload": {
            "offered_per_s": 800.0,
            "seconds": 8.0,
            "status": {"200": 10, "429": 5},
            "ok_per_s": 400.0,
            "rejected_share": 0.33,
            "ok_p99_ms": 300.0,
            "rejected_p99_ms": 20.0,
            "all_p99_ms": 300.0,
            "retry_after_seen": True,
            "duplicates": 0,
            "server_p99_le_ms": 500.0,
        },
        "growth": [
            {"turns": 10, "default_p50_ms": 4.0, "default_bytes": 9000, "new_p50_ms": 4.0, "new_bytes": 8000},
            {
                "turns": 1960,
                "default_p50_ms": 5.0,
                "default_bytes": 9500,
                "new_p50_ms": 5.0,
                "new_bytes": 8000,
            },
        ],
        "memory": {
            "clients": 64,
            "turns_stored": 2000,
            "seconds": 5.0,
            "gets_per_s": 100.0,
            "p50_ms": 20.0,
            "response_bytes": 60000,
            "turns_returned": 100,
            "rss_before_mb": 250.0,
            "rss_max_mb": 280.0,
        },
        "workers": [
            {
                "workers": 1,
                "turns_per_s": 400.0,
                "duplicates": 0,
                "concurrency": 64,
                "p50_ms": 90.0,
                "p99_ms": 200.0,
            }
        ],
    }
    report.update(changes)
    return report


def test_targets_met() -> None:
    checks = http.targets(_report())
    assert all(check["met"] for check in checks.values()), checks


def test_targets_missed() -> None:
    report = _report()
    report["cells"][0]["p50_ms"] = 4.5
    report["cells"][1]["turns_per_s"] = 314.0
    report["growth"][-1].update(default_p50_ms=5.5, default_bytes=1_273_159)
    report["memory"]["rss_max_mb"] = 351.0
    report["workers"][0]["duplicates"] = 3
    checks = http.targets(report)
    missed = {name for name, check in checks.items() if not check["met"]}
    assert missed == {
        "append_p50_c1_ms",
        "unique_turns_per_s_c64",
        "duplicates",
        "growth_p50_ratio",
        "growth_default_bytes",
        "get_rss_max_mb",
    }
    assert checks["duplicates"]["value"] == 3 and checks["growth_p50_ratio"]["value"] == 1.38


def test_targets_of_a_report_without_growth_or_memory_are_not_met() -> None:
    checks = http.targets(_report(growth=[], memory={}))
    assert not checks["growth_p50_ratio"]["met"] and not checks["get_rss_max_mb"]["met"]


def test_markdown_has_every_section() -> None:
    report = _report(workers_ratio=None, overload_factor=2.0, meta={"date": "d", "cpus": 2})
    report["overload"].update(max_ms=400.0)
    report["targets"] = http.targets(report)
    text = http.markdown(report)
    assert "| append-1 | 64 | 50.0 | 5.0 | 250 | 410 | 0 | 0 |" in text
    assert "| 1960 | 5.0 | 9500 | 5.0 | 8000 |" in text
    assert "64 clients GET a 2000-turn conversation" in text and "280 MB at most" in text
    assert "1 worker(s): 400 turns/s" in text
    assert "| unique_turns_per_s_c64" in text
    assert "Where the CPU went" not in text  # no cell measured it
    assert "SWITCHBOARD_MODEL_PROCESS" not in text  # not compared in this report


def test_markdown_states_the_model_process_comparison() -> None:
    report = _report(workers_ratio=None, overload_factor=2.0, meta={})
    report["overload"].update(max_ms=400.0)
    run = {"concurrency": 64, "p50_ms": 150.0, "p99_ms": 260.0}
    one = {"concurrency": 1, "p50_ms": 4.5, "p99_ms": 8.0, "turns_per_s": 200.0}
    report["model_process"] = [
        {**one, "model_process": "on"},
        {**run, "model_process": "on", "turns_per_s": 420.0},
        {**one, "model_process": "off"},
        {**run, "model_process": "off", "turns_per_s": 350.0},
    ]
    report["model_process_ratio"] = http.model_process_ratio(report["model_process"])
    report["targets"] = http.targets(report)
    text = http.markdown(report)
    assert "`append-1`, one worker, by `SWITCHBOARD_MODEL_PROCESS` (fresh server each)" in text
    assert "`on` at 1: 200 turns/s, p50 4.5 ms, p99 8 ms; `on` at 64: 420 turns/s" in text
    assert "`off` at 64: 350 turns/s, p50 150.0 ms, p99 260 ms" in text
    assert "`on` over `off` at the highest concurrency 1.2." in text
    assert http.model_process_ratio(report["model_process"][:2]) is None


def test_markdown_tables_the_cpu_split_of_the_cells_that_have_one() -> None:
    report = _report(workers_ratio=None, overload_factor=2.0, meta={})
    report["overload"].update(max_ms=400.0)
    report["cells"][1]["cpu"] = {
        "threads": {"event loop": 1.1, "batch workers": 3.3, "SQLite": 0.35, "unnamed": 0.05},  # no child
        "server": 4.8,
        "client": 0.13,
        "machine_idle_share": 0.16,
    }
    report["targets"] = http.targets(report)
    text = http.markdown(report)
    header = "| event loop | model process loop | batch workers | SQLite | unnamed | server | client |"
    assert header in text
    assert "| append-1 | 64 | 1.10 | 0.00 | 3.30 | 0.35 | 0.05 | 4.80 | 0.13 | 16% |" in text
    assert "| append-1 | 1 | 1.10" not in text


@pytest.mark.parametrize(
    ("tid", "name", "group"),
    [
        (100, "python", "event loop"),  # uvicorn's one worker: the loop is the main thread
        (101, "sb-batch-0", "batch workers"),
        (102, "sb-rows_1", "batch workers"),
        (103, "sqlite-store_0"[:15], "SQLite"),
        (104, "adapters-sqlite", "SQLite"),
        (105, "python", "unnamed"),  # ONNX Runtime's own pool threads keep the process name
    ],
)
def test_thread_group_by_os_name(tid: int, name: str, group: str) -> None:
    assert http.thread_group(tid, 100, name) == group


@pytest.mark.parametrize(
    ("tid", "name", "group"),
    [
        (100, "python", "event loop"),
        (200, "python", "model process loop"),  # the child's main thread only moves frames
        (201, "sb-batch-1", "batch workers"),  # the batch workers, now in the child
        (202, "python", "unnamed"),
    ],
)
def test_thread_group_of_a_model_process_thread(tid: int, name: str, group: str) -> None:
    assert http.thread_group(tid, 100, name, process=200 if tid != 100 else 100) == group


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="Linux /proc only")
def test_cpu_probe_charges_a_named_thread_to_its_group() -> None:
    probe = http.CpuProbe.start(os.getpid())
    assert probe is not None

    burnt, release = threading.Event(), threading.Event()

    def burn() -> None:
        name_os_thread()
        deadline = time.thread_time() + 0.3
        while time.thread_time() < deadline:
            pass
        burnt.set()
        release.wait(10)  # a thread that ended has left /proc: keep it until the probe read it

    worker = threading.Thread(target=burn, name="sb-batch-9")
    worker.start()
    assert burnt.wait(10)
    split = probe.split(turns=10)
    release.set()
    worker.join()
    assert split is not None
    # 0.3 s of the worker's CPU over 10 turns is 30 ms a turn (clock ticks round it).
    assert 25 <= split.threads["batch workers"] <= 40, split
    assert split.threads["SQLite"] == 0.0
    assert split.server >= split.threads["batch workers"]
    assert probe.split(turns=0) is None
    assert http.CpuProbe.start(None) is None


def test_quick_shortens_only_what_was_not_given_and_writes_nothing_by_default() -> None:
    quick = http.parse_args(["--quick", "--duration", "3"])
    assert quick.duration == 3.0 and quick.warmup == http.QUICK["warmup"] and quick.out is None
    full = http.parse_args([])
    assert full.concurrency == list(http.CONCURRENCY) and full.out == http.DEFAULT_OUT
    assert full.compare_workers == [1, 2] and full.wait_idle == 0.0
    assert http.parse_args(["--compare-workers"]).compare_workers == []
