"""What every adapter's decoder produces, and the small normalisations they share.

A decoder turns one verified platform event into either ``Inbound`` (turns to append to
one conversation) or ``Ignored`` (a valid event with nothing to score: a partial
transcript, an agent's note, a status event). The route then hands ``Inbound`` to the
shared ``ConversationService.append``; nothing platform-specific goes further.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from urllib.parse import parse_qsl

import msgspec

from routing.insights import Outcome
from service.errors import BadRequest, ValidationFailed
from service.schemas import CustomerIn, TurnIn
from service.validation import TURN_ID_MAX, parse_rfc3339


class Inbound(msgspec.Struct, frozen=True):
    """Turns for ``ConversationService.append`` (and, from the generic webhook, an outcome)."""

    conversation_id: str
    turns: list[TurnIn]
    source: str
    channel: str | None = None
    customer: CustomerIn | None = None
    outcome: Outcome | None = None


class Ignored(msgspec.Struct, frozen=True):
    """A verified event that carries nothing to score; ``reason`` is returned to the caller."""

    reason: str


Decoded = Inbound | Ignored


def parse_form(body: bytes) -> list[tuple[str, str]]:
    """Decode an ``application/x-www-form-urlencoded`` body into (name, value) pairs, keeping repeats."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("form body is not UTF-8") from None
    try:
        return parse_qsl(text, keep_blank_values=True, strict_parsing=False, errors="strict")
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("malformed form body") from None


def require(params: dict[str, str], name: str) -> str:
    """A required, non-blank form field, or a 422 naming it."""
    value = params.get(name, "").strip()
    if not value:
        raise ValidationFailed(errors=[{"field": name, "message": "required"}])
    return value


def clip_text(text: str, max_chars: int) -> str:
    """Cut a platform message to the service's text limit.

    A platform cannot resend a shorter message, so rejecting it would lose the turn; the
    models read only the first few hundred tokens anyway.
    """
    return text if len(text) <= max_chars else text[:max_chars]


def turn_id(*parts: str) -> str:
    """Join id parts with ``:``; hash the tail if the result exceeds the turn-id limit."""
    joined = ":".join(parts)
    if len(joined) <= TURN_ID_MAX:
        return joined
    digest = hashlib.sha256(joined.encode()).hexdigest()[:32]
    return f"{joined[: TURN_ID_MAX - 33]}~{digest}"


def rfc3339_or_none(value: object) -> str | None:
    """A platform timestamp as RFC 3339 (ISO string or unix seconds), or None if unusable.

    A bad timestamp from a platform is not worth losing the turn over.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(float(value), UTC).isoformat().replace("+00:00", "Z")
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            parse_rfc3339(text)
        except ValueError:
            return None
        return text
    return None
