"""Platform actions end to end: decision -> durable outbox -> the real clients -> recording servers.

Each test drives ``PlatformActions.on_decision`` with an analysis in the API's response
shape, runs the real ``Outbox`` worker on a real SQLite file, and counts the API calls the
recorder got: exactly one assignment, one label update and one private note per handoff,
also when a call fails, when its answer is lost, and across a restart.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from adapter_payloads import chatwoot_message, chatwoot_request
from api_recorder import ChatwootConversation, Recorder, TaskRouterWorkspace, running_recorder
from litestar.testing import TestClient
from prometheus_client import CollectorRegistry

from service.adapters.actions import (
    PlatformActions,
    attach_actions,
    context_summary,
    handoff_from,
    labels_for,
)
from service.adapters.backend import open_backend
from service.adapters.config import AdapterConfig
from service.adapters.outbox import Outbox
from service.app import create_app
from service.errors import SettingsError
from service.settings import QueueActions, Settings

CID = "chatwoot:1:42"
BASE = "/api/v1/accounts/1/conversations/42"
CALL_SID = "CA0123456789abcdef0123456789abcdef"


def analysis(
    route: str = "retention_human", queue: str = "retention", priority: int = 90, version: int = 1
) -> dict[str, Any]:
    """A decision in the API's response shape (the listener also takes the AnalysisResponse struct)."""
    return {
        "conversation_id": CID,
        "version": version,
        "decision": {
            "route": route,
            "queue": queue,
            "priority": priority,
            "rule": "churn-risk-high",
            "summary": "Customer asked to cancel after a double charge",
            "flags": ["churn_risk_high", "Repeat Contact"],
            "churn_risk": 0.82,
            "explanation": [],
            "policy": {"version": "2025-01", "hash": "abc123"},
        },
        "contact_reason": {"category": "cancellation", "intent": "cancel_account", "confidence": 0.91},
        "sentiment": {"label": "negative", "score": -0.8, "trend": "declining"},
        "emotions": ["anger"],
        "context": {
            "summary": [
                # Unredacted on purpose (a service running with SWITCHBOARD_REDACT=false):
                # the note and the task must carry redacted text whatever the settings.
                {
                    "turn": 1,
                    "speaker": "customer",
                    "roles": ["reason"],
                    "text": "card 4111 1111 1111 1111 charged twice",
                },
                {
                    "turn": 3,
                    "speaker": "customer",
                    "roles": ["last_customer"],
                    "text": "cancel my account now",
                },
            ],
            "redacted": False,
        },
        "turns": [],
    }


def config(recorder_url: str, **overrides: Any) -> AdapterConfig:
    values: dict[str, Any] = {
        "actions": ("chatwoot",),
        "chatwoot_api_url": recorder_url,
        "chatwoot_api_token": "cw-token",
        "action_queues": {"retention": QueueActions(chatwoot_team_id=5, chatwoot_agent_id=7)},
        "callback_backoff_base_s": 0.05,
        "callback_backoff_max_s": 0.2,
        "callback_timeout_s": 2.0,
        "callback_max_attempts": 5,
    }
    values.update(overrides)
    return AdapterConfig(**values)


def started(
    cfg: AdapterConfig,
    db: Path | str,
    *,
    clock: Callable[[], float] = time.time,
    taskrouter_url: str | None = None,
) -> tuple[Outbox, PlatformActions]:
    """An outbox with actions on an SQLite file (a Path) or a backend URL (a str)."""
    url = f"sqlite:///{db}" if isinstance(db, Path) else db
    outbox = Outbox(cfg, open_backend(url), registry=CollectorRegistry(), clock=clock)
    actions = PlatformActions(cfg, outbox, taskrouter_base_url=taskrouter_url)
    outbox.use_actions(actions)
    return outbox, actions


async def settled(outbox: Outbox, delivered: int, *, pending: int = 0, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        counts = await outbox.counts()
        if counts["pending"] == pending and counts["delivered"] == delivered:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"outbox never settled with {delivered} delivered: {counts}")


def writes(recorder: Recorder) -> dict[str, list[Any]]:
    """The bodies of the POSTs the platform carried out (a lost answer included), by endpoint."""
    return {
        name: [c.json for c in recorder.matching("POST", BASE + tail) if c.handled]
        for name, tail in (("assignments", "/assignments"), ("labels", "/labels"), ("messages", "/messages"))
    }


@pytest.fixture
def chatwoot() -> ChatwootConversation:
    return ChatwootConversation()


@pytest.fixture
def recorder(chatwoot: ChatwootConversation) -> Iterator[Recorder]:
    with running_recorder(chatwoot) as serving:
        yield serving


def check_one_handoff(recorder: Recorder, chatwoot: ChatwootConversation) -> None:
    posted = writes(recorder)
    assert posted["assignments"] == [{"team_id": 5}, {"assignee_id": 7, "assignee_type": "User"}]
    assert posted["labels"] == [
        {"labels": ["vip", "cancellation", "sentiment-negative", "churn_risk_high", "repeat-contact"]}
    ]
    (note,) = posted["messages"]
    assert note["private"] is True and note["message_type"] == "outgoing"
    assert "4111" not in note["content"] and "[CARD_NUMBER]" in note["content"]
    assert chatwoot.team == {"id": 5, "name": "Team"} and chatwoot.assignee == {"id": 7, "name": "Agent"}
    assert len(chatwoot.messages) == 1


async def test_a_retention_decision_assigns_labels_and_notes_once(
    tmp_path: Path, recorder: Recorder, chatwoot: ChatwootConversation
) -> None:
    outbox, actions = started(config(recorder.url), tmp_path / "sb.sqlite3")
    await outbox.start()
    assert await actions.on_decision(CID, analysis(), "chatwoot") is True
    # The same decision reported again (another worker, a replayed append) plans nothing new.
    await actions.on_decision(CID, analysis(), "chatwoot")
    await settled(outbox, 3)
    await outbox.stop()

    check_one_handoff(recorder, chatwoot)
    assert all(c.headers["api_access_token"] == "cw-token" for c in recorder.calls)
    note = chatwoot.messages[0]["content"]
    assert note.startswith("Switchboard handoff: retention_human, queue retention, priority 90\n")
    assert (
        'Customer said:\n- turn 1: "card [CARD_NUMBER] charged twice"\n- turn 3: "cancel my account now"'
        in note
    )
    # Steps run in order: assignment, then labels, then the note.
    posts = [c.path for c in recorder.calls if c.method == "POST"]
    assert posts == [BASE + "/assignments", BASE + "/assignments", BASE + "/labels", BASE + "/messages"]
    registry = outbox.metrics.registry
    assert (
        registry.get_sample_value("switchboard_actions_total", {"step": "chatwoot.note", "result": "done"})
        == 1
    )


@pytest.mark.parametrize(
    ("method", "tail", "lost_answer"),
    [
        ("POST", "/assignments", False),
        ("POST", "/labels", False),
        ("POST", "/messages", False),
        # The note was stored but the answer never came back: the retry must find it.
        ("POST", "/messages", True),
        ("POST", "/labels", True),
        ("GET", "/messages", False),
    ],
)
async def test_a_failed_call_is_retried_without_duplicates(
    tmp_path: Path,
    recorder: Recorder,
    chatwoot: ChatwootConversation,
    method: str,
    tail: str,
    lost_answer: bool,
) -> None:
    recorder.fail(method, BASE + tail, 500, after_handling=lost_answer)
    outbox, actions = started(config(recorder.url), tmp_path / "sb.sqlite3")
    await outbox.start()
    await actions.on_decision(CID, analysis(), "chatwoot")
    await settled(outbox, 3)
    await outbox.stop()

    assert recorder.matching(method, BASE + tail)[0].status == 500
    check_one_handoff(recorder, chatwoot)


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A durable backend: an SQLite file, or a real Redis under a per-test prefix."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'sb.sqlite3'}"
    url: str = request.getfixturevalue("redis_url")
    return url


async def test_a_restart_mid_way_finishes_the_handoff_without_duplicates(
    backend_url: str, recorder: Recorder, chatwoot: ChatwootConversation
) -> None:
    db = backend_url
    # The note is stored but its answer is lost, and the retry is due long after the restart.
    recorder.fail("POST", BASE + "/messages", 503, after_handling=True)
    slow = config(recorder.url, callback_backoff_base_s=60.0, callback_backoff_max_s=60.0)
    outbox, actions = started(slow, db)
    await outbox.start()
    await actions.on_decision(CID, analysis(), "chatwoot")
    await recorder.wait_for(lambda: len(recorder.matching("POST", BASE + "/messages")) == 1)
    await settled(outbox, 2, pending=1)
    await outbox.stop()
    assert (await _counts(db))["pending"] == 1

    # A new process on the same outbox file, a minute later: the note step is due again.
    outbox, actions = started(slow, db, clock=lambda: time.time() + 120.0)
    await outbox.start()
    await settled(outbox, 3)
    await outbox.stop()

    check_one_handoff(recorder, chatwoot)
    assert len(recorder.matching("GET", BASE + "/messages")) == 2  # checked before each attempt


async def _counts(url: str) -> dict[str, int]:
    backend = open_backend(url)
    try:
        return await backend.outbox.counts()
    finally:
        await backend.close()


async def test_bot_decisions_and_other_sources_are_left_alone(tmp_path: Path, recorder: Recorder) -> None:
    outbox, actions = started(config(recorder.url), tmp_path / "sb.sqlite3")
    assert await actions.on_decision(CID, analysis(route="self_serve_bot", queue="bot"), "chatwoot") is False
    assert await actions.on_decision("CA1", analysis(), "twilio_voice") is False  # not opted in
    assert await actions.on_decision("chatwoot:42", analysis(), "chatwoot") is False  # no account id
    assert await outbox.counts() == {"pending": 0, "delivered": 0, "dead": 0}
    await outbox.stop()
    assert recorder.calls == []


async def test_an_unmapped_queue_gets_labels_and_a_note_but_no_assignment(
    tmp_path: Path, recorder: Recorder, chatwoot: ChatwootConversation
) -> None:
    outbox, actions = started(config(recorder.url), tmp_path / "sb.sqlite3")
    await outbox.start()
    await actions.on_decision(CID, analysis(route="specialist", queue="billing", priority=50), "chatwoot")
    await settled(outbox, 2)
    await outbox.stop()
    posted = writes(recorder)
    assert posted["assignments"] == [] and len(posted["labels"]) == 1 and len(posted["messages"]) == 1
    assert chatwoot.team is None


async def test_a_later_handoff_to_another_queue_acts_again(
    tmp_path: Path, recorder: Recorder, chatwoot: ChatwootConversation
) -> None:
    cfg = config(
        recorder.url,
        action_queues={"billing": QueueActions(chatwoot_team_id=2), "*": QueueActions(chatwoot_team_id=9)},
    )
    outbox, actions = started(cfg, tmp_path / "sb.sqlite3")
    await outbox.start()
    await actions.on_decision(CID, analysis(route="specialist", queue="billing", priority=50), "chatwoot")
    await settled(outbox, 3)
    await actions.on_decision(CID, analysis(), "chatwoot")
    await settled(outbox, 6)
    await outbox.stop()
    posted = writes(recorder)
    assert posted["assignments"] == [{"team_id": 2}, {"team_id": 9}]  # "retention" falls back to "*"
    assert len(posted["messages"]) == 2 and chatwoot.team == {"id": 9, "name": "Team"}
    # The second label update adds nothing new but keeps every label (merge, not replace).
    assert chatwoot.labels == [
        "vip",
        "cancellation",
        "sentiment-negative",
        "churn_risk_high",
        "repeat-contact",
    ]
    assert len(posted["labels"]) == 1


async def test_erasing_the_conversation_drops_its_pending_actions(tmp_path: Path, recorder: Recorder) -> None:
    outbox, actions = started(config(recorder.url), tmp_path / "sb.sqlite3")
    await actions.on_decision(CID, analysis(), "chatwoot")
    assert (await outbox.counts())["pending"] == 3
    assert await outbox.erase(CID) == 3
    await outbox.start()
    await asyncio.sleep(0.2)
    await outbox.stop()
    assert recorder.calls == []


async def test_a_dead_lettered_step_is_redriven(
    tmp_path: Path, recorder: Recorder, chatwoot: ChatwootConversation
) -> None:
    recorder.fail("POST", BASE + "/labels", 500, times=2)
    outbox, actions = started(config(recorder.url, callback_max_attempts=2), tmp_path / "sb.sqlite3")
    await outbox.start()
    await actions.on_decision(CID, analysis(), "chatwoot")
    deadline = time.monotonic() + 10
    while (await outbox.counts())["dead"] != 1 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert (await outbox.counts())["dead"] == 1
    await outbox.redrive()
    await settled(outbox, 3)
    await outbox.stop()
    check_one_handoff(recorder, chatwoot)


async def test_a_twilio_decision_creates_one_task_with_the_handoff_attributes(tmp_path: Path) -> None:
    workspace = TaskRouterWorkspace()
    with running_recorder(workspace) as recorder:
        cfg = AdapterConfig(
            actions=("twilio_voice",),
            twilio_account_sid="AC0123456789abcdef0123456789abcdef",
            twilio_auth_token="auth-token",
            taskrouter_workspace_sid=workspace.sid,
            taskrouter_workflow_sid="WWdefault",
            action_queues={"retention": QueueActions(taskrouter_workflow_sid="WWretention")},
            callback_backoff_base_s=0.05,
            callback_backoff_max_s=0.2,
        )
        recorder.fail("POST", workspace.base, 500)  # the first create fails: retried, still one task
        outbox, actions = started(cfg, tmp_path / "sb.sqlite3", taskrouter_url=recorder.url)
        await outbox.start()
        await actions.on_decision(CALL_SID, analysis(), "twilio_voice")
        await actions.on_decision(CALL_SID, analysis(), "twilio_voice")
        await settled(outbox, 1)
        await actions.on_decision(CALL_SID, analysis(priority=95, version=2), "twilio_voice")
        await settled(outbox, 2)
        # Away and back again: the task ends with the latest decision, not the first.
        await actions.on_decision(CALL_SID, analysis("specialist", "billing", 50, version=3), "twilio_voice")
        await actions.on_decision(CALL_SID, analysis(priority=95, version=4), "twilio_voice")
        await settled(outbox, 4)
        await outbox.stop()

    (task,) = workspace.tasks
    assert task["workflow_sid"] == "WWretention" and task["task_channel_unique_name"] == "voice"
    assert task["priority"] == 95
    attributes = json.loads(task["attributes"])
    summary = attributes.pop("summary")
    assert attributes == {
        "type": "switchboard_handoff",
        "conversation_id": CALL_SID,
        "call_sid": CALL_SID,
        "route": "retention_human",
        "queue": "retention",
        "priority": 95,
        "rule": "churn-risk-high",
        "contact_reason": {"category": "cancellation", "intent": "cancel_account", "confidence": 0.91},
        "sentiment": {"label": "negative", "score": -0.8, "trend": "declining"},
        "flags": ["churn_risk_high", "Repeat Contact"],
        "churn_risk": 0.82,
        "switchboard_ref": attributes["switchboard_ref"],
    }
    assert "[CARD_NUMBER]" in summary and "4111" not in summary
    creates = recorder.matching("POST", workspace.base)
    assert [c.status for c in creates] == [500, 201]
    assert len(recorder.matching("POST")) == 5  # failed create, create, then three updates


def test_handoff_labels_and_summary_from_the_analysis() -> None:
    handoff = handoff_from(CID, "chatwoot", analysis())
    assert handoff is not None
    assert labels_for(handoff) == ["cancellation", "sentiment-negative", "churn_risk_high", "repeat-contact"]
    assert context_summary(handoff).splitlines()[:6] == [
        "Switchboard handoff: retention_human, queue retention, priority 90",
        "Why: Customer asked to cancel after a double charge",
        "Contact reason: cancellation (cancel_account, 91%)",
        "Sentiment: negative (-0.80), declining",
        "Flags: churn_risk_high, Repeat Contact",
        "Churn risk: 0.82",
    ]
    assert handoff_from(CID, "chatwoot", {"decision": None}) is None


def test_configuration_errors_name_the_settings(tmp_path: Path) -> None:
    outbox = Outbox(AdapterConfig(), open_backend("memory://"))
    with pytest.raises(SettingsError, match="SWITCHBOARD_CHATWOOT_API_URL"):
        PlatformActions(AdapterConfig(actions=("chatwoot",)), outbox)
    with pytest.raises(SettingsError, match="SWITCHBOARD_TASKROUTER_WORKSPACE_SID"):
        PlatformActions(AdapterConfig(actions=("twilio_conversations",)), outbox)
    with pytest.raises(SettingsError, match="unknown source"):
        PlatformActions(AdapterConfig(actions=("genesys",)), outbox)


def test_nothing_is_attached_unless_a_source_opts_in() -> None:
    outbox = Outbox(AdapterConfig(), open_backend("memory://"))
    assert attach_actions(AdapterConfig(), outbox, conversations=None) is None  # type: ignore[arg-type]


POLICY = """
version = "test-actions"
description = "every conversation goes to retention"

[queues.retention]
description = "Retention"
categories = ["*"]

[guardrails.human_request]
route = "retention_human"
queue = "retention"
priority = 90

[guardrails.unsupported_language]
route = "retention_human"
queue = "retention"
priority = 90

[guardrails.low_confidence]
route = "retention_human"
queue = "retention"
priority = 90

[default]
route = "retention_human"
queue = "retention"
priority = 90
"""


def test_the_service_acts_on_a_chatwoot_handoff_once(tmp_path: Path, base_env: dict[str, str]) -> None:
    """Webhook -> retention decision -> one assignment, one label update, one private note."""
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    chatwoot = ChatwootConversation(account=3, number=77)
    with running_recorder(chatwoot) as recorder:
        env = base_env | {
            "SWITCHBOARD_POLICY": str(policy),
            "SWITCHBOARD_CHATWOOT_SECRET": "cw-secret",
            "SWITCHBOARD_ACTIONS": "chatwoot",
            "SWITCHBOARD_CHATWOOT_API_URL": recorder.url,
            "SWITCHBOARD_CHATWOOT_API_TOKEN": "cw-token",
            "SWITCHBOARD_ACTION_QUEUES": '{"retention": {"chatwoot_team_id": 5}}',
        }
        with TestClient(create_app(Settings.from_env(env))) as client:
            deadline = time.monotonic() + 120
            while client.get("/readyz").status_code != 200 and time.monotonic() < deadline:
                time.sleep(0.05)
            for number, text in enumerate(
                ["I want to cancel, my card 4111 1111 1111 1111 was charged twice", "cancel it today"]
            ):
                payload = chatwoot_message(
                    message_id=500 + number, content=text, conversation_id=77, account_id=3
                )
                body, headers = chatwoot_request(payload, "cw-secret", delivery=f"dlv-{number}")
                answer = client.post("/v1/webhooks/chatwoot", content=body, headers=headers)
                assert answer.status_code == 200, answer.text
                assert answer.json()["decision"]["route"] == "retention_human"
            deadline = time.monotonic() + 20
            while not chatwoot.messages and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(0.3)  # room for a duplicate to show up, were one on its way

    base = "/api/v1/accounts/3/conversations/77"
    assert [c.json for c in recorder.matching("POST", base + "/assignments")] == [{"team_id": 5}]
    (labels,) = recorder.matching("POST", base + "/labels")
    # The conversation's own label kept, the contact reason and sentiment band (the test pack's) added.
    merged = labels.json["labels"]
    assert merged[0] == "vip" and len(merged) == 3 and merged[2].startswith("sentiment-")
    (note,) = chatwoot.messages
    assert note["private"] is True and "queue retention" in note["content"]
    assert "4111" not in note["content"]
