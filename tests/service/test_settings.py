"""Settings.from_env: defaults, parsing, and errors that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.errors import SettingsError
from service.settings import ENV_DOC, Settings, env_table, hash_api_key, parse_api_keys

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


def test_env_table_documents_every_variable() -> None:
    table = env_table()
    assert table.count("\n") == len(ENV_DOC) + 1
    for name, _, _ in ENV_DOC:
        assert f"`SWITCHBOARD_{name}`" in table


def test_every_documented_variable_is_read() -> None:
    source = Path(__file__).parents[2].joinpath("service", "settings.py").read_text()
    for name, _, _ in ENV_DOC:
        assert f'"{name}"' in source.split("def from_env", 1)[1], name
