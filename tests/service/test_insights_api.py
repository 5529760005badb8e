"""The insights routes on the real app (real pack, real SQLite, real Redis)."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from routing.insights import Facts, Outcome
from service.app import create_app
from service.insights import FLUSH_DELAY_S, SqliteInsights, outcome_update, state_update
from service.settings import Settings, hash_api_key
from tests.service.conftest import Server

pytestmark = pytest.mark.pack

ROOT = Path(__file__).resolve().parents[2]
HOLDOUT_POLICY = ROOT / "tests" / "routing" / "policies" / "bot_holdout.toml"
TURN = {"speaker": "customer", "text": "I was charged twice for my order, please refund me"}


def env_for(folder: Path, test_pack: Path, **extra: str) -> dict[str, str]:
    return {
        "SWITCHBOARD_AUTH_DISABLED": "true",
        "SWITCHBOARD_DATA_DIR": str(folder / "var"),
        "SWITCHBOARD_PACK": str(test_pack),
        "SWITCHBOARD_RATE_LIMIT": "0",
        "SWITCHBOARD_POLICY_RELOAD_INTERVAL": "0",
        "SWITCHBOARD_POLICY": str(HOLDOUT_POLICY),
        **extra,
    }


def ready(client: TestClient[Any]) -> TestClient[Any]:
    deadline = time.monotonic() + 60
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, client.get("/readyz").text
        time.sleep(0.05)
    return client


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("insights")


@pytest.fixture(scope="module")
def client(folder: Path, test_pack: Path) -> Iterator[TestClient[Any]]:
    with TestClient(create_app(Settings.from_env(env_for(folder, test_pack)))) as test_client:
        yield ready(test_client)


def total(client: TestClient[Any]) -> dict[str, Any]:
    response = client.get("/v1/insights", params={"window": "24h"})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()["total"]
    return body


def agreed(clients: tuple[Any, Any], params: dict[str, str]) -> list[dict[str, Any]]:
    """Both replicas' answers to one query, once they agree (or the last pair after 10 s).

    A query applies its own replica's queued counter updates; another replica's apply within
    ``FLUSH_DELAY_S``, so the two can differ for that long after the last change."""
    deadline = time.monotonic() + 10
    while True:
        answers = [client.get("/v1/insights", params=params).json() for client in clients]
        if answers[0]["groups"] == answers[1]["groups"] or time.monotonic() > deadline:
            return answers
        time.sleep(FLUSH_DELAY_S / 4)


def prefill(folder: Path, conversations: list[tuple[str, Facts, Outcome | None]]) -> None:
    """Write counters straight into the app's SQLite file (what its listeners would have written)."""

    async def write() -> None:
        store = SqliteInsights(folder / "var" / "switchboard.sqlite3")
        try:
            for conversation_id, facts, outcome in conversations:
                update = state_update(1, facts) if outcome is None else outcome_update(1, facts, outcome)
                await store.update(conversation_id, update)
        finally:
            await store.close()

    asyncio.run(write())


def test_outcome_lifecycle(client: TestClient[Any]) -> None:
    before = total(client)
    appended = client.post("/v1/conversations/out-1/turns", json={"turns": [TURN]})
    assert appended.status_code == 200, appended.text
    queue = appended.json()["decision"]["queue"]
    counted = total(client)
    assert counted["conversations"] == before["conversations"] + 1
    by_queue = client.get("/v1/insights", params={"window": "24h", "by": "queue"}).json()
    assert queue in {group["key"] for group in by_queue["groups"]}

    outcome = {"resolved": True, "csat": 5, "handle_time_s": 120.0, "labels": ["refund"]}
    first = client.post("/v1/conversations/out-1/outcome", json=outcome)
    assert first.status_code == 200, first.text
    assert first.json() == {"conversation_id": "out-1", "outcome": outcome, "changed": True}
    assert client.get("/v1/conversations/out-1/outcome").json() == outcome
    recorded = total(client)
    assert recorded["outcomes"] == before["outcomes"] + 1
    assert recorded["counts"]["csat_sum"] == before["counts"].get("csat_sum", 0) + 5

    again = client.post("/v1/conversations/out-1/outcome", json=outcome)
    assert again.json()["changed"] is False
    assert total(client)["counts"] == recorded["counts"]  # idempotent
    assert client.get("/v1/conversations/out-1/export").json()["outcome"] == outcome  # exported with it

    replaced = client.post("/v1/conversations/out-1/outcome", json={"abandoned": True, "csat": 1})
    assert replaced.json()["changed"] is True
    now = total(client)["counts"]
    assert now["outcomes"] == recorded["counts"]["outcomes"]
    assert now.get("resolved", 0) == recorded["counts"].get("resolved", 0) - 1
    assert now["csat_sum"] == recorded["counts"]["csat_sum"] - 4

    for bad in ({"csat": 6}, {"surprise": True}, {"labels": "x"}):
        assert client.post("/v1/conversations/out-1/outcome", json=bad).status_code in (400, 422)
    assert client.post("/v1/conversations/never/outcome", json=outcome).status_code == 404
    assert client.get("/v1/conversations/never/outcome").status_code == 404

    assert client.delete("/v1/conversations/out-1").status_code == 200
    assert client.get("/v1/conversations/out-1/outcome").status_code == 404  # erased with it
    assert client.post("/v1/conversations/out-1/outcome", json=outcome).status_code == 410
    assert total(client)["conversations"] == counted["conversations"]  # anonymous counts stay


def test_close_counts_and_window_is_validated(client: TestClient[Any]) -> None:
    client.post("/v1/conversations/close-1/turns", json={"turns": [TURN]})
    closed_before = total(client)["closed"]
    assert client.post("/v1/conversations/close-1/close").status_code == 200
    assert total(client)["closed"] == closed_before + 1
    for window in ("0h", "91d", "24", "1w", "-1h"):
        response = client.get("/v1/insights", params={"window": window})
        assert response.status_code == 422, (window, response.text)
    assert client.get("/v1/insights", params={"by": "colour"}).status_code == 400


def planted(name: str, rates: dict[str, float], n: int, seed: int) -> list[tuple[str, Facts, Outcome | None]]:
    rng = random.Random(seed)
    hour = int(time.time() // 3600) * 3600
    arms = list(rates)
    rows: list[tuple[str, Facts, Outcome | None]] = []
    for i in range(n):
        arm = arms[i % len(arms)]
        contained = rng.random() < rates[arm]
        route = "self_serve_bot" if contained or rng.random() < 0.3 else "specialist"
        facts = Facts(bucket=hour, queue="bot", category="billing", variant=f"{name}/{arm}", route=route)
        rows.append((f"{name}-{i}", facts, Outcome(resolved=contained, csat=rng.randint(1, 5))))
    return rows


def test_experiments_answer_planted_ab_and_aa(client: TestClient[Any], folder: Path) -> None:
    prefill(
        folder,
        planted("planted", {"control": 0.40, "treatment": 0.50}, 4000, seed=1)
        + planted("same", {"a": 0.45, "b": 0.45}, 4000, seed=2),
    )
    response = client.get("/v1/insights/experiments", params={"window": "24h"})
    assert response.status_code == 200, response.text
    reports = {report["experiment"]: report for report in response.json()["experiments"]}
    ab = reports["planted"]
    assert ab["control"] == "control"
    treatment = next(v for v in ab["variants"] if v["variant"] == "treatment")
    versus = treatment["vs_control"]["containment"]
    assert versus["significant"] is True and 0.06 < versus["difference"] < 0.14
    assert versus["low"] > 0 and versus["needed_per_arm"] < 2000
    aa = reports["same"]["variants"][1]["vs_control"]["containment"]
    assert aa["significant"] is False and aa["p_value"] > 0.05
    # The live policy's own experiment is there too (the conversations appended above).
    assert {v["variant"] for v in reports["bot-holdout"]["variants"]} <= {"control", "holdout", "eager"}


def test_ten_thousand_conversations_answer_fast(client: TestClient[Any], folder: Path) -> None:
    """10,000 conversations with outcomes over 24 hours; the query reads counters only.
    The timing is reported (the done-when line is <= 100 ms), asserted only loosely here."""
    rng = random.Random(3)
    hour = int(time.time() // 3600) * 3600
    rows: list[tuple[str, Facts, Outcome | None]] = []
    for i in range(10_000):
        facts = Facts(
            bucket=hour - rng.randrange(23) * 3600,  # the 24h window still holds them if the hour turns
            queue=f"queue-{rng.randrange(8)}",
            category=f"category-{rng.randrange(12)}",
            variant=f"bot-holdout/{rng.choice(['control', 'holdout', 'eager'])}",
            route=rng.choice(["self_serve_bot", "specialist", "retention_human"]),
            cause=rng.choice([None, "rule:vip", "guardrail:human_request"]),
            bot_loop=rng.random() < 0.05,
            negative_last=rng.random() < 0.2,
            closed=True,
        )
        outcome = Outcome(
            resolved=rng.random() < 0.6, csat=rng.randint(1, 5), handle_time_s=rng.uniform(30, 900)
        )
        rows.append((f"bulk-{i}", facts, outcome))
    started = time.perf_counter()
    prefill(folder, rows)
    fill_s = time.perf_counter() - started
    timings = {}
    for by in ("queue", "category", "variant", "all"):
        samples = []
        for _ in range(5):
            started = time.perf_counter()
            response = client.get("/v1/insights", params={"window": "24h", "by": by})
            samples.append(time.perf_counter() - started)
            assert response.status_code == 200
        timings[by] = statistics.median(samples) * 1000
    body = response.json()
    assert body["total"]["conversations"] >= 10_000 and body["total"]["outcomes"] >= 10_000
    print(f"\n10,000 conversations: prefill {fill_s:.1f} s; GET /v1/insights median ms {timings}")
    assert max(timings.values()) < 1000


@pytest.fixture
def two_apps(
    tmp_path: Path, test_pack: Path, redis_url: str
) -> Iterator[tuple[TestClient[Any], TestClient[Any]]]:
    """Two independent apps (as two service processes) sharing one Redis prefix."""
    first = create_app(Settings.from_env(env_for(tmp_path / "a", test_pack, SWITCHBOARD_STORE=redis_url)))
    second = create_app(Settings.from_env(env_for(tmp_path / "b", test_pack, SWITCHBOARD_STORE=redis_url)))
    with TestClient(first) as left, TestClient(second) as right:
        yield ready(left), ready(right)


def test_two_apps_sharing_redis_agree(two_apps: tuple[TestClient[Any], TestClient[Any]]) -> None:
    left, right = two_apps
    texts = [
        "I was charged twice for my order, please refund me",
        "my internet keeps dropping every evening",
        "I want to cancel my subscription, this is useless",
        "where is my parcel? it is a week late",
    ]
    for i in range(12):
        writer, other = (left, right) if i % 2 else (right, left)
        turn = {"speaker": "customer", "text": texts[i % len(texts)]}
        assert writer.post(f"/v1/conversations/r-{i}/turns", json={"turns": [turn]}).status_code == 200
        follow = {"speaker": "customer", "text": "this is ridiculous, get me a person now"}
        if i % 3 == 0:
            assert other.post(f"/v1/conversations/r-{i}/turns", json={"turns": [follow]}).status_code == 200
        if i % 4 == 0:
            assert other.post(f"/v1/conversations/r-{i}/close").status_code == 200
        if i % 2 == 0:
            outcome = {"resolved": i % 4 == 0, "csat": 1 + i % 5}
            assert writer.post(f"/v1/conversations/r-{i}/outcome", json=outcome).status_code == 200
    for by in ("all", "queue", "category", "variant"):
        answers = agreed((left, right), {"window": "24h", "by": by})
        assert msgspec.json.encode(answers[0]["groups"]) == msgspec.json.encode(answers[1]["groups"])
    overall = left.get("/v1/insights", params={"window": "24h"}).json()["total"]
    assert overall["conversations"] == 12 and overall["closed"] == 3 and overall["outcomes"] == 6
    experiments = [c.get("/v1/insights/experiments").json()["experiments"] for c in (left, right)]
    assert experiments[0] == experiments[1] and experiments[0][0]["experiment"] == "bot-holdout"


def test_routes_sit_behind_the_api_key_guard(tmp_path: Path, test_pack: Path) -> None:
    key = "insights-key"
    env = env_for(tmp_path, test_pack, SWITCHBOARD_API_KEYS=f"crm={hash_api_key(key)}")
    del env["SWITCHBOARD_AUTH_DISABLED"]
    with TestClient(create_app(Settings.from_env(env))) as keyed:
        for method, path in (
            ("GET", "/v1/insights"),
            ("GET", "/v1/insights/experiments"),
            ("POST", "/v1/conversations/x/outcome"),
            ("GET", "/v1/conversations/x/outcome"),
        ):
            assert keyed.request(method, path, json={}).status_code == 401, path
        authorized = keyed.get("/v1/insights", headers={"Authorization": f"Bearer {key}"})
        assert authorized.status_code == 200 and authorized.json()["total"]["conversations"] == 0


def test_two_service_processes_sharing_redis_agree(
    start_server: Callable[[dict[str, str]], Server], tmp_path: Path, test_pack: Path, redis_url: str
) -> None:
    """The done-when line as stated: two ``switchboard serve`` processes on one Redis prefix."""
    servers = [
        start_server(env_for(tmp_path / name, test_pack, SWITCHBOARD_STORE=redis_url)) for name in ("a", "b")
    ]
    for server in servers:
        server.wait_ready()
    left, right = (server.client for server in servers)
    for i in range(8):
        writer, other = (left, right) if i % 2 else (right, left)
        turn = {"speaker": "customer", "text": "my internet keeps dropping every evening"}
        assert writer.post(f"/v1/conversations/p-{i}/turns", json={"turns": [turn]}).status_code == 200
        assert (
            other.post(f"/v1/conversations/p-{i}/outcome", json={"resolved": i % 2 == 0}).status_code == 200
        )
    answers = agreed((left, right), {"window": "24h", "by": "queue"})
    assert answers[0]["groups"] == answers[1]["groups"]
    assert answers[0]["total"]["conversations"] == 8 and answers[0]["total"]["counts"]["resolved"] == 4
