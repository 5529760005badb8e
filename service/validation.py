"""Semantic checks on incoming turns that a JSON schema cannot express.

msgspec already enforces types and static constraints while decoding HTTP
bodies. These checks are the authoritative ones, because adapters build
``TurnIn`` objects directly (no decoding): configured size limits, whitespace-
only text, RFC 3339 timestamps and turn-id / conversation-id shapes. Each
problem names its field; a configured limit also names its setting.

Patterns are matched whole (``fullmatch``) here, and are written to be whole-string
anchors for msgspec too, which applies them with ``re.search``: Python's ``$`` also
matches before a trailing newline, so each ends ``$(?!\n)`` (in ECMAScript, where
OpenAPI tools read them, the lookahead is a no-op and ``$`` already means the end).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from routing.types import SPEAKERS
from service.errors import LimitExceeded, ValidationFailed
from service.settings import Limits

if TYPE_CHECKING:
    from service.schemas import TurnIn

CONVERSATION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$(?!\n)"
TURN_ID_MAX = 128
# RFC 3339 date-time: full date, 'T' (or space, as RFC 3339 allows), time, optional
# fraction, and a mandatory offset; ASCII digits only ([0-9], not \d, which is Unicode in
# Python). Values that match but are impossible (month 13) are caught by the parser.
RFC3339_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})$(?!\n)"
)
SOURCE_PATTERN = r"^[a-z0-9][a-z0-9_]{0,63}$(?!\n)"
# Text must hold one character that is neither whitespace nor an invisible format character
# (zero-width space/joiners, word joiner, BOM). msgspec applies it with re.search, so it reads
# "contains a visible character"; check_turns is stricter (any Unicode format character, Cf).
VISIBLE_TEXT_PATTERN = r"[^\s\u200b\u200c\u200d\u2060\ufeff]"
_CONVERSATION_ID = re.compile(CONVERSATION_ID_PATTERN)
_RFC3339 = re.compile(RFC3339_PATTERN)


def has_visible_text(text: str) -> bool:
    """True when ``text`` has a character that is neither whitespace nor a format character (Cf:
    U+200B-U+200F, U+2060-U+2064, U+FEFF, soft hyphen ...): text a person or a model can read."""
    return any(not char.isspace() and unicodedata.category(char) != "Cf" for char in text)


def parse_rfc3339(value: str) -> datetime:
    """Parse an RFC 3339 timestamp (offset required); raise ValueError otherwise."""
    if not _RFC3339.fullmatch(value):
        raise ValueError("not an RFC 3339 date-time with offset (e.g. 2024-05-01T12:30:00Z)")
    normalised = value.replace("t", "T").replace("z", "Z")
    fraction = re.search(r"\.(\d+)", normalised)
    if fraction and len(fraction.group(1)) > 6:
        # Python keeps microseconds; nanosecond timestamps (common from STT engines) are truncated.
        normalised = normalised.replace(fraction.group(0), "." + fraction.group(1)[:6])
    return datetime.fromisoformat(normalised)


def check_conversation_id(conversation_id: str, field: str = "conversation_id") -> None:
    """1-128 characters of ``[A-Za-z0-9._:@-]``, starting alphanumeric, and nothing else (not
    even a trailing newline); raise ``ValidationFailed`` naming ``field`` otherwise."""
    if not _CONVERSATION_ID.fullmatch(conversation_id):
        raise ValidationFailed(
            errors=[
                {
                    "field": field,
                    "message": "1-128 letters, digits and ._:@-, starting with a letter or digit",
                }
            ]
        )


def check_turns(turns: Sequence[TurnIn], limits: Limits) -> list[datetime | None]:
    """Validate ``turns`` against ``limits``; return the parsed timestamps.

    Raises ``LimitExceeded`` (422, names the setting) or ``ValidationFailed``
    (422, one entry per bad field).
    """
    if not turns:
        raise ValidationFailed(errors=[{"field": "turns", "message": "at least one turn is required"}])
    if len(turns) > limits.max_turns:
        raise LimitExceeded(
            f"{len(turns)} turns exceed the limit of {limits.max_turns} per request",
            errors=[{"field": "turns", "message": f"at most {limits.max_turns} turns per request"}],
            extra={"limit": "SWITCHBOARD_MAX_TURNS", "max": limits.max_turns},
        )
    problems: list[dict[str, str]] = []
    too_long: list[dict[str, str]] = []
    stamps: list[datetime | None] = []
    for position, turn in enumerate(turns):
        where = f"turns[{position}]"
        if turn.speaker not in SPEAKERS:
            problems.append({"field": f"{where}.speaker", "message": f"must be one of {', '.join(SPEAKERS)}"})
        if not isinstance(turn.text, str) or not has_visible_text(turn.text):
            problems.append(
                {
                    "field": f"{where}.text",
                    "message": "must contain visible text, not only whitespace or zero-width characters",
                }
            )
        elif len(turn.text) > limits.max_text_chars:
            too_long.append(
                {"field": f"{where}.text", "message": f"longer than {limits.max_text_chars} characters"}
            )
        if turn.id is not None and not (0 < len(turn.id) <= TURN_ID_MAX):
            problems.append({"field": f"{where}.id", "message": f"must be 1-{TURN_ID_MAX} characters"})
        stamp: datetime | None = None
        if turn.ts is not None:
            try:
                stamp = parse_rfc3339(turn.ts)
            except ValueError as exc:
                message = str(exc) if "RFC 3339" in str(exc) else "not a valid RFC 3339 date-time"
                problems.append({"field": f"{where}.ts", "message": message})
        stamps.append(stamp)
    if problems:
        raise ValidationFailed(errors=problems + too_long)
    if too_long:
        raise LimitExceeded(
            f"turn text exceeds the limit of {limits.max_text_chars} characters",
            errors=too_long,
            extra={"limit": "SWITCHBOARD_MAX_TEXT_CHARS", "max": limits.max_text_chars},
        )
    return stamps
