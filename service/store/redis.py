"""Shared store for several machines (``redis://host:port/db``).

Per conversation: a hash ``{prefix}head:{id}`` (``v`` version, ``d`` head
data, ``c`` closed, ``u`` updated at, ``n`` turn count), a list
``{prefix}turns:{id}`` with one element per turn, and a hash
``{prefix}tids:{id}`` from client turn id to ``index:digest``. The append is
one Lua script, which Redis executes atomically: compare the version, push the
new turns, update the head, refresh the TTL of the three keys. Its cost does
not depend on how many turns are stored. Redis' key expiry implements the idle
TTL; the sorted set ``{prefix}expiry`` remembers when each conversation falls
due so that ``purge_expired`` can report the expired ids to the erase path.
An erased id leaves ``{prefix}tomb:{digest of the id}`` for the tombstone's lifetime.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, TypeVar

from service.redis_conn import RedisStoreError, RedisUnavailable, open_redis
from service.store.base import Head, KnownTurn, Legacy, NewTurn, StoreError, VersionConflict, tombstone_key

T = TypeVar("T")

# KEYS: head, turns, tids, expiry. ARGV: expected version, head data, closed, updated_at, ttl s,
# conversation id, number of new turns, number of replacements, then (tid, digest, data) per new
# turn (tid is "=" + id, or "" when the turn had none), then (index, data) per replacement.
_APPEND_SCRIPT = """
local current = redis.call('HGET', KEYS[1], 'v')
local expected = tonumber(ARGV[1])
local count = 0
if current == false then
  if expected ~= 0 then return -1 end
  redis.call('DEL', KEYS[2], KEYS[3])
else
  if tonumber(current) ~= expected then return -1 end
  count = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
end
local n = tonumber(ARGV[7])
local r = tonumber(ARGV[8])
local base = 9
for i = 0, n - 1 do
  local tid = ARGV[base + 3 * i]
  redis.call('RPUSH', KEYS[2], ARGV[base + 3 * i + 2])
  if tid ~= '' then
    redis.call('HSET', KEYS[3], string.sub(tid, 2), tostring(count + i) .. ':' .. ARGV[base + 3 * i + 1])
  end
end
local rbase = base + 3 * n
for j = 0, r - 1 do
  redis.call('LSET', KEYS[2], tonumber(ARGV[rbase + 2 * j]), ARGV[rbase + 2 * j + 1])
end
local version = expected + 1
redis.call('HSET', KEYS[1], 'v', version, 'd', ARGV[2], 'c', ARGV[3], 'u', ARGV[4], 'n', count + n)
local ttl = tonumber(ARGV[5])
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
redis.call('EXPIRE', KEYS[3], ttl)
redis.call('ZADD', KEYS[4], tonumber(ARGV[4]) + ttl, ARGV[6])
return version
"""


class RedisStore:
    """Conversation heads, turn lists and turn-id indexes in Redis, with atomic CAS and native expiry."""

    def __init__(self, url: str, ttl_s: float, clock: Callable[[], float] = time.time) -> None:
        self._conn = open_redis(url)
        self.prefix = self._conn.prefix
        self.ttl_s = ttl_s
        self._clock = clock
        self._client: Any = self._conn.client  # for what does no I/O (and tests' inspection)
        self._append = self._client.register_script(_APPEND_SCRIPT)

    def _key(self, kind: str, conversation_id: str) -> str:
        return f"{self.prefix}{kind}:{conversation_id}"

    async def _call(self, op: Callable[[Any], Awaitable[T]]) -> T:
        """One Redis call with the connection's deadline and circuit breaker."""
        try:
            return await self._conn.call(op)
        except RedisUnavailable as exc:
            raise StoreError(str(exc), retry_after_s=exc.retry_after_s) from exc
        except RedisStoreError as exc:
            raise StoreError(str(exc)) from exc

    async def load_head(self, conversation_id: str) -> Head | None:
        """Return the head or None (Redis has already dropped expired ones)."""
        return _parse_head(await self._call(lambda c: c.hgetall(self._key("head", conversation_id))))

    async def live(self, conversation_ids: Sequence[str]) -> set[str]:
        """One pipelined EXISTS per head key (Redis has already dropped expired ones)."""
        ids = list(dict.fromkeys(conversation_ids))
        if not ids:
            return set()

        async def op(c: Any) -> list[Any]:
            async with c.pipeline(transaction=False) as pipe:
                for cid in ids:
                    pipe.exists(self._key("head", cid))
                return list(await pipe.execute())

        return {cid for cid, exists in zip(ids, await self._call(op), strict=True) if int(exists)}

    async def find_turns(self, conversation_id: str, turn_ids: Sequence[str]) -> dict[str, KnownTurn]:
        """One HMGET on the turn-id index."""
        ids = list(dict.fromkeys(turn_ids))
        if not ids:
            return {}
        return _parse_known(ids, await self._call(lambda c: c.hmget(self._key("tids", conversation_id), ids)))

    async def load_for_append(
        self, conversation_id: str, turn_ids: Sequence[str]
    ) -> tuple[Head | None, dict[str, KnownTurn]]:
        """HGETALL of the head and HMGET of the turn ids in one pipelined round trip."""
        ids = list(dict.fromkeys(turn_ids))

        async def op(c: Any) -> list[Any]:
            async with c.pipeline(transaction=False) as pipe:
                pipe.hgetall(self._key("head", conversation_id))
                if ids:
                    pipe.hmget(self._key("tids", conversation_id), ids)
                return list(await pipe.execute())

        results = await self._call(op)
        head = _parse_head(results[0])
        known = _parse_known(ids, results[1]) if ids and head is not None else {}
        return head, known

    async def load_turns(
        self, conversation_id: str, after: int = -1, limit: int | None = None
    ) -> list[bytes]:
        """LRANGE of the turn list."""
        start = max(after + 1, 0)
        stop = -1 if limit is None else start + limit - 1
        if limit is not None and limit <= 0:
            return []
        items = await self._call(lambda c: c.lrange(self._key("turns", conversation_id), start, stop))
        return [bytes(item) for item in items]

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
        """Atomic compare-and-set and append via the Lua script; refreshes the keys' TTL."""
        args: list[Any] = [
            expected_version,
            head,
            b"1" if closed else b"0",
            repr(self._clock()),
            max(1, int(self.ttl_s)),
            conversation_id,
            len(turns),
            len(replace),
        ]
        for turn in turns:
            args += ["" if turn.turn_id is None else "=" + turn.turn_id, turn.digest, turn.data]
        for index, data in replace:
            args += [index, data]
        keys = [self._key(kind, conversation_id) for kind in ("head", "turns", "tids")]
        keys.append(f"{self.prefix}expiry")
        result = await self._call(lambda c: self._append(keys=keys, args=args, client=c))
        if int(result) < 0:
            raise VersionConflict(f"conversation changed since version {expected_version}")
        return int(result)

    async def erase(self, conversation_id: str, tombstone_s: float) -> bool:
        """Delete every key of the conversation and set the tombstone, in one MULTI/EXEC."""
        keys = [self._key(kind, conversation_id) for kind in ("head", "turns", "tids", "conv")]

        async def op(c: Any) -> list[Any]:
            async with c.pipeline(transaction=True) as pipe:
                pipe.delete(*keys)
                pipe.zrem(f"{self.prefix}expiry", conversation_id)
                if tombstone_s > 0:
                    pipe.set(
                        self._key("tomb", tombstone_key(conversation_id)),
                        b"1",
                        px=max(1, int(tombstone_s * 1000)),
                    )
                return list(await pipe.execute())

        results = await self._call(op)
        return int(results[0]) > 0

    async def erased(self, conversation_id: str) -> bool:
        """Does the tombstone key exist?"""
        return (
            int(await self._call(lambda c: c.exists(self._key("tomb", tombstone_key(conversation_id))))) > 0
        )

    async def _scan(self, kind: str) -> list[str]:
        """Every id with a ``kind`` key, one SCAN page per guarded call (each within the deadline)."""
        found: list[str] = []
        offset = len(self._key(kind, ""))
        cursor: int = 0
        while True:
            cursor, keys = await self._call(partial(_scan_page, cursor=cursor, match=self._key(kind, "*")))
            found.extend(bytes(key).decode("utf-8")[offset:] for key in keys)
            if int(cursor) == 0:
                return found

    async def closed_ids(self) -> list[str]:
        """Scan the heads for closed conversations (export is rare; SCAN does not block Redis)."""
        found = []
        for cid in await self._scan("head"):
            if await self._call(partial(_hget, key=self._key("head", cid), field="c")) == b"1":
                found.append(cid)
        return found

    async def list_heads(self, limit: int, after: str | None = None) -> list[tuple[str, Head]]:
        """Live heads with id > ``after``, by id, at most ``limit``.

        The ids come from the expiry index (members are ids, scores their expiry), so no key
        SCAN: one ZRANGEBYSCORE of the unexpired ids, sorted here, then one pipelined HGETALL per
        head of the page. A head that expired or was erased in between is left out."""
        now = self._clock()
        raw = await self._call(lambda c: c.zrangebyscore(f"{self.prefix}expiry", f"({now}", "+inf"))
        ids = sorted(bytes(member).decode("utf-8") for member in raw)
        page_ids = [cid for cid in ids if after is None or cid > after][: max(0, limit)]
        if not page_ids:
            return []

        async def op(c: Any) -> list[Any]:
            async with c.pipeline(transaction=False) as pipe:
                for cid in page_ids:
                    pipe.hgetall(self._key("head", cid))
                return list(await pipe.execute())

        fields = await self._call(op)
        page: list[tuple[str, Head]] = []
        for cid, found in zip(page_ids, fields, strict=True):
            head = _parse_head(found)
            if head is not None:
                page.append((cid, head))
        return page

    async def purge_expired(self) -> list[str]:
        """Ids whose keys Redis has expired (from the expiry index); clears any leftovers."""
        now = self._clock()
        due = await self._call(lambda c: c.zrangebyscore(f"{self.prefix}expiry", "-inf", now))
        expired: list[str] = []
        for raw in due:
            cid = bytes(raw).decode("utf-8")
            # A conversation written again since stays (its score moved); the check keeps a race safe.
            if await self._call(partial(_exists, key=self._key("head", cid))):
                continue
            leftovers = [self._key("turns", cid), self._key("tids", cid)]
            await self._call(partial(_forget, keys=leftovers, index=f"{self.prefix}expiry", member=cid))
            expired.append(cid)
        return expired

    async def legacy_ids(self) -> list[str]:
        """Conversations in the first layout (``{prefix}conv:{id}`` hashes)."""
        return await self._scan("conv")

    async def load_legacy(self, conversation_id: str) -> Legacy | None:
        """The first-layout hash."""
        fields = await self._call(lambda c: c.hgetall(self._key("conv", conversation_id)))
        if not fields or b"v" not in fields:
            return None
        return Legacy(
            data=bytes(fields[b"d"]),
            version=int(fields[b"v"]),
            updated_at=float(fields.get(b"u", b"0")),
            closed=fields.get(b"c", b"0") == b"1",
        )

    async def drop_legacy(self, conversation_id: str) -> None:
        """Delete the first-layout hash."""
        await self._call(lambda c: c.delete(self._key("conv", conversation_id)))

    async def ping(self) -> None:
        """PING the server."""
        await self._call(lambda c: c.ping())

    async def close(self) -> None:
        """Close the connection pool."""
        await self._conn.aclose()


def _parse_head(fields: dict[bytes, bytes] | None) -> Head | None:
    if not fields or b"v" not in fields:
        return None
    return Head(
        data=bytes(fields[b"d"]),
        version=int(fields[b"v"]),
        updated_at=float(fields.get(b"u", b"0")),
        closed=fields.get(b"c", b"0") == b"1",
        turns=int(fields.get(b"n", b"0")),
    )


def _parse_known(ids: list[str], values: list[bytes | None]) -> dict[str, KnownTurn]:
    found: dict[str, KnownTurn] = {}
    for tid, value in zip(ids, values, strict=True):
        if value is not None:
            index, _, digest = bytes(value).decode("ascii").partition(":")
            found[tid] = KnownTurn(index=int(index), digest=digest)
    return found


# Module-level steps for calls made in a loop (a lambda there would capture the loop variable).
async def _scan_page(client: Any, *, cursor: int, match: str) -> tuple[int, list[bytes]]:
    next_cursor, keys = await client.scan(cursor=cursor, match=match, count=500)
    return int(next_cursor), list(keys)


async def _hget(client: Any, *, key: str, field: str) -> bytes | None:
    value: bytes | None = await client.hget(key, field)
    return value


async def _exists(client: Any, *, key: str) -> bool:
    return int(await client.exists(key)) > 0


async def _forget(client: Any, *, keys: list[str], index: str, member: str) -> None:
    await client.delete(*keys)
    await client.zrem(index, member)
