"""Metrics live on a per-app registry, expose the documented series, and sum over worker processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, multiprocess
from prometheus_client.parser import text_string_to_metric_families

from service.metrics import CONTENT_TYPE, MULTIPROC_ENV, Metrics
from tests.service.conftest import ROOT


def test_registries_are_independent_and_not_global() -> None:
    one, two = Metrics(), Metrics()
    one.decisions.labels(route="specialist", rule="r", category="cards").inc()
    assert b"switchboard_decisions_total{" in one.render()
    assert b"switchboard_decisions_total{" not in two.render()
    assert REGISTRY.get_sample_value("switchboard_decisions_total") is None


def test_batch_hook_and_queue_depth() -> None:
    metrics = Metrics()
    metrics.observe_batch(8, 320, 0.004)
    metrics.track_queue_depth(lambda: 5)
    text = metrics.render().decode()
    assert "switchboard_inference_batch_size_sum 8.0" in text
    assert "switchboard_inference_batch_tokens_sum 320.0" in text
    assert "switchboard_inference_queue_depth 5.0" in text


def test_one_active_policy() -> None:
    metrics = Metrics()
    metrics.set_policy("v1", "aaa")
    metrics.set_policy("v2", "bbb")
    text = metrics.render().decode()
    assert 'switchboard_policy_info{hash="bbb",version="v2"} 1.0' in text and "v1" not in text


_WORKER = """
import sys
from service.metrics import Metrics
m = Metrics()
m.decisions.labels(route="human", rule="r", category="cards").inc(int(sys.argv[1]))
m.track_queue_depth(lambda: float(sys.argv[1]))
m.ready.set(int(sys.argv[2]))
m.set_policy("v1", "aaa")
m.set_policy("v2", "bbb")
m.request_seconds.labels(route="/v1/policy", method="GET", status="200").observe(0.01)
sys.stdout.write(m.render().decode())
"""


def _run_worker(folder: Path, *args: str) -> str:
    env = {**os.environ, MULTIPROC_ENV: str(folder), "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", _WORKER, *args], env=env, capture_output=True, text=True, check=True, cwd=ROOT
    )
    return result.stdout


def test_worker_processes_report_totals(tmp_path: Path) -> None:
    # Real processes in prometheus_client's multiprocess mode (as `serve --workers 2` starts them):
    # the second one's /metrics text sums both.
    _run_worker(tmp_path, "2", "1")
    text = _run_worker(tmp_path, "3", "1")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert (
        samples[("switchboard_decisions_total", (("category", "cards"), ("route", "human"), ("rule", "r")))]
        == 5
    )
    key = (("method", "GET"), ("route", "/v1/policy"), ("status", "200"))
    assert samples[("switchboard_http_request_duration_seconds_count", key)] == 2
    assert samples[("switchboard_policy_info", (("hash", "bbb"), ("version", "v2")))] == 1
    assert samples[("switchboard_policy_info", (("hash", "aaa"), ("version", "v1")))] == 0
    # live gauges: the first process has exited but was not marked dead, so both still count
    assert samples[("switchboard_inference_queue_depth", ())] == 5
    assert samples[("switchboard_ready", ())] == 1
    assert not any("pid" in dict(labels) for _, labels in samples)  # every gauge declares its mode


def test_a_worker_marked_dead_leaves_the_live_gauges(tmp_path: Path) -> None:
    _run_worker(tmp_path, "2", "0")
    dead = {p.name.rsplit("_", 1)[1].split(".")[0] for p in tmp_path.glob("gauge_live*.db")}
    assert len(dead) == 1
    multiprocess.mark_process_dead(int(dead.pop()), str(tmp_path))
    text = _run_worker(tmp_path, "3", "1")
    assert "switchboard_ready 1.0" in text and "switchboard_inference_queue_depth 3.0" in text
    assert "switchboard_decisions_total" in text


def test_content_type_names_the_charset_once() -> None:
    assert "charset" not in CONTENT_TYPE  # Litestar adds it (see tests/service/test_ops.py)
    assert CONTENT_TYPE.startswith("text/plain; version=")


def test_the_variable_set_after_import_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # prometheus_client chose in-memory values at import: this process is no worker of `serve`.
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))
    metrics = Metrics()
    metrics.expired.inc()
    assert not metrics.multiprocess
    assert "switchboard_conversations_expired_total 1.0" in metrics.render().decode()
