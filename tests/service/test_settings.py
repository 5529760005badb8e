"""Settings.from_env: defaults, parsing, precedence, every setting read, errors that name the variable."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from service.errors import SettingsError
from service.settings import (
    SETTINGS,
    Boolean,
    Settings,
    add_serve_flags,
    cli_values,
    hash_api_key,
    parse_api_keys,
    settings_table,
)

DIGEST = hash_api_key("secret-token")


def test_defaults_with_auth_disabled() -> None:
    settings = Settings.from_env({"SWITCHBOARD_AUTH_DISABLED": "true"})
    assert settings.auth_disabled and settings.port == 8000 and settings.host == "127.0.0.1"
    assert settings.resolved_store_url == f"sqlite:///{Path('var') / 'switchboard.sqlite3'}"
    assert settings.limits.max_turns == 200 and settings.redact and not settings.log_transcripts
    assert settings.policy_path is None and settings.pack_dir is None


def test_refuses_to_start_open_without_keys() -> None:
    with pytest.raises(SettingsError, match="SWITCHBOARD_API_KEYS"):
        Settings.from_env({})


def test_full_environment() -> None:
    settings = Settings.from_env(
        {
            "SWITCHBOARD_API_KEYS": f"ops={DIGEST}, {DIGEST.upper()}",
            "SWITCHBOARD_PORT": "9000",
            "SWITCHBOARD_STORE": "redis://r:6379/2",
            "SWITCHBOARD_MAX_TURNS": "10",
            "SWITCHBOARD_REDACT": "off",
            "SWITCHBOARD_POLICY": "/etc/policy.toml",
            "SWITCHBOARD_LOG_LEVEL": "debug",
            "SWITCHBOARD_INTRA_OP_THREADS": "2",
        }
    )
    assert [k.name for k in settings.api_keys] == ["ops", DIGEST[:8]]
    assert settings.api_keys[1].sha256 == DIGEST
    assert settings.port == 9000 and settings.resolved_store_url == "redis://r:6379/2"
    assert settings.limits.max_turns == 10 and not settings.redact
    assert settings.policy_path == Path("/etc/policy.toml") and settings.log_level == "DEBUG"
    assert settings.inference.intra_op_threads == 2


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("SWITCHBOARD_PORT", "eighty", "SWITCHBOARD_PORT must be an integer"),
        ("SWITCHBOARD_PORT", "70000", "SWITCHBOARD_PORT must be <= 65535"),
        ("SWITCHBOARD_AUTH_DISABLED", "maybe", "SWITCHBOARD_AUTH_DISABLED must be true or false"),
        ("SWITCHBOARD_RATE_LIMIT", "nan", "SWITCHBOARD_RATE_LIMIT must be a number"),
        ("SWITCHBOARD_MAX_TURNS", "0", "SWITCHBOARD_MAX_TURNS must be >= 1"),
        ("SWITCHBOARD_STORE", "postgres://x", "SWITCHBOARD_STORE must be"),
        ("SWITCHBOARD_LOG_LEVEL", "loud", "SWITCHBOARD_LOG_LEVEL must be one of"),
        (
            "SWITCHBOARD_QUEUE_SIZE",
            "100",
            "SWITCHBOARD_MAX_TURNS .200. must not exceed SWITCHBOARD_QUEUE_SIZE",
        ),
    ],
)
def test_bad_values_name_the_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({"SWITCHBOARD_AUTH_DISABLED": "true", variable: value})


def test_api_keys_must_be_hashes_not_keys() -> None:
    with pytest.raises(SettingsError, match="entry 1 is not a sha256"):
        parse_api_keys("sb_plaintext_key")
    with pytest.raises(SettingsError, match="invalid name"):
        parse_api_keys(f"bad name={DIGEST}")
    assert parse_api_keys(" , ") == ()


# Each setting's variable with a valid value that differs from its default (a family: one member).
# The base environment has an API key and a webhook secret, so that every value alone is valid.
BASE = {"SWITCHBOARD_API_KEYS": f"base={DIGEST}", "SWITCHBOARD_WEBHOOK_SECRET": "hook"}
EXAMPLES = {
    "SWITCHBOARD_HOST": "0.0.0.0",
    "SWITCHBOARD_PORT": "9000",
    "SWITCHBOARD_WORKERS": "3",
    "SWITCHBOARD_DATA_DIR": "/srv/sb",
    "SWITCHBOARD_STORE": "memory://",
    "SWITCHBOARD_CONVERSATION_TTL": "60",
    "SWITCHBOARD_ERASE_TOMBSTONE_S": "0",
    "SWITCHBOARD_PACK": "/srv/pack",
    "SWITCHBOARD_POLICY": "/srv/policy.toml",
    "SWITCHBOARD_POLICY_RELOAD_INTERVAL": "0",
    "SWITCHBOARD_SLO_INTERVAL_S": "0",
    "SWITCHBOARD_REASONS": "none",
    "SWITCHBOARD_API_KEYS": f"crm={DIGEST}",
    "SWITCHBOARD_AUTH_DISABLED": "true",
    "SWITCHBOARD_RATE_LIMIT": "0",
    "SWITCHBOARD_RATE_BURST": "5",
    "SWITCHBOARD_MAX_BODY_BYTES": "2048",
    "SWITCHBOARD_MAX_INFLIGHT": "0",
    "SWITCHBOARD_MAX_TURNS": "7",
    "SWITCHBOARD_MAX_TEXT_CHARS": "100",
    "SWITCHBOARD_MAX_CONVERSATION_TURNS": "50",
    "SWITCHBOARD_REDACT": "false",
    "SWITCHBOARD_LOG_LEVEL": "DEBUG",
    "SWITCHBOARD_LOG_TRANSCRIPTS": "true",
    "SWITCHBOARD_OTEL_ENDPOINT": "http://collector:4318/v1/traces",
    "SWITCHBOARD_MODEL_PROCESS": "off",
    "SWITCHBOARD_INTRA_OP_THREADS": "2",
    "SWITCHBOARD_LONE_TEXT_ALL_CPUS": "false",
    "SWITCHBOARD_MAX_BATCH_SIZE": "8",
    "SWITCHBOARD_MAX_WAIT_MS": "0",
    "SWITCHBOARD_QUEUE_SIZE": "1024",
    "SWITCHBOARD_DEADLINE_MS": "500",
    "SWITCHBOARD_PUBLIC_BASE_URL": "https://sb.example.com",
    "SWITCHBOARD_TWILIO_AUTH_TOKEN": "tok",
    "SWITCHBOARD_TWILIO_SHARED_KEY_SECRET": "shared",
    "SWITCHBOARD_TWILIO_ACCOUNT_SID": "AC123",
    "SWITCHBOARD_TWILIO_CUSTOMER_TRACK": "outbound_track",
    "SWITCHBOARD_TWILIO_OTHER_TRACK_SPEAKER": "bot",
    "SWITCHBOARD_TWILIO_AGENT_AUTHORS": "agent_*",
    "SWITCHBOARD_TWILIO_BOT_AUTHORS": "ivr",
    "SWITCHBOARD_CHATWOOT_SECRET": "cw",
    "SWITCHBOARD_CHATWOOT_TOKEN": "cwt",
    "SWITCHBOARD_WEBHOOK_SECRET": "other-hook",
    "SWITCHBOARD_SIGNATURE_MAX_AGE_S": "60",
    "SWITCHBOARD_CALLBACK_URL": "https://crm.example.com/any",
    "SWITCHBOARD_CALLBACK_URL_CHATWOOT": "https://crm.example.com/cw",
    "SWITCHBOARD_CALLBACK_URLS": '{"genesys": "https://crm.example.com/g"}',
    "SWITCHBOARD_CALLBACK_SECRET": "cb",
    "SWITCHBOARD_CALLBACK_SIGNATURE_SCHEME": "switchboard",
    "SWITCHBOARD_CALLBACK_MAX_ATTEMPTS": "3",
    "SWITCHBOARD_CALLBACK_BACKOFF_BASE_S": "0.5",
    "SWITCHBOARD_CALLBACK_BACKOFF_MAX_S": "60",
    "SWITCHBOARD_CALLBACK_TIMEOUT_S": "2",
    "SWITCHBOARD_CALLBACK_CONCURRENCY": "8",
    "SWITCHBOARD_CALLBACK_RETENTION_S": "3600",
    "SWITCHBOARD_OUTBOX": "memory://",
    "SWITCHBOARD_ACTIONS": "chatwoot,twilio_voice",
    "SWITCHBOARD_CHATWOOT_API_URL": "https://chat.example.com/",
    "SWITCHBOARD_CHATWOOT_API_TOKEN": "cw-api",
    "SWITCHBOARD_TASKROUTER_WORKSPACE_SID": "WS123",
    "SWITCHBOARD_TASKROUTER_WORKFLOW_SID": "WW123",
    "SWITCHBOARD_ACTION_QUEUES": '{"retention": {"chatwoot_team_id": 3, "taskrouter_workflow_sid": "WW9"}}',
}


def _variable(env: str) -> str:
    """The table's name of an example variable (a family member -> the family)."""
    return "SWITCHBOARD_CALLBACK_URL_<SOURCE>" if env == "SWITCHBOARD_CALLBACK_URL_CHATWOOT" else env


def test_every_setting_has_an_example() -> None:
    assert {_variable(env) for env in EXAMPLES} == {setting.env for setting in SETTINGS}


@pytest.mark.parametrize(("variable", "value"), sorted(EXAMPLES.items()))
def test_every_setting_is_read(variable: str, value: str) -> None:
    """Setting any one variable changes the resolved settings: nothing in the table is ignored."""
    assert Settings.from_env({**BASE, variable: value}) != Settings.from_env(BASE)


def _flags(variable: str, value: str) -> list[str]:
    """The ``serve`` command line that sets ``variable`` to ``value``."""
    setting = next(s for s in SETTINGS if s.env == _variable(variable))
    if isinstance(setting.kind, Boolean):
        return [setting.flag if value == "true" else setting.flag.replace("--", "--no-", 1)]
    if setting.family:
        return [setting.flag, f"chatwoot={value}"]
    return [setting.flag, value]


def _parse_serve_flags(argv: list[str]) -> dict[str, str]:
    parser = argparse.ArgumentParser()
    add_serve_flags(parser)
    return cli_values(parser.parse_args(argv))


@pytest.mark.parametrize(("variable", "value"), sorted(EXAMPLES.items()))
def test_every_setting_is_a_flag_equivalent_to_its_variable(variable: str, value: str) -> None:
    cli = _parse_serve_flags(_flags(variable, value))
    assert cli == {variable: value}
    assert Settings.from_env(BASE, cli=cli) == Settings.from_env({**BASE, variable: value})


def test_flag_beats_environment_beats_default() -> None:
    env = {"SWITCHBOARD_AUTH_DISABLED": "true", "SWITCHBOARD_PORT": "9000", "SWITCHBOARD_REDACT": "off"}
    cli = _parse_serve_flags(["--port", "9001", "--redact"])
    flagged = Settings.from_env(env, cli=cli)
    assert flagged.port == 9001 and flagged.redact
    assert Settings.from_env(env).port == 9000 and not Settings.from_env(env).redact
    assert Settings.from_env({"SWITCHBOARD_AUTH_DISABLED": "true"}).port == 8000
    assert _parse_serve_flags([]) == {}  # an absent flag leaves the environment in charge


def test_a_bad_flag_value_names_the_flag() -> None:
    base = {"SWITCHBOARD_AUTH_DISABLED": "true"}
    with pytest.raises(SettingsError, match="--port must be an integer, got 'eighty'"):
        Settings.from_env(base, cli=_parse_serve_flags(["--port", "eighty"]))
    with pytest.raises(SettingsError, match="--callback-url-for source 'bad source' must match"):
        Settings.from_env(base, cli=_parse_serve_flags(["--callback-url-for", "bad source=http://x"]))
    with pytest.raises(SettingsError, match="--callback-url-for takes SOURCE=URL"):
        _parse_serve_flags(["--callback-url-for", "http://x"])


def test_blank_values() -> None:
    """A blank variable means its default, except lists, where it means the empty list."""
    blank = Settings.from_env({**BASE, "SWITCHBOARD_PORT": " ", "SWITCHBOARD_TWILIO_BOT_AUTHORS": ""})
    assert blank.port == 8000 and blank.adapters.twilio_bot_authors.patterns == ()
    assert Settings.from_env(BASE).adapters.twilio_bot_authors.patterns == ("system",)


def test_settings_table_has_one_row_per_setting() -> None:
    rows = settings_table().splitlines()[2:]
    assert [row.split(" | ")[0] for row in rows] == [f"| `{setting.env}`" for setting in SETTINGS]
    assert "| `SWITCHBOARD_QUEUE_SIZE` | `--queue-size` | `512` |" in settings_table()
