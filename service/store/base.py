"""The conversation store interface: a small versioned head plus append-only turn records.

The store knows nothing about conversations' content. Per conversation id it
keeps a **head** (an opaque encoded blob with the conversation-level state, a
version number, the time of the last write, a ``closed`` flag and the number
of turns) and the **turn records** (one opaque blob per turn, by index, each
with the turn's client ``id`` if it had one and a digest of its content, so a
retry is recognised without reading the history).

Writers use optimistic concurrency on the head: ``append`` succeeds only if
the stored version still equals the version the writer read, and then writes
the new head and only the new turns in one atomic step; nothing proportional
to the history is read or written. The loser of a race re-reads and retries
(see ``service/conversations.py``). Idle conversations expire after ``ttl_s``
seconds without a write; ``purge_expired`` erases them and returns their ids
so the caller can run the same erase path as ``DELETE``. ``erase`` leaves a
**tombstone** for a while so that replayed events cannot re-create what the
customer asked us to forget.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol

import msgspec


class StoreError(Exception):
    """The store failed (I/O, connection, timeout). Mapped to 503 in ``service/problems.py``.

    ``retry_after_s`` (> 0) is how long the store is known to stay unavailable (an open
    circuit breaker); the message names the backend and the failure, never content.
    """

    def __init__(self, message: str, *, retry_after_s: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class VersionConflict(StoreError):
    """Another writer saved the conversation after we read it; re-read and retry."""


def tombstone_key(conversation_id: str) -> str:
    """What a tombstone stores instead of the erased id: a digest that answers "was this id
    erased?" without keeping the id itself."""
    return hashlib.blake2b(conversation_id.encode("utf-8"), digest_size=16).hexdigest()


class Head(msgspec.Struct, frozen=True):
    """A conversation's head: opaque ``data`` at ``version`` (1 = first write), ``turns`` stored."""

    data: bytes
    version: int
    updated_at: float
    closed: bool = False
    turns: int = 0


class NewTurn(msgspec.Struct, frozen=True):
    """A turn record to append: its index, client id (None when it had none), content digest, blob."""

    index: int
    turn_id: str | None
    digest: str
    data: bytes


class KnownTurn(msgspec.Struct, frozen=True):
    """A stored turn found by its client id."""

    index: int
    digest: str


class Legacy(msgspec.Struct, frozen=True):
    """A conversation stored by the first storage layout (one blob with every turn)."""

    data: bytes
    version: int
    updated_at: float
    closed: bool


class ConversationStore(Protocol):
    """Narrow interface implemented by the memory, SQLite and Redis stores."""

    ttl_s: float

    async def load_head(self, conversation_id: str) -> Head | None:
        """Return the head, or None if absent or expired."""
        ...

    async def live(self, conversation_ids: Sequence[str]) -> set[str]:
        """The ids among ``conversation_ids`` with a stored, unexpired head (one round trip)."""
        ...

    async def find_turns(self, conversation_id: str, turn_ids: Sequence[str]) -> dict[str, KnownTurn]:
        """The stored turns among ``turn_ids`` (client ids), by id; absent ids are left out."""
        ...

    async def load_for_append(
        self, conversation_id: str, turn_ids: Sequence[str]
    ) -> tuple[Head | None, dict[str, KnownTurn]]:
        """``load_head`` and ``find_turns`` in one round trip (what every append reads first);
        the turns are looked up only when the head exists."""
        ...

    async def load_turns(
        self, conversation_id: str, after: int = -1, limit: int | None = None
    ) -> list[bytes]:
        """Turn records with index > ``after``, in order, at most ``limit`` (None: all)."""
        ...

    async def append(
        self,
        conversation_id: str,
        head: bytes,
        turns: Sequence[NewTurn],
        *,
        expected_version: int,
        closed: bool = False,
        replace: Sequence[tuple[int, bytes]] = (),
        inline: bool = False,
    ) -> int:
        """Atomically: if the stored version is ``expected_version`` (0 = must not exist or be
        expired), write ``head``, add ``turns`` (whose indices continue the stored ones) and
        overwrite the records at the indices in ``replace`` (a late redaction).

        Returns the new version; raises ``VersionConflict`` otherwise. Refreshes the TTL.
        ``inline``: the caller has nothing else to do meanwhile (a lone append on an idle
        service); a store that hands its I/O to a thread may do it on the caller's instead.
        """
        ...

    async def erase(self, conversation_id: str, tombstone_s: float) -> bool:
        """Delete the head and every turn record; remember the id as erased for ``tombstone_s``
        seconds (0: no tombstone). True if something was erased."""
        ...

    async def erased(self, conversation_id: str) -> bool:
        """True while the id carries an unexpired erase tombstone."""
        ...

    async def closed_ids(self) -> list[str]:
        """Ids of stored, unexpired, closed conversations (for export)."""
        ...

    async def list_heads(self, limit: int, after: str | None = None) -> list[tuple[str, Head]]:
        """Unexpired heads (open and closed) with id > ``after`` (None: from the first), ordered by
        id, at most ``limit``: one page of the live conversations for the supervisor console.
        Reads only heads, never turns; page on with the last id returned."""
        ...

    async def purge_expired(self) -> list[str]:
        """Erase the conversations idle for longer than the TTL (no tombstone); return their ids."""
        ...

    async def legacy_ids(self) -> list[str]:
        """Ids still stored in the first layout (one blob per conversation), for migration."""
        ...

    async def load_legacy(self, conversation_id: str) -> Legacy | None:
        """The first-layout record of ``conversation_id``, if any."""
        ...

    async def drop_legacy(self, conversation_id: str) -> None:
        """Delete the first-layout record (after it was migrated)."""
        ...

    async def ping(self) -> None:
        """Raise ``StoreError`` if the store cannot be reached."""
        ...

    async def close(self) -> None:
        """Release connections; the store is unusable afterwards."""
        ...
