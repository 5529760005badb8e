"""The whole /v1 API through Litestar's test client, with the real default model pack.

One app (SQLite store in a temp dir, auth off) serves most tests; tests that
need other settings build their own. Skips only while the default pack is absent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from models.errors import OverloadedError
from routing.policy import default_policy_text
from service.app import ServiceState, create_app
from service.settings import Settings, hash_api_key
from tests.service.conftest import private_redis

pytestmark = pytest.mark.pack

CUSTOMER_TURN = {"speaker": "customer", "text": "I was charged twice for my order, please refund me"}


def build(env: dict[str, str], **extra: str) -> Litestar:
    return create_app(Settings.from_env({**env, **extra}))


def wait_ready(client: TestClient[Any]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if client.get("/readyz").status_code == 200:
            return
        time.sleep(0.05)
    raise AssertionError(f"service never became ready: {client.get('/readyz').text}")


@pytest.fixture(scope="module")
def module_env(tmp_path_factory: pytest.TempPathFactory, test_pack: Path) -> dict[str, str]:
    return {
        "SWITCHBOARD_AUTH_DISABLED": "true",
        "SWITCHBOARD_DATA_DIR": str(tmp_path_factory.mktemp("api") / "var"),
        "SWITCHBOARD_PACK": str(test_pack),
        "SWITCHBOARD_RATE_LIMIT": "0",
        "SWITCHBOARD_POLICY_RELOAD_INTERVAL": "0",
        "SWITCHBOARD_MAX_TURNS": "50",
        "SWITCHBOARD_MAX_TEXT_CHARS": "500",
        "SWITCHBOARD_MAX_BODY_BYTES": "65536",
    }


@pytest.fixture(scope="module")
def client(module_env: dict[str, str]) -> Iterator[TestClient[Any]]:
    with TestClient(build(module_env)) as test_client:
        wait_ready(test_client)
        yield test_client


def problem(response: Any, status: int) -> dict[str, Any]:
    """Assert an RFC 9457 body with the given status and return it."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["type"].startswith("urn:switchboard:problem:")
    assert body["title"] and body["detail"] and body["request_id"] == response.headers["x-request-id"]
    return body


def assert_close(left: Any, right: Any, *, tolerance: float, where: str) -> None:
    """Equal structures, except that numbers may differ by ``tolerance``."""
    if isinstance(left, float) or isinstance(right, float):
        assert isinstance(left, int | float) and isinstance(right, int | float), where
        assert abs(left - right) <= tolerance, f"{where}: {left} vs {right}"
    elif isinstance(left, dict):
        assert isinstance(right, dict) and left.keys() == right.keys(), where
        for key in left:
            assert_close(left[key], right[key], tolerance=tolerance, where=f"{where}.{key}")
    elif isinstance(left, list):
        assert isinstance(right, list) and len(left) == len(right), where
        for n, (a, b) in enumerate(zip(left, right, strict=True)):
            assert_close(a, b, tolerance=tolerance, where=f"{where}[{n}]")
    else:
        assert left == right, f"{where}: {left!r} vs {right!r}"


def fields(body: dict[str, Any]) -> list[str]:
    return [error["field"] for error in body.get("errors", [])]


# ---- POST /v1/analyze ---------------------------------------------------------------------------


def test_analyze_contract(client: TestClient[Any]) -> None:
    response = client.post(
        "/v1/analyze",
        json={
            "conversation_id": "call-42",
            "channel": "voice",
            "language": "en",
            "customer": {"id": "cu-1", "tier": "gold", "tenure_months": 30, "attributes": {"plan": "pro"}},
            "turns": [
                {"speaker": "bot", "text": "Hi, how can I help?", "ts": "2024-05-01T12:00:00Z", "id": "t0"},
                {
                    "speaker": "customer",
                    "text": "My card 4111 1111 1111 1111 was charged twice, mail me at jo@example.com",
                    "ts": "2024-05-01T12:00:05Z",
                    "id": "t1",
                },
                {"speaker": "agent", "text": "Sorry about that, let me check."},
                {"speaker": "customer", "text": "This is the third time I call about it!"},
            ],
            "metadata": {"anything": ["goes", 1]},
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["conversation_id"] == "call-42" and body["channel"] == "voice"
    decision = body["decision"]
    assert decision["route"] in ("self_serve_bot", "specialist", "retention_human")
    assert decision["queue"] and isinstance(decision["priority"], int) and decision["rule"]
    assert decision["explanation"] and all(line["text"] for line in decision["explanation"])
    assert set(decision["policy"]) == {"version", "hash"} and "variant" in decision
    reason = body["contact_reason"]
    assert {"category", "intent", "confidence", "alternatives"} <= set(reason)
    assert {"label", "score", "trend"} <= set(body["sentiment"])
    assert isinstance(body["emotions"], list) and isinstance(body["signals"], dict)
    assert body["context"]["routing"]["route"] == decision["route"]
    assert body["models"]["pack"] and body["timing_ms"]["total"] > 0
    turns = body["turns"]
    assert [t["index"] for t in turns] == [0, 1, 2, 3]
    assert [t["speaker"] for t in turns] == ["bot", "customer", "agent", "customer"]
    for turn in turns:
        assert {"label", "score", "probs"} <= set(turn["sentiment"])
        assert abs(sum(turn["sentiment"]["probs"].values()) - 1) < 1e-3
        assert isinstance(turn["emotions"], list)
        if turn["speaker"] == "customer":
            assert turn["intent"]["label"] and 0 <= turn["intent"]["confidence"] <= 1
        else:
            assert turn["intent"] is None
        assert set(turn["act"]) == {"label", "confidence"} and 0 <= turn["act"]["confidence"] <= 1
        assert set(turn["language"]) == {"code", "confidence", "supported"}
        assert turn["lexical"] is True
    assert turns[1]["language"]["code"] == "en" and turns[1]["language"]["supported"] is True
    assert body["language"] == {"code": "en", "supported": True}
    assert body["decision"]["resolved"] is False
    assert body["signals"]["language.code"] == "en" and body["signals"]["conversation.closing"] is False
    # PII is redacted in everything returned.
    assert turns[1]["text"] == "My card [CARD_NUMBER] was charged twice, mail me at [EMAIL]"
    assert "4111 1111" not in response.text and "jo@example.com" not in response.text
    assert turns[1]["ts"] == "2024-05-01T12:00:05Z" and turns[1]["id"] == "t1"


def test_request_id_in_and_out(client: TestClient[Any]) -> None:
    response = client.post(
        "/v1/analyze", json={"turns": [CUSTOMER_TURN]}, headers={"X-Request-ID": "abc-123"}
    )
    assert response.headers["x-request-id"] == "abc-123"
    generated = client.post(
        "/v1/analyze", json={"turns": [CUSTOMER_TURN]}, headers={"X-Request-ID": "bad id!"}
    )
    assert generated.headers["x-request-id"] != "bad id!" and len(generated.headers["x-request-id"]) == 32
    assert response.json()["conversation_id"].startswith("anon-")


def test_explicit_human_request_never_stays_with_the_bot(client: TestClient[Any]) -> None:
    for text in (
        "I want to talk to a real person",
        "agent. AGENT. representative please",
        "get me a human now",
    ):
        body = client.post("/v1/analyze", json={"turns": [{"speaker": "customer", "text": text}]}).json()
        assert body["decision"]["route"] != "self_serve_bot", (text, body["decision"])
        assert "human_request" in body["signals"]["escalation.flags"]


def test_non_lexical_turn_is_quiet(client: TestClient[Any]) -> None:
    body = client.post(
        "/v1/analyze",
        json={"turns": [CUSTOMER_TURN, {"speaker": "customer", "text": "[noise]"}]},
    ).json()
    noise = body["turns"][1]
    assert noise["lexical"] is False
    assert noise["act"] == {"label": "non_lexical", "confidence": 1.0}
    assert noise["sentiment"]["label"] == "neutral" and noise["sentiment"]["score"] == 0.0
    assert noise["emotions"] == []
    assert noise["intent"] == {
        "label": "unknown",
        "confidence": 0.0,
        "category": "out_of_scope",
        "source": "model",
        "similarity": None,
        "atypicality": None,
        "closest_example": None,
        "closest_example_similarity": None,
    }
    assert noise["language"]["code"] == "und"
    # It weighs nothing: the conversation's sentiment, emotions and reason are the first turn's.
    # (Compared within one response: a text's scores move slightly with its batch neighbours.)
    first = body["turns"][0]
    assert body["sentiment"]["label"] == first["sentiment"]["label"]
    assert body["sentiment"]["score"] == body["sentiment"]["level"] == first["sentiment"]["score"]
    assert body["emotions"] == first["emotions"]
    assert body["signals"]["intent.current"] == first["intent"]["label"]
    assert body["context"]["turns"]["customer_non_lexical"] == 1
    assert [line["turn"] for line in body["context"]["summary"]] == [0]  # "[noise]" is never quoted
    assert body["signals"]["turn.act"] == "non_lexical"
    assert body["signals"]["turns.customer"] == 2 and body["signals"]["turns.customer_lexical"] == 1


def test_a_caller_who_keeps_asking_the_bot_to_repeat_itself_is_taken_out_of_the_loop(
    client: TestClient[Any],
) -> None:
    prompt = {"speaker": "bot", "text": "Please say or enter the last four digits of your card."}
    asks = ["sorry, can you repeat that?", "i can't hear you", "um what was that"]
    turns = [prompt]
    for text in asks:
        turns += [{"speaker": "customer", "text": text}, prompt]
    two = client.post("/v1/analyze", json={"turns": turns[:4]}).json()
    assert [t["act"]["label"] for t in two["turns"] if t["speaker"] == "customer"] == ["repeat_request"] * 2
    assert two["signals"]["escalation.bot_loop"] is False and two["signals"]["turn.act"] == "repeat_request"
    three = client.post("/v1/analyze", json={"turns": turns[:6]}).json()
    assert three["signals"]["escalation.bot_loop"] is True
    assert three["decision"]["route"] != "self_serve_bot", three["decision"]
    # Weightless otherwise: no sentiment of the customer's, no reason.
    assert three["context"]["turns"]["customer_non_lexical"] == 3
    assert three["signals"]["turns.customer_lexical"] == 0


SPANISH = "Hola, perdí mi tarjeta de crédito ayer y necesito ayuda"


def test_unsupported_language_is_reported_and_never_stays_with_the_bot(client: TestClient[Any]) -> None:
    for turns in (
        [{"speaker": "customer", "text": SPANISH}],
        [
            {"speaker": "customer", "text": "hi"},
            {"speaker": "bot", "text": "Hi, how can I help you today?"},
            {"speaker": "customer", "text": SPANISH},
        ],
    ):
        body = client.post("/v1/analyze", json={"turns": turns}).json()
        spanish = body["turns"][-1]
        assert spanish["language"]["code"] == "es" and spanish["language"]["supported"] is False
        assert spanish["sentiment"]["label"] == "unknown" and spanish["emotions"] == []
        assert spanish["intent"]["label"] == "unknown" and spanish["act"]["label"] == "unknown"
        assert body["language"] == {"code": "es", "supported": False}
        decision = body["decision"]
        assert decision["route"] != "self_serve_bot", decision["summary"]
        assert (decision["route"], decision["queue"]) == ("specialist", "general")
        assert "unsupported_language" in decision["guardrails_active"]
        assert body["signals"]["language.supported"] is False


def test_live_conversation_reports_its_language(client: TestClient[Any]) -> None:
    url = "/v1/conversations/live-es/turns"
    first = client.post(url, json={"turns": [{"speaker": "customer", "text": SPANISH, "id": "1"}]}).json()
    assert first["language"] == {"code": "es", "supported": False}
    assert first["decision"]["route"] != "self_serve_bot"
    state = client.get("/v1/conversations/live-es").json()
    assert state["language"] == first["language"] and state["turns"][0]["language"]["code"] == "es"
    exported = client.get("/v1/conversations/live-es/export").json()
    assert exported["signals"]["language"] == "es" and exported["signals"]["language_supported"] is False


def test_same_input_same_decision(client: TestClient[Any]) -> None:
    request = {"conversation_id": "same", "turns": [CUSTOMER_TURN, {"speaker": "agent", "text": "ok"}]}
    first = client.post("/v1/analyze", json=request).json()
    second = client.post("/v1/analyze", json=request).json()
    assert first["decision"] == second["decision"] and first["turns"] == second["turns"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"turns": []}, "turns"),
        ({"turns": [{"speaker": "customer", "text": ""}]}, "turns[0].text"),
        ({"turns": [{"speaker": "customer", "text": "  \n\t "}]}, "turns[0].text"),
        ({"turns": [{"speaker": "caller", "text": "hi"}]}, "turns[0].speaker"),
        ({"turns": [{"speaker": "customer", "text": "hi", "ts": "yesterday"}]}, "turns[0].ts"),
        ({"turns": [{"speaker": "customer", "text": "hi", "ts": "2024-02-30T10:00:00Z"}]}, "turns[0].ts"),
        ({"turns": [{"speaker": "customer", "text": "hi", "ts": "2024-02-01T10:00:00"}]}, "turns[0].ts"),
        ({"turns": [{"speaker": "customer", "text": 5}]}, "turns[0].text"),
        ({"turns": [{"speaker": "customer"}]}, "turns[0]"),
        ({"turns": [{"speaker": "customer", "text": "hi", "mood": "x"}]}, "turns[0].mood"),
        ({"turns": [CUSTOMER_TURN], "channel": "fax"}, "channel"),
        ({"turns": [CUSTOMER_TURN], "customer": {"tenure_months": -1}}, "customer.tenure_months"),
        ({"turns": [CUSTOMER_TURN], "conversation_id": "has space"}, "conversation_id"),
        ({"turn": [CUSTOMER_TURN]}, "turn"),
        ([CUSTOMER_TURN], "body"),
    ],
)
def test_invalid_input_is_422_naming_the_field(client: TestClient[Any], body: Any, field: str) -> None:
    response = client.post("/v1/analyze", json=body)
    found = fields(problem(response, 422))
    assert any(f == field or f.startswith(field) for f in found), found


def test_malformed_json_is_400(client: TestClient[Any]) -> None:
    problem(
        client.post("/v1/analyze", content=b'{"turns": [', headers={"content-type": "application/json"}), 400
    )
    assert fields(problem(client.post("/v1/analyze"), 400)) == ["body"]


def test_limits_are_422_naming_the_limit(client: TestClient[Any]) -> None:
    too_many = problem(client.post("/v1/analyze", json={"turns": [CUSTOMER_TURN] * 51}), 422)
    assert too_many["limit"] == "SWITCHBOARD_MAX_TURNS" and too_many["max"] == 50
    too_long = problem(
        client.post("/v1/analyze", json={"turns": [{"speaker": "customer", "text": "a" * 501}]}), 422
    )
    assert too_long["limit"] == "SWITCHBOARD_MAX_TEXT_CHARS" and fields(too_long) == ["turns[0].text"]


def test_body_too_large_is_413(client: TestClient[Any]) -> None:
    body = b'{"turns": [{"speaker": "customer", "text": "' + b"a" * 70_000 + b'"}]}'
    problem(client.post("/v1/analyze", content=body, headers={"content-type": "application/json"}), 413)


def test_unknown_route_and_method(client: TestClient[Any]) -> None:
    problem(client.get("/v1/nothing"), 404)
    problem(client.get("/v1/analyze"), 405)


# ---- live conversations ---------------------------------------------------------------------------


def test_append_is_idempotent_and_scores_only_new_turns(client: TestClient[Any]) -> None:
    url = "/v1/conversations/live-1/turns"
    first = client.post(
        url, json={"turns": [{**CUSTOMER_TURN, "id": "a"}], "channel": "chat", "source": "crm"}
    )
    assert first.status_code == 200, first.text
    one = first.json()
    assert (
        one["version"] == 1 and one["appended"] == [0] and one["duplicates"] == 0 and one["channel"] == "chat"
    )

    retry = client.post(url, json={"turns": [{**CUSTOMER_TURN, "id": "a"}]}).json()
    assert retry["version"] == 1 and retry["appended"] == [] and retry["duplicates"] == 1
    assert retry["turns"] == [] and retry["turn_count"] == 1 and retry["decision"] == one["decision"]

    more = client.post(
        url + "?turns=all",
        json={
            "turns": [{**CUSTOMER_TURN, "id": "a"}, {"speaker": "agent", "text": "Let me look.", "id": "b"}]
        },
    ).json()
    assert more["version"] == 2 and more["appended"] == [1] and more["duplicates"] == 1
    assert [t["id"] for t in more["turns"]] == ["a", "b"]
    assert more["turns"][0] == one["turns"][0]  # the old turn was not re-scored or changed

    only_new = client.post(url, json={"turns": [{"speaker": "customer", "text": "thanks"}]}).json()
    assert [t["index"] for t in only_new["turns"]] == [2] and only_new["version"] == 3

    state = client.get("/v1/conversations/live-1").json()
    assert [t["index"] for t in state["turns"]] == [0, 1, 2] and state["version"] == 3
    assert state["turn_count"] == 3 and state["next_after"] is None
    assert state["decision"] == only_new["decision"] and state["signals"] == only_new["signals"]
    page = client.get("/v1/conversations/live-1?after=0&limit=1").json()
    assert [t["index"] for t in page["turns"]] == [1] and page["next_after"] == 1
    problem(client.get("/v1/conversations/live-1?limit=0"), 400)
    problem(client.get("/v1/conversations/live-1?limit=1001"), 400)

    changed = client.post(url, json={"turns": [{**CUSTOMER_TURN, "id": "a", "text": "something else"}]})
    body = problem(changed, 409)
    assert body["turn_id"] == "a" and "'a'" in body["detail"]


def test_live_conversation_matches_stateless_analysis(client: TestClient[Any]) -> None:
    turns = [
        CUSTOMER_TURN,
        {"speaker": "bot", "text": "I can help with refunds."},
        {"speaker": "customer", "text": "it still is not working, this is ridiculous"},
    ]
    for turn in turns:
        client.post("/v1/conversations/incremental/turns", json={"turns": [turn]})
    live = client.get("/v1/conversations/incremental").json()
    whole = client.post("/v1/analyze", json={"conversation_id": "incremental", "turns": turns}).json()
    # Dynamic int8 quantization scales activations per batch, so a text scored alone and in a batch
    # differ slightly (~1e-3; an emotion right at its threshold may flip). The decision must not.
    # (Exact incremental == whole-transcript equivalence is tested in test_conversations.py.)
    for key in ("route", "queue", "priority", "rule"):
        assert live["decision"][key] == whole["decision"][key], key
    for key in ("intent", "category", "status"):
        assert live["contact_reason"][key] == whole["contact_reason"][key], key
    assert_close(live["sentiment"]["score"], whole["sentiment"]["score"], tolerance=0.05, where="sentiment")


def test_get_unknown_and_delete(client: TestClient[Any]) -> None:
    problem(client.get("/v1/conversations/never-seen"), 404)
    client.post("/v1/conversations/to-erase/turns", json={"turns": [CUSTOMER_TURN]})
    erased = client.delete("/v1/conversations/to-erase")
    assert erased.status_code == 200 and erased.json() == {"conversation_id": "to-erase", "deleted": True}
    problem(client.get("/v1/conversations/to-erase"), 404)
    assert client.delete("/v1/conversations/to-erase").json()["deleted"] is False
    replay = client.post("/v1/conversations/to-erase/turns", json={"turns": [CUSTOMER_TURN]})
    assert "erased" in problem(replay, 410)["detail"]
    problem(client.get("/v1/conversations/to-erase"), 404)  # the replay re-created nothing
    problem(client.get("/v1/conversations/bad%20id"), 422)


def test_close_then_export(client: TestClient[Any]) -> None:
    client.post("/v1/conversations/closing/turns", json={"turns": [{**CUSTOMER_TURN, "id": "c0"}]})
    closed = client.post("/v1/conversations/closing/close").json()
    assert closed["closed"] is True
    problem(client.post("/v1/conversations/closing/turns", json={"turns": [CUSTOMER_TURN]}), 409)
    retry = client.post("/v1/conversations/closing/turns", json={"turns": [{**CUSTOMER_TURN, "id": "c0"}]})
    assert retry.status_code == 200 and retry.json()["duplicates"] == 1  # a late retry is still idempotent
    exported = client.get("/v1/conversations/closing/export").json()
    assert exported["closed"] is True and exported["turns"][0]["text"] == CUSTOMER_TURN["text"]
    assert exported["decision"]["route"] == closed["decision"]["route"] and "reason" in exported["signals"]


async def test_concurrent_appends_lose_and_reorder_nothing(
    module_env: dict[str, str], serve_app: Any
) -> None:
    app = build(module_env)
    with serve_app(app) as server:  # a real server: the test clients run one request at a time
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            url = "/v1/conversations/hot/turns"
            batches = [
                [{"speaker": "customer", "text": f"message {n} about my refund", "id": f"m{n}"}]
                for n in range(24)
            ]
            responses = await asyncio.gather(*(client.post(url, json={"turns": b}) for b in batches))
            assert all(r.status_code == 200 for r in responses), [
                r.text for r in responses if r.status_code != 200
            ]
            state = (await client.get("/v1/conversations/hot?limit=100")).json()
    assert [t["index"] for t in state["turns"]] == list(range(24))
    assert sorted(t["id"] for t in state["turns"]) == sorted(f"m{n}" for n in range(24))
    assert state["version"] == 24
    # Each append saw every earlier one: the versions it returned are exactly 1..24.
    assert sorted(r.json()["version"] for r in responses) == list(range(1, 25))


def test_conversation_turn_limit(module_env: dict[str, str]) -> None:
    with TestClient(build(module_env, SWITCHBOARD_MAX_CONVERSATION_TURNS="2")) as client:
        wait_ready(client)
        client.post("/v1/conversations/full/turns", json={"turns": [CUSTOMER_TURN, CUSTOMER_TURN]})
        body = problem(client.post("/v1/conversations/full/turns", json={"turns": [CUSTOMER_TURN]}), 422)
        assert body["limit"] == "SWITCHBOARD_MAX_CONVERSATION_TURNS"


# ---- policy ---------------------------------------------------------------------------------------------


def test_policy_endpoints(client: TestClient[Any]) -> None:
    active = client.get("/v1/policy").json()
    assert (
        active["version"] and len(active["hash"]) == 64 and active["rules"] and active["source"] == "default"
    )
    valid = client.post("/v1/policy/validate", json={"policy": default_policy_text()}).json()
    assert valid == {
        "valid": True,
        "version": active["version"],
        "hash": active["hash"],
        "rules": len(active["rules"]),
        "errors": [],
    }
    broken = default_policy_text().replace('route = "specialist"', 'route = "nowhere"', 1)
    invalid = client.post("/v1/policy/validate", json={"policy": broken}).json()
    assert invalid["valid"] is False and any("route" in e for e in invalid["errors"])
    garbage = client.post("/v1/policy/validate", json={"policy": "[[[not toml"}).json()
    assert garbage["valid"] is False and garbage["errors"]
    assert client.get("/v1/policy").json()["hash"] == active["hash"]  # validation activates nothing


def test_policy_reload_from_file(module_env: dict[str, str], tmp_path: Path) -> None:
    policy_file = tmp_path / "policy.toml"
    text = default_policy_text()
    policy_file.write_text(text)
    with TestClient(build(module_env, SWITCHBOARD_POLICY=str(policy_file))) as client:
        wait_ready(client)
        before = client.get("/v1/policy").json()
        assert before["source"] == str(policy_file)
        policy_file.write_text(text.replace('version = "2025.2"', 'version = "2025.2-edited"', 1))
        after = client.post("/v1/policy/reload").json()
        assert after["hash"] != before["hash"] and after["version"] == "2025.2-edited"
        policy_file.write_text(text.replace('route = "specialist"', 'route = "nowhere"', 1))
        rejected = problem(client.post("/v1/policy/reload"), 422)
        assert any("route" in e["message"] for e in rejected["errors"])
        assert client.get("/v1/policy").json()["hash"] == after["hash"]  # the old policy stays


# ---- auth, rate limit, overload, readiness ------------------------------------------------------------


def test_api_keys(module_env: dict[str, str]) -> None:
    env = {k: v for k, v in module_env.items() if k != "SWITCHBOARD_AUTH_DISABLED"}
    app = build(env, SWITCHBOARD_API_KEYS=f"ops={hash_api_key('sb_secret')}")
    with TestClient(app) as client:
        wait_ready(client)
        missing = problem(client.post("/v1/analyze", json={"turns": [CUSTOMER_TURN]}), 401)
        assert "Bearer" in missing["detail"]
        problem(client.get("/v1/policy", headers={"Authorization": "Bearer nope"}), 401)
        ok = client.get("/v1/policy", headers={"Authorization": "Bearer sb_secret"})
        assert ok.status_code == 200
        for open_path in ("/healthz", "/readyz", "/metrics", "/schema/openapi.json"):
            assert client.get(open_path).status_code == 200, open_path


def test_rate_limit_per_key(module_env: dict[str, str]) -> None:
    with TestClient(build(module_env, SWITCHBOARD_RATE_LIMIT="0.5", SWITCHBOARD_RATE_BURST="2")) as client:
        wait_ready(client)
        assert client.get("/v1/policy").status_code == 200
        assert client.get("/v1/policy").status_code == 200
        limited = client.get("/v1/policy")
        problem(limited, 429)
        assert int(limited.headers["retry-after"]) >= 1
        assert client.get("/healthz").status_code == 200  # probes are never limited


def test_overload_is_429_with_retry_after(client: TestClient[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    service: ServiceState = client.app.state.service
    assert service.gate.runtime is not None

    async def full(texts: Any, deadline_ms: Any = None) -> Any:
        raise OverloadedError("queue full", retry_after=0.2)

    monkeypatch.setattr(service.gate.runtime, "submit", full)
    response = client.post("/v1/analyze", json={"turns": [CUSTOMER_TURN]})
    body = problem(response, 429)
    assert response.headers["retry-after"] == "1" and "queue" in body["detail"]


def test_not_ready_is_503(module_env: dict[str, str], tmp_path: Path) -> None:
    with TestClient(build(module_env, SWITCHBOARD_PACK=str(tmp_path / "no-pack"))) as client:
        service: ServiceState = client.app.state.service
        deadline = time.monotonic() + 30
        while not service.gate.ready_event.is_set() and time.monotonic() < deadline:
            time.sleep(0.02)
        response = client.post("/v1/analyze", json={"turns": [CUSTOMER_TURN]})
        problem(response, 503)
        assert response.headers["retry-after"] == "1"
        assert client.get("/readyz").status_code == 503
        assert client.get("/healthz").json()["status"] == "failed"


def test_internal_errors_leak_nothing(
    client: TestClient[Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from service.logs import JsonFormatter

    service: ServiceState = client.app.state.service
    assert service.gate.runtime is not None

    async def broken(texts: Any, deadline_ms: Any = None) -> Any:
        raise RuntimeError(f"boom while scoring {texts[0]}")

    monkeypatch.setattr(service.gate.runtime, "submit", broken)
    secret = "my secret account number is 12345678"
    with caplog.at_level("DEBUG"):
        response = client.post("/v1/analyze", json={"turns": [{"speaker": "customer", "text": secret}]})
    body = problem(response, 500)
    assert (
        body["detail"] == "Internal error" and "boom" not in response.text and "secret" not in response.text
    )
    formatter = JsonFormatter()
    logged = "\n".join(formatter.format(record) for record in caplog.records)
    assert "RuntimeError" in logged and "boom" not in logged and "secret" not in logged


def test_transcripts_are_not_logged(client: TestClient[Any], caplog: pytest.LogCaptureFixture) -> None:
    from service.logs import JsonFormatter

    marker = "zebra-unicorn-transcript-marker"
    with caplog.at_level("DEBUG"):
        client.post("/v1/analyze", json={"turns": [{"speaker": "customer", "text": f"hello {marker}"}]})
        client.post(
            "/v1/conversations/logged/turns", json={"turns": [{"speaker": "customer", "text": marker}]}
        )
        client.post("/v1/analyze", json={"turns": [{"speaker": "customer", "text": ""}], "x": marker})
    formatter = JsonFormatter()
    logged = "\n".join(formatter.format(record) for record in caplog.records)
    assert "request" in logged and "turn scored" in logged and marker not in logged


def test_transcripts_logged_only_when_enabled(
    module_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    marker = "okapi-transcript-marker"
    with TestClient(build(module_env, SWITCHBOARD_LOG_TRANSCRIPTS="true")) as client:
        wait_ready(client)
        with caplog.at_level("DEBUG", logger="switchboard.analysis"):
            client.post("/v1/analyze", json={"turns": [{"speaker": "customer", "text": f"hi {marker}"}]})
    assert any(marker in str(getattr(record, "text", "")) for record in caplog.records)


# ---- ops ------------------------------------------------------------------------------------------


def test_metrics_cover_routes_inference_and_decisions(client: TestClient[Any]) -> None:
    client.post("/v1/analyze", json={"turns": [CUSTOMER_TURN]})
    client.post("/v1/analyze", json={"turns": []})
    text = client.get("/metrics").text
    assert (
        'switchboard_http_request_duration_seconds_count{method="POST",route="/v1/analyze",status="200"}'
        in text
    )
    assert "switchboard_inference_batch_duration_seconds_count" in text
    assert "switchboard_inference_batch_size_bucket" in text
    assert "switchboard_inference_queue_depth" in text
    assert "switchboard_decisions_total{" in text and "category=" in text
    assert 'switchboard_errors_total{status="422",type="validation-failed"}' in text
    assert "switchboard_policy_info{" in text and "switchboard_ready 1.0" in text


def test_health_and_schema(client: TestClient[Any]) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "ready": True, "checks": {}}
    ready = client.get("/readyz").json()
    assert ready["ready"] is True and ready["checks"] == {"pack": "ready", "store": "ok"}
    schema = client.get("/schema/openapi.json").json()
    for path in (
        "/v1/analyze",
        "/v1/conversations/{conversation_id}/turns",
        "/v1/conversations/{conversation_id}",
        "/v1/policy",
        "/v1/policy/validate",
        "/healthz",
        "/readyz",
        "/metrics",
    ):
        assert path in schema["paths"], path
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


@pytest.mark.redis
def test_a_frozen_redis_store_is_a_quick_503_and_analyze_still_works(
    module_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    with private_redis(tmp_path_factory) as redis_server:
        app = build(module_env, SWITCHBOARD_STORE=redis_server.url, SWITCHBOARD_OUTBOX="memory://")
        with TestClient(app) as client:
            wait_ready(client)
            url = "/v1/conversations/frozen/turns"
            assert client.post(url, json={"turns": [CUSTOMER_TURN]}).status_code == 200
            redis_server.freeze()
            try:
                for _ in range(4):  # timed out, then refused at once by the open breaker
                    started = time.monotonic()
                    body = problem(client.post(url, json={"turns": [CUSTOMER_TURN]}), 503)
                    assert time.monotonic() - started < 2.0 and "redis" in body["detail"]
                analyzed = client.post("/v1/analyze", json={"turns": [CUSTOMER_TURN]})
                assert analyzed.status_code == 200, analyzed.text
                assert client.get("/readyz").status_code == 503
            finally:
                redis_server.thaw()
