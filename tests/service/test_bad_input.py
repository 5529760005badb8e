"""A corpus of bad inputs (``data/bad_inputs.jsonl``), each sent to a live app: always 4xx problem+json.

Every case names the status it must get (never >= 500), and where it matters the field or the
limit the problem must name. Before the corpus runs, a conversation gets two turns; after every
case those turns, the active policy and the active reasons must be exactly as before: a refused
request changes nothing. Reload cases first write an unusable policy or reasons file.

Case fields: ``name``, ``method``, ``path`` (sent as is, percent-escapes included), ``status``;
optional ``body`` (text, sent as UTF-8) or ``body_hex`` (raw bytes), ``content_type``, ``field``
(a ``errors[].field`` the problem must name), ``limit`` (the ``limit`` member it must carry),
``policy_file`` / ``reasons_file`` (``{"text": ...}``, ``{"hex": ...}`` or ``{"missing": true}``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from routing.policy import default_policy_text
from service.app import create_app
from service.reasons import default_reasons_text
from service.settings import Settings

pytestmark = pytest.mark.pack

CORPUS = Path(__file__).parent / "data" / "bad_inputs.jsonl"
CASES: list[dict[str, Any]] = [json.loads(line) for line in CORPUS.read_text("utf-8").splitlines() if line]
KEEP = "keep-1"
KEPT_TURNS = [
    {"speaker": "customer", "text": "I was charged twice for my order", "id": "t1"},
    {"speaker": "agent", "text": "Let me look at that charge for you", "id": "t2"},
]


class Live:
    """The app under test, its files, and what must survive every bad request."""

    def __init__(self, client: TestClient[Any], policy: Path, reasons: Path) -> None:
        self.client = client
        self.policy = policy
        self.reasons = reasons
        self.snapshot = self.state()

    def state(self) -> dict[str, Any]:
        stored = self.client.get(f"/v1/conversations/{KEEP}")
        assert stored.status_code == 200, stored.text
        body = stored.json()
        policy = self.client.get("/v1/policy").json()
        reasons = self.client.get("/v1/reasons").json()
        return {
            "turns": [(t["index"], t["speaker"], t["text"], t["id"]) for t in body["turns"]],
            "version": body["version"],
            "policy": policy["hash"],
            "reasons": (reasons["hash"], reasons["status"]),
        }


def write_file(path: Path, spec: dict[str, Any]) -> None:
    if spec.get("missing"):
        path.unlink(missing_ok=True)
    elif "hex" in spec:
        path.write_bytes(bytes.fromhex(spec["hex"]))
    else:
        path.write_text(spec["text"], encoding="utf-8")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, test_pack: Path) -> Iterator[Live]:
    folder = tmp_path_factory.mktemp("bad-input")
    policy, reasons = folder / "policy.toml", folder / "reasons.toml"
    policy.write_text(default_policy_text(), encoding="utf-8")
    reasons.write_text(default_reasons_text(), encoding="utf-8")
    env = {
        "SWITCHBOARD_AUTH_DISABLED": "true",
        "SWITCHBOARD_DATA_DIR": str(folder / "var"),
        "SWITCHBOARD_PACK": str(test_pack),
        "SWITCHBOARD_POLICY": str(policy),
        "SWITCHBOARD_REASONS": str(reasons),
        "SWITCHBOARD_RATE_LIMIT": "0",
        "SWITCHBOARD_POLICY_RELOAD_INTERVAL": "0",
        "SWITCHBOARD_MAX_TURNS": "20",
        "SWITCHBOARD_MAX_TEXT_CHARS": "500",
        "SWITCHBOARD_MAX_BODY_BYTES": "16384",
        "SWITCHBOARD_LOG_LEVEL": "WARNING",
    }
    with TestClient(create_app(Settings.from_env(env)), raise_server_exceptions=False) as client:
        deadline = time.monotonic() + 60
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, client.get("/readyz").text
            time.sleep(0.05)
        stored = client.post(f"/v1/conversations/{KEEP}/turns", json={"turns": KEPT_TURNS})
        assert stored.status_code == 200, stored.text
        yield Live(client, policy, reasons)


def test_the_corpus_is_big_and_well_formed() -> None:
    names = [case["name"] for case in CASES]
    assert len(names) >= 100 and len(set(names)) == len(names)
    for case in CASES:
        assert 400 <= case["status"] < 500, case["name"]


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_bad_input_is_a_4xx_problem_and_changes_nothing(live: Live, case: dict[str, Any]) -> None:
    if "policy_file" in case:
        write_file(live.policy, case["policy_file"])
    if "reasons_file" in case:
        write_file(live.reasons, case["reasons_file"])
    content: bytes | None = None
    if "body_hex" in case:
        content = bytes.fromhex(case["body_hex"])
    elif "body" in case:
        content = case["body"].encode("utf-8")
    headers = {"content-type": case["content_type"]} if "content_type" in case else {}
    response = live.client.request(case["method"], case["path"], content=content, headers=headers)

    assert response.status_code == case["status"], f"{case['name']}: {response.status_code} {response.text}"
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    problem = response.json()
    assert problem["status"] == case["status"] and problem["type"].startswith("urn:switchboard:problem:")
    assert (
        problem["title"] and problem["detail"] and problem["request_id"] == response.headers["x-request-id"]
    )
    if "field" in case:
        fields = [error["field"] for error in problem.get("errors", [])]
        assert any(field.startswith(case["field"]) for field in fields), (case["field"], problem)
    if "limit" in case:
        assert problem["limit"] == case["limit"] and problem["max"] == 64, problem
    assert live.state() == live.snapshot, "a refused request changed the stored state"
