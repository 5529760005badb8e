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


def test_a_dequantized_reference_is_named_under_the_metrics_table() -> None:
    from export.card import _reference_lines

    assert _reference_lines({"fp32_reference": "trained"}) == []
    assert _reference_lines({}) == []
    (line, blank) = _reference_lines({"fp32_reference": "dequantized"})
    assert "int8 graph's own weights in fp32" in line and "activations" in line and blank == ""
    assert "pack" not in line.split("activations costs, not the weights.")[1]
    origin = {"pack": "2.3.1", "max_abs_delta": 0.013}
    (line, _) = _reference_lines({"fp32_reference": "dequantized", "training": {"refitted_from": origin}})
    assert line.endswith(
        "pack 2.3.1's, whose card compared them with the trained fp32 graph: every Δ within 0.013."
    )


def test_the_served_head_line_states_its_schedule_and_before_after() -> None:
    from export.card import _served_head_line

    served = {
        "settings": {"epochs": 30, "lr": 0.003, "label_smoothing": 0.1},
        "train_texts": 23249,
        "calibration_accuracy_before": 0.953,
        "calibration_accuracy_after": 0.9523,
        "seconds": 70.3,
    }
    (line,) = _served_head_line({"training": {"served_head": served}})
    assert "23249 intent-labelled training texts" in line and "label smoothing 0.1" in line
    assert "0.9530 → 0.9523" in line and "1.2 min" in line
    merged = {**served, "classes_before": 131, "classes": 126, "calibration_accuracy_before": 0.9559}
    (line,) = _served_head_line({"training": {"served_head": merged}})
    assert "126 outputs where the graph had 131" in line and "0.9559 → 0.9523" in line
    unscored = {**served, "calibration_accuracy_before": None}
    (line,) = _served_head_line({"training": {"served_head": unscored}})
    assert "accuracy 0.9523 (" in line
    assert _served_head_line({"training": {"served_head": {"skipped": "memory"}}}) == []
    assert _served_head_line({"training": {}}) == []
