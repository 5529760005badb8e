"""The pure parts of ``python -m bench runtime``: percentiles, ratios, targets and the README tables."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from bench import runtime as r


def _cell(system: str, concurrency: int, p50: float, throughput: float, subset: str = "all") -> r.Cell:
    return r.Cell(
        system=system,
        concurrency=concurrency,
        requests=100,
        seconds=3.0,
        throughput=throughput,
        p50_ms=p50,
        p99_ms=2 * p50,
        mean_ms=p50,
        cpu_ms_per_utt=p50,
        subset=subset,
    )


CELLS = [
    _cell("runtime", 1, 3.0, 300.0),
    _cell("runtime", 32, 70.0, 440.0),
    _cell("runtime_unbatched", 32, 140.0, 220.0),
    _cell("hf_pipelines", 32, 1500.0, 20.0),
    _cell("runtime", 1, 2.5, 380.0, "short"),
    _cell("runtime_one_thread", 1, 3.5, 270.0, "short"),
    _cell("runtime_fused", 1, 3.0, 330.0, "short"),
]


def _report() -> dict[str, Any]:
    ratio = r.ratios(CELLS, [1, 32])
    return {
        "command": "python -m bench runtime",
        "date": "2026-12-01T02:00:00+00:00",
        "machine": {"cpus": 2, "load_average": [0.5, 0.4, 0.3]},
        "pack": {"version": "2.3.0"},
        "cells": [asdict(cell) for cell in CELLS],
        "targets": r.targets(CELLS, ratio, {"rss_mb": 240.0, "ready_s": 0.9}),
    }


def test_percentile_is_nearest_rank_and_zero_when_empty() -> None:
    assert r.percentile([], 50) == 0.0
    assert r.percentile([5.0, 1.0, 3.0, 2.0, 4.0], 50) == 3.0
    assert r.percentile([float(i) for i in range(1, 101)], 99) == 99.0


def test_ratios_compare_the_default_with_each_alternative() -> None:
    ratio = r.ratios(CELLS, [1, 32])
    assert ratio["runtime_vs_hf_pipelines"]["throughput_x_c32"] == 22.0
    assert ratio["batching_on_vs_off"]["throughput_x_c32"] == 2.0
    assert ratio["default_vs_one_thread_short"]["p50_speedup_c1"] == 1.4
    assert ratio["default_vs_fused_short"] == {
        "p50_speedup_c1": 1.2,
        "p99_speedup_c1": 1.2,
        "cpu_per_utt_x_c1": 1.2,
    }
    assert "runtime_vs_separate_onnx" not in ratio  # not measured: no ratio rather than a zero


def test_targets_report_the_value_and_whether_it_is_met() -> None:
    checks = _report()["targets"]
    assert checks["p50_ms_short_c1 <= 3"] == {"value": 2.5, "limit": 3, "met": True}
    assert checks["throughput_c32 >= 400"]["met"] is True
    assert checks["throughput_vs_separate_c32 >= 2.5"]["met"] is None


def test_markdown_lists_the_measured_cells_under_readme_labels_and_every_target() -> None:
    text = r.markdown(_report())
    assert text.startswith("`python -m bench runtime` (2026-12-01T02:00:00+00:00, 2 CPUs")
    assert "| (a) this runtime, batch-invariant (default) | 32 | 70.00 | 140.00 | 440 | 70.00 |" in text
    label = "(a) one utterance ≤ 32 tokens (default: a lone text on every CPU if the warm-up finds it faster)"
    assert f"| {label} | 1 | 2.50 |" in text
    assert "(b) three separate int8 ONNX models" not in text  # a system not measured gets no row
    assert "| p50_ms_short_c1 <= 3 | 2.5 | yes |" in text
    assert "| throughput_vs_separate_c32 >= 2.5 | None | n/a |" in text
