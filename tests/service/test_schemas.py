"""The live OpenAPI schema, fuzzed by schemathesis: no generated input yields a 5xx.

A real ``switchboard serve`` process (real pack, SQLite store, auth off, no
rate limit) serves ``/schema/openapi.json``; schemathesis generates requests
for every operation from it, valid and invalid alike. Examples are bounded so
the whole run stays well under a minute.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.result import Ok

from service.schemas import AnalyzeRequest, AppendRequest, TurnIn

pytestmark = pytest.mark.pack


# Positive (schema-valid) and negative (schema-violating) data; 15 examples of each per operation.
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)


def test_no_server_errors(live_server: Any) -> None:
    # Not @schema.parametrize: schemathesis' lazy pytest fixtures do not work with pytest 9, so every
    # operation is driven here with its Hypothesis strategy instead (same generation, same shrinking).
    schema = schemathesis.openapi.from_url(f"{live_server.url}/schema/openapi.json")
    results = list(schema.get_all_operations())
    assert all(isinstance(result, Ok) for result in results), results  # every operation's schema loads
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(operations) >= 12
    checked: list[str] = []
    for operation in operations:
        for mode in MODES:

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=15,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def check(case: Any) -> None:
                response = case.call(timeout=30)
                where = f"{case.method} {case.formatted_path}"
                assert response.status_code < 500, f"{where}: {response.status_code} {response.text}"
                if response.status_code >= 400:
                    body = response.json()  # problem+json everywhere
                    assert body["status"] == response.status_code and body["title"], where

            try:
                check()
            except Unsatisfiable:
                # An operation without parameters or body has nothing to violate.
                assert mode is GenerationMode.NEGATIVE, operation.label
        checked.append(operation.label)
    assert any("/v1/analyze" in label for label in checked)


def test_schema_describes_the_request_types(live_server: Any) -> None:
    document = live_server.client.get("/schema/openapi.json").json()
    components = document["components"]["schemas"]
    names = " ".join(components)
    for struct in (AnalyzeRequest, AppendRequest, TurnIn):
        assert struct.__name__ in names
    turn = next(value for key, value in components.items() if key.endswith("TurnIn"))
    assert set(turn["required"]) == {"speaker", "text"}
    assert msgspec.json.decode(msgspec.json.encode(turn))["properties"]["speaker"]


def _patterns(schema: Any) -> list[str]:
    if isinstance(schema, dict):
        own = [schema["pattern"]] if isinstance(schema.get("pattern"), str) else []
        return own + [p for value in schema.values() for p in _patterns(value)]
    if isinstance(schema, list):
        return [p for value in schema for p in _patterns(value)]
    return []


def test_anchored_patterns_end_at_the_end_of_the_string() -> None:
    # msgspec applies patterns with re.search, where `$` also matches before a trailing newline.
    _, components = msgspec.json.schema_components([AnalyzeRequest, AppendRequest])
    patterns = set(_patterns(components))
    assert len(patterns) >= 4
    for pattern in patterns:
        if pattern.startswith("^"):
            assert pattern.endswith("$(?!\\n)"), pattern
            assert "\\Z" not in pattern and "\\A" not in pattern, "not portable to ECMAScript (OpenAPI)"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"turns": [{"speaker": "customer", "text": "hi"}], "conversation_id": "abc\n"}, "conversation_id"),
        ({"turns": [{"speaker": "customer", "text": "hi", "ts": "2024-05-01T12:30:00Z\n"}]}, "turns[0].ts"),
        ({"turns": [{"speaker": "customer", "text": "\u200b\u200c\u200d\u2060\ufeff"}]}, "turns[0].text"),
        ({"turns": [{"speaker": "customer", "text": " \t\n"}]}, "turns[0].text"),
    ],
)
def test_decoding_refuses_trailing_newlines_and_invisible_text(body: dict[str, Any], field: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=re.escape(f"$.{field}")):
        msgspec.json.decode(msgspec.json.encode(body), type=AnalyzeRequest)


def test_decoding_refuses_a_source_with_a_trailing_newline() -> None:
    body = {"turns": [{"speaker": "customer", "text": "hi"}], "source": "crm\n"}
    with pytest.raises(msgspec.ValidationError, match=re.escape("$.source")):
        msgspec.json.decode(msgspec.json.encode(body), type=AppendRequest)
    fixed = msgspec.json.decode(msgspec.json.encode({**body, "source": "crm"}), type=AppendRequest)
    assert fixed.source == "crm"


def test_text_with_zero_width_characters_around_words_decodes() -> None:
    body = {"turns": [{"speaker": "customer", "text": "\u200bhello\u200b"}], "conversation_id": "call-42"}
    request = msgspec.json.decode(msgspec.json.encode(body), type=AnalyzeRequest)
    assert request.turns[0].text == "\u200bhello\u200b" and request.conversation_id == "call-42"
