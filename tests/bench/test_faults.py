"""``python -m bench faults``: the pure helpers (comparison, classification, corpus, forgeries, report),
and its two kill -9 scenarios, shortened, against real servers (SQLite; two servers on Redis)."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from bench import faults, http
from service.adapters.signatures import sign_timestamped, verify_timestamped
from service.errors import Unauthorized


def test_compare_counts_lost_duplicated_and_unacknowledged() -> None:
    acked = {"a": {"1", "2", "3"}, "b": {"9"}}
    stored = {"a": ["1", "2", "2", "4"], "c": ["5", "5", "5"]}
    # lost: a/3 and b/9; duplicated: a/2 once, c/5 twice; unacknowledged: a/4 and c/5.
    assert faults.compare(acked, stored) == (2, 3, 2)
    assert faults.compare(acked, {"a": ["1", "2", "3"], "b": ["9"]}) == (0, 0, 0)
    assert faults.compare({}, {}) == (0, 0, 0)


@pytest.mark.parametrize(
    ("status", "seconds", "outcome"),
    [
        (503, 0.2, "503_in_time"),
        (503, 2.5, "hung"),
        (None, 0.1, "hung"),
        (200, 0.1, "ok"),
        (500, 0.1, "other_500"),
        (429, 1.9, "other_429"),
    ],
)
def test_classify(status: int | None, seconds: float, outcome: str) -> None:
    assert faults.classify(status, seconds) == outcome


def test_slug_makes_a_valid_id_piece() -> None:
    assert faults.slug("kill -9 (Redis, 2 procs)") == "kill-9-redis-2-procs"
    assert faults.slug("Redis frozen (SIGSTOP)") == "redis-frozen-sigstop"


def test_stored_page_follows_next_after_and_stops_without_it() -> None:
    page = {"turns": [{"id": "a"}, {"id": "b"}], "next_after": 1}
    assert faults.stored_page(page) == (["a", "b"], 1)
    assert faults.stored_page({"turns": [{"id": "c"}], "next_after": None}) == (["c"], None)
    assert faults.stored_page({"turns": [{"id": "c"}]}) == (["c"], None)  # no paging: everything at once
    assert faults.stored_page({"turns": [], "next_after": 5}) == ([], None)  # never loops on an empty page


def test_load_corpus_reads_jsonl_or_falls_back(tmp_path: Path) -> None:
    corpus = tmp_path / "bad.jsonl"
    corpus.write_text(
        json.dumps({"name": "x", "method": "POST", "path": "/v1/analyze", "status": 400, "body": "{"})
        + "\n\n"
    )
    assert [e["name"] for e in faults.load_corpus(corpus)] == ["x"]
    builtin = faults.load_corpus(tmp_path / "missing.jsonl")
    assert len(builtin) == len(faults.BUILTIN_BAD_INPUTS)
    assert all(400 <= e["status"] < 500 for e in builtin)
    assert faults.entry_body(builtin[0]) == faults.BUILTIN_BAD_INPUTS[0][4]


def test_entry_body() -> None:
    assert faults.entry_body({"body_hex": "ff00"}) == b"\xff\x00"
    assert faults.entry_body({"body": "é"}) == "é".encode()
    assert faults.entry_body({}) == b""


def test_prepare_files_puts_content_in_place_and_restores_it(tmp_path: Path) -> None:
    policy, reasons = tmp_path / "policy.toml", tmp_path / "reasons.toml"
    policy.write_text("good policy")
    reasons.write_text("good reasons")
    files = {"policy_file": policy, "reasons_file": reasons}
    restore = faults._prepare_files(
        {"policy_file": {"missing": True}, "reasons_file": {"hex": "fffe"}}, files
    )
    assert not policy.exists() and reasons.read_bytes() == b"\xff\xfe"
    restore()
    assert policy.read_text() == "good policy" and reasons.read_text() == "good reasons"


def test_generic_forgeries_fail_verification_and_a_genuine_delivery_passes() -> None:
    now = 1_800_000_000
    forged = [d for name, d in faults.forgeries("http://127.0.0.1:1", "n", now) if name.startswith("generic")]
    assert forged

    def verify(body: bytes, headers: dict[str, str]) -> int:
        return verify_timestamped(
            secrets=[faults.WEBHOOK_SECRET],
            timestamp=headers.get("X-Switchboard-Timestamp"),
            signature=headers.get("X-Switchboard-Signature"),
            body=body,
            now=now,
            max_age_s=300,
            timestamp_header="X-Switchboard-Timestamp",
            signature_header="X-Switchboard-Signature",
            realm="switchboard",
        )

    for _, body, headers in forged:
        with pytest.raises(Unauthorized):
            verify(body, headers)
    genuine = faults._generic("c", "t1")
    signature = sign_timestamped(faults.WEBHOOK_SECRET, now, genuine)
    assert verify(genuine, {"X-Switchboard-Timestamp": str(now), "X-Switchboard-Signature": signature}) == now


def test_every_webhook_kind_is_forged() -> None:
    names = [name for name, _ in faults.forgeries("http://127.0.0.1:1", "n", 1_800_000_000)]
    assert {name.split(":")[0] for name in names} == {"generic", "chatwoot", "twilio"}
    assert len(names) == len(set(names))


def test_processed_means_let_through_the_replay_guard() -> None:
    assert faults._processed((200, b"{}", 0.1, {}))
    assert faults._processed((204, b"", 0.1, {faults.OUTCOME: "accepted"}))
    assert not faults._processed((204, b"", 0.1, {faults.OUTCOME: "duplicate"}))
    assert not faults._processed((403, b"", 0.1, {}))
    assert not faults._processed((None, b"", 5.0, {}))


def _report() -> dict[str, Any]:
    crash = {
        "scenario": "kill -9 (SQLite)",
        "requests": 500,
        "acknowledged": 400,
        "unanswered": 100,
        "retried_ok": 100,
        "retried_already_stored": 2,
        "lost": 0,
        "duplicated": 0,
        "stored_unacknowledged": 3,
        "in_flight_at_kill": 4,
        "status": {"200": 400, "error": 90, "503": 10},
        "unavailable": 10,
        "five_xx": 0,
        "restart_s": 2.0,
    }
    outage = {
        "scenario": "Redis frozen (SIGSTOP)",
        "requests": 40,
        "outcomes": {"503_in_time": 40},
        "analyze_ok": 10,
        "analyze_sent": 10,
        "max_answer_s": 1.1,
        "recovered_s": 0.3,
    }
    return {
        "kill_sqlite": crash,
        "redis_frozen": outage,
        "overload": {
            "offered_per_s": 600.0,
            "sent": 3000,
            "status": {"200": 1500, "429": 1500},
            "five_xx": 0,
            "errors": 0,
        },
        "bad_inputs": {
            "source": "built-in list",
            "sent": 8,
            "as_expected": 8,
            "five_xx": 0,
            "errors": 0,
            "alive_after": True,
            "mismatches": [],
        },
        "webhooks": {
            "forgeries": 15,
            "forgeries_refused": 15,
            "forgeries_accepted": [],
            "replays": 24,
            "replays_refused": 24,
            "replays_accepted": [],
            "stored_extra": 0,
            "five_xx": 0,
            "notes": [],
        },
        "meta": {"date": "d", "cpus": 2, "load_average_before": [0.1, 0.2, 0.3], "run_s": 100.0},
    }


def test_a_clean_report_has_no_failures_and_prints_every_scenario() -> None:
    report = _report()
    assert faults.failures(report) == []
    text = faults.text_report(report)
    for needle in (
        "kill -9 (SQLite)",
        "Redis frozen (SIGSTOP)",
        "overload 2x",
        "bad inputs",
        "webhook replays",
    ):
        assert needle in text


def test_failures_name_what_went_wrong() -> None:
    report = _report()
    report["kill_sqlite"]["lost"] = 2
    report["redis_frozen"]["outcomes"] = {"hung": 3, "503_in_time": 37}
    report["redis_frozen"]["recovered_s"] = None
    report["bad_inputs"]["five_xx"] = 1
    report["webhooks"]["forgeries_accepted"] = ["generic: stale timestamp: 200"]
    found = faults.failures(report)
    assert len(found) == 5
    assert any("lost 2" in f for f in found) and any("3 requests hung" in f for f in found)


def _crash(services: list[http.ServiceProcess], name: str) -> faults.Crash:
    """The shortened kill -9 scenario (6 clients, 3 s, the kill after 1 s) on the first of ``services``."""
    args = faults.parse_args(["--clients", "6", "--crash-s", "3", "--kill-after-s", "1"])
    try:
        for service in services:
            service.wait_ready()
        ids = http.Ids.new()
        texts = http.Workloads(ids).texts
        return asyncio.run(faults.crash_scenario(name, services, services[0], ids, args, texts))
    finally:
        for service in services:
            service.stop()


def _assert_nothing_lost(crash: faults.Crash) -> None:
    assert crash.acknowledged > 0 and crash.restart_s > 0
    assert crash.retried_ok == crash.unanswered
    assert (crash.lost, crash.duplicated, crash.stored_unacknowledged, crash.five_xx) == (0, 0, 0, 0)


def test_kill_9_mid_append_on_sqlite_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    """SIGKILL the server with appends in flight, restart it on the same SQLite file, retry what
    went unanswered: every acknowledged turn is stored once, and nothing is stored unacknowledged."""
    service = http.ServiceProcess(None, 1, tmp_path / "server.log", data=str(tmp_path / "var"))
    _assert_nothing_lost(_crash([service], "kill -9 (SQLite)"))


@pytest.mark.redis
def test_kill_9_of_one_of_two_processes_on_redis_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    """The same with two servers on one Redis (the bench's own redis-server): the clients move to
    the survivor while the killed one restarts."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    redis = faults.RedisServer(tmp_path / "redis.log")
    try:
        env = {"SWITCHBOARD_STORE": redis.url, "SWITCHBOARD_OUTBOX": redis.url}
        log = tmp_path / "servers.log"
        first = http.ServiceProcess(None, 1, log, env=env, data=str(tmp_path / "one"))
        second = http.ServiceProcess(None, 1, log, env=env, data=str(tmp_path / "two"), key=first.key)
        _assert_nothing_lost(_crash([first, second], "kill -9 (Redis, 2 procs)"))
    finally:
        redis.stop()
