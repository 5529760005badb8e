"""CPU quota detection: cgroup v2 cpu.max, cgroup v1 CFS files, affinity."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from models.cpu import cgroup_quota, cpu_quota, name_os_thread, parse_cfs, parse_cpu_max


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("max 100000\n", None),
        ("max", None),
        ("200000 100000\n", 2.0),
        ("150000 100000", 1.5),
        ("50000 100000", 0.5),
        ("100000", 1.0),  # period omitted: the kernel default 100 ms
        ("", None),
        ("garbage here", None),
        ("0 100000", None),
    ],
)
def test_parse_cpu_max(text: str, expected: float | None) -> None:
    assert parse_cpu_max(text) == expected


@pytest.mark.parametrize(
    ("quota", "period", "expected"),
    [("-1\n", "100000\n", None), ("50000", "100000", 0.5), ("300000", "100000", 3.0), ("x", "1", None)],
)
def test_parse_cfs(quota: str, period: str, expected: float | None) -> None:
    assert parse_cfs(quota, period) == expected


def test_cgroup_v2_quota_rounds_up_and_caps_affinity(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    quota = cpu_quota(tmp_path, affinity=8, proc_cgroup="0::/\n")
    assert (quota.cpus, quota.cgroup_quota, quota.source) == (2, 1.5, "cgroup")


def test_unlimited_cgroup_uses_affinity(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("max 100000\n")
    quota = cpu_quota(tmp_path, affinity=3, proc_cgroup="0::/\n")
    assert (quota.cpus, quota.cgroup_quota, quota.source) == (3, None, "affinity")


def test_affinity_smaller_than_quota_wins(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("800000 100000\n")
    assert cpu_quota(tmp_path, affinity=2, proc_cgroup="0::/\n").cpus == 2


def test_fractional_quota_below_one_still_gives_one_thread(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("25000 100000\n")
    assert cpu_quota(tmp_path, affinity=4, proc_cgroup="0::/\n").cpus == 1


def test_nested_cgroup_takes_tightest_ancestor(tmp_path: Path) -> None:
    (tmp_path / "kubepods" / "pod1" / "app").mkdir(parents=True)
    (tmp_path / "kubepods" / "pod1" / "app" / "cpu.max").write_text("max 100000\n")
    (tmp_path / "kubepods" / "pod1" / "cpu.max").write_text("100000 100000\n")
    (tmp_path / "kubepods" / "cpu.max").write_text("400000 100000\n")
    assert cgroup_quota(tmp_path, "0::/kubepods/pod1/app\n") == 1.0


def test_cgroup_v1_cfs_files(tmp_path: Path) -> None:
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("200000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cpu_quota(tmp_path, affinity=16, proc_cgroup="1:cpu:/\n").cpus == 2


def test_cgroup_v1_unlimited(tmp_path: Path) -> None:
    (tmp_path / "cpu,cpuacct").mkdir()
    (tmp_path / "cpu,cpuacct" / "cpu.cfs_quota_us").write_text("-1\n")
    (tmp_path / "cpu,cpuacct" / "cpu.cfs_period_us").write_text("100000\n")
    assert cpu_quota(tmp_path, affinity=4, proc_cgroup="").cpus == 4


def test_no_cgroup_files_at_all(tmp_path: Path) -> None:
    assert cpu_quota(tmp_path, affinity=5, proc_cgroup="").cpus == 5


def test_real_machine_gives_a_positive_count() -> None:
    assert cpu_quota().cpus >= 1


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="Linux /proc only")
def test_name_os_thread_names_the_calling_thread_for_the_os() -> None:
    seen: list[str] = []

    def body() -> None:
        assert name_os_thread()
        seen.append(Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text().strip())
        assert name_os_thread("a-name-longer-than-fifteen-bytes")
        seen.append(Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text().strip())

    thread = threading.Thread(target=body, name="sb-test-0")
    thread.start()
    thread.join()
    assert seen == ["sb-test-0", "a-name-longer-t"]
