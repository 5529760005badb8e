"""Turn checks: limits name their setting, bad fields are named, RFC 3339 parsing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from service.errors import LimitExceeded, ValidationFailed
from service.schemas import TurnIn
from service.settings import Limits
from service.validation import check_conversation_id, check_turns, has_visible_text, parse_rfc3339

LIMITS = Limits(max_turns=3, max_text_chars=20)


def test_valid_turns_return_timestamps() -> None:
    stamps = check_turns(
        [TurnIn("customer", "hi", ts="2024-05-01T12:30:00Z"), TurnIn("agent", "hello")], LIMITS
    )
    assert stamps == [datetime(2024, 5, 1, 12, 30, tzinfo=UTC), None]


@pytest.mark.parametrize(
    ("turn", "field"),
    [
        (TurnIn("customer", "   "), "turns[0].text"),
        (TurnIn("customer", ""), "turns[0].text"),
        (TurnIn("customer", "\u200b"), "turns[0].text"),  # zero-width space
        (TurnIn("customer", "\u200c\u200d"), "turns[0].text"),  # zero-width non-joiner, joiner
        (TurnIn("customer", " \u2060\n"), "turns[0].text"),  # word joiner among whitespace
        (TurnIn("customer", "\ufeff\u00a0"), "turns[0].text"),  # BOM, no-break space
        (TurnIn("customer", "\u00ad\u200e\u2063"), "turns[0].text"),  # other format characters (Cf)
        (TurnIn("robot", "hi"), "turns[0].speaker"),  # type: ignore[arg-type]
        (TurnIn("customer", "hi", ts="yesterday"), "turns[0].ts"),
        (TurnIn("customer", "hi", ts="2024-05-01T12:30:00"), "turns[0].ts"),  # no offset
        (TurnIn("customer", "hi", ts="2024-13-01T12:30:00Z"), "turns[0].ts"),  # month 13
        (TurnIn("customer", "hi", ts="2024-05-01"), "turns[0].ts"),
        (TurnIn("customer", "hi", ts="2024-05-01T12:30:00Z\n"), "turns[0].ts"),  # `$` would allow it
        (TurnIn("customer", "hi", ts="\u0662\u0660\u0662\u0664-05-01T12:30:00Z"), "turns[0].ts"),  # not ASCII
        (TurnIn("customer", "hi", id="x" * 129), "turns[0].id"),
    ],
)
def test_invalid_fields_are_named(turn: TurnIn, field: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        check_turns([turn], LIMITS)
    assert info.value.status == 422 and not isinstance(info.value, LimitExceeded)
    assert [e["field"] for e in info.value.errors] == [field]


def test_no_turns() -> None:
    with pytest.raises(ValidationFailed, match="Validation failed") as info:
        check_turns([], LIMITS)
    assert info.value.errors[0]["field"] == "turns"


@pytest.mark.parametrize("text", ["hi", "\u200bhi\u200b", "\ufeff.", "é", "1"])
def test_text_with_a_visible_character_is_accepted(text: str) -> None:
    assert has_visible_text(text)
    check_turns([TurnIn("customer", text)], LIMITS)


def test_too_many_turns_names_the_limit() -> None:
    with pytest.raises(LimitExceeded) as info:
        check_turns([TurnIn("customer", "hi")] * 4, LIMITS)
    assert info.value.extra == {"limit": "SWITCHBOARD_MAX_TURNS", "max": 3}


def test_too_long_text_names_the_limit() -> None:
    with pytest.raises(LimitExceeded) as info:
        check_turns([TurnIn("customer", "ok"), TurnIn("customer", "x" * 21)], LIMITS)
    assert info.value.extra == {"limit": "SWITCHBOARD_MAX_TEXT_CHARS", "max": 20}
    assert info.value.errors[0]["field"] == "turns[1].text"


def test_rfc3339_variants() -> None:
    assert parse_rfc3339("2024-05-01t12:30:00.123456789+02:00") == datetime(
        2024, 5, 1, 12, 30, 0, 123456, tzinfo=timezone(timedelta(hours=2))
    )
    assert parse_rfc3339("2024-05-01 12:30:00z").tzinfo is not None


@pytest.mark.parametrize("cid", ["a", "call-1", "CA0123:abc@x.y_z", "9" * 128])
def test_conversation_ids_ok(cid: str) -> None:
    check_conversation_id(cid)


@pytest.mark.parametrize("cid", ["", "-x", "a b", "é", "x" * 129, "a/b", "abc\n", "abc\r", "a\nb", "abc\x00"])
def test_conversation_ids_rejected(cid: str) -> None:
    with pytest.raises(ValidationFailed):
        check_conversation_id(cid)
