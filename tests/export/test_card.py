"""The model card's training lines: GPU runs quote the measured CPU run of the same recipe."""

from __future__ import annotations

from export.card import CPU_RUN, CpuRun, _wall_time_line


def test_a_gpu_run_states_the_measured_cpu_run_of_the_same_recipe() -> None:
    cpu = CpuRun(
        steps=9750, seconds=4500.0, best_step=7800, threads=2, command="python -m export build", date="d"
    )
    line = _wall_time_line({"device": "cuda", "train_seconds": 258, "steps_run": 9750}, cpu)
    assert "4.3 min for 9750 steps on one GPU" in line
    assert "2 CPU threads (`python -m export build`, a separate run on d) trained for 75 min" in line
    assert "best at 7800" in line and "estimate" not in line


def test_a_cpu_run_states_its_own_time() -> None:
    line = _wall_time_line({"device": "cpu", "train_seconds": 600, "threads": 2})
    assert line == "- Wall time: 10.0 min on 2 CPU threads (`--device cpu`)."


def test_the_committed_cpu_run_is_filled_in() -> None:
    assert CPU_RUN.steps > 0 and CPU_RUN.seconds > 0 and 0 < CPU_RUN.best_step <= CPU_RUN.steps
