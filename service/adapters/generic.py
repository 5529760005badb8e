"""Generic signed JSON webhook → turns, for any other platform or a speech-to-text bridge.

Body: ``{"conversation_id": str, "turns": [{"speaker", "text", "ts"?, "id"?}, …],
"source"?: str, "channel"?: str, "customer"?: {…}, "metadata"?: {…}}`` — the same turn
shape as ``POST /v1/conversations/{id}/turns``. ``source`` (default ``generic``) selects the
callback URL, so a Genesys or Amazon Connect bridge can get its decisions back on its own URL.
Signed with ``X-Switchboard-Timestamp`` + ``X-Switchboard-Signature`` (see ``signatures``).
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta

from service.adapters.config import SOURCE_GENERIC
from service.adapters.inbound import Inbound
from service.schemas import Channel, ConversationId, CustomerIn, Request, Source, TurnIn


class GenericWebhook(Request):
    """The generic webhook body; unknown fields are a 422 naming them."""

    conversation_id: ConversationId
    turns: Annotated[list[TurnIn], Meta(min_length=1)]
    source: Source | None = None
    channel: Channel | None = None
    customer: CustomerIn | None = None
    metadata: dict[str, Any] | None = None


def decode_generic(body: bytes) -> Inbound:
    """Decode a verified body; msgspec errors become 400/422 naming the field (service.problems)."""
    payload = msgspec.json.decode(body, type=GenericWebhook)
    return Inbound(
        conversation_id=payload.conversation_id,
        turns=payload.turns,
        source=payload.source or SOURCE_GENERIC,
        channel=payload.channel,
        customer=payload.customer,
    )
