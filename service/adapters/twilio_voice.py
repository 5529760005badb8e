"""Twilio Voice real-time transcription (``<Start><Transcription statusCallbackUrl=…>``) → turns.

Twilio POSTs form-encoded events: ``transcription-started``, repeated
``transcription-content`` (partial and final results), ``transcription-stopped`` and
``transcription-error``. Only final content is scored; partials would score the same words
several times. ``SequenceId`` orders the events of one transcription and is the same when
Twilio retries, so it is part of the turn id and a retried event is a no-op.
"""

from __future__ import annotations

import json

from service.adapters.config import SOURCE_TWILIO_VOICE, AdapterConfig
from service.adapters.inbound import Decoded, Ignored, Inbound, clip_text, require, rfc3339_or_none, turn_id
from service.errors import Forbidden, ValidationFailed
from service.schemas import TurnIn

CONTENT_EVENT = "transcription-content"


def decode_voice_event(params: dict[str, str], config: AdapterConfig, max_text_chars: int) -> Decoded:
    """Map one verified transcription event to a turn of conversation ``CallSid``, or ``Ignored``.

    The speaker is ``customer`` when ``Track`` equals ``SWITCHBOARD_TWILIO_CUSTOMER_TRACK``,
    otherwise ``SWITCHBOARD_TWILIO_OTHER_TRACK_SPEAKER`` (agent by default).
    """
    check_account(params, config)
    event = params.get("TranscriptionEvent", "")
    if event != CONTENT_EVENT:
        return Ignored(f"event {event or '(none)'} carries no final transcript")
    if params.get("Final", "").strip().lower() != "true":
        return Ignored("partial result")
    call_sid = require(params, "CallSid")
    sequence = require(params, "SequenceId")
    transcript = _transcript(require(params, "TranscriptionData"))
    if not transcript:
        return Ignored("empty transcript")
    track = params.get("Track", "").strip()
    speaker = "customer" if track == config.twilio_customer_track else config.twilio_other_track_speaker
    # TranscriptionSid scopes SequenceId: a call may start several transcriptions.
    scope = params.get("TranscriptionSid", "").strip() or call_sid
    turn = TurnIn(
        speaker=speaker,
        text=clip_text(transcript, max_text_chars),
        ts=rfc3339_or_none(params.get("Timestamp")),
        id=turn_id(scope, track or "-", sequence),
    )
    return Inbound(conversation_id=call_sid, turns=[turn], source=SOURCE_TWILIO_VOICE, channel="voice")


def check_account(params: dict[str, str], config: AdapterConfig) -> None:
    """With ``SWITCHBOARD_TWILIO_ACCOUNT_SID`` set, a validly signed event of another account is refused."""
    if config.twilio_account_sid and params.get("AccountSid", "") != config.twilio_account_sid:
        raise Forbidden("AccountSid is not the configured Twilio account")


def _transcript(raw: str) -> str:
    """``TranscriptionData`` is a JSON string: ``{"transcript": "...", "confidence": 0.97}``."""
    try:
        data = json.loads(raw)
    except ValueError:
        raise ValidationFailed(
            errors=[{"field": "TranscriptionData", "message": "must be a JSON object"}]
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("transcript", ""), str):
        raise ValidationFailed(
            errors=[
                {"field": "TranscriptionData", "message": "must be a JSON object with a string transcript"}
            ]
        )
    return str(data.get("transcript", "")).strip()
