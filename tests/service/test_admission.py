"""Latency-aware shedding: refuse work that would wait past a share of its deadline."""

from __future__ import annotations

import pytest

from service.admission import InferenceAdmission
from service.errors import Overloaded


def test_admits_everything_until_batches_were_seen() -> None:
    admission = InferenceAdmission(deadline_s=2.0)
    admission.check(queued=10_000, incoming=100)


def test_refuses_when_the_queue_would_outlast_half_the_deadline() -> None:
    admission = InferenceAdmission(deadline_s=2.0)
    admission.observe(batch_size=10, tokens=200, seconds=0.02)  # 2 ms per text
    admission.check(queued=400, incoming=20)  # 0.84 s: fine
    with pytest.raises(Overloaded) as info:
        admission.check(queued=490, incoming=20)  # 1.02 s > 1 s
    assert info.value.status == 429 and info.value.headers["Retry-After"] == "2"
    admission.check(queued=0, incoming=600)  # an idle queue never refuses (the runtime bounds size)


def test_cost_follows_recent_batches() -> None:
    admission = InferenceAdmission(deadline_s=2.0)
    admission.observe(batch_size=1, tokens=20, seconds=0.004)
    for _ in range(30):
        admission.observe(batch_size=32, tokens=900, seconds=0.032)  # batching: 1 ms per text
    assert admission.seconds_per_text == pytest.approx(0.001, rel=0.01)
    admission.observe(batch_size=0, tokens=0, seconds=0.0)  # ignored
    assert admission.predicted_wait_s(queued=100, incoming=0) == pytest.approx(0.1, rel=0.01)


def test_pressure_is_the_retry_after_for_one_more_text() -> None:
    admission = InferenceAdmission(deadline_s=2.0)
    assert admission.pressure(queued=1000) is None  # no cost known yet
    admission.observe(batch_size=1, tokens=10, seconds=0.01)
    assert admission.pressure(queued=50) is None
    assert admission.pressure(queued=150) == pytest.approx(1.51)


def test_side_by_side_workers_drain_the_queue_faster() -> None:
    one, two = InferenceAdmission(deadline_s=2.0), InferenceAdmission(deadline_s=2.0, workers=2)
    for admission in (one, two):
        admission.observe(batch_size=4, tokens=80, seconds=0.016)  # 4 ms per text on one worker
    assert two.predicted_wait_s(queued=100, incoming=0) == pytest.approx(0.2)
    assert one.predicted_wait_s(queued=100, incoming=0) == pytest.approx(0.4)
    with pytest.raises(Overloaded):
        one.check(queued=300, incoming=0)  # 1.2 s on one worker
    two.check(queued=300, incoming=0)  # 0.6 s on two
