"""AdapterConfig.from_env: defaults, parsing, validation, secrets kept out of repr."""

from __future__ import annotations

import pytest

from service.adapters.config import ANY_SOURCE, AdapterConfig, AuthorPatterns
from service.errors import SettingsError
from service.settings import Settings


def test_defaults() -> None:
    config = AdapterConfig.from_env({})
    assert config.twilio_customer_track == "inbound_track"
    assert config.twilio_other_track_speaker == "agent"
    assert config.signature_max_age_s == 300
    assert config.twilio_bot_authors.matches("system")
    assert config.callback_urls == {}
    assert config.callback_url_for("chatwoot") is None
    assert config.webhook_secrets == ()


def test_full_environment() -> None:
    config = AdapterConfig.from_env(
        {
            "SWITCHBOARD_PUBLIC_BASE_URL": "https://sb.example.com/switchboard/",
            "SWITCHBOARD_TWILIO_AUTH_TOKEN": "tok",
            "SWITCHBOARD_TWILIO_CUSTOMER_TRACK": "customer",
            "SWITCHBOARD_TWILIO_OTHER_TRACK_SPEAKER": "bot",
            "SWITCHBOARD_TWILIO_AGENT_AUTHORS": "agent_*, supervisor@example.com",
            "SWITCHBOARD_TWILIO_BOT_AUTHORS": "ivr-bot",
            "SWITCHBOARD_CHATWOOT_SECRET": "cw",
            "SWITCHBOARD_WEBHOOK_SECRET": "new, old",
            "SWITCHBOARD_SIGNATURE_MAX_AGE_S": "120",
            "SWITCHBOARD_CALLBACK_URLS": '{"chatwoot": "https://crm.example.com/cw", "genesys": "http://g/x"}',
            "SWITCHBOARD_CALLBACK_URL": "https://crm.example.com/any",
            "SWITCHBOARD_CALLBACK_URL_TWILIO_VOICE": "https://crm.example.com/voice",
            "SWITCHBOARD_CALLBACK_MAX_ATTEMPTS": "5",
            "SWITCHBOARD_CALLBACK_BACKOFF_BASE_S": "0.5",
            "SWITCHBOARD_OUTBOX": "redis://r:6379/1",
        }
    )
    assert config.public_base_url == "https://sb.example.com/switchboard"
    assert config.twilio_customer_track == "customer"
    assert config.twilio_other_track_speaker == "bot"
    assert config.twilio_agent_authors.matches("Agent_42")
    assert config.twilio_agent_authors.matches("supervisor@example.com")
    assert not config.twilio_agent_authors.matches("+15551234567")
    assert not config.twilio_bot_authors.matches("system")  # replaced, not extended
    assert config.webhook_secrets == ("new", "old")
    assert config.signing_secret == "new"  # no CALLBACK_SECRET: the generic secret signs
    assert config.callback_url_for("twilio_voice") == "https://crm.example.com/voice"
    assert config.callback_url_for("chatwoot") == "https://crm.example.com/cw"
    assert config.callback_url_for("generic") == "https://crm.example.com/any"
    assert config.callback_url_for(None) == config.callback_urls[ANY_SOURCE]
    assert config.callback_max_attempts == 5
    assert config.callback_backoff_base_s == 0.5
    assert config.outbox_url == "redis://r:6379/1"


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"SWITCHBOARD_SIGNATURE_MAX_AGE_S": "soon"}, "SWITCHBOARD_SIGNATURE_MAX_AGE_S"),
        ({"SWITCHBOARD_SIGNATURE_MAX_AGE_S": "0"}, "SWITCHBOARD_SIGNATURE_MAX_AGE_S"),
        ({"SWITCHBOARD_CALLBACK_MAX_ATTEMPTS": "2.5"}, "SWITCHBOARD_CALLBACK_MAX_ATTEMPTS"),
        ({"SWITCHBOARD_PUBLIC_BASE_URL": "sb.example.com"}, "SWITCHBOARD_PUBLIC_BASE_URL"),
        ({"SWITCHBOARD_TWILIO_OTHER_TRACK_SPEAKER": "customer"}, "SWITCHBOARD_TWILIO_OTHER_TRACK_SPEAKER"),
        (
            {"SWITCHBOARD_CALLBACK_URLS": "[1]", "SWITCHBOARD_CALLBACK_SECRET": "s"},
            "SWITCHBOARD_CALLBACK_URLS",
        ),
        ({"SWITCHBOARD_CALLBACK_URLS": "{", "SWITCHBOARD_CALLBACK_SECRET": "s"}, "SWITCHBOARD_CALLBACK_URLS"),
        (
            {"SWITCHBOARD_CALLBACK_URLS": '{"Bad Source": "http://x"}', "SWITCHBOARD_CALLBACK_SECRET": "s"},
            "Bad Source",
        ),
        (
            {"SWITCHBOARD_CALLBACK_URL_CHATWOOT": "ftp://x", "SWITCHBOARD_CALLBACK_SECRET": "s"},
            "SWITCHBOARD_CALLBACK_URL_CHATWOOT",
        ),
        ({"SWITCHBOARD_CALLBACK_URL": "http://crm/cb"}, "SWITCHBOARD_CALLBACK_SECRET"),
        (
            {"SWITCHBOARD_CALLBACK_BACKOFF_BASE_S": "10", "SWITCHBOARD_CALLBACK_BACKOFF_MAX_S": "1"},
            "SWITCHBOARD_CALLBACK_BACKOFF_MAX_S",
        ),
    ],
)
def test_invalid_values_name_the_variable(env: dict[str, str], names: str) -> None:
    with pytest.raises(SettingsError, match=names):
        AdapterConfig.from_env(env)


def test_repr_hides_secrets() -> None:
    config = AdapterConfig.from_env(
        {
            "SWITCHBOARD_TWILIO_AUTH_TOKEN": "tw-secret-value",
            "SWITCHBOARD_CHATWOOT_SECRET": "cw-secret-value",
            "SWITCHBOARD_CHATWOOT_TOKEN": "cw-token-value",
            "SWITCHBOARD_WEBHOOK_SECRET": "wh-secret-value",
            "SWITCHBOARD_CALLBACK_SECRET": "cb-secret-value",
        }
    )
    text = repr(config)
    assert "secret-value" not in text and "token-value" not in text
    assert "twilio_auth_token='<set>'" in text


def test_author_patterns_are_case_insensitive_globs() -> None:
    patterns = AuthorPatterns(("bot-*", "Alice"))
    assert patterns.matches("BOT-7") and patterns.matches("alice")
    assert not patterns.matches("alice2") and not AuthorPatterns().matches("anyone")


def test_the_service_settings_read_the_same_adapter_config() -> None:
    env = {
        "SWITCHBOARD_AUTH_DISABLED": "true",
        "SWITCHBOARD_TWILIO_AUTH_TOKEN": "tok",
        "SWITCHBOARD_TWILIO_BOT_AUTHORS": "",
        "SWITCHBOARD_CALLBACK_URL_CHATWOOT": "https://crm.example.com/cw",
        "SWITCHBOARD_CALLBACK_SECRET": "s",
        "SWITCHBOARD_OUTBOX": "memory://",
    }
    config = AdapterConfig.from_env(env)
    assert Settings.from_env(env).adapters == config
    assert config.callback_url_for("chatwoot") == "https://crm.example.com/cw"
    assert config.twilio_bot_authors == AuthorPatterns()  # set but empty: nobody is a bot
    assert Settings.from_env({"SWITCHBOARD_AUTH_DISABLED": "true"}).adapters == AdapterConfig.from_env({})
