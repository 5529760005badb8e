"""The durable backend shared by the callback outbox and the webhook replay guard.

One URL picks it, by default the conversation store's own (``Settings.resolved_store_url``)
so a deployment has one place where state lives:

* ``sqlite:///path`` — the same file as the conversation store, in tables of its own;
* ``redis://…`` — the same Redis, under the store's key prefix;
* ``memory://`` — an in-memory SQLite database: nothing survives a restart, which is what
  someone who chose an in-memory store asked for.

``SWITCHBOARD_OUTBOX`` overrides the URL.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from service.errors import SettingsError, Unavailable
from service.store.sqlite import open_sqlite

if TYPE_CHECKING:
    from service.adapters.outbox_store import OutboxStore
    from service.adapters.replay_guard import NonceStore
    from service.settings import Settings

T = TypeVar("T")

log = logging.getLogger(__name__)


class BackendError(Unavailable):
    """The outbox / replay backend failed (I/O, connection); reported as 503, safe to retry."""

    title = "Adapter backend unavailable"
    slug = "adapter-backend-unavailable"


def resolve_backend_url(settings: Settings) -> str:
    """``SWITCHBOARD_OUTBOX`` if set, else the conversation store URL."""
    return settings.adapters.outbox_url or settings.resolved_store_url


class SqliteRunner:
    """One SQLite connection on one dedicated thread; the event loop awaits it.

    sqlite3 calls block and a connection must stay on its thread, so every call is sent
    to a single-thread executor. ``path=None`` opens a private in-memory database.
    """

    def __init__(self, path: Path | None, schema: str) -> None:
        self.path = path
        self._schema = schema
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="adapters-sqlite")
        self._conn: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            if self.path is None:
                # Autocommit: every statement is its own atomic transaction (claims are one UPDATE).
                conn = sqlite3.connect(":memory:", isolation_level=None)
                conn.executescript(self._schema)
            else:
                conn = open_sqlite(self.path, self._schema)
            self._conn = conn
        return self._conn

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` on the SQLite thread; wrap sqlite errors in ``BackendError``."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, lambda: fn(self._connection()))
        except sqlite3.Error as exc:
            raise BackendError(f"adapter sqlite backend failed ({type(exc).__name__})") from exc

    async def close(self) -> None:
        """Close the connection and stop the thread."""

        def shut() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, shut)
        self._executor.shutdown(wait=True)


@dataclass
class Backend:
    """The two stores built on one connection (SQLite) or one client (Redis)."""

    url: str
    outbox: OutboxStore
    nonces: NonceStore
    durable: bool
    _close: Callable[[], Any]

    async def close(self) -> None:
        """Release the connection / client."""
        await self._close()


def open_backend(url: str) -> Backend:
    """Open the backend named by ``url`` (no I/O until first use)."""
    from service.adapters.outbox_store import SCHEMA as OUTBOX_SCHEMA
    from service.adapters.outbox_store import RedisOutboxStore, SqliteOutboxStore
    from service.adapters.replay_guard import SCHEMA as NONCE_SCHEMA
    from service.adapters.replay_guard import RedisNonceStore, SqliteNonceStore

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
        runner = SqliteRunner(path, OUTBOX_SCHEMA + NONCE_SCHEMA)
        return Backend(
            url, SqliteOutboxStore(runner), SqliteNonceStore(runner), path is not None, runner.close
        )
    if url.startswith(("redis://", "rediss://", "unix://")):
        import redis.asyncio as redis_asyncio

        from service.store.redis import split_prefix

        clean_url, prefix = split_prefix(url)
        client: Any = redis_asyncio.from_url(clean_url, decode_responses=False)
        return Backend(
            url, RedisOutboxStore(client, prefix), RedisNonceStore(client, prefix), True, client.aclose
        )
    raise SettingsError(f"SWITCHBOARD_OUTBOX: unsupported URL {url!r} (memory://, sqlite:///path, redis://…)")
