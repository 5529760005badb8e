"""Semantic checks on incoming turns that a JSON schema cannot express.

msgspec already enforces types and static constraints while decoding HTTP
bodies. These checks are the authoritative ones, because adapters build
``TurnIn`` objects directly (no decoding): configured size limits, whitespace-
only text, RFC 3339 timestamps and turn-id / conversation-id shapes. Each
problem names its field; a configured limit also names its setting.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from routing.types import SPEAKERS
from service.errors import LimitExceeded, ValidationFailed
from service.settings import Limits

if TYPE_CHECKING:
    from service.schemas import TurnIn

CONVERSATION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"
TURN_ID_MAX = 128
# RFC 3339 date-time: full date, 'T' (or space, as RFC 3339 allows), time, optional
# fraction, and a mandatory offset. Values that match but are impossible (month 13)
# are caught by the parser.
RFC3339_PATTERN = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
_CONVERSATION_ID = re.compile(CONVERSATION_ID_PATTERN)
_RFC3339 = re.compile(RFC3339_PATTERN)


def parse_rfc3339(value: str) -> datetime:
    """Parse an RFC 3339 timestamp (offset required); raise ValueError otherwise."""
    if not _RFC3339.match(value):
        raise ValueError("not an RFC 3339 date-time with offset (e.g. 2024-05-01T12:30:00Z)")
    normalised = value.replace("t", "T").replace("z", "Z")
    fraction = re.search(r"\.(\d+)", normalised)
    if fraction and len(fraction.group(1)) > 6:
        # Python keeps microseconds; nanosecond timestamps (common from STT engines) are truncated.
        normalised = normalised.replace(fraction.group(0), "." + fraction.group(1)[:6])
    return datetime.fromisoformat(normalised)


def check_conversation_id(conversation_id: str, field: str = "conversation_id") -> None:
    """1-128 characters of ``[A-Za-z0-9._:@-]``, starting alphanumeric."""
    if not _CONVERSATION_ID.match(conversation_id):
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
        if not isinstance(turn.text, str) or not turn.text.strip():
            problems.append({"field": f"{where}.text", "message": "must be non-empty text"})
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
