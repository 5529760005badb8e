"""Generic signed JSON webhook → turns, for any other platform or a speech-to-text bridge.

Body: ``{"conversation_id": str, "turns": [{"speaker", "text", "ts"?, "id"?}, …],
"source"?: str, "channel"?: str, "customer"?: {…}, "metadata"?: {…}, "outcome"?: {…}}`` —
the same turn shape as ``POST /v1/conversations/{id}/turns``; ``outcome`` is what
``POST /v1/conversations/{id}/outcome`` takes (a body carries turns, an outcome, or both).
``source`` (default ``generic``) selects the callback URL, so a Genesys or Amazon Connect
bridge can get its decisions back on its own URL.
Signed with ``X-Switchboard-Timestamp`` + ``X-Switchboard-Signature`` (see ``signatures``).
"""

from __future__ import annotations

from typing import Any

import msgspec

from routing.insights import Outcome
from service.adapters.config import SOURCE_GENERIC
from service.adapters.inbound import Inbound
from service.errors import ValidationFailed
from service.schemas import Channel, ConversationId, CustomerIn, Request, Source, TurnIn


class GenericWebhook(Request):
    """The generic webhook body; unknown fields are a 422 naming them."""

    conversation_id: ConversationId
    turns: list[TurnIn] = msgspec.field(default_factory=list)
    source: Source | None = None
    channel: Channel | None = None
    customer: CustomerIn | None = None
    metadata: dict[str, Any] | None = None
    outcome: Outcome | None = None


def decode_generic(body: bytes) -> Inbound:
    """Decode a verified body; msgspec errors become 400/422 naming the field (service.problems)."""
    payload = msgspec.json.decode(body, type=GenericWebhook)
    if not payload.turns and payload.outcome is None:
        raise ValidationFailed(
            "a generic webhook carries turns, an outcome, or both",
            errors=[{"field": "turns", "message": "at least one turn (or an outcome) is required"}],
        )
    return Inbound(
        conversation_id=payload.conversation_id,
        turns=payload.turns,
        source=payload.source or SOURCE_GENERIC,
        channel=payload.channel,
        customer=payload.customer,
        outcome=payload.outcome,
    )
