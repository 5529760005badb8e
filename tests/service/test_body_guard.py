"""Nesting-depth scans (JSON, TOML), the JSON media-type check, and BodyGuard on ASGI messages."""

from __future__ import annotations

import asyncio
import json
import tomllib
from typing import Any

import msgspec
import pytest

from service.body_guard import (
    LIMIT_NAME,
    MAX_DEPTH,
    BodyGuard,
    check_json_depth,
    check_json_media_type,
    check_toml_depth,
    json_depth,
    toml_depth,
    toml_nesting_error,
)
from service.errors import BadRequest, UnsupportedMediaType


@pytest.mark.parametrize(
    ("body", "depth"),
    [
        (b"1", 0),
        (b'"[[[[{{{{"', 0),  # brackets inside a string do not count
        (b"[]", 1),
        (b'{"a": [1, {"b": [2]}]}', 4),
        (b'{"a": "x\\"]]]]"}', 1),  # an escaped quote does not end the string
        (b'{"a": "\\\\", "b": [[1]]}', 3),  # an escaped backslash does end it
        (b"[[[]]][[]]", 3),
        (b"[" * 975, 975),  # unclosed: still counted
        (b"]]]][[", 0),  # depth runs from the start: the decoder fails at the first byte
        (b"]" + b"[" * 80, 79),
        (b"\xff\xfe[[\x00", 2),  # arbitrary bytes never raise
    ],
)
def test_json_depth(body: bytes, depth: int) -> None:
    assert json_depth(body) == depth


def test_json_depth_agrees_with_the_decoder_on_real_documents() -> None:
    document: Any = {
        "turns": [{"speaker": "customer", "text": 'say "[{" and \\ then }]'}],
        "m": {"k": [[1], {}]},
    }
    for _ in range(20):
        document = {"x": [document, "]]}}", {"y": '\\"[['}]}
    body = json.dumps(document).encode()
    assert json_depth(body) == _decoded_depth(msgspec.json.decode(body))


def _decoded_depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_decoded_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_decoded_depth(v) for v in value), default=0)
    return 0


def test_check_json_depth_allows_the_limit_and_refuses_one_more() -> None:
    check_json_depth(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH)
    with pytest.raises(BadRequest) as info:
        check_json_depth(b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1))
    error = info.value
    assert error.status == 400 and error.extra == {"limit": LIMIT_NAME, "max": MAX_DEPTH}
    assert error.errors == [{"field": "body", "message": f"nested deeper than {MAX_DEPTH} levels"}]
    assert "65 levels" in error.detail


def test_many_shallow_brackets_are_fine() -> None:
    check_json_depth(b"[" + b"[1]," * 10_000 + b"[]]")  # 10,001 openers, depth 2


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ('a = 1\nb = "x"', 0),
        ("a = [1, [2, [3]]]", 3),
        ("a = {b = {c = [1]}}", 3),
        ("[table]\nx = 1\n[[list]]\ny = [1]", 2),  # headers count while open, then close
        ("a = \"[[[[\" # [[[[ in a comment\nb = '{{{{'", 0),
        ("a = \"\"\"\n[[[\n\"\"\"\nb = '''\n{{{\n'''", 0),  # multi-line strings
        ('a = """ends with two quotes"""""\nb = [[1]]', 2),
        ('a = "escaped \\" [[[["\nb = [1]', 1),
        ("a = " + "[" * 500, 500),  # unclosed: still counted
    ],
)
def test_toml_depth(text: str, depth: int) -> None:
    assert toml_depth(text) == depth


def test_toml_depth_matches_the_parser_on_a_nested_document() -> None:
    text = "a = " + "[{b = " * 10 + "1" + "}]" * 10
    tomllib.loads(text)  # valid TOML
    assert toml_depth(text) == 20


def test_toml_nesting_error_and_check() -> None:
    assert toml_nesting_error("a = " + "[" * MAX_DEPTH + "]" * MAX_DEPTH) is None
    message = toml_nesting_error("a = " + "[" * 975 + "]" * 975)
    assert message is not None and "975 levels" in message and str(MAX_DEPTH) in message
    with pytest.raises(BadRequest) as info:
        check_toml_depth("a = " + "{b=" * 100 + "1" + "}" * 100, "policy")
    assert info.value.errors[0]["field"] == "policy" and info.value.extra["limit"] == LIMIT_NAME


def scope_with(content_type: str | None, method: str = "POST", path: str = "/v1/analyze") -> Any:
    """An ASGI HTTP scope as a server builds it (only the keys the guard reads)."""
    headers = [(b"content-type", content_type.encode())] if content_type is not None else []
    return {"type": "http", "method": method, "path": path, "headers": headers}


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "application/json",
        "Application/JSON",
        "application/json; charset=utf-8",
        "application/cloudevents+json",
        'application/json; charset="UTF8"',
    ],
)
def test_json_media_types_accepted(content_type: str | None) -> None:
    check_json_media_type(scope_with(content_type))


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "text/json",
        "",
        "application/json; charset=latin-1",
        "application/jsonp",
    ],
)
def test_other_media_types_refused(content_type: str) -> None:
    with pytest.raises(UnsupportedMediaType) as info:
        check_json_media_type(scope_with(content_type))
    assert info.value.status == 415 and info.value.errors[0]["field"] == "Content-Type"


def receive_from(*chunks: bytes) -> Any:
    messages = [
        {"type": "http.request", "body": chunk, "more_body": index < len(chunks) - 1}
        for index, chunk in enumerate(chunks)
    ]

    async def receive() -> Any:
        return messages.pop(0)

    return receive


def read_all(receive: Any) -> bytes:
    async def drain() -> bytes:
        body = b""
        while True:
            message = await receive()
            body += message["body"]
            if not message["more_body"]:
                return body

    return asyncio.run(drain())


def test_guard_passes_a_chunked_body_through_unchanged() -> None:
    guard = BodyGuard()
    chunks = (b'{"turns": [', b'{"speaker": "customer", "text": "hi"}', b"]}")
    wrapped = guard.wrap(scope_with("application/json"), receive_from(*chunks))
    assert read_all(wrapped) == b"".join(chunks)


def test_guard_checks_depth_over_all_chunks_before_the_last_is_delivered() -> None:
    guard = BodyGuard(max_depth=3)
    wrapped = guard.wrap(scope_with(None), receive_from(b"[[", b"[[", b"]]]]"))
    with pytest.raises(BadRequest):
        read_all(wrapped)


def test_guard_refuses_a_non_json_body_at_its_first_bytes() -> None:
    wrapped = BodyGuard().wrap(scope_with("text/plain"), receive_from(b"{}"))
    with pytest.raises(UnsupportedMediaType):
        read_all(wrapped)


def test_guard_leaves_empty_bodies_form_paths_and_reads_alone() -> None:
    guard = BodyGuard()
    assert (
        read_all(guard.wrap(scope_with("text/plain"), receive_from(b""))) == b""
    )  # the handler says "missing"
    receive = receive_from(b"a=" + b"[" * 100)
    assert (
        guard.wrap(scope_with("application/x-www-form-urlencoded", path="/v1/webhooks/twilio/voice"), receive)
        is receive
    )
    receive = receive_from(b"")
    assert guard.wrap(scope_with("text/plain", method="GET"), receive) is receive
