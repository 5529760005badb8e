"""The Chatwoot REST client against a recording HTTP server: paths, auth header, bodies, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from api_recorder import ChatwootConversation, Recorder, running_recorder

from service.adapters.chatwoot_api import ChatwootApi, ChatwootApiError

BASE = "/api/v1/accounts/1/conversations/42"


@pytest.fixture
def chatwoot() -> ChatwootConversation:
    return ChatwootConversation()


@pytest.fixture
def recorder(chatwoot: ChatwootConversation) -> Iterator[Recorder]:
    with running_recorder(chatwoot) as started:
        yield started


@pytest.fixture
async def api(recorder: Recorder) -> AsyncIterator[ChatwootApi]:
    async with httpx.AsyncClient(timeout=2.0) as client:
        yield ChatwootApi(recorder.url + "/", "cw-token", client)


async def test_every_call_sends_the_access_token_to_the_documented_path(
    api: ChatwootApi, recorder: Recorder, chatwoot: ChatwootConversation
) -> None:
    await api.assign("1", "42", team_id=5)
    await api.assign("1", "42", agent_id=7)
    await api.set_labels("1", "42", ["vip", "billing"])
    await api.private_note("1", "42", "handoff context")
    conversation = await api.conversation("1", "42")

    assert [(c.method, c.path) for c in recorder.calls] == [
        ("POST", BASE + "/assignments"),
        ("POST", BASE + "/assignments"),
        ("POST", BASE + "/labels"),
        ("POST", BASE + "/messages"),
        ("GET", BASE),
    ]
    assert all(c.headers["api_access_token"] == "cw-token" for c in recorder.calls)
    assert [c.json for c in recorder.calls[:4]] == [
        {"team_id": 5},
        {"assignee_id": 7, "assignee_type": "User"},
        {"labels": ["vip", "billing"]},
        {"content": "handoff context", "message_type": "outgoing", "private": True, "content_type": "text"},
    ]
    assert conversation["meta"]["team"]["id"] == 5 and conversation["meta"]["assignee"]["id"] == 7
    assert await api.labels("1", "42") == ["vip", "billing"]
    (note,) = await api.messages("1", "42")
    assert note["private"] is True and note["content"] == "handoff context"


async def test_assign_takes_exactly_one_of_team_and_agent(api: ChatwootApi, recorder: Recorder) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        await api.assign("1", "42", team_id=5, agent_id=7)
    with pytest.raises(ValueError, match="exactly one"):
        await api.assign("1", "42")
    assert recorder.calls == []


async def test_errors_carry_the_outcome_label(api: ChatwootApi, recorder: Recorder) -> None:
    recorder.fail("POST", BASE + "/labels", 503)
    with pytest.raises(ChatwootApiError) as server_error:
        await api.set_labels("1", "42", ["x"])
    assert server_error.value.outcome == "5xx" and server_error.value.error == "Chatwoot POST 503"

    with pytest.raises(ChatwootApiError) as not_found:
        await api.labels("1", "999")
    assert not_found.value.outcome == "4xx"


async def test_a_wrong_token_is_a_4xx(recorder: Recorder) -> None:
    async with httpx.AsyncClient(timeout=2.0) as client:
        with pytest.raises(ChatwootApiError) as rejected:
            await ChatwootApi(recorder.url, "wrong", client).labels("1", "42")
    assert rejected.value.outcome == "4xx" and rejected.value.error == "Chatwoot GET 401"


async def test_an_unreachable_host_is_an_error_outcome() -> None:
    async with httpx.AsyncClient(timeout=1.0) as client:
        with pytest.raises(ChatwootApiError) as failed:
            await ChatwootApi("http://127.0.0.1:9", "cw-token", client).labels("1", "42")
    assert failed.value.outcome == "error" and failed.value.error == "ConnectError"
