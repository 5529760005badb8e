"""Twilio Voice real-time transcription events → turns (decode layer)."""

from __future__ import annotations

import pytest
from adapter_payloads import ACCOUNT_SID, CALL_SID, TRANSCRIPTION_SID, voice_event
from twilio.twiml.voice_response import VoiceResponse

from service.adapters.config import AdapterConfig
from service.adapters.inbound import Ignored, Inbound
from service.adapters.twilio_voice import decode_voice_event
from service.errors import Forbidden, ValidationFailed

CONFIG = AdapterConfig.from_env({})


def _decode(fields: dict[str, str], config: AdapterConfig = CONFIG, max_chars: int = 4000) -> Inbound:
    decoded = decode_voice_event(fields, config, max_chars)
    assert isinstance(decoded, Inbound)
    return decoded


def test_twiml_that_points_twilio_here() -> None:
    """The snippet the README shows, built with Twilio's own TwiML builder."""
    response = VoiceResponse()
    start = response.start()
    start.transcription(
        status_callback_url="https://switchboard.example.com/v1/webhooks/twilio/voice",
        track="both_tracks",
        partial_results=False,
        inbound_track_label="inbound_track",
    )
    response.dial("+15558675310")
    xml = str(response)
    assert '<Start><Transcription inboundTrackLabel="inbound_track"' in xml
    assert 'statusCallbackUrl="https://switchboard.example.com/v1/webhooks/twilio/voice"' in xml
    assert 'track="both_tracks"' in xml


def test_final_customer_segment_becomes_a_customer_turn() -> None:
    inbound = _decode(voice_event())
    assert inbound.conversation_id == CALL_SID
    assert inbound.source == "twilio_voice" and inbound.channel == "voice"
    (turn,) = inbound.turns
    assert turn.speaker == "customer"
    assert turn.text == "I have been charged twice and I want to cancel"
    assert turn.id == f"{TRANSCRIPTION_SID}:inbound_track:3"
    assert turn.ts == "2025-01-09T17:23:11.382187Z"


def test_other_track_is_the_configured_non_customer_speaker() -> None:
    assert _decode(voice_event(track="outbound_track")).turns[0].speaker == "agent"
    bot = AdapterConfig.from_env({"SWITCHBOARD_TWILIO_OTHER_TRACK_SPEAKER": "bot"})
    assert _decode(voice_event(track="outbound_track"), bot).turns[0].speaker == "bot"


def test_customer_track_is_configurable() -> None:
    config = AdapterConfig.from_env({"SWITCHBOARD_TWILIO_CUSTOMER_TRACK": "outbound_track"})
    assert _decode(voice_event(track="outbound_track"), config).turns[0].speaker == "customer"
    assert _decode(voice_event(track="inbound_track"), config).turns[0].speaker == "agent"


def test_same_sequence_id_gives_the_same_turn_id() -> None:
    first = _decode(voice_event(sequence=7)).turns[0].id
    again = _decode(voice_event(sequence=7, transcript="slightly different retry")).turns[0].id
    other = _decode(voice_event(sequence=8)).turns[0].id
    assert first == again != other


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        (voice_event("transcription-started"), "transcription-started"),
        (voice_event("transcription-stopped"), "transcription-stopped"),
        (voice_event("transcription-error"), "transcription-error"),
        (voice_event(final=False), "partial"),
        (voice_event(transcript="   "), "empty"),
    ],
)
def test_events_without_a_final_transcript_are_ignored(fields: dict[str, str], reason: str) -> None:
    decoded = decode_voice_event(fields, CONFIG, 4000)
    assert isinstance(decoded, Ignored) and reason in decoded.reason


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"CallSid": ""}, "CallSid"),
        ({"SequenceId": ""}, "SequenceId"),
        ({"TranscriptionData": "not json"}, "TranscriptionData"),
        ({"TranscriptionData": '["a list"]'}, "TranscriptionData"),
        ({"TranscriptionData": '{"transcript": 5}'}, "TranscriptionData"),
    ],
)
def test_malformed_content_names_the_field(change: dict[str, str], field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        decode_voice_event(voice_event() | change, CONFIG, 4000)
    assert caught.value.errors[0]["field"] == field


def test_long_transcript_is_clipped_and_bad_timestamp_dropped() -> None:
    inbound = _decode(voice_event(transcript="x" * 50) | {"Timestamp": "yesterday"}, max_chars=10)
    assert inbound.turns[0].text == "x" * 10
    assert inbound.turns[0].ts is None


def test_configured_account_sid_refuses_other_accounts() -> None:
    config = AdapterConfig.from_env({"SWITCHBOARD_TWILIO_ACCOUNT_SID": ACCOUNT_SID})
    _decode(voice_event(), config)
    with pytest.raises(Forbidden):
        decode_voice_event(voice_event() | {"AccountSid": "AC" + "0" * 32}, config, 4000)
