"""TaskRouter tasks through the real ``twilio`` SDK, pointed at a recording HTTP server."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
from api_recorder import Recorder, TaskRouterWorkspace, running_recorder

from service.adapters.taskrouter import TaskRouter, TaskRouterError

ACCOUNT = "AC0123456789abcdef0123456789abcdef"
WORKFLOW = "WW0123456789abcdef0123456789abcdef"


@pytest.fixture
def workspace() -> TaskRouterWorkspace:
    return TaskRouterWorkspace()


@pytest.fixture
def recorder(workspace: TaskRouterWorkspace) -> Iterator[Recorder]:
    with running_recorder(workspace) as started:
        yield started


def router(recorder: Recorder, workspace: TaskRouterWorkspace) -> TaskRouter:
    return TaskRouter(ACCOUNT, "auth-token", workspace.sid, timeout_s=2.0, base_url=recorder.url)


async def test_the_first_upsert_creates_a_task_the_next_updates_it(
    recorder: Recorder, workspace: TaskRouterWorkspace
) -> None:
    tasks = router(recorder, workspace)
    done, sid = await tasks.upsert(
        "ref1", attributes={"queue": "retention"}, priority=90, workflow_sid=WORKFLOW, task_channel="voice"
    )
    assert done == "created" and sid == workspace.tasks[0]["sid"]
    done_again, same = await tasks.upsert(
        "ref1", attributes={"queue": "billing"}, priority=50, workflow_sid=WORKFLOW, task_channel="voice"
    )
    assert done_again == "updated" and same == sid

    listing, create, _, update = recorder.calls
    assert (listing.method, listing.path) == ("GET", workspace.base)
    assert listing.query["EvaluateTaskAttributes"] == ['switchboard_ref == "ref1"']
    assert listing.query["AssignmentStatus"] == ["pending", "reserved", "assigned"]
    assert (create.method, create.path) == ("POST", workspace.base)
    assert create.headers["content-type"] == "application/x-www-form-urlencoded"
    assert (
        create.headers["authorization"]
        == "Basic " + base64.b64encode(f"{ACCOUNT}:auth-token".encode()).decode()
    )
    form = {key: values[0] for key, values in create.form.items()}
    assert form.keys() == {"WorkflowSid", "TaskChannel", "Attributes", "Priority"}
    assert form["WorkflowSid"] == WORKFLOW and form["TaskChannel"] == "voice" and form["Priority"] == "90"
    assert json.loads(form["Attributes"]) == {"queue": "retention", "switchboard_ref": "ref1"}
    assert (update.method, update.path) == ("POST", f"{workspace.base}/{sid}")
    update_form = {key: values[0] for key, values in update.form.items()}
    assert update_form.keys() == {"Attributes", "Priority"} and update_form["Priority"] == "50"
    assert json.loads(workspace.tasks[0]["attributes"])["queue"] == "billing"
    assert len(workspace.tasks) == 1


async def test_a_finished_task_is_not_updated_a_new_one_is_created(
    recorder: Recorder, workspace: TaskRouterWorkspace
) -> None:
    tasks = router(recorder, workspace)
    await tasks.upsert("ref1", attributes={}, priority=1, workflow_sid=None, task_channel=None)
    workspace.tasks[0]["assignment_status"] = "completed"
    done, _ = await tasks.upsert("ref1", attributes={}, priority=1, workflow_sid=None, task_channel=None)
    assert done == "created" and len(workspace.tasks) == 2
    # Unset workflow and channel are left to TaskRouter (the workspace's only workflow, "default").
    assert recorder.matching("POST", workspace.base)[1].form.keys() == {"Attributes", "Priority"}


async def test_api_errors_carry_the_outcome_label(recorder: Recorder, workspace: TaskRouterWorkspace) -> None:
    recorder.fail("POST", workspace.base, 503)
    with pytest.raises(TaskRouterError) as server_error:
        await router(recorder, workspace).upsert(
            "ref1", attributes={}, priority=1, workflow_sid=None, task_channel=None
        )
    assert server_error.value.outcome == "5xx" and server_error.value.error == "TaskRouter POST 503"
    assert workspace.tasks == []

    with pytest.raises(TaskRouterError) as missing:  # no such workspace
        await TaskRouter(ACCOUNT, "t", "WSnope", timeout_s=2.0, base_url=recorder.url).upsert(
            "ref1", attributes={}, priority=1, workflow_sid=None, task_channel=None
        )
    assert missing.value.outcome == "4xx" and missing.value.error == "TaskRouter GET 404"


async def test_an_unreachable_host_is_an_error_outcome() -> None:
    tasks = TaskRouter(ACCOUNT, "t", "WS1", timeout_s=1.0, base_url="http://127.0.0.1:9")
    with pytest.raises(TaskRouterError) as failed:
        await tasks.upsert("ref1", attributes={}, priority=1, workflow_sid=None, task_channel=None)
    assert failed.value.outcome == "error"
