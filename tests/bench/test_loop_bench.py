"""``python -m bench loop``: its summaries and the SQLite comparison on a real database."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.__main__ import BENCHES
from bench.loop import median_pair, sqlite_hops


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
