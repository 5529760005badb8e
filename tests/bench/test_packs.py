"""``python -m bench packs``: two packs timed turn by turn in one process, every call scoring its text."""

from __future__ import annotations

import json
from pathlib import Path

from bench import packs
from models.packs import DEFAULT_PACK


def test_compare_times_each_pack_on_all_and_short_turns(tmp_path: Path) -> None:
    out = tmp_path / "packs.json"
    assert (
        packs.main(
            [
                "--pack",
                str(DEFAULT_PACK),
                "--pack",
                str(DEFAULT_PACK),
                "--turns",
                "12",
                "--rounds",
                "2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads(out.read_text())
    assert report["turns"] == 12 and 0 < report["short_turns"] < 12
    version = json.loads((DEFAULT_PACK / "manifest.json").read_text())["version"]
    assert set(report["plans"]) == {"one_thread", "lone_text"}
    for rows in report["plans"].values():
        assert [row["version"] for row in rows] == [version, version]
        assert rows[0]["ratio_vs_first_all"] == rows[0]["ratio_vs_first_short"] == 1.0
        for row in rows:
            assert 0 < row["p50_ms_short"] <= row["p50_ms_all"] * 3
            assert 0 < row["ratio_vs_first_all"] < 10
