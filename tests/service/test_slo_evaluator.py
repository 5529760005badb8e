"""The SLO evaluator on the real insights store and outbox: one signed event per transition.

Counters are planted through the real counter store (SQLite, or Redis for replicas), the clock
is the test's, and the events are delivered by the real outbox worker to a real HTTP receiver
that checks them with the ``standardwebhooks`` reference library.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from prometheus_client import CollectorRegistry
from standardwebhooks import Webhook

from routing.insights import Facts
from routing.policy import default_policy_text
from routing.slo import SLO, SloState
from routing.types import BOT_ROUTE
from service.adapters.backend import open_backend
from service.adapters.config import AdapterConfig
from service.adapters.outbox import Outbox
from service.app import create_app
from service.insights import Insights, InsightsStore, RedisInsights, open_insights, state_update
from service.settings import Settings
from service.slo import SloEvaluator

HOUR = 3600
START = 1_700_000_000 // HOUR * HOUR + 600  # ten minutes into an hour
WHSEC = "whsec_" + base64.b64encode(b"slo-test-secret-0123456789").decode()
NEGATIVE_EXITS = SLO("negative-exits", "negative_exit_rate", "max", 0.15, HOUR)


@dataclass
class Clock:
    now: float = START

    def __call__(self) -> float:
        return self.now


@dataclass
class Receiver:
    """A real HTTP server in a thread recording every POST and answering 200."""

    url: str = ""
    posts: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[tuple[dict[str, str], bytes]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.posts) >= count:
                    return list(self.posts)
            await asyncio.sleep(0.02)
        raise AssertionError(f"receiver got {len(self.posts)} posts, expected {count}")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with found.lock:
                found.posts.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    found.url = f"http://127.0.0.1:{server.server_address[1]}/slo-events"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield found
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def config(url: str | None) -> AdapterConfig:
    return AdapterConfig(
        callback_urls={"slo": url} if url else {},
        callback_secret=WHSEC,
        callback_backoff_base_s=0.05,
        callback_backoff_max_s=0.2,
        callback_timeout_s=2.0,
    )


@dataclass
class Replica:
    insights: Insights
    outbox: Outbox
    evaluator: SloEvaluator
    registry: CollectorRegistry


@pytest.fixture
async def make_replica(tmp_path: Path) -> AsyncIterator[list[Replica]]:
    """Replicas are appended by ``replica(...)``; all are closed afterwards."""
    opened: list[Replica] = []
    yield opened
    for replica in opened:
        await replica.outbox.stop()
        store = replica.insights.store
        if isinstance(store, RedisInsights):
            keys = [key async for key in store._conn.client.scan_iter(match=f"{store.prefix}*")]
            if keys:
                await store._conn.client.delete(*keys)
        await store.close()


def replica(
    opened: list[Replica],
    url: str,
    callback_url: str | None,
    clock: Clock,
    slos: list[SLO],
    outbox_url: str | None = None,
) -> Replica:
    registry = CollectorRegistry()
    insights = Insights(open_insights(url), clock=clock)
    # The outbox keeps real time: receivers check the signature's timestamp against theirs.
    outbox = Outbox(config(callback_url), open_backend(outbox_url or url), registry=registry)
    evaluator = SloEvaluator(insights, lambda: slos, outbox, registry=registry, clock=clock)
    made = Replica(insights, outbox, evaluator, registry)
    opened.append(made)
    return made


async def plant(store: InsightsStore, clock: Clock, first: int, count: int, *, negative: bool) -> None:
    """``count`` closed bot conversations started now, ending negative or not."""
    bucket = int(clock() // HOUR) * HOUR
    for n in range(first, first + count):
        facts = Facts(
            bucket=bucket,
            queue="general",
            category="billing",
            variant="none",
            route=BOT_ROUTE,
            closed=True,
            negative_last=negative,
        )
        await store.update(f"c{n}", state_update(1, facts))


async def stored_events(outbox: Outbox) -> list[tuple[str, str]]:
    """(key, type) of every event in the outbox, pending or delivered, in enqueue order."""
    records = [*await outbox.list_messages("delivered", 100), *await outbox.list_messages("pending", 100)]
    records.sort(key=lambda r: r.created_at)
    return [(r.key, json.loads(r.body)["type"]) for r in records]


async def test_a_planted_breach_fires_one_signed_event_then_one_recovery(
    tmp_path: Path, receiver: Receiver, make_replica: list[Replica], caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    url = f"sqlite:///{tmp_path / 'switchboard.sqlite3'}"
    one = replica(make_replica, url, receiver.url, clock, [NEGATIVE_EXITS])
    await one.outbox.start()
    store = one.insights.store
    await plant(store, clock, 0, 18, negative=False)
    await plant(store, clock, 18, 2, negative=True)  # 10%: within the objective
    caplog.set_level(logging.INFO, logger="switchboard.slo")
    assert await one.evaluator.tick() == []
    breached = one.registry.get_sample_value("switchboard_slo_breached", {"slo": "negative-exits"})
    assert breached == 0

    await plant(store, clock, 20, 10, negative=True)  # 12 of 30 = 40%: burn rate 2.7
    clock.now += 60  # the next evaluation interval
    (transition,) = await one.evaluator.tick()
    assert (transition.event, transition.seq, transition.severity) == ("slo.breached", 1, "ticket")
    for _ in range(3):
        clock.now += 60
        assert await one.evaluator.tick() == []
    ((headers, body),) = await receiver.wait_for(1)
    assert Webhook(WHSEC).verify(body, headers)["type"] == "slo.breached"
    assert headers["webhook-id"] == headers["idempotency-key"] == "slo.breached:negative-exits:1"
    assert headers["x-switchboard-event"] == "slo.breached"
    payload = json.loads(body)
    assert payload["slo"] == "negative-exits" and payload["state"] == "breached"
    assert payload["objective"] == "negative_exit_rate <= 0.15" and payload["window"] == "1h"
    assert payload["burn_rates"] == {"1h": pytest.approx(0.4 / 0.15)}
    assert one.registry.get_sample_value("switchboard_slo_breached", {"slo": "negative-exits"}) == 1
    burn = one.registry.get_sample_value(
        "switchboard_slo_burn_rate", {"slo": "negative-exits", "window": "1h"}
    )
    assert burn == pytest.approx(0.4 / 0.15)

    await plant(store, clock, 30, 54, negative=False)  # 12 of 84 = 14.3%: within 90% of the bound, holds
    assert await one.evaluator.tick() == []
    await plant(store, clock, 84, 16, negative=False)  # 12 of 100: recovered
    (recovered,) = await one.evaluator.tick()
    assert (recovered.event, recovered.seq) == ("slo.recovered", 2)
    assert await one.evaluator.tick() == []
    posts = await receiver.wait_for(2)
    await asyncio.sleep(0.2)  # nothing else arrives
    assert [json.loads(body)["type"] for _, body in receiver.posts] == ["slo.breached", "slo.recovered"]
    assert Webhook(WHSEC).verify(posts[1][1], posts[1][0])["state"] == "ok"
    assert one.registry.get_sample_value("switchboard_slo_breached", {"slo": "negative-exits"}) == 0
    lines = [r for r in caplog.records if r.name == "switchboard.slo"]
    assert [r.getMessage() for r in lines] == ["SLO negative-exits breached", "SLO negative-exits recovered"]


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
async def test_replicas_sharing_a_store_fire_once_in_total(
    backend: str, tmp_path: Path, make_replica: list[Replica], request: pytest.FixtureRequest
) -> None:
    clock = Clock()
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'switchboard.sqlite3'}"
    else:
        url = request.getfixturevalue("redis_url")
    # No worker runs: the events stay in the shared outbox, where they are counted.
    replicas = [replica(make_replica, url, "http://127.0.0.1:9/never", clock, [NEGATIVE_EXITS]) for _ in "ab"]
    await plant(replicas[0].insights.store, clock, 0, 20, negative=True)
    announced: list[str] = []
    for _ in range(4):
        clock.now += 60
        for found in await asyncio.gather(*(r.evaluator.tick() for r in replicas)):
            announced.extend(t.event for t in found)
    assert announced == ["slo.breached"]
    assert await stored_events(replicas[1].outbox) == [("slo.breached:negative-exits:1", "slo.breached")]
    for r in replicas:
        assert r.registry.get_sample_value("switchboard_slo_breached", {"slo": "negative-exits"}) == 1

    await plant(replicas[1].insights.store, clock, 20, 200, negative=False)
    for _ in range(4):
        clock.now += 60
        for found in await asyncio.gather(*(r.evaluator.tick() for r in replicas)):
            announced.extend(t.event for t in found)
    assert announced == ["slo.breached", "slo.recovered"]
    assert [kind for _, kind in await stored_events(replicas[0].outbox)] == ["slo.breached", "slo.recovered"]
    raw = await replicas[0].insights.store.get_state("slo:negative-exits")
    assert raw is not None and SloState(state="ok", seq=2).state == json.loads(raw)["state"]


async def test_an_event_the_winner_could_not_store_is_stored_once_later(
    tmp_path: Path, make_replica: list[Replica]
) -> None:
    clock = Clock()
    url = f"sqlite:///{tmp_path / 'switchboard.sqlite3'}"
    (tmp_path / "blocked.sqlite3").mkdir()  # an outbox backend that fails every call
    broken = f"sqlite:///{tmp_path / 'blocked.sqlite3'}"
    down = replica(make_replica, url, "http://127.0.0.1:9/x", clock, [NEGATIVE_EXITS], outbox_url=broken)
    up = replica(make_replica, url, "http://127.0.0.1:9/x", clock, [NEGATIVE_EXITS])
    await plant(up.insights.store, clock, 0, 20, negative=True)
    (claimed,) = await down.evaluator.tick()  # wins the transition, cannot store its event
    assert claimed.event == "slo.breached"
    assert await up.evaluator.tick() == []  # the winner may still be storing it: leave it
    assert await stored_events(up.outbox) == []
    # Recovered counters make no recovery while the breach is unannounced: events go out in order.
    await plant(up.insights.store, clock, 20, 200, negative=False)
    clock.now += 10
    assert await up.evaluator.tick() == []
    assert await stored_events(up.outbox) == []
    clock.now += 21  # 31 s after the claim: the breach is stored, then the recovery
    (recovered,) = await up.evaluator.tick()
    assert recovered.event == "slo.recovered"
    for _ in range(2):
        clock.now += 60
        assert await up.evaluator.tick() == [] and await down.evaluator.tick() == []
    assert [key for key, _ in await stored_events(up.outbox)] == [
        "slo.breached:negative-exits:1",
        "slo.recovered:negative-exits:2",
    ]


async def test_the_running_evaluator_fires_within_one_interval(
    tmp_path: Path, make_replica: list[Replica]
) -> None:
    clock = Clock()
    one = replica(
        make_replica, f"sqlite:///{tmp_path / 's.sqlite3'}", "http://127.0.0.1:9/x", clock, [NEGATIVE_EXITS]
    )
    interval = 0.3
    task = asyncio.create_task(one.evaluator.run(interval))
    try:
        await asyncio.sleep(0.05)
        await plant(one.insights.store, clock, 0, 20, negative=True)
        planted = time.monotonic()
        while not await stored_events(one.outbox):
            assert time.monotonic() - planted < interval + 1.0, "no slo.breached within one interval"
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert await stored_events(one.outbox) == [("slo.breached:negative-exits:1", "slo.breached")]


async def test_without_a_callback_url_the_state_still_moves(
    tmp_path: Path, make_replica: list[Replica]
) -> None:
    clock = Clock()
    one = replica(make_replica, f"sqlite:///{tmp_path / 's.sqlite3'}", None, clock, [NEGATIVE_EXITS])
    await plant(one.insights.store, clock, 0, 20, negative=True)
    (transition,) = await one.evaluator.tick()
    assert transition.event == "slo.breached"
    assert await stored_events(one.outbox) == []
    assert one.registry.get_sample_value("switchboard_slo_breached", {"slo": "negative-exits"}) == 1
    # The next hour's bucket is empty: too few conversations to judge, the breach is over.
    clock.now += HOUR
    (transition,) = await one.evaluator.tick()
    assert transition.event == "slo.recovered"


async def test_no_slos_reads_nothing(tmp_path: Path, make_replica: list[Replica]) -> None:
    one = replica(make_replica, f"sqlite:///{tmp_path / 's.sqlite3'}", None, Clock(), [])
    assert await one.evaluator.tick() == []
    assert one.registry.get_sample_value("switchboard_slo_breached", {"slo": "negative-exits"}) is None


@pytest.mark.pack
def test_the_app_evaluates_the_policys_slos(tmp_path: Path, base_env: dict[str, str]) -> None:
    """The evaluator starts with the app, reads the app's own counters and exports the gauges."""
    policy = tmp_path / "policy.toml"
    policy.write_text(
        default_policy_text()
        + '\n[[slos]]\nid = "negative-exits"\nobjective = "negative_exits <= 15%"\nwindow = "1h"\n',
        encoding="utf-8",
    )
    settings = Settings.from_env(
        base_env | {"SWITCHBOARD_POLICY": str(policy), "SWITCHBOARD_SLO_INTERVAL_S": "0.1"}
    )

    def breached(client: TestClient[Any]) -> str | None:
        for line in client.get("/metrics").text.splitlines():
            if line.startswith('switchboard_slo_breached{slo="negative-exits"}'):
                return line.split()[-1]
        return None

    def wait_for(client: TestClient[Any], value: str) -> None:
        deadline = time.monotonic() + 20
        while breached(client) != value:
            assert time.monotonic() < deadline, f"switchboard_slo_breached never became {value}"
            time.sleep(0.05)

    with TestClient(create_app(settings)) as client:
        wait_for(client, "0.0")

        async def plant_in_the_apps_store() -> None:
            store = open_insights(settings.resolved_store_url)
            try:
                await plant(store, Clock(time.time()), 0, 20, negative=True)
            finally:
                await store.close()

        asyncio.run(plant_in_the_apps_store())
        wait_for(client, "1.0")
        assert 'switchboard_slo_burn_rate{slo="negative-exits",window="1h"}' in client.get("/metrics").text
