"""Choosing the outbox / replay backend from the settings."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from service.adapters.backend import BackendError, open_backend, resolve_backend_url
from service.adapters.outbox_store import RedisOutboxStore, SqliteOutboxStore
from service.errors import SettingsError
from service.problems import to_service_error
from service.redis_conn import RedisUnavailable
from service.settings import Settings
from service.sqlite_runner import SqliteError


def _settings(tmp_path: Path, **env: str) -> Settings:
    base = {"SWITCHBOARD_AUTH_DISABLED": "true", "SWITCHBOARD_DATA_DIR": str(tmp_path)}
    return Settings.from_env(base | {f"SWITCHBOARD_{k}": v for k, v in env.items()})


def test_default_is_the_conversation_store_file(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert resolve_backend_url(settings) == f"sqlite:///{tmp_path / 'switchboard.sqlite3'}"
    assert resolve_backend_url(_settings(tmp_path, STORE="redis://r:6379/2")) == "redis://r:6379/2"
    assert resolve_backend_url(_settings(tmp_path, OUTBOX="sqlite:///other.db")) == "sqlite:///other.db"


async def test_open_each_kind(tmp_path: Path) -> None:
    sqlite = open_backend(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    assert isinstance(sqlite.outbox, SqliteOutboxStore) and sqlite.durable
    memory = open_backend("memory://")
    assert isinstance(memory.outbox, SqliteOutboxStore) and not memory.durable
    redis = open_backend("redis://127.0.0.1:6379/0?prefix=t:")
    assert isinstance(redis.outbox, RedisOutboxStore) and redis.durable
    for backend in (sqlite, memory, redis):
        await backend.close()
    assert (tmp_path / "x.sqlite3").exists() is False  # nothing touched the file: opening is lazy


def test_bad_urls_name_the_variable() -> None:
    with pytest.raises(SettingsError, match="SWITCHBOARD_OUTBOX"):
        open_backend("postgres://x")
    with pytest.raises(SettingsError, match="needs a path"):
        open_backend("sqlite:///")


async def test_sqlite_failures_become_backend_errors(tmp_path: Path) -> None:
    (tmp_path / "dir.sqlite3").mkdir()  # a directory where the file should be
    backend = open_backend(f"sqlite:///{tmp_path / 'dir.sqlite3'}")
    with pytest.raises(BackendError) as caught:
        await backend.nonces.claim("k", 60)
    assert to_service_error(caught.value).status == 503 and isinstance(caught.value.__cause__, SqliteError)
    with pytest.raises(BackendError):
        await backend.outbox.counts()
    await backend.close()


async def test_unreachable_redis_becomes_a_backend_error_then_fails_fast() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        backend = open_backend(f"redis://127.0.0.1:{sock.getsockname()[1]}/0")
        for _ in range(3):  # the breaker's default threshold
            with pytest.raises(BackendError) as caught:
                await backend.nonces.seen("k")
            assert to_service_error(caught.value).headers["Retry-After"] == "1"  # Unavailable's default
        with pytest.raises(BackendError) as caught:
            await backend.outbox.next_due()
    problem = to_service_error(caught.value)
    assert problem.status == 503 and isinstance(caught.value.__cause__, RedisUnavailable)
    assert problem.headers["Retry-After"] == "5"  # open: try again after the cool-down
    await backend.close()
