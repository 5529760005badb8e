"""Prometheus metrics, one registry per app, aggregated across worker processes.

Why a per-app ``CollectorRegistry``: the default global registry is created at
import and would make two apps in one process (tests) collide. Every metric the
service exposes is created here, so names and labels live in one place.

Several workers (``switchboard serve --workers N``): ``serve`` sets
``PROMETHEUS_MULTIPROC_DIR`` to a fresh folder before the workers start, so
prometheus_client keeps every value in per-process files there and ``render``
reads them all (``MultiProcessCollector``): ``/metrics`` answered by any worker
reports totals over all of them. Every gauge declares how its per-worker values
combine (``multiprocess_mode``). In one process nothing changes.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Without the charset: Litestar appends ``; charset=utf-8`` to every text/* media type itself.
CONTENT_TYPE = "; ".join(part for part in CONTENT_TYPE_LATEST.split("; ") if not part.startswith("charset="))

# prometheus_client's own variable; ``serve`` sets it, nothing else should.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    """The folder of the per-worker metric files, or None in single-process mode.

    Read from the environment (not from ``Settings``) because prometheus_client itself
    decides from this variable, once at import, whether values live in files; a variable
    set after that import (in a process that is no worker) changes nothing.
    """
    if values.ValueClass is values.MutexValue:
        return None
    return os.environ.get(MULTIPROC_ENV) or None


_LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    1.5,
    2.0,
    2.5,
    5.0,
)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
_TOKEN_BUCKETS = (16, 64, 128, 256, 512, 1024, 2048, 4096, 8192)


class Metrics:
    """All service metrics, registered on a private registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._multiprocess_dir = multiprocess_dir()
        self._queue_depth: Callable[[], float] | None = None
        self._policy: tuple[str, str] | None = None
        r = self.registry
        self.request_seconds = Histogram(
            "switchboard_http_request_duration_seconds",
            "HTTP request latency by route template, method and status.",
            ("route", "method", "status"),
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.inference_seconds = Histogram(
            "switchboard_inference_batch_duration_seconds",
            "Time of one ONNX micro-batch run (tokenize to heads).",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "switchboard_inference_batch_size",
            "Texts per ONNX micro-batch.",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.batch_tokens = Histogram(
            "switchboard_inference_batch_tokens",
            "Padded tokens per ONNX micro-batch.",
            buckets=_TOKEN_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "switchboard_inference_queue_depth",
            "Texts waiting for the inference worker (summed over live workers).",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.decisions = Counter(
            "switchboard_decisions_total",
            "Routing decisions returned, by route, matched rule and contact-reason category.",
            ("route", "rule", "category"),
            registry=r,
        )
        self.decision_changes = Counter(
            "switchboard_decision_changes_total",
            "Live conversations whose route, queue or priority changed (decision listeners fired).",
            registry=r,
        )
        self.turns_scored = Counter(
            "switchboard_turns_scored_total",
            "Turns scored by the models, by speaker.",
            ("speaker",),
            registry=r,
        )
        self.errors = Counter(
            "switchboard_errors_total",
            "Error responses by problem type and status.",
            ("type", "status"),
            registry=r,
        )
        self.store_conflicts = Counter(
            "switchboard_store_conflicts_total",
            "Optimistic-concurrency conflicts on conversation writes (retried).",
            registry=r,
        )
        self.policy_reloads = Counter(
            "switchboard_policy_reloads_total", "Policy reload attempts by result.", ("result",), registry=r
        )
        self.policy_info = Gauge(
            "switchboard_policy_info",
            "The active policy (value 1).",
            ("version", "hash"),
            registry=r,
            multiprocess_mode="livemax",
        )
        self.reasons_reloads = Counter(
            "switchboard_reasons_reloads_total",
            "Custom contact reasons reload attempts by result.",
            ("result",),
            registry=r,
        )
        self.reasons_active = Gauge(
            "switchboard_reasons_active",
            "Custom contact reasons being matched (0 when off or the pack has no embedding).",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.ready = Gauge(
            "switchboard_ready",
            "1 when the model pack is loaded and warm (in every live worker).",
            registry=r,
            multiprocess_mode="livemin",
        )
        self.listener_failures = Counter(
            "switchboard_decision_listener_failures_total",
            "Decision listeners (callbacks/outbox) that raised.",
            registry=r,
        )
        self.expired = Counter(
            "switchboard_conversations_expired_total", "Idle conversations purged by TTL.", registry=r
        )
        self.ratelimit_fallbacks = Counter(
            "switchboard_ratelimit_fallbacks_total",
            "Rate-limit checks decided by the worker's own bucket because Redis did not answer in time.",
            registry=r,
        )

    @property
    def multiprocess(self) -> bool:
        """True when values live in per-worker files (several workers)."""
        return self._multiprocess_dir is not None

    def observe_batch(self, batch_size: int, tokens: int, seconds: float) -> None:
        """The runtime's ``on_batch`` hook."""
        self.batch_size.observe(batch_size)
        self.batch_tokens.observe(tokens)
        self.inference_seconds.observe(seconds)
        if self._queue_depth is not None and self.multiprocess:
            self.queue_depth.set(self._queue_depth())

    def track_queue_depth(self, depth: Callable[[], float]) -> None:
        """Read the queue depth lazily at scrape time (one process), or after every batch (several:
        a scrape reads the other workers' files, so each worker writes its depth as it changes)."""
        self._queue_depth = depth
        if self.multiprocess:
            self.queue_depth.set(depth())
        else:
            self.queue_depth.set_function(depth)

    def set_policy(self, version: str, policy_hash: str) -> None:
        """Expose exactly one active policy (per worker; all workers load the same file)."""
        if self._policy is not None:
            # A worker's metric file keeps every label set it ever wrote: zero the old one.
            self.policy_info.labels(version=self._policy[0], hash=self._policy[1]).set(0)
        if not self.multiprocess:
            self.policy_info.clear()
        self.policy_info.labels(version=version, hash=policy_hash).set(1)
        self._policy = (version, policy_hash)

    def render(self) -> bytes:
        """The text exposition format: this registry, or the totals of every worker's files."""
        if self._multiprocess_dir is None:
            return generate_latest(self.registry)
        combined = CollectorRegistry()
        multiprocess.MultiProcessCollector(combined, path=self._multiprocess_dir)
        return generate_latest(combined)

    def process_exited(self) -> None:
        """Drop this worker's live gauges from the totals (called at shutdown; no-op in one process)."""
        if self._multiprocess_dir is not None:
            multiprocess.mark_process_dead(os.getpid(), self._multiprocess_dir)
