"""Platform payloads as the platforms document them, plus signing helpers for the tests.

Twilio requests are signed with the real ``twilio`` package's ``RequestValidator``.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

from service.adapters.signatures import sign_timestamped

ACCOUNT_SID = "AC8d9f2f5a5c0e4f1b9a7d6c5b4a3f2e1d"
CALL_SID = "CA5c1a9f7e2b4d4c8e9f0a1b2c3d4e5f60"
TRANSCRIPTION_SID = "GT0f1e2d3c4b5a69788796a5b4c3d2e1f0"
CONVERSATION_SID = "CH2f1e0d9c8b7a69584736251403f2e1d0"
CHAT_SERVICE_SID = "IS4c3b2a1908f7e6d5c4b3a29180f7e6d5"


def voice_event(
    event: str = "transcription-content",
    *,
    transcript: str = "I have been charged twice and I want to cancel",
    sequence: int = 3,
    track: str = "inbound_track",
    final: bool = True,
    call_sid: str = CALL_SID,
) -> dict[str, str]:
    """A Voice real-time transcription status callback (form fields)."""
    fields = {
        "AccountSid": ACCOUNT_SID,
        "CallSid": call_sid,
        "TranscriptionSid": TRANSCRIPTION_SID,
        "Timestamp": "2025-01-09T17:23:11.382187Z",
        "SequenceId": str(sequence),
        "TranscriptionEvent": event,
    }
    if event == "transcription-content":
        data: dict[str, Any] = {"transcript": transcript}
        if final:
            data["confidence"] = 0.9421
        fields |= {
            "LanguageCode": "en-US",
            "Track": track,
            "TranscriptionData": json.dumps(data),
            "Final": "true" if final else "false",
        }
        if not final:
            fields["Stability"] = "0.8"
    elif event == "transcription-started":
        fields |= {
            "ProviderConfiguration": json.dumps({"profanityFilter": "true", "speechModel": "telephony"}),
            "PartialResults": "true",
            "Name": "switchboard",
            "TranscriptionEngine": "google",
            "Track": "both_tracks",
        }
    elif event == "transcription-error":
        fields |= {"TranscriptionError": "Provider unavailable", "TranscriptionErrorCode": "32655"}
    return fields


def message_added(
    *,
    author: str = "+15558675310",
    body: str = "My package never arrived and nobody answers",
    index: int = 4,
    message_sid: str = "IMa1b2c3d4e5f60718293a4b5c6d7e8f90",
    source: str = "SMS",
    event: str = "onMessageAdded",
) -> dict[str, str]:
    """A Conversations ``onMessageAdded`` post-event webhook (form fields)."""
    return {
        "AccountSid": ACCOUNT_SID,
        "ChatServiceSid": CHAT_SERVICE_SID,
        "ConversationSid": CONVERSATION_SID,
        "MessageSid": message_sid,
        "ParticipantSid": "MB0a9b8c7d6e5f40312a3b4c5d6e7f8091",
        "Author": author,
        "Body": body,
        "Index": str(index),
        "Source": source,
        "DateCreated": "2025-01-09T17:25:02.000Z",
        "Attributes": "{}",
        "EventType": event,
        "RetryCount": "0",
        "WebhookType": "webhook",
        "WebhookSid": "WH1a2b3c4d5e6f708192a3b4c5d6e7f809",
    }


def chatwoot_message(
    *,
    message_id: int = 9012,
    content: str | None = "Hi, I was charged twice for my subscription",
    message_type: str | int = "incoming",
    private: bool = False,
    conversation_id: int = 77,
    account_id: int = 3,
    event: str = "message_created",
) -> dict[str, Any]:
    """A Chatwoot ``message_created`` webhook body."""
    contact = {
        "id": 41,
        "name": "Jane Roe",
        "email": "jane@example.com",
        "phone_number": None,
        "type": "contact",
    }
    return {
        "event": event,
        "id": message_id,
        "content": content,
        "created_at": "2025-01-09T17:30:45.123Z",
        "message_type": message_type,
        "content_type": "text",
        "content_attributes": {},
        "source_id": None,
        "private": private,
        "sender": contact if message_type == "incoming" else {"id": 5, "name": "Sam Agent", "type": "user"},
        "inbox": {"id": 2, "name": "Website"},
        "account": {"id": account_id, "name": "Acme"},
        "conversation": {
            "id": conversation_id,
            "inbox_id": 2,
            "channel": "Channel::WebWidget",
            "status": "open",
            "can_reply": True,
            "additional_attributes": {"browser": {"browser_name": "Firefox"}},
            "contact_inbox": {"id": 88, "contact_id": 41, "inbox_id": 2, "source_id": "abc-123"},
            "meta": {"sender": contact, "assignee": None, "team": None, "hmac_verified": False},
            "labels": [],
            "custom_attributes": {},
            "timestamp": 1736443845,
            "unread_count": 1,
        },
    }


def twilio_request(url: str, fields: dict[str, str], token: str) -> tuple[bytes, dict[str, str]]:
    """Form body and headers of a Twilio webhook signed with the real RequestValidator."""
    signature = RequestValidator(token).compute_signature(url, fields)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
        "X-Twilio-Signature": signature,
        "I-Twilio-Idempotency-Token": "a1b2c3",
    }
    return urlencode(fields).encode(), headers


def chatwoot_request(
    payload: dict[str, Any], secret: str, *, timestamp: int | None = None, delivery: str | None = "d-1"
) -> tuple[bytes, dict[str, str]]:
    """JSON body and the signature headers recent Chatwoot versions send."""
    body = json.dumps(payload).encode()
    stamp = int(time.time()) if timestamp is None else timestamp
    headers = {
        "Content-Type": "application/json",
        "X-Chatwoot-Timestamp": str(stamp),
        "X-Chatwoot-Signature": sign_timestamped(secret, stamp, body),
    }
    if delivery is not None:
        headers["X-Chatwoot-Delivery"] = delivery
    return body, headers


def generic_request(
    payload: dict[str, Any], secret: str, *, timestamp: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """JSON body and headers of the generic signed webhook."""
    body = json.dumps(payload).encode()
    stamp = int(time.time()) if timestamp is None else timestamp
    return body, {
        "Content-Type": "application/json",
        "X-Switchboard-Timestamp": str(stamp),
        "X-Switchboard-Signature": sign_timestamped(secret, stamp, body),
    }
