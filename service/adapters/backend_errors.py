"""The error of the adapters' durable backend, and the translation into it.

A leaf below ``outbox_store``, ``replay_guard`` and ``backend`` (which re-exports it), so
the stores can raise it without importing the module that builds them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

from service.errors import Unavailable
from service.redis_conn import RedisStoreError, RedisUnavailable
from service.sqlite_runner import SqliteError


class BackendError(Unavailable):
    """The outbox / replay backend failed (I/O, connection); reported as 503, safe to retry."""

    title = "Adapter backend unavailable"
    slug = "adapter-backend-unavailable"


@contextmanager
def backend_errors() -> Iterator[None]:
    """Turn ``SqliteError`` / ``RedisStoreError`` raised inside the block into ``BackendError``.

    While the Redis circuit breaker is open the error carries ``Retry-After`` (whole seconds
    until the next probe), so a webhook sender that honours it does not retry into a wall.
    """
    try:
        yield
    except (SqliteError, RedisStoreError) as exc:
        headers: dict[str, str] = {}
        if isinstance(exc, RedisUnavailable) and exc.retry_after_s > 0:
            headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
        raise BackendError(f"adapter backend failed: {exc}", headers=headers) from exc
