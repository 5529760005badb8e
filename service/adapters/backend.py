"""The durable backend shared by the callback outbox and the webhook replay guard.

One URL picks it, by default the conversation store's own (``Settings.resolved_store_url``)
so a deployment has one place where state lives:

* ``sqlite:///path`` — the same file as the conversation store, in tables of its own;
* ``redis://…`` — the same Redis, under the store's key prefix (``?prefix=``), through
  ``service.redis_conn.open_redis`` (timeouts and circuit breaker);
* ``memory://`` — an in-memory SQLite database: nothing survives a restart, which is what
  someone who chose an in-memory store asked for.

``SWITCHBOARD_OUTBOX`` overrides the URL. Every store failure is a ``BackendError`` (503).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from service.adapters.backend_errors import BackendError
from service.adapters.outbox_store import SCHEMA as OUTBOX_SCHEMA
from service.adapters.outbox_store import OutboxStore, RedisOutboxStore, SqliteOutboxStore
from service.adapters.replay_guard import SCHEMA as NONCE_SCHEMA
from service.adapters.replay_guard import NonceStore, RedisNonceStore, SqliteNonceStore
from service.errors import SettingsError
from service.redis_conn import open_redis
from service.sqlite_runner import SqliteRunner

if TYPE_CHECKING:
    from service.settings import Settings

__all__ = ["Backend", "BackendError", "open_backend", "resolve_backend_url"]

log = logging.getLogger("switchboard.adapters.backend")


def resolve_backend_url(settings: Settings) -> str:
    """``SWITCHBOARD_OUTBOX`` if set, else the conversation store URL."""
    return settings.adapters.outbox_url or settings.resolved_store_url


@dataclass
class Backend:
    """The two stores built on one connection (SQLite) or one client (Redis)."""

    url: str
    outbox: OutboxStore
    nonces: NonceStore
    durable: bool
    _close: Callable[[], Awaitable[None]]

    async def close(self) -> None:
        """Release the connection / client."""
        await self._close()


def open_backend(url: str) -> Backend:
    """Open the backend named by ``url`` (no I/O until first use).

    Raises ``SettingsError`` naming ``SWITCHBOARD_OUTBOX`` for an unsupported or
    incomplete URL.
    """
    if url.startswith(("memory://", "sqlite:///")):
        path: Path | None = None
        if url.startswith("sqlite:///"):
            raw = url.removeprefix("sqlite:///")
            if not raw:
                raise SettingsError(
                    "SWITCHBOARD_OUTBOX sqlite URL needs a path: sqlite:///var/switchboard.sqlite3"
                )
            path = Path(raw)
        else:
            log.warning(
                "callback outbox is in memory (memory:// store): pending callbacks do not survive a restart"
            )
        runner = SqliteRunner(path, OUTBOX_SCHEMA + NONCE_SCHEMA, thread_name="adapters-sqlite")
        return Backend(
            url, SqliteOutboxStore(runner), SqliteNonceStore(runner), path is not None, runner.close
        )
    if url.startswith(("redis://", "rediss://", "unix://")):
        conn = open_redis(url)
        return Backend(
            url,
            RedisOutboxStore(conn, conn.prefix),
            RedisNonceStore(conn, conn.prefix),
            True,
            conn.aclose,
        )
    raise SettingsError(f"SWITCHBOARD_OUTBOX: unsupported URL {url!r} (memory://, sqlite:///path, redis://…)")
