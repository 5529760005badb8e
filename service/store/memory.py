"""In-process store (``memory://``): for tests and single-process experiments.

All methods run on the event loop without awaiting, so each is atomic with
respect to other coroutines; compare-and-set needs no lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from service.store.base import Record, VersionConflict


class MemoryStore:
    """A dict of records with TTL; nothing survives the process."""

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.time) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._records: dict[str, Record] = {}

    def _live(self, conversation_id: str) -> Record | None:
        record = self._records.get(conversation_id)
        if record is not None and record.updated_at + self.ttl_s <= self._clock():
            del self._records[conversation_id]
            return None
        return record

    async def load(self, conversation_id: str) -> Record | None:
        """Return the live record or None."""
        return self._live(conversation_id)

    async def save(
        self, conversation_id: str, data: bytes, *, expected_version: int, closed: bool = False
    ) -> int:
        """Compare-and-set on the version; see ``ConversationStore.save``."""
        current = self._live(conversation_id)
        current_version = 0 if current is None else current.version
        if current_version != expected_version:
            raise VersionConflict(f"version is {current_version}, expected {expected_version}")
        version = expected_version + 1
        self._records[conversation_id] = Record(
            data=data, version=version, updated_at=self._clock(), closed=closed
        )
        return version

    async def delete(self, conversation_id: str) -> bool:
        """Forget the record."""
        return self._records.pop(conversation_id, None) is not None

    async def closed_ids(self) -> list[str]:
        """Ids of live closed records."""
        return [cid for cid in list(self._records) if (rec := self._live(cid)) is not None and rec.closed]

    async def purge_expired(self) -> int:
        """Drop expired records."""
        before = len(self._records)
        for cid in list(self._records):
            self._live(cid)
        return before - len(self._records)

    async def ping(self) -> None:
        """Always reachable."""

    async def close(self) -> None:
        """Drop everything."""
        self._records.clear()
