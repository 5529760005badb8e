"""``python -m bench insights`` end to end on a small fill (the 10,000 run is the bench itself)."""

from __future__ import annotations

import json
from pathlib import Path

from bench.__main__ import main


def test_insights_bench_counts_every_conversation_and_reports_each_query(tmp_path: Path) -> None:
    out = tmp_path / "insights.json"
    status = main(
        ["insights", "--conversations", "300", "--repeats", "3", "--budget-ms", "5000", "--out", str(out)]
    )
    result = json.loads(out.read_text())
    assert status == 0
    assert result["conversations"] == result["counted"] == 300
    assert set(result["queries"]) == {"by=queue", "by=category", "by=variant", "by=all", "experiments"}
    for timing in result["queries"].values():
        assert 0 < timing["p50_ms"] <= timing["p95_ms"] <= timing["max_ms"]


def test_insights_bench_fails_over_budget(tmp_path: Path) -> None:
    assert main(["insights", "--conversations", "20", "--repeats", "2", "--budget-ms", "0"]) == 1
