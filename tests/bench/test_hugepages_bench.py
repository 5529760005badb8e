"""``python -m bench hugepages``: the paired summary, and a smoke run against two real servers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench import hugepages


def test_summary_pairs_the_blocks_of_each_round() -> None:
    blocks = {
        "on": [[3.0, 3.2, 3.1], [4.0, 4.2, 4.1], [3.5, 3.5, 3.5]],
        "off": [[3.3, 3.4, 3.2], [4.1, 4.0, 4.2], [3.4, 3.4, 3.4]],
    }
    report = hugepages.summarize(blocks)
    assert report["on"]["block_p50_ms"] == [3.1, 4.1, 3.5]
    assert report["off"]["block_p50_ms"] == [3.3, 4.1, 3.4]
    assert report["on"]["appends"] == 9 and report["on"]["p50_ms"] == 3.5
    paired = report["paired"]
    assert paired["rounds"] == 3
    assert paired["median_on_minus_off_ms"] == pytest.approx(0.0)
    assert paired["mean_on_minus_off_ms"] == pytest.approx((-0.2 + 0.0 + 0.1) / 3, abs=1e-3)
    assert paired["rounds_on_faster"] == 1  # a tie is not a win
    assert paired["p50_off_over_on"] == round(3.4 / 3.5, 3)


def test_only_the_on_server_asks_glibc_for_huge_pages() -> None:
    assert hugepages.MODES["on"] == {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}
    assert hugepages.MODES["off"] == {}  # the service's own environment: it sets no tunable


def test_a_quick_run_against_two_real_servers(tmp_path: Path) -> None:
    out = tmp_path / "hugepages.json"
    assert hugepages.main(["--quick", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    for mode in ("on", "off"):
        assert report[mode]["appends"] == 2 * (30 - 5)  # two rounds of 30, the first 5 untimed
        assert report[mode]["p50_ms"] > 0 and report[mode]["rss_mb"] > 0
        assert isinstance(report[mode]["anon_huge_kb"], int)  # read from the process holding the model
        assert report[mode]["model_in"] in ("model process", "web process")
    assert report["paired"]["rounds"] == 2
    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    glibc = (os.confstr("CS_GNU_LIBC_VERSION") or "").split()
    modern = len(glibc) == 2 and tuple(int(x) for x in glibc[1].split(".")[:2]) >= (2, 35)
    if modern and thp.exists() and "[madvise]" in thp.read_text():
        # Only asked-for memory gets huge pages here: the tunable must show in the model process,
        # which inherits the server's environment.
        assert report["on"]["anon_huge_kb"] > report["off"]["anon_huge_kb"]
