"""Conversation stores behind one interface; ``open_store(url, ttl_s)`` picks one by URL scheme."""

from __future__ import annotations

from pathlib import Path

from service.errors import SettingsError
from service.store.base import ConversationStore, Head, KnownTurn, NewTurn, StoreError, VersionConflict

__all__ = ["ConversationStore", "Head", "KnownTurn", "NewTurn", "StoreError", "VersionConflict", "open_store"]


def open_store(url: str, ttl_s: float) -> ConversationStore:
    """Return the store for ``memory://``, ``sqlite:///path`` or ``redis://host:port/db``."""
    if url.startswith("memory://"):
        from service.store.memory import MemoryStore

        return MemoryStore(ttl_s)
    if url.startswith("sqlite:///"):
        from service.store.sqlite import SQLiteStore

        path = url.removeprefix("sqlite:///")
        if not path:
            raise SettingsError(
                "SWITCHBOARD_STORE sqlite URL needs a path: sqlite:///var/switchboard.sqlite3"
            )
        # sqlite:///relative/path and sqlite:////absolute/path, as in SQLAlchemy.
        return SQLiteStore(Path(path), ttl_s)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from service.store.redis import RedisStore

        return RedisStore(url, ttl_s)
    raise SettingsError(f"SWITCHBOARD_STORE: unsupported store URL {url!r}")
