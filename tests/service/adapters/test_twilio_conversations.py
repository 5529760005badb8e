"""Twilio Conversations onMessageAdded → turns (decode layer)."""

from __future__ import annotations

import pytest
from adapter_payloads import CONVERSATION_SID, message_added

from service.adapters.config import AdapterConfig
from service.adapters.inbound import Ignored, Inbound
from service.adapters.twilio_conversations import author_speaker, decode_message_added
from service.errors import ValidationFailed

CONFIG = AdapterConfig.from_env(
    {
        "SWITCHBOARD_TWILIO_AGENT_AUTHORS": "agent_*,*@acme.example",
        "SWITCHBOARD_TWILIO_BOT_AUTHORS": "system,bot-*",
    }
)


def test_customer_sms_becomes_a_customer_turn() -> None:
    decoded = decode_message_added(message_added(), CONFIG, 4000)
    assert isinstance(decoded, Inbound)
    assert decoded.conversation_id == CONVERSATION_SID
    assert decoded.source == "twilio_conversations" and decoded.channel == "sms"
    (turn,) = decoded.turns
    assert turn.speaker == "customer"
    assert turn.text == "My package never arrived and nobody answers"
    assert turn.id == "IMa1b2c3d4e5f60718293a4b5c6d7e8f90"
    assert turn.ts == "2025-01-09T17:25:02.000Z"


@pytest.mark.parametrize(
    ("author", "speaker"),
    [
        ("agent_17", "agent"),
        ("jo@acme.example", "agent"),
        ("system", "bot"),
        ("bot-faq", "bot"),
        ("whatsapp:+15558675310", "customer"),
        ("", "customer"),
    ],
)
def test_authors_are_classified_by_configured_patterns(author: str, speaker: str) -> None:
    assert author_speaker(author, CONFIG) == speaker


def test_channels_follow_the_message_source() -> None:
    for source, channel in (("SMS", "sms"), ("WHATSAPP", "chat"), ("SDK", "chat"), ("API", "chat")):
        decoded = decode_message_added(message_added(source=source), CONFIG, 4000)
        assert isinstance(decoded, Inbound) and decoded.channel == channel


def test_other_events_and_media_only_messages_are_ignored() -> None:
    assert isinstance(decode_message_added(message_added(event="onConversationAdded"), CONFIG, 4000), Ignored)
    assert isinstance(decode_message_added(message_added(body=""), CONFIG, 4000), Ignored)


def test_missing_message_sid_falls_back_to_index() -> None:
    decoded = decode_message_added(message_added(message_sid="", index=9), CONFIG, 4000)
    assert isinstance(decoded, Inbound) and decoded.turns[0].id == "index-9"


def test_missing_conversation_names_the_field() -> None:
    with pytest.raises(ValidationFailed) as caught:
        decode_message_added(message_added() | {"ConversationSid": ""}, CONFIG, 4000)
    assert caught.value.errors == [{"field": "ConversationSid", "message": "required"}]
