"""Chatwoot ``message_created`` webhook → turns.

Only ``message_type == "incoming"`` (the contact) and ``private == false`` messages are
scored: outgoing ones are the agents' and, worse, our own bot's replies, and private
messages are internal notes. Chatwoot conversation ids are small integers per account,
so the Switchboard conversation id is ``chatwoot:{account id}:{conversation id}``; the
message id is the turn id, which makes a re-sent message a no-op.
"""

from __future__ import annotations

from typing import Any

import msgspec

from service.adapters.config import SOURCE_CHATWOOT
from service.adapters.inbound import Decoded, Ignored, Inbound, clip_text, rfc3339_or_none, turn_id
from service.errors import ValidationFailed
from service.schemas import TurnIn

MESSAGE_CREATED = "message_created"
# Some payloads carry the enum's integer (Message.message_types: incoming = 0).
_INCOMING = ("incoming", 0)

# Chatwoot inbox channel class → the service's channel.
_CHANNELS = {
    "Channel::Email": "email",
    "Channel::Sms": "sms",
    "Channel::TwilioSms": "sms",
}


def conversation_key(account_id: object, conversation_id: object) -> str:
    """The Switchboard conversation id of a Chatwoot conversation."""
    return (
        f"chatwoot:{account_id}:{conversation_id}"
        if account_id is not None
        else f"chatwoot:{conversation_id}"
    )


def decode_message_created(body: bytes, max_text_chars: int) -> Decoded:
    """Map one verified webhook body to a customer turn, or ``Ignored`` with the reason."""
    payload = msgspec.json.decode(body)  # DecodeError -> 400 via service.problems
    if not isinstance(payload, dict):
        raise ValidationFailed(errors=[{"field": "body", "message": "must be a JSON object"}])
    event = payload.get("event")
    if event != MESSAGE_CREATED:
        return Ignored(f"event {event!s} is not {MESSAGE_CREATED}")
    if payload.get("message_type") not in _INCOMING:
        return Ignored(f"message_type {payload.get('message_type')!s} is not incoming")
    if payload.get("private") not in (False, None):
        return Ignored("private note")
    content = payload.get("content")
    if not isinstance(content, str) or not content.strip():
        return Ignored("message has no text")
    conversation = _object(payload, "conversation")
    # The payload's conversation "id" is Chatwoot's per-account display id (what agents see).
    conversation_number = conversation.get("id")
    message_id = payload.get("id")
    if not isinstance(conversation_number, int | str) or isinstance(conversation_number, bool):
        raise ValidationFailed(errors=[{"field": "conversation.id", "message": "required"}])
    if not isinstance(message_id, int | str) or isinstance(message_id, bool) or message_id == "":
        raise ValidationFailed(errors=[{"field": "id", "message": "required"}])
    account = payload.get("account")
    account_id = account.get("id") if isinstance(account, dict) else conversation.get("account_id")
    turn = TurnIn(
        speaker="customer",
        text=clip_text(content.strip(), max_text_chars),
        ts=rfc3339_or_none(payload.get("created_at")),
        id=turn_id(str(message_id)),
    )
    channel_class = conversation.get("channel")
    channel = _CHANNELS.get(channel_class, "chat") if isinstance(channel_class, str) else "chat"
    return Inbound(
        conversation_id=conversation_key(account_id, conversation_number),
        turns=[turn],
        source=SOURCE_CHATWOOT,
        channel=channel,
    )


def _object(payload: dict[str, Any], name: str) -> dict[str, Any]:
    value = payload.get(name)
    if not isinstance(value, dict):
        raise ValidationFailed(errors=[{"field": name, "message": "must be an object"}])
    return value
