"""The error of the adapters' durable backend, and the translation into it.

A leaf below ``outbox_store``, ``replay_guard`` and ``backend`` (which re-exports it), so
the stores can raise it without importing the module that builds them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from service.redis_conn import RedisStoreError, RedisUnavailable
from service.sqlite_runner import SqliteError
from service.store.base import StoreError


class BackendError(StoreError):
    """The outbox / replay backend failed (I/O, connection); a storage error like the
    conversation store's, so ``service/problems.py`` reports it as 503 (safe to retry)."""


@contextmanager
def backend_errors() -> Iterator[None]:
    """Turn ``SqliteError`` / ``RedisStoreError`` raised inside the block into ``BackendError``.

    While the Redis circuit breaker is open the error carries ``Retry-After`` (whole seconds
    until the next probe), so a webhook sender that honours it does not retry into a wall.
    """
    try:
        yield
    except (SqliteError, RedisStoreError) as exc:
        retry_after_s = exc.retry_after_s if isinstance(exc, RedisUnavailable) else 0.0
        raise BackendError(f"adapter backend failed: {exc}", retry_after_s=retry_after_s) from exc
