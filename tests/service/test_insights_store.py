"""The insights counter store on real SQLite and real Redis: deltas, idempotence, replicas."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import msgspec
import pytest

from routing.insights import DIMENSIONS, Facts, Outcome, add_counts, cells
from service.insights import (
    InsightsStore,
    Member,
    RedisInsights,
    SqliteInsights,
    Update,
    open_insights,
    outcome_update,
    state_update,
)

HOUR = 3600
BASE = 1_700_000_000 // HOUR * HOUR


def facts(**changes: object) -> Facts:
    base = Facts(bucket=BASE, queue="bot", category="billing", variant="exp/a", route="self_serve_bot")
    return msgspec.structs.replace(base, **changes)


@pytest.fixture(params=["sqlite", "redis"])
async def make_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Callable[[], InsightsStore]]:
    """A factory of stores sharing one backend (one SQLite file, or one Redis prefix)."""
    opened: list[InsightsStore] = []
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'switchboard.sqlite3'}"
    else:
        url = request.getfixturevalue("redis_url")

    def make() -> InsightsStore:
        store = open_insights(url)
        opened.append(store)
        return store

    yield make
    for store in opened:
        if isinstance(store, RedisInsights):  # leave nothing behind in the shared server
            keys = [key async for key in store._conn.client.scan_iter(match=f"{store.prefix}*")]
            if keys:
                await store._conn.client.delete(*keys)
        await store.close()


async def snapshot(store: InsightsStore) -> dict[str, dict[str, dict[str, int]]]:
    return {dim: await store.groups(dim, BASE - 48 * HOUR, BASE + 48 * HOUR) for dim in DIMENSIONS}


def expected(members: list[Member]) -> dict[str, dict[str, dict[str, int]]]:
    out: dict[str, dict[str, dict[str, int]]] = {dim: {} for dim in DIMENSIONS}
    for member in members:
        for (dim, value, metric), n in cells(member.facts, member.outcome).items():
            add_counts(out[dim], [(value, metric, n)])
    return out


def test_open_insights_picks_the_backend(tmp_path: Path) -> None:
    assert isinstance(open_insights("memory://"), SqliteInsights)
    assert isinstance(open_insights(f"sqlite:///{tmp_path / 'x.sqlite3'}"), SqliteInsights)
    assert isinstance(open_insights("redis://127.0.0.1:1/0?prefix=t:"), RedisInsights)


async def test_counters_follow_state_and_outcome(make_store: Callable[[], InsightsStore]) -> None:
    store = make_store()
    await store.update("c1", state_update(1, facts()))
    groups = await store.groups("queue", BASE, BASE)
    assert groups == {"bot": {"conversations": 1, "reason:billing": 1, "bot": 1}}

    moved = facts(queue="billing", route="specialist", cause="rule:vip")
    await store.update("c1", state_update(2, moved))
    assert set(await store.groups("queue", BASE, BASE)) == {"billing"}  # left the bot queue entirely

    resolved = Outcome(resolved=True, csat=4, labels=["refund"])
    await store.update("c1", outcome_update(2, moved, resolved))
    after_outcome = await snapshot(store)
    assert after_outcome["all"]["*"]["resolved"] == 1 and after_outcome["all"]["*"]["csat_sum"] == 4

    await store.update("c1", outcome_update(2, moved, resolved))  # the same outcome again: no change
    assert await snapshot(store) == after_outcome

    await store.update("c1", outcome_update(2, moved, Outcome(abandoned=True, csat=2)))  # replaced
    replaced = await snapshot(store)
    assert "resolved" not in replaced["all"]["*"] and replaced["all"]["*"]["abandoned"] == 1
    assert replaced["all"]["*"]["csat_sum"] == 2 and replaced["all"]["*"]["outcomes"] == 1

    await store.update("c1", state_update(1, facts()))  # a stale head (older version): ignored
    assert await snapshot(store) == replaced
    member = await store.member("c1")
    assert member is not None and member.version == 2 and member.outcome == Outcome(abandoned=True, csat=2)

    await store.update("c1", state_update(3, msgspec.structs.replace(moved, closed=True)))  # keeps outcome
    assert (await snapshot(store))["all"]["*"]["closed"] == 1
    assert (await snapshot(store))["all"]["*"]["abandoned"] == 1

    await store.forget("c1")  # erasure: the member and its outcome go, the anonymous counts stay
    assert await store.member("c1") is None
    assert (await snapshot(store))["all"]["*"]["conversations"] == 1


async def test_window_sums_only_its_buckets(make_store: Callable[[], InsightsStore]) -> None:
    store = make_store()
    for hours_ago in range(5):
        await store.update(f"c{hours_ago}", state_update(1, facts(bucket=BASE - hours_ago * HOUR)))
    assert (await store.groups("all", BASE - 2 * HOUR, BASE))["*"]["conversations"] == 3
    assert (await store.groups("all", BASE - 4 * HOUR, BASE))["*"]["conversations"] == 5
    assert await store.groups("all", BASE + HOUR, BASE + 5 * HOUR) == {}


async def test_two_replicas_sharing_the_backend_agree(make_store: Callable[[], InsightsStore]) -> None:
    """Two store instances (as in two service processes) update the same conversations
    concurrently, out of order too; both read identical aggregates, equal to the sum of every
    conversation's final contribution."""
    left, right = make_store(), make_store()
    rng = random.Random(7)
    queues, reasons, arms = ["bot", "billing", "general"], ["billing", "tech", "orders"], ["exp/a", "exp/b"]
    finals: list[Member] = []
    updates = []
    for i in range(120):
        conversation = f"conv-{i}"
        history = [
            facts(
                bucket=BASE - rng.randrange(3) * HOUR,
                queue=rng.choice(queues),
                category=rng.choice(reasons),
                variant=rng.choice(arms),
                route=rng.choice(["self_serve_bot", "specialist"]),
                closed=version == 3,
            )
            for version in (1, 2, 3)
        ]
        # bucket is fixed per conversation (its start hour)
        history = [msgspec.structs.replace(f, bucket=history[0].bucket) for f in history]
        outcome = Outcome(resolved=rng.random() < 0.5, csat=rng.randint(1, 5)) if i % 2 else None
        for version, fact in enumerate(history, start=1):
            updates.append((conversation, state_update(version, fact)))
        if outcome is not None:
            updates.append((conversation, outcome_update(2, history[1], outcome)))
        finals.append(Member(version=3, facts=history[2], outcome=outcome))
    rng.shuffle(updates)  # listeners of two processes may run in any order
    stores = [left, right]
    gate = asyncio.Semaphore(16)  # as many in flight as a busy replica pair, within the client pools

    async def run(n: int, conversation: str, fn: Update) -> None:
        async with gate:
            await stores[n % 2].update(conversation, fn)

    await asyncio.gather(*(run(n, cid, fn) for n, (cid, fn) in enumerate(updates)))
    want = expected(finals)
    assert await snapshot(left) == want
    assert await snapshot(right) == want


async def test_redis_update_lost_race_rereads_and_never_double_counts(redis_url: str) -> None:
    """Another replica writes the member between this one's read and its compare-and-set: the
    script refuses, the update re-reads, finds itself stale, and the counters hold only the
    winner's contribution."""
    store = RedisInsights(redis_url)
    winner = facts(queue="billing", route="specialist", cause="rule:vip")
    calls = 0

    def replica_writes() -> None:
        async def write() -> None:
            other = RedisInsights(redis_url)  # its own connection, as another process has
            try:
                await other.update("c1", state_update(5, winner))
            finally:
                await other.close()

        asyncio.run(write())

    def racing(old: Member | None) -> Member | None:
        nonlocal calls
        calls += 1
        if calls == 1:  # between our GET and our script: the other replica commits
            thread = threading.Thread(target=replica_writes)
            thread.start()
            thread.join()
        return state_update(3, facts())(old)

    try:
        await store.update("c1", racing)
        assert calls == 2  # refused once, re-read once
        member = await store.member("c1")
        assert member is not None and member.version == 5
        assert await snapshot(store) == expected([Member(version=5, facts=winner)])
    finally:
        keys = [key async for key in store._conn.client.scan_iter(match=f"{store.prefix}*")]
        if keys:
            await store._conn.client.delete(*keys)
        await store.close()
