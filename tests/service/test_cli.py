"""The ``switchboard`` CLI, including ``serve`` as real uvicorn processes.

``serve`` tests start real server processes on free ports: restart persistence
and two processes on one SQLite file, two processes sharing a real Redis
(appending alternately to one conversation, both seeing the same state), and
SIGHUP policy reload.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from routing.policy import default_policy_text
from service.cli import main, read_transcripts
from service.settings import SETTINGS, hash_api_key

ROOT = Path(__file__).resolve().parents[2]
TURN = {"speaker": "customer", "text": "I was charged twice for my order, please refund me"}


def serve_env(base_env: dict[str, str], **extra: str) -> dict[str, str]:
    return {**base_env, **extra}


def state_of(server: Any, conversation_id: str) -> dict[str, Any]:
    response = server.client.get(f"/v1/conversations/{conversation_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    body.pop("timing_ms")
    return body


# ---- serve: real processes ----------------------------------------------------------------------


@pytest.mark.pack
def test_sqlite_shared_by_two_processes_and_kept_across_restart(
    base_env: dict[str, str], start_server: Any, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(default_policy_text())
    env = serve_env(base_env, SWITCHBOARD_POLICY=str(policy))
    first, second = start_server(env), start_server(env)
    first.wait_ready()
    second.wait_ready()
    for n in range(6):  # alternate between the two processes
        server = (first, second)[n % 2]
        response = server.client.post(
            "/v1/conversations/shared/turns",
            json={"turns": [{**TURN, "text": f"{TURN['text']} ({n})", "id": f"t{n}"}]},
        )
        assert response.status_code == 200 and response.json()["version"] == n + 1, response.text
    before = state_of(first, "shared")
    assert before == state_of(second, "shared")
    assert [t["id"] for t in before["turns"]] == [f"t{n}" for n in range(6)]

    # SIGHUP reloads the policy file in a single-process server (polling is off here).
    policy.write_text(default_policy_text().replace('version = "2025.2"', 'version = "2025.2-hup"', 1))
    first.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while first.client.get("/v1/policy").json()["version"] != "2025.2-hup":
        assert time.monotonic() < deadline, "SIGHUP did not reload the policy"
        time.sleep(0.05)

    first.stop()
    second.stop()
    again = start_server(env)
    again.wait_ready()
    assert state_of(again, "shared") == before  # persisted across the restart
    more = again.client.post("/v1/conversations/shared/turns", json={"turns": [{**TURN, "id": "t6"}]}).json()
    # An append answers with the new turns only; index 6 shows the six before it were kept.
    assert more["version"] == 7 and more["turn_count"] == 7 and [t["index"] for t in more["turns"]] == [6]
    log = "\n".join(server.log.read_text() for server in (first, second, again))
    assert "charged twice" not in log  # transcript text never reaches the logs
    for line in log.splitlines():
        if line.startswith("{"):
            assert "level" in json.loads(line)  # structured JSON logs


@pytest.mark.pack
@pytest.mark.redis
def test_two_processes_share_a_real_redis(
    base_env: dict[str, str], start_server: Any, redis_url: str
) -> None:
    env = serve_env(base_env, SWITCHBOARD_STORE=redis_url)
    first, second = start_server(env), start_server(env)
    first.wait_ready()
    second.wait_ready()
    for n in range(8):
        server = (first, second)[n % 2]
        response = server.client.post(
            "/v1/conversations/call-7/turns",
            json={
                "turns": [
                    {"speaker": ("customer", "agent")[n % 2], "text": f"turn {n}: my refund", "id": f"r{n}"}
                ]
            },
        )
        assert response.status_code == 200, response.text
    # A retry of an already stored turn through the other process is a no-op.
    retry = second.client.post(
        "/v1/conversations/call-7/turns",
        json={"turns": [{"speaker": "customer", "text": "turn 0: my refund", "id": "r0"}]},
    )
    assert retry.status_code == 200, retry.text
    again = retry.json()
    assert again["duplicates"] == 1 and again["appended"] == [] and again["version"] == 8
    one, two = state_of(first, "call-7"), state_of(second, "call-7")
    assert one == two
    assert [t["id"] for t in one["turns"]] == [f"r{n}" for n in range(8)] and one["version"] == 8
    assert first.client.delete("/v1/conversations/call-7").json()["deleted"] is True
    assert second.client.get("/v1/conversations/call-7").status_code == 404


def test_serve_refuses_to_start_open(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SWITCHBOARD_AUTH_DISABLED", raising=False)
    monkeypatch.delenv("SWITCHBOARD_API_KEYS", raising=False)
    monkeypatch.setenv("SWITCHBOARD_PORT", "0")  # serve writes its flags to the environment: restore it
    assert main(["serve", "--port", "0"]) == 2
    assert "SWITCHBOARD_API_KEYS" in capsys.readouterr().err


def test_serve_help_lists_every_setting(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for setting in SETTINGS:
        assert setting.flag in out and setting.env in out, setting.name
    assert "--no-redact" in out and "Decision callbacks settings:" in out


def test_serve_names_a_bad_flag_before_starting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SWITCHBOARD_AUTH_DISABLED", "true")
    monkeypatch.setenv("SWITCHBOARD_MAX_TURNS", "200")
    assert main(["serve", "--queue-size", "many"]) == 2
    assert "--queue-size must be an integer, got 'many'" in capsys.readouterr().err
    assert main(["serve", "--queue-size", "100"]) == 2  # cross-checks see flags too
    assert "must not exceed SWITCHBOARD_QUEUE_SIZE (100)" in capsys.readouterr().err


# ---- analyze / policy check / export / keygen ----------------------------------------------------


def test_read_transcripts_json_array_and_jsonl(tmp_path: Path) -> None:
    single = json.dumps({"turns": [TURN]}, indent=2).encode()
    assert [n for n, _ in read_transcripts(_stream(single))] == [1]
    array = json.dumps([{"turns": [TURN]}, {"turns": [TURN]}]).encode()
    assert [json.loads(raw)["turns"] for _, raw in read_transcripts(_stream(array))] == [[TURN], [TURN]]
    jsonl = b"\n".join(json.dumps({"turns": [TURN], "conversation_id": f"c{n}"}).encode() for n in range(3))
    assert [n for n, _ in read_transcripts(_stream(jsonl + b"\n\n"))] == [1, 2, 3]


def _stream(data: bytes) -> Any:
    import io

    return io.BytesIO(data)


@pytest.mark.pack
def test_analyze_file(
    base_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for key, value in base_env.items():
        monkeypatch.setenv(key, value)
    transcripts = tmp_path / "calls.jsonl"
    transcripts.write_text(
        "\n".join(
            [
                json.dumps({"conversation_id": "a", "turns": [TURN]}),
                json.dumps(
                    {"conversation_id": "b", "turns": [{"speaker": "customer", "text": "get me a human"}]}
                ),
                json.dumps({"conversation_id": "c", "turns": []}),
            ]
        )
    )
    assert main(["analyze", str(transcripts)]) == 1  # one transcript is invalid
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines()]
    assert [line["conversation_id"] for line in lines] == ["a", "b"]
    assert {"route", "queue", "priority", "rule", "category", "intent", "sentiment"} <= set(lines[0])
    assert lines[0]["language"] == "en" and lines[0]["resolved"] is False
    assert lines[1]["route"] != "self_serve_bot"
    assert f"{transcripts}:3:" in captured.err and "turns" in captured.err


def test_policy_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.toml"
    good.write_text(default_policy_text())
    assert main(["policy", "check", str(good)]) == 0
    assert "ok (version 2025.2" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text(default_policy_text().replace('route = "specialist"', 'route = "nowhere"', 1))
    assert main(["policy", "check", str(bad)]) == 1
    assert "nowhere" in capsys.readouterr().err
    assert main(["policy", "check", str(tmp_path / "missing.toml")]) == 2


@pytest.mark.pack
async def test_export_closed_conversations(
    base_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from litestar.testing import AsyncTestClient

    from service.app import create_app
    from service.cli import _export_async
    from service.settings import Settings

    settings = Settings.from_env(base_env)
    async with AsyncTestClient(create_app(settings)) as client:
        await client.app.state.service.wait_ready()
        for cid in ("open-1", "done-1", "done-2"):
            await client.post(f"/v1/conversations/{cid}/turns", json={"turns": [TURN]})
        await client.post("/v1/conversations/done-1/close")
        await client.post("/v1/conversations/done-2/close")
    out = tmp_path / "export.jsonl"
    assert await _export_async(settings, [], out, delete=True) == 0
    exported = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(e["conversation_id"] for e in exported) == ["done-1", "done-2"]
    assert all(e["closed"] and e["turns"][0]["text"] == TURN["text"] for e in exported)
    assert await _export_async(settings, ["done-1"], None, delete=False) == 1  # erased by --delete
    assert await _export_async(settings, ["open-1"], None, delete=False) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["conversation_id"] == "open-1"


def test_keygen(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keygen", "--name", "crm"]) == 0
    out = capsys.readouterr().out
    key = out.split("shown once): ")[1].split()[0]
    assert f"crm={hash_api_key(key)}" in out and key.startswith("sb_")


# ---- policy test --------------------------------------------------------------------------------

SUITE = ROOT / "bench" / "suites" / "default_policy.toml"
TINY_SUITE = """
format = 1

[[case]]
id = "person"
tags = ["human_request"]
turns = [
  { speaker = "bot", text = "Hi, how can I help you today?" },
  { speaker = "customer", text = "agent please" },
]
expect = [{ route = "human", guardrail = "human_request" }]

[[case]]
id = "fraud"
turns = [
  { speaker = "customer", text = "Someone used my card without my permission" },
]
expect = [{ route = "specialist", queue = "security", rule = "fraud-security" }]
"""


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep the custom reasons' embedding cache out of the checkout."""
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(tmp_path / "var"))
    return tmp_path / "var"


@pytest.mark.pack
@pytest.mark.usefixtures("data_dir")
def test_policy_test_prints_a_confusion_table_and_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], test_pack: Path
) -> None:
    suite = tmp_path / "suite.toml"
    suite.write_text(TINY_SUITE)
    assert main(["policy", "test", str(suite), "--pack", str(test_pack)]) == 0
    out = capsys.readouterr().out
    assert "policy 2025.2" in out and "2 conversations, 2 checks" in out
    assert "expected \\ actual" in out and "human (any person)" in out
    assert "2/2 checks passed; 2/2 cases passed every check" in out


@pytest.mark.pack
@pytest.mark.usefixtures("data_dir")
def test_policy_test_exits_1_and_explains_each_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], test_pack: Path
) -> None:
    suite = tmp_path / "suite.toml"
    suite.write_text(TINY_SUITE.replace('queue = "security", rule = "fraud-security"', 'queue = "cards"'))
    assert main(["policy", "test", str(suite), "--pack", str(test_pack)]) == 1
    out = capsys.readouterr().out
    assert "FAIL fraud after turn 0: queue: expected cards, got security" in out
    assert "  customer: Someone used my card" in out
    assert "rule 'fraud-security' matched" in out  # the explanation of the decision that failed
    assert "1/2 checks passed; 1/2 cases passed every check -> FAILED" in out


@pytest.mark.usefixtures("data_dir")
def test_policy_test_rejects_a_broken_suite_or_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = tmp_path / "suite.toml"
    suite.write_text('format = 1\n[[case]]\nid = "a"\nturns = []\nexpect = []\n')
    assert main(["policy", "test", str(suite)]) == 2
    err = capsys.readouterr().err
    assert "invalid policy suite (2 errors)" in err
    assert "case 'a', field 'turns': must be a non-empty list" in err
    policy = tmp_path / "policy.toml"
    policy.write_text('version = ""')
    suite.write_text(TINY_SUITE)
    assert main(["policy", "test", str(suite), "--policy", str(policy)]) == 2
    assert "invalid routing policy" in capsys.readouterr().err
    assert main(["policy", "test", str(tmp_path / "missing.toml")]) == 2


@pytest.mark.pack
@pytest.mark.usefixtures("data_dir")
def test_the_committed_policy_suite_passes(capsys: pytest.CaptureFixture[str], test_pack: Path) -> None:
    """CI runs the committed suite: every labelled conversation gets the route, queue and rule the
    default policy is for, and every rule and guardrail decides at least one of them."""
    code = main(["policy", "test", str(SUITE), "--pack", str(test_pack), "--brief"])
    out = capsys.readouterr().out
    assert "coverage: 13/13 rules (default included) and 3/3 guardrails" in out, out[-3000:]
    assert code == 0, out[-6000:]
