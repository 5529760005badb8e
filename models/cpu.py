"""How many CPUs this process may really use, and the ONNX Runtime thread plan.

``os.cpu_count()`` reports the host's cores; inside a container limited by a CFS
quota (Docker ``--cpus``, a Kubernetes CPU limit) that number oversubscribes the
quota and every extra thread only adds throttling. The usable count is the
smallest of the affinity mask and the cgroup quota (rounded up: a quota of 1.5
CPUs still benefits from a second thread).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import math
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
_PR_SET_NAME = 15
# Linux keeps 15 bytes of a thread's name (plus the terminating NUL).
OS_THREAD_NAME_BYTES = 15


def parse_cpu_max(text: str) -> float | None:
    """Parse cgroup v2 ``cpu.max`` (``"<quota> <period>"`` or ``"max <period>"``).

    Returns the quota in CPUs, or None when unlimited or unparsable.
    """
    parts = text.split()
    if not parts or parts[0] == "max":
        return None
    try:
        quota = int(parts[0])
        period = int(parts[1]) if len(parts) > 1 else 100_000
    except ValueError:
        return None
    if quota <= 0 or period <= 0:
        return None
    return quota / period


def parse_cfs(quota_text: str, period_text: str) -> float | None:
    """Parse cgroup v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``; None when unlimited (-1)."""
    try:
        quota = int(quota_text.strip())
        period = int(period_text.strip())
    except ValueError:
        return None
    if quota <= 0 or period <= 0:
        return None
    return quota / period


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _v2_dirs(root: Path, proc_cgroup: str | None) -> list[Path]:
    """The process's cgroup v2 folder and its ancestors up to ``root`` (innermost first).

    Inside a container (cgroup namespace) ``/proc/self/cgroup`` says ``0::/`` and
    only ``root`` is checked; on a host it names a nested path whose limits, and
    those of every parent, all apply.
    """
    dirs: list[Path] = []
    for line in (proc_cgroup or "").splitlines():
        if line.startswith("0::"):
            rel = line[3:].strip().strip("/")
            parts = rel.split("/") if rel else []
            dirs = [root.joinpath(*parts[:n]) for n in range(len(parts), 0, -1)]
    return [*dirs, root]


def cgroup_quota(root: Path = CGROUP_ROOT, proc_cgroup: str | None = None) -> float | None:
    """The tightest CFS CPU quota over this process's cgroups in CPUs (v2, then v1), or None.

    ``proc_cgroup`` is the text of ``/proc/self/cgroup`` (read when None).
    """
    if proc_cgroup is None:
        proc_cgroup = _read(Path("/proc/self/cgroup"))
    quotas = []
    for folder in _v2_dirs(root, proc_cgroup):
        text = _read(folder / "cpu.max")
        quota = parse_cpu_max(text) if text is not None else None
        if quota is not None:
            quotas.append(quota)
    if quotas:
        return min(quotas)
    for v1_dir in (root / "cpu", root / "cpu,cpuacct"):
        quota_text, period_text = _read(v1_dir / "cpu.cfs_quota_us"), _read(v1_dir / "cpu.cfs_period_us")
        if quota_text is not None and period_text is not None:
            return parse_cfs(quota_text, period_text)
    return None


def affinity_cpus() -> int:
    """CPUs in this process's affinity mask (falls back to ``os.cpu_count()``)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@dataclass(frozen=True)
class CpuQuota:
    """The usable CPU count and where it came from (for ``Runtime.info``)."""

    cpus: int
    affinity: int
    cgroup_quota: float | None

    @property
    def source(self) -> str:
        """``cgroup`` when the quota is the binding limit, else ``affinity``."""
        if self.cgroup_quota is not None and math.ceil(self.cgroup_quota) < self.affinity:
            return "cgroup"
        return "affinity"


def cpu_quota(
    root: Path = CGROUP_ROOT, affinity: int | None = None, proc_cgroup: str | None = None
) -> CpuQuota:
    """Usable CPUs = min(affinity mask, ceil(cgroup quota)), at least 1."""
    cpus_affinity = affinity if affinity is not None else affinity_cpus()
    quota = cgroup_quota(root, proc_cgroup)
    cpus = cpus_affinity if quota is None else min(cpus_affinity, math.ceil(quota))
    return CpuQuota(cpus=max(1, cpus), affinity=cpus_affinity, cgroup_quota=quota)


@functools.cache
def _libc_function(name: str) -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function: Callable[..., int] = getattr(
            ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), name
        )
    except (OSError, AttributeError):  # no glibc (musl has no malloc_trim), or no libc found
        return None
    return function


def release_free_heap() -> bool:
    """Hand the heap's free pages back to the operating system (glibc ``malloc_trim``).

    Loading a pack frees a lot once: onnxruntime's graph optimisation, the language
    identifier's full matrix, warm-up batches, sessions the warm-up drops. glibc keeps
    those pages, so without this the process's RSS stays tens of MB above what it uses.
    Returns True when glibc released something; False elsewhere.
    """
    trim = _libc_function("malloc_trim")
    return bool(trim is not None and trim(0) == 1)


def name_os_thread(name: str | None = None) -> bool:
    """Give the calling thread ``name`` (default: its Python name) at the operating-system level.

    Python 3.11 names threads for itself only: ``top -H``, ``ps -L``, ``/proc/PID/task/TID/comm``
    and profilers see every thread as the process name. Named, the batch workers and SQLite
    threads can be told apart from the event loop there (``python -m bench http`` splits the
    server's CPU by these names). Linux keeps the first 15 bytes (UTF-8); elsewhere this does
    nothing. Returns True when the name was set.
    """
    prctl = _libc_function("prctl")
    if prctl is None:
        return False
    raw = (name if name is not None else threading.current_thread().name).encode()[:OS_THREAD_NAME_BYTES]
    return bool(prctl(_PR_SET_NAME, ctypes.c_char_p(raw), 0, 0, 0) == 0)
