"""OpenTelemetry tracing: spans and attributes of real requests, OTLP export, and off by default."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from litestar.testing import TestClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from service import tracing
from service.app import ServiceState, create_app
from service.settings import Settings
from tests.service.conftest import ROOT

SECRET = "my card number is missing and the parcel never arrived"


def _wait(client: TestClient[Any]) -> None:
    deadline = time.monotonic() + 60
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, client.get("/readyz").text
        time.sleep(0.05)


def _by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, list[ReadableSpan]]:
    named: dict[str, list[ReadableSpan]] = {}
    for one in spans:
        named.setdefault(one.name, []).append(one)
    return named


@pytest.fixture
def traced(base_env: dict[str, str]) -> Iterator[tuple[TestClient[Any], InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = create_app(
        Settings.from_env({**base_env, "SWITCHBOARD_STORE": "memory://"}), tracer_provider=provider
    )
    with TestClient(app) as client:
        _wait(client)
        exporter.clear()
        yield client, exporter


@pytest.mark.pack
def test_a_request_is_traced_with_validation_inference_routing(
    traced: tuple[TestClient[Any], InMemorySpanExporter],
) -> None:
    client, exporter = traced
    body = {"turns": [{"speaker": "customer", "text": SECRET}, {"speaker": "agent", "text": "Let me check."}]}
    response = client.post("/v1/analyze", json=body)
    assert response.status_code == 200
    decision = response.json()["decision"]
    spans = exporter.get_finished_spans()
    named = _by_name(spans)
    server = [s for s in spans if s.parent is None and s.name.startswith("POST")]
    assert len(server) == 1, [s.name for s in spans]
    trace_id = server[0].context.trace_id

    (validate,) = named["switchboard.validate"]
    assert validate.attributes is not None and validate.attributes["switchboard.turns"] == 2
    (inference,) = named["switchboard.inference"]
    assert inference.attributes is not None and inference.attributes["switchboard.inference.batch_size"] == 2
    (route,) = named["switchboard.route"]
    assert route.attributes is not None
    for field in ("route", "queue", "priority", "rule"):
        assert route.attributes[f"switchboard.{field}"] == decision[field]
    for child in (validate, inference, route):
        assert child.context.trace_id == trace_id  # children of the request's server span
    batches = named["switchboard.inference.batch"]
    sizes = [int(str((b.attributes or {})["switchboard.inference.batch_size"])) for b in batches]
    tokens = [int(str((b.attributes or {})["switchboard.inference.tokens"])) for b in batches]
    assert sum(sizes) == 2 and all(count > 2 for count in tokens)
    for one in spans:  # no transcript text anywhere in the attributes
        for value in (one.attributes or {}).values():
            assert "parcel" not in str(value) and "card number" not in str(value)


@pytest.mark.pack
def test_store_calls_are_spans_and_probes_are_not_traced(
    traced: tuple[TestClient[Any], InMemorySpanExporter],
) -> None:
    client, exporter = traced
    turns = {"turns": [{"speaker": "customer", "text": SECRET, "id": "t1"}]}
    assert client.post("/v1/conversations/c-1/turns", json=turns).status_code == 200
    assert client.get("/readyz").status_code == 200 and client.get("/metrics").status_code == 200
    spans = exporter.get_finished_spans()
    named = _by_name(spans)
    stores = [name for name in named if name.startswith("switchboard.store.")]
    assert "switchboard.store.append" in stores and len(stores) >= 2, stores  # reads, then the write
    append = named["switchboard.store.append"][0]
    assert append.attributes is not None and append.attributes["db.system"] == "memory"
    assert append.attributes["db.operation"] == "append"
    (server,) = [s for s in spans if s.parent is None and s.name.startswith("POST")]
    assert append.context.trace_id == server.context.trace_id
    assert "switchboard.validate" in named and "switchboard.route" in named
    assert not any("readyz" in name or "metrics" in name for name in named), list(named)


class _Collector(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, str, bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, self.headers["Content-Type"], body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_spans_are_exported_over_otlp_http() -> None:
    server = HTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_port}/v1/traces"
        on = tracing.Tracing.start(endpoint)
        assert on is not None
        on.record_batch(4, 96, 0.003)
        on.shutdown()  # flushes the batch exporter
    finally:
        server.shutdown()
    ((path, content_type, body),) = _Collector.received
    assert path == "/v1/traces" and content_type == "application/x-protobuf"
    request = ExportTraceServiceRequest.FromString(body)
    (resource,) = request.resource_spans
    assert {a.key: a.value.string_value for a in resource.resource.attributes}[
        "service.name"
    ] == "switchboard"
    (span,) = resource.scope_spans[0].spans
    attributes = {a.key: a.value.int_value for a in span.attributes}
    assert span.name == "switchboard.inference.batch"
    assert attributes == {"switchboard.inference.batch_size": 4, "switchboard.inference.tokens": 96}


def test_off_by_default_and_runs_without_the_otel_extra(tmp_path: Path) -> None:
    assert tracing.Tracing.start(None) is None
    assert tracing.span("x") is tracing.span("y")  # one shared no-op, nothing allocated
    # A process where the OpenTelemetry packages cannot be imported, as without the [otel] extra.
    script = f"""
import importlib.abc, sys
class NoOtel(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "opentelemetry":
            raise ModuleNotFoundError(f"No module named {{name!r}}")
sys.meta_path.insert(0, NoOtel())
from service.app import create_app
from service.settings import Settings
env = {{"SWITCHBOARD_AUTH_DISABLED": "true", "SWITCHBOARD_STORE": "memory://",
    "SWITCHBOARD_DATA_DIR": {str(tmp_path)!r}}}
app = create_app(Settings.from_env(env))
assert app.state.service.tracing is None
try:
    create_app(Settings.from_env({{**env, "SWITCHBOARD_OTEL_ENDPOINT": "http://127.0.0.1:9/v1/traces"}}))
except ImportError as exc:
    print(exc)
"""
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    )
    assert "pip install 'switchboard[otel]'" in result.stdout, result.stderr


def test_an_endpoint_setting_turns_tracing_on(base_env: dict[str, str]) -> None:
    settings = Settings.from_env({**base_env, "SWITCHBOARD_OTEL_ENDPOINT": "http://127.0.0.1:9/v1/traces"})
    app = create_app(settings)
    service: ServiceState = app.state.service
    assert service.tracing is not None
    service.tracing.shutdown()
