"""Shared store for several machines (``redis://host:port/db``).

Each conversation is one hash ``{prefix}conv:{id}`` with fields ``v`` (version),
``d`` (data), ``c`` (closed), ``u`` (updated at). The compare-and-set runs as a
Lua script, which Redis executes atomically, so two service processes that
append to one conversation at once never overwrite each other. Redis' own key
expiry implements the idle TTL.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit, urlunsplit

import redis.asyncio as redis_asyncio
from redis.exceptions import RedisError

from service.store.base import Record, StoreError, VersionConflict

T = TypeVar("T")

# KEYS[1] = hash key; ARGV = expected version, data, closed, updated_at, ttl seconds.
_CAS_SCRIPT = """
local current = redis.call('HGET', KEYS[1], 'v')
local expected = tonumber(ARGV[1])
if current == false then
  if expected ~= 0 then return -1 end
elseif tonumber(current) ~= expected then
  return -1
end
local version = expected + 1
redis.call('HSET', KEYS[1], 'v', version, 'd', ARGV[2], 'c', ARGV[3], 'u', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return version
"""


def split_prefix(url: str) -> tuple[str, str]:
    """Take an optional ``?prefix=...`` off the URL (key namespace; default ``switchboard:``)."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    prefix = query.pop("prefix", ["switchboard:"])[0]
    rest = "&".join(f"{key}={value}" for key, values in query.items() for value in values)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, rest, parts.fragment)), prefix


class RedisStore:
    """Conversation records in Redis hashes with atomic CAS and native expiry."""

    def __init__(self, url: str, ttl_s: float, clock: Callable[[], float] = time.time) -> None:
        clean_url, self.prefix = split_prefix(url)
        self.ttl_s = ttl_s
        self._clock = clock
        self._client: Any = redis_asyncio.from_url(clean_url, decode_responses=False)
        self._cas = self._client.register_script(_CAS_SCRIPT)

    def _key(self, conversation_id: str) -> str:
        return f"{self.prefix}conv:{conversation_id}"

    async def _call(self, awaitable: Awaitable[T]) -> T:
        try:
            return await awaitable
        except RedisError as exc:
            raise StoreError(f"redis store failed ({type(exc).__name__})") from exc

    async def load(self, conversation_id: str) -> Record | None:
        """Return the record or None (Redis has already dropped expired ones)."""
        fields = await self._call(self._client.hgetall(self._key(conversation_id)))
        if not fields or b"v" not in fields:
            return None
        return Record(
            data=bytes(fields[b"d"]),
            version=int(fields[b"v"]),
            updated_at=float(fields.get(b"u", b"0")),
            closed=fields.get(b"c", b"0") == b"1",
        )

    async def save(
        self, conversation_id: str, data: bytes, *, expected_version: int, closed: bool = False
    ) -> int:
        """Atomic compare-and-set via the Lua script; refreshes the key's TTL."""
        result = await self._call(
            self._cas(
                keys=[self._key(conversation_id)],
                args=[
                    expected_version,
                    data,
                    b"1" if closed else b"0",
                    repr(self._clock()),
                    max(1, int(self.ttl_s)),
                ],
            )
        )
        if int(result) < 0:
            raise VersionConflict(f"conversation changed since version {expected_version}")
        return int(result)

    async def delete(self, conversation_id: str) -> bool:
        """Erase the hash."""
        return int(await self._call(self._client.delete(self._key(conversation_id)))) > 0

    async def closed_ids(self) -> list[str]:
        """Scan this prefix for closed conversations (export is rare; SCAN does not block Redis)."""
        found: list[str] = []
        offset = len(self._key(""))
        try:
            async for key in self._client.scan_iter(match=self._key("*"), count=500):
                if await self._client.hget(key, "c") == b"1":
                    found.append(key.decode("utf-8")[offset:])
        except RedisError as exc:
            raise StoreError(f"redis store failed ({type(exc).__name__})") from exc
        return found

    async def purge_expired(self) -> int:
        """Nothing to do: Redis expires keys itself."""
        return 0

    async def ping(self) -> None:
        """PING the server."""
        await self._call(self._client.ping())

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()
