"""Shared decoding helpers: form parsing, turn ids, timestamps, clipping."""

from __future__ import annotations

import pytest

from service.adapters.inbound import clip_text, parse_form, require, rfc3339_or_none, turn_id
from service.errors import BadRequest, ValidationFailed
from service.validation import TURN_ID_MAX


def test_parse_form_keeps_repeats_blanks_and_plus_signs() -> None:
    pairs = parse_form(b"a=1&a=2&empty=&phone=%2B1555&text=hello+world")
    assert pairs == [("a", "1"), ("a", "2"), ("empty", ""), ("phone", "+1555"), ("text", "hello world")]


def test_parse_form_rejects_non_utf8() -> None:
    with pytest.raises(BadRequest):
        parse_form(b"a=\xff\xfe")
    with pytest.raises(BadRequest):
        parse_form(b"a=%ff")


def test_require_names_the_field() -> None:
    assert require({"x": " v "}, "x") == "v"
    with pytest.raises(ValidationFailed) as caught:
        require({"x": "  "}, "x")
    assert caught.value.errors == [{"field": "x", "message": "required"}]


def test_turn_id_is_bounded_and_stable() -> None:
    assert turn_id("a", "b", "3") == "a:b:3"
    long_one = turn_id("x" * 200, "1")
    assert len(long_one) <= TURN_ID_MAX and long_one == turn_id("x" * 200, "1") != turn_id("x" * 200, "2")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-01-09T17:23:11.382187Z", "2025-01-09T17:23:11.382187Z"),
        ("2025-01-09T17:23:11+01:00", "2025-01-09T17:23:11+01:00"),
        (1736443845, "2025-01-09T17:30:45Z"),
        ("2025-01-09", None),
        ("", None),
        (None, None),
        (True, None),
        (1e20, None),
    ],
)
def test_rfc3339_or_none(value: object, expected: str | None) -> None:
    assert rfc3339_or_none(value) == expected


def test_clip_text() -> None:
    assert clip_text("abc", 5) == "abc" and clip_text("abcdef", 3) == "abc"
