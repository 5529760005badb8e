"""In-process store (``memory://``): for tests and single-process experiments.

All methods run on the event loop without awaiting, so each is atomic with
respect to other coroutines; compare-and-set needs no lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from service.store.base import Head, KnownTurn, Legacy, NewTurn, VersionConflict, tombstone_key


@dataclass
class _Conversation:
    head: Head
    turns: list[bytes] = field(default_factory=list)
    ids: dict[str, KnownTurn] = field(default_factory=dict)


class MemoryStore:
    """Heads and turn lists in dicts, with TTL and tombstones; nothing survives the process."""

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.time) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._conversations: dict[str, _Conversation] = {}
        self._tombstones: dict[str, float] = {}

    def _live(self, conversation_id: str) -> _Conversation | None:
        conversation = self._conversations.get(conversation_id)
        if conversation is not None and conversation.head.updated_at + self.ttl_s <= self._clock():
            return None
        return conversation

    async def load_head(self, conversation_id: str) -> Head | None:
        """Return the live head or None."""
        conversation = self._live(conversation_id)
        return None if conversation is None else conversation.head

    async def live(self, conversation_ids: Sequence[str]) -> set[str]:
        """The ids with a live head."""
        return {cid for cid in conversation_ids if self._live(cid) is not None}

    async def find_turns(self, conversation_id: str, turn_ids: Sequence[str]) -> dict[str, KnownTurn]:
        """Stored turns among ``turn_ids``."""
        conversation = self._live(conversation_id)
        if conversation is None:
            return {}
        return {tid: conversation.ids[tid] for tid in turn_ids if tid in conversation.ids}

    async def load_for_append(
        self, conversation_id: str, turn_ids: Sequence[str]
    ) -> tuple[Head | None, dict[str, KnownTurn]]:
        """Head and known turn ids."""
        head = await self.load_head(conversation_id)
        return head, (await self.find_turns(conversation_id, turn_ids) if head is not None else {})

    async def load_turns(
        self, conversation_id: str, after: int = -1, limit: int | None = None
    ) -> list[bytes]:
        """Turn records after ``after``."""
        conversation = self._live(conversation_id)
        if conversation is None:
            return []
        start = max(after + 1, 0)
        return list(conversation.turns[start : None if limit is None else start + limit])

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
        """Compare-and-set on the head's version; see ``ConversationStore.append``."""
        current = self._live(conversation_id)
        current_version = 0 if current is None else current.head.version
        if current_version != expected_version:
            raise VersionConflict(f"version is {current_version}, expected {expected_version}")
        conversation = current if current is not None else _Conversation(head=Head(b"", 0, 0.0))
        for index, data in replace:
            conversation.turns[index] = data
        for turn in turns:
            conversation.turns.append(turn.data)
            if turn.turn_id is not None:
                conversation.ids[turn.turn_id] = KnownTurn(index=turn.index, digest=turn.digest)
        conversation.head = Head(
            data=head,
            version=expected_version + 1,
            updated_at=self._clock(),
            closed=closed,
            turns=len(conversation.turns),
        )
        self._conversations[conversation_id] = conversation
        return expected_version + 1

    async def erase(self, conversation_id: str, tombstone_s: float) -> bool:
        """Forget the conversation; keep a tombstone."""
        if tombstone_s > 0:
            self._tombstones[tombstone_key(conversation_id)] = self._clock() + tombstone_s
        return self._conversations.pop(conversation_id, None) is not None

    async def erased(self, conversation_id: str) -> bool:
        """Unexpired tombstone?"""
        key = tombstone_key(conversation_id)
        until = self._tombstones.get(key)
        if until is not None and until <= self._clock():
            del self._tombstones[key]
            return False
        return until is not None

    async def closed_ids(self) -> list[str]:
        """Ids of live closed conversations."""
        return [
            cid
            for cid in list(self._conversations)
            if (conv := self._live(cid)) is not None and conv.head.closed
        ]

    async def list_heads(self, limit: int, after: str | None = None) -> list[tuple[str, Head]]:
        """Live heads with id > ``after``, by id, at most ``limit``."""
        ids = sorted(cid for cid in self._conversations if after is None or cid > after)
        page: list[tuple[str, Head]] = []
        for cid in ids:
            if len(page) >= limit:
                break
            if (conversation := self._live(cid)) is not None:
                page.append((cid, conversation.head))
        return page

    async def purge_expired(self) -> list[str]:
        """Drop expired conversations and tombstones."""
        expired = [cid for cid in list(self._conversations) if self._live(cid) is None]
        for cid in expired:
            del self._conversations[cid]
        now = self._clock()
        for cid, until in list(self._tombstones.items()):
            if until <= now:
                del self._tombstones[cid]
        return expired

    async def legacy_ids(self) -> list[str]:
        """The memory store never held the first layout."""
        return []

    async def load_legacy(self, conversation_id: str) -> Legacy | None:
        """Never any."""
        return None

    async def drop_legacy(self, conversation_id: str) -> None:
        """Nothing to drop."""

    async def ping(self) -> None:
        """Always reachable."""

    async def close(self) -> None:
        """Drop everything."""
        self._conversations.clear()
        self._tombstones.clear()
