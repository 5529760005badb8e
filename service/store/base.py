"""The conversation store interface: versioned blobs with compare-and-set.

The store knows nothing about conversations' content: it keeps, per id, an
opaque encoded state, a version number, the time of the last write and a
``closed`` flag. Writers use optimistic concurrency: ``save`` succeeds only if
the stored version still equals the version the writer read, so two processes
(or machines) appending to one conversation never overwrite each other; the
loser re-reads and retries (see ``service/conversations.py``). Idle records
expire after ``ttl_s`` seconds without a write.
"""

from __future__ import annotations

from typing import Protocol

import msgspec

from service.errors import Unavailable


class StoreError(Unavailable):
    """The store failed (I/O, connection). Reported as 503; the request may be retried."""

    title = "Store unavailable"
    slug = "store-unavailable"


class VersionConflict(StoreError):
    """Another writer saved the record after we read it; re-read and retry."""


class Record(msgspec.Struct, frozen=True):
    """One stored conversation: opaque ``data`` at ``version`` (1 = first write)."""

    data: bytes
    version: int
    updated_at: float
    closed: bool = False


class ConversationStore(Protocol):
    """Narrow interface implemented by the memory, SQLite and Redis stores."""

    ttl_s: float

    async def load(self, conversation_id: str) -> Record | None:
        """Return the record, or None if absent or expired."""
        ...

    async def save(
        self, conversation_id: str, data: bytes, *, expected_version: int, closed: bool = False
    ) -> int:
        """Write ``data`` if the stored version is ``expected_version`` (0 = must not exist).

        Returns the new version; raises ``VersionConflict`` otherwise. Refreshes the TTL.
        """
        ...

    async def delete(self, conversation_id: str) -> bool:
        """Erase the record; True if something was erased."""
        ...

    async def closed_ids(self) -> list[str]:
        """Ids of stored, unexpired, closed conversations (for export)."""
        ...

    async def purge_expired(self) -> int:
        """Delete expired records now; returns how many (Redis expires natively: 0)."""
        ...

    async def ping(self) -> None:
        """Raise ``StoreError`` if the store cannot be reached."""
        ...

    async def close(self) -> None:
        """Release connections; the store is unusable afterwards."""
        ...
