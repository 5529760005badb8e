"""``python -m bench loop``: its summaries, the SQLite comparison on a real database, and the
lone-turn and lone-write comparisons on the real app with its model process."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.__main__ import BENCHES
from bench.loop import InProcess, median_pair, model_process_parts, sqlite_hops


def test_median_pair_is_the_p50_of_each_column_and_empty_is_zero() -> None:
    assert median_pair([(1.0, 10.0), (3.0, 30.0), (2.0, 20.0)]) == {
        "cpu_ms_p50": 2.0,
        "wall_ms_p50": 20.0,
        "samples": 3,
    }
    assert median_pair([]) == {"cpu_ms_p50": 0.0, "wall_ms_p50": 0.0, "samples": 0}


async def test_sqlite_hops_time_both_ways_the_same_number_of_times(tmp_path: Path) -> None:
    result = await sqlite_hops(tmp_path, calls=20)
    assert result["sqlite_runner"]["samples"] == result["run_in_executor"]["samples"] > 0
    for way in ("sqlite_runner", "run_in_executor"):
        assert result[way]["wall_ms_p50"] > 0
    assert result["loop_cpu_ratio"] == pytest.approx(
        result["run_in_executor"]["cpu_ms_p50"] / result["sqlite_runner"]["cpu_ms_p50"], abs=1e-3
    )


def test_the_bench_is_listed() -> None:
    assert BENCHES["loop"] == "bench.loop"


async def test_both_model_process_parts_alternate_on_the_real_app_and_leave_the_defaults_on(
    tmp_path: Path,
) -> None:
    from models.process import ProcessRuntime

    service = InProcess.serving(tmp_path, "on")
    await service.start()
    try:
        assert isinstance(service.app.state.service.gate.runtime, ProcessRuntime)
        result = await model_process_parts(service, requests=4)
        conversations = service.app.state.service.conversations
        assert conversations.send_ahead is True and conversations.inline_writes is True
        # Every request was a fresh turn, scored and stored: 2 x 38 appends, 20 per conversation.
        heads = [await conversations.store.load_head(f"bench-loop-{service.nonce}-{n}") for n in range(4)]
        stored = [head.turns if head is not None else 0 for head in heads]
    finally:
        await service.stop()
    ahead, write = result["lone_turn_to_the_model"], result["lone_append_write"]
    assert ahead["sent_ahead"]["samples"] == ahead["sent_after"]["samples"] == 4
    assert ahead["wall_ratio"] == pytest.approx(
        ahead["sent_after"]["wall_ms_p50"] / ahead["sent_ahead"]["wall_ms_p50"], abs=1e-3
    )
    assert write["inline"]["samples"] == write["sqlite_thread"]["samples"] == 4
    assert stored == [20, 20, 20, 16] and service.appended == 76
