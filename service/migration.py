"""Move conversations stored in the first layout (one blob with every turn) to heads and turn records.

Runs once at startup (``ConversationService`` users call ``migrate_legacy``):
each first-layout record is decoded, written as a head plus one record per
turn, and only then dropped, so a crash in between leaves it to the next
start. A conversation that already has a head (written since) keeps it.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import msgspec

from routing.decision import Decision
from routing.signals import ConversationSignals
from service.conversations import ConversationHead, encode_head, turn_digest
from service.schemas import CustomerIn, TurnIn, TurnOut
from service.store.base import ConversationStore, NewTurn, VersionConflict

_log = logging.getLogger("switchboard.migration")
_encoder = msgspec.json.Encoder()


class LegacyState(msgspec.Struct):
    """The first layout's record: every turn inside, the decision as plain data."""

    conversation_id: str
    created_at: float
    updated_at: float
    signals: ConversationSignals
    turns: list[TurnOut] = []
    decision: dict[str, Any] | None = None
    customer: CustomerIn | None = None
    channel: str | None = None
    language: str | None = None
    sources: list[str] = []
    closed: bool = False
    schema: int = 1


_legacy_decoder = msgspec.json.Decoder(LegacyState)


def convert(state: LegacyState) -> tuple[ConversationHead, list[NewTurn]]:
    """The head and turn records for a first-layout state."""
    decision = msgspec.convert(state.decision, Decision) if state.decision is not None else None
    head = ConversationHead(
        conversation_id=state.conversation_id,
        created_at=state.created_at,
        updated_at=state.updated_at,
        signals=state.signals,
        decision=decision,
        customer=state.customer,
        channel=state.channel,
        language=state.language,
        sources=state.sources,
        closed=state.closed,
    )
    records = [
        NewTurn(
            index=turn.index,
            turn_id=turn.id,
            digest=turn_digest(
                TurnIn(speaker=turn.speaker, text=turn.text, ts=turn.ts, id=turn.id), turn.text
            ),
            data=_encoder.encode(turn),
        )
        for turn in state.turns
    ]
    return head, records


async def migrate_legacy(store: ConversationStore) -> int:
    """Migrate every first-layout conversation in ``store``; returns how many were moved.

    A record that does not decode is left in place and logged by id (never by content).
    """
    moved = 0
    for conversation_id in await store.legacy_ids():
        legacy = await store.load_legacy(conversation_id)
        if legacy is None:
            continue
        try:
            head, records = convert(_legacy_decoder.decode(legacy.data))
        except (msgspec.DecodeError, msgspec.ValidationError):
            _log.error(
                "stored conversation in the old layout does not decode; left in place",
                extra={"conversation_id": conversation_id},
            )
            continue
        # A conflict means it was written in the new layout since: that state is newer.
        with contextlib.suppress(VersionConflict):
            await store.append(
                conversation_id, encode_head(head), records, expected_version=0, closed=legacy.closed
            )
        await store.drop_legacy(conversation_id)
        moved += 1
    if moved:
        _log.info("conversations migrated to turn-level storage", extra={"count": moved})
    return moved
