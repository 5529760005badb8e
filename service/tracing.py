"""OpenTelemetry tracing: off by default, OTLP/HTTP export when ``SWITCHBOARD_OTEL_ENDPOINT`` is set.

Off (the default), nothing of OpenTelemetry is imported: ``span`` returns one shared
no-op context manager, the store and the inference are not wrapped, no middleware is
added. On, each app gets its own ``TracerProvider`` (several apps in one process stay
apart, as their metrics do) and Litestar's OpenTelemetry plugin opens a server span per
request (probes and ``/metrics`` excluded). Inside it the service adds:

* ``switchboard.validate``: checking turns against the limits (``switchboard.turns``);
* ``switchboard.inference``: waiting for the model (``switchboard.inference.batch_size``,
  the texts this request submitted);
* ``switchboard.inference.batch``: one ONNX micro-batch, as the runtime ran it
  (``switchboard.inference.batch_size``, ``switchboard.inference.tokens``); micro-batches
  mix requests, so these are spans of their own trace, timed from the runtime's hook;
* ``switchboard.route``: the policy decision (route, queue, priority, rule);
* ``switchboard.store.<operation>``: every conversation-store call (``db.system``).

Attributes never carry transcript text, customer attributes or conversation ids: only
counts, names from the policy and the model, and operation names.

The OpenTelemetry packages are the ``[otel]`` extra; they are imported only when tracing
is configured (``Tracing.start``), so the serving install without them runs unchanged.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import time
from collections.abc import Mapping
from typing import Any

AttributeValue = str | bool | int | float

_EXCLUDED_PATHS = ["/healthz", "/readyz", "/metrics", "/schema.*"]

# The tracer of the app serving the current request; set by the server span's hook, so the
# spans below it need no reference to the app (and stay no-ops outside traced requests).
_TRACER: contextvars.ContextVar[Any] = contextvars.ContextVar("switchboard_tracer", default=None)


class _NoSpan:
    """What ``span`` yields when tracing is off: attribute calls do nothing."""

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        """Ignore the attribute."""

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        """Ignore the attributes."""


_NO_SPAN = _NoSpan()
_OFF = contextlib.nullcontext(_NO_SPAN)


def span(
    name: str, attributes: Mapping[str, AttributeValue] | None = None
) -> contextlib.AbstractContextManager[Any]:
    """A child span of the current request named ``name``, or a shared no-op when not traced.

    Yields an object with ``set_attribute``/``set_attributes`` either way. Never pass
    transcript text as an attribute.
    """
    tracer = _TRACER.get()
    if tracer is None:
        return _OFF
    return tracer.start_as_current_span(name, attributes=attributes)


def describe_decision(target: Any, decision: Any) -> None:
    """Put a routing decision on ``target`` (a span from ``span``): policy names and numbers only,
    never the summary text. Nothing is computed when tracing is off."""
    if target is _NO_SPAN:
        return
    target.set_attributes(
        {
            "switchboard.route": str(decision.route),
            "switchboard.queue": decision.queue,
            "switchboard.priority": decision.priority,
            "switchboard.rule": decision.rule,
            "switchboard.policy_version": decision.policy_version,
        }
    )
    if decision.guardrail is not None:
        target.set_attribute("switchboard.guardrail", decision.guardrail)


class TracedStore:
    """A conversation store whose coroutine methods each run in a ``switchboard.store.<name>`` span."""

    def __init__(self, inner: Any, system: str) -> None:
        self._inner = inner
        self._system = system

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if name.startswith("_") or not inspect.iscoroutinefunction(attribute):
            return attribute

        @functools.wraps(attribute)
        async def traced(*args: Any, **kwargs: Any) -> Any:
            with span(f"switchboard.store.{name}", {"db.system": self._system, "db.operation": name}):
                return await attribute(*args, **kwargs)

        return traced


class TracedInference:
    """An inference (``ModelGate``) whose ``predict`` runs in a ``switchboard.inference`` span."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def predict(self, texts: list[str]) -> Any:
        """The inner ``predict``, traced with the number of texts."""
        with span("switchboard.inference", {"switchboard.inference.batch_size": len(texts)}):
            return await self._inner.predict(texts)


class Tracing:
    """One app's tracer provider, exporter and Litestar plugin (build with ``start``)."""

    def __init__(self, provider: Any) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("switchboard")

    @classmethod
    def start(
        cls, endpoint: str | None, *, provider: Any | None = None, version: str = "0.1.0"
    ) -> Tracing | None:
        """Tracing exporting to the OTLP/HTTP ``endpoint`` (a batch exporter thread), tracing into a
        given SDK ``provider`` (tests), or None when neither is given (tracing off, nothing imported).

        Raises ``ImportError`` naming the ``[otel]`` extra when the packages are missing.
        """
        if provider is None and not endpoint:
            return None
        try:
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError(
                "SWITCHBOARD_OTEL_ENDPOINT needs the OpenTelemetry packages: pip install 'switchboard[otel]'"
            ) from exc
        if provider is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider = TracerProvider(
                resource=Resource.create({"service.name": "switchboard", "service.version": version})
            )
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, timeout=5)))
        return cls(provider)

    def plugin(self) -> Any:
        """Litestar's OpenTelemetry plugin on this provider; it opens the request's server span."""
        try:
            from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin
        except ImportError:  # Litestar before 2.13 kept it in contrib
            from litestar.contrib.opentelemetry import (
                OpenTelemetryConfig,
                OpenTelemetryPlugin,
            )

        return OpenTelemetryPlugin(
            OpenTelemetryConfig(
                tracer_provider=self.provider,
                server_request_hook_handler=self._bind,
                exclude=_EXCLUDED_PATHS,
            )
        )

    def _bind(self, _span: Any, _scope: dict[str, Any]) -> None:
        # Runs in the request's context, before the handler: the spans below find this tracer.
        _TRACER.set(self.tracer)

    def record_batch(self, batch_size: int, tokens: int, seconds: float) -> None:
        """One finished ONNX micro-batch as a span (called on the inference thread)."""
        end = time.time_ns()
        batch = self.tracer.start_span(
            "switchboard.inference.batch",
            start_time=end - int(seconds * 1e9),
            attributes={
                "switchboard.inference.batch_size": batch_size,
                "switchboard.inference.tokens": tokens,
            },
        )
        batch.end(end_time=end)

    def store(self, store: Any, url: str) -> Any:
        """``store`` traced (``db.system`` from the store URL's scheme)."""
        return TracedStore(store, url.split(":", 1)[0])

    def inference(self, inference: Any) -> Any:
        """``inference`` traced."""
        return TracedInference(inference)

    def shutdown(self) -> None:
        """Flush and stop the exporter (app shutdown)."""
        self.provider.shutdown()
