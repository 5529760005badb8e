"""Twilio Conversations (chat, SMS, WhatsApp) ``onMessageAdded`` post-event webhook → turns.

Form-encoded fields: ``EventType``, ``ConversationSid``, ``MessageSid``, ``Author``,
``Body``, ``Index``, ``Source``, ``DateCreated`` … The author decides the speaker:
``SWITCHBOARD_TWILIO_BOT_AUTHORS`` (default ``system``) → bot,
``SWITCHBOARD_TWILIO_AGENT_AUTHORS`` → agent, anyone else → customer. Agent and bot turns
are kept (the routing signals look at the whole dialogue); only customer turns carry intent.
"""

from __future__ import annotations

from typing import Literal

from service.adapters.config import SOURCE_TWILIO_CONVERSATIONS, AdapterConfig
from service.adapters.inbound import Decoded, Ignored, Inbound, clip_text, require, rfc3339_or_none, turn_id
from service.adapters.twilio_voice import check_account
from service.schemas import TurnIn

MESSAGE_ADDED = "onMessageAdded"

# Twilio's ``Source`` of a message → the service's channel.
_CHANNELS = {"SMS": "sms", "MMS": "sms", "EMAIL": "email"}


def author_speaker(author: str, config: AdapterConfig) -> Literal["customer", "agent", "bot"]:
    """Classify an author by the configured patterns (bots first: a bot identity may look like an agent's)."""
    if config.twilio_bot_authors.matches(author):
        return "bot"
    if config.twilio_agent_authors.matches(author):
        return "agent"
    return "customer"


def decode_message_added(params: dict[str, str], config: AdapterConfig, max_text_chars: int) -> Decoded:
    """Map one verified ``onMessageAdded`` event to a turn of ``ConversationSid``, or ``Ignored``."""
    check_account(params, config)
    event = params.get("EventType", "")
    if event != MESSAGE_ADDED:
        return Ignored(f"event {event or '(none)'} is not {MESSAGE_ADDED}")
    conversation_sid = require(params, "ConversationSid")
    body = params.get("Body", "").strip()
    if not body:
        return Ignored("message has no text (media only)")
    message_id = params.get("MessageSid", "").strip() or f"index-{require(params, 'Index')}"
    turn = TurnIn(
        speaker=author_speaker(params.get("Author", ""), config),
        text=clip_text(body, max_text_chars),
        ts=rfc3339_or_none(params.get("DateCreated")),
        id=turn_id(message_id),
    )
    channel = _CHANNELS.get(params.get("Source", "").strip().upper(), "chat")
    return Inbound(
        conversation_id=conversation_sid, turns=[turn], source=SOURCE_TWILIO_CONVERSATIONS, channel=channel
    )
