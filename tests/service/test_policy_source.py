"""PolicySource: default policy, file policy, reload on change, invalid reloads keep the old policy."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from routing.errors import PolicyError
from routing.policy import default_policy_text
from service.errors import SettingsError
from service.metrics import Metrics
from service.policy_source import PolicySource, validate_policy_text

TEXT = default_policy_text()


def edited(version: str) -> str:
    return TEXT.replace('version = "2025.2"', f'version = "{version}"', 1)


def bump_mtime(path: Path) -> None:
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def test_default_policy() -> None:
    source = PolicySource(None, Metrics())
    assert source.active.source == "default" and source.policy.version == "2025.2"
    assert source.reload_if_modified() is False


def test_reload_when_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(TEXT)
    metrics = Metrics()
    source = PolicySource(path, metrics)
    assert source.reload_if_modified() is False  # unchanged file: nothing to do
    path.write_text(edited("v2"))
    bump_mtime(path)
    assert source.reload_if_modified() is True and source.policy.version == "v2"
    rendered = metrics.render().decode()
    assert 'switchboard_policy_reloads_total{result="changed"} 1.0' in rendered
    assert 'version="v2"' in rendered and 'version="2025.2"' not in rendered


def test_invalid_reload_keeps_the_active_policy(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(TEXT)
    metrics = Metrics()
    source = PolicySource(path, metrics)
    before = source.policy.hash
    path.write_text(TEXT.replace('route = "specialist"', 'route = "nowhere"', 1))
    bump_mtime(path)
    assert source.reload_if_modified() is False  # logged and counted, never raised
    assert source.policy.hash == before
    assert 'switchboard_policy_reloads_total{result="invalid"} 1.0' in metrics.render().decode()
    with pytest.raises(PolicyError):
        source.reload()  # the explicit reload reports why
    path.unlink()
    with pytest.raises(SettingsError, match="cannot read"):
        source.reload()
    assert source.policy.hash == before


def test_invalid_policy_at_startup_fails_fast(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text("version = 1\n[[rules]]\n")
    with pytest.raises(PolicyError):
        PolicySource(path, Metrics())
    with pytest.raises(SettingsError):
        PolicySource(tmp_path / "missing.toml", Metrics())


async def test_watch_picks_up_changes(tmp_path: Path) -> None:
    import asyncio

    path = tmp_path / "policy.toml"
    path.write_text(TEXT)
    source = PolicySource(path, Metrics())
    task = asyncio.create_task(source.watch(0.01))
    path.write_text(edited("watched"))
    bump_mtime(path)
    for _ in range(200):
        if source.policy.version == "watched":
            break
        await asyncio.sleep(0.01)
    task.cancel()
    assert source.policy.version == "watched"


def test_deeply_nested_toml_is_an_invalid_policy_not_a_crash() -> None:
    with pytest.raises(PolicyError) as info:
        validate_policy_text("a = " + "[" * 975 + "]" * 975)
    assert len(info.value.errors) == 1 and "975 levels" in info.value.errors[0]


def _rejection(caplog: pytest.LogCaptureFixture) -> logging.LogRecord:
    (record,) = [r for r in caplog.records if r.getMessage().startswith("policy reload rejected")]
    assert record.levelno == logging.ERROR
    return record


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (TEXT.replace('route = "specialist"', 'route = "nowhere"', 1), "nowhere"),
        ("a = " + "{b=" * 200 + "1" + "}" * 200, "200 levels"),
        (b"\xff\xfe not utf-8", "UnicodeDecodeError"),
        (None, "FileNotFoundError"),  # the file was removed
    ],
)
def test_a_rejected_reload_logs_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: str | bytes | None, expected: str
) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(TEXT)
    source = PolicySource(path, Metrics())
    before = source.policy.hash
    if content is None:
        path.unlink()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with (
        caplog.at_level(logging.ERROR, logger="switchboard.policy"),
        pytest.raises((PolicyError, SettingsError)),
    ):
        source.reload()
    errors = _rejection(caplog).__dict__["errors"]
    assert isinstance(errors, list) and any(expected in line for line in errors), errors
    assert source.policy.hash == before
