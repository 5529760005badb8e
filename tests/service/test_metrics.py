"""Metrics live on a per-app registry and expose the documented series."""

from __future__ import annotations

from prometheus_client import REGISTRY

from service.metrics import Metrics


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
