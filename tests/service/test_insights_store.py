"""The insights counter store on real SQLite and real Redis: deltas, idempotence, replicas, and
the batched listener (``Insights``) that feeds it."""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import msgspec
import pytest

from models.runtime import Runtime
from routing.decision import decide
from routing.insights import DIMENSIONS, Facts, Outcome, add_counts, cells, facts_from
from routing.policy import default_policy
from routing.signals import new_signals
from routing.types import CustomerInfo
from service.conversations import ConversationHead
from service.errors import Gone
from service.insights import (
    Insights,
    InsightsStore,
    Member,
    RedisInsights,
    SqliteInsights,
    Update,
    open_insights,
    outcome_update,
    state_update,
)
from service.store import open_store
from tests.service.test_conversations import make_service, turn

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


def head(conversation_id: str, *, closed: bool = False) -> ConversationHead:
    """A stored conversation's head as the listener receives it, decided by the default policy."""
    signals = new_signals()
    return ConversationHead(
        conversation_id=conversation_id,
        created_at=BASE + 60,
        updated_at=BASE + 60,
        signals=signals,
        decision=decide(signals, CustomerInfo(), default_policy(), conversation_id),
        closed=closed,
    )


def member_of(conversation_id: str, version: int, *, closed: bool = False) -> Member:
    state = head(conversation_id, closed=closed)
    facts = facts_from(state.decision, state.signals, state.created_at, closed, HOUR)
    assert facts is not None
    return Member(version=version, facts=facts)


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


async def test_update_many_equals_one_update_at_a_time(make_store: Callable[[], InsightsStore]) -> None:
    """One batch (one SQLite transaction; one script per member on Redis) ends where the same
    updates one by one end: members replaced, a stale one ignored, counters summed once."""
    store = make_store()
    moved = facts(queue="billing", route="specialist", cause="rule:vip")
    await store.update("c1", state_update(1, facts()))
    await store.update("c2", state_update(4, facts(category="tech")))
    await store.update_many(
        [
            ("c1", state_update(2, moved)),
            ("c2", state_update(3, facts())),  # older than the stored member: changes nothing
            ("c3", state_update(1, facts(variant="exp/b"))),
        ]
    )
    await store.update_many([])
    finals = [
        Member(version=2, facts=moved),
        Member(version=4, facts=facts(category="tech")),
        Member(version=1, facts=facts(variant="exp/b")),
    ]
    assert [await store.member(cid) for cid in ("c1", "c2", "c3")] == finals
    assert await snapshot(store) == expected(finals)


async def test_insights_batches_changes_and_readers_see_them(make_store: Callable[[], InsightsStore]) -> None:
    """Five changes of one conversation queue as its newest state; nothing is written until the
    batch is applied, and a reader's flush applies it: the member is the newest version and the
    conversation counts once."""
    store = make_store()
    insights = Insights(store, delay_s=3600)  # never on its own within this test
    for version in range(1, 6):
        await insights.on_state("c1", head("c1", closed=version == 5), version)
    await insights.on_state("c2", head("c2"), 1)
    assert await store.member("c1") is None
    await insights.flush()
    assert await store.member("c1") == member_of("c1", 5, closed=True)
    counted = await snapshot(store)
    assert counted == expected([member_of("c1", 5, closed=True), member_of("c2", 1)])
    assert counted["all"]["*"]["conversations"] == 2 and counted["all"]["*"]["closed"] == 1

    await insights.on_state("c2", head("c2", closed=True), 2)
    await insights.flush("c1")  # another conversation's flush leaves c2 queued
    assert await store.member("c2") == member_of("c2", 1)
    await insights.forget("c2")  # erasure applies the queued change, then drops the member
    assert await store.member("c2") is None
    assert (await snapshot(store))["all"]["*"]["closed"] == 2  # the anonymous counts stay
    await insights.close()


async def test_insights_apply_a_batch_by_themselves_after_the_delay(
    make_store: Callable[[], InsightsStore],
) -> None:
    store = make_store()
    insights = Insights(store, delay_s=0.01)
    await insights.on_state("c1", head("c1"), 1)
    deadline = time.monotonic() + 10
    while await store.member("c1") is None:
        assert time.monotonic() < deadline, "the queued change was never applied"
        await asyncio.sleep(0.01)
    assert await store.member("c1") == member_of("c1", 1)
    await insights.on_state("c1", head("c1", closed=True), 2)  # a new flush task after the last one ended
    while await store.member("c1") == member_of("c1", 1):
        assert time.monotonic() < deadline, "the second change was never applied"
        await asyncio.sleep(0.01)
    await insights.close()


async def test_a_failed_batch_is_logged_and_the_listener_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The store fails (here: closed under the listener): the appends are unaffected, the error
    names how many conversations' counters were lost and never their text, and nothing raises."""
    store = SqliteInsights(tmp_path / "insights.sqlite3")
    insights = Insights(store, delay_s=3600)
    await store.close()
    await insights.on_state("c1", head("c1"), 1)
    await insights.on_state("c2", head("c2"), 1)
    with caplog.at_level(logging.ERROR, logger="switchboard.insights"):
        await insights.flush()
    [record] = [r for r in caplog.records if r.name == "switchboard.insights"]
    assert record.getMessage() == "insights counters could not be updated"
    assert record.__dict__["conversations"] == 2 and record.__dict__["exc_type"] == "RuntimeError"
    await insights.close()


@pytest.fixture(params=["sqlite", "redis"])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """One backend two "processes" share: a SQLite file or a Redis prefix."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'switchboard.sqlite3'}"
    return str(request.getfixturevalue("redis_url"))


class Process:
    """What one serving process holds: its own conversation store, service and insights."""

    def __init__(self, runtime: Runtime, url: str) -> None:
        self.service = make_service(runtime, open_store(url, ttl_s=600))
        self.insights = Insights(open_insights(url), delay_s=3600)  # flushed by hand
        self.insights.attach(self.service)

    async def close(self) -> None:
        await self.insights.close()
        await self.service.store.close()


@pytest.mark.pack
async def test_an_erase_elsewhere_is_not_undone_by_a_queued_change(shared_url: str, test_pack: Path) -> None:
    """``switchboard export --delete`` (or another replica) erases a conversation whose counter
    change this process still holds queued: applying it afterwards must not write the erased
    conversation's member back."""
    runtime = Runtime.load(test_pack)
    serving, exporting = Process(runtime, shared_url), Process(runtime, shared_url)
    await serving.service.append("erased-elsewhere", [turn("my card was charged twice", "t1")])
    await serving.service.append("kept", [turn("where is my parcel", "t1")])
    assert await exporting.service.erase("erased-elsewhere") is True
    await serving.insights.flush()
    assert await serving.insights.store.member("erased-elsewhere") is None
    assert await serving.insights.store.member("kept") is not None
    totals = await serving.insights.totals([3600])
    assert totals[3600]["conversations"] == 2  # the anonymous counts keep both
    await serving.close()
    await exporting.close()


@pytest.mark.pack
async def test_an_outcome_racing_an_erase_elsewhere_is_gone(shared_url: str, test_pack: Path) -> None:
    runtime = Runtime.load(test_pack)
    serving, exporting = Process(runtime, shared_url), Process(runtime, shared_url)
    await serving.service.append("c1", [turn("cancel my plan", "t1")])
    await serving.insights.flush()
    store = serving.insights.store
    update = store.update

    async def erase_first(conversation_id: str, fn: Update) -> Member | None:
        await exporting.service.erase(conversation_id)  # lands between the check and the write
        return await update(conversation_id, fn)

    store.update = erase_first  # type: ignore[method-assign]
    with pytest.raises(Gone):
        await serving.insights.record_outcome(serving.service, "c1", Outcome(resolved=True))
    assert await store.member("c1") is None
    await serving.close()
    await exporting.close()
