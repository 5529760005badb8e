"""``switchboard callbacks list|show|redrive`` on a real outbox backend (SQLite file, real Redis)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.adapters.backend import open_backend
from service.adapters.outbox_store import NewMessage
from service.cli import main

T0 = 1_736_443_845.0
URL = "https://hooks:pa55word@crm.example.com/decisions?token=s3cret&v=2"
CONTEXT = "customer wants to cancel; card [CARD_NUMBER] charged twice"


def _body(key: str, conversation_id: str) -> bytes:
    return json.dumps(
        {"id": key, "conversation_id": conversation_id, "context": {"summary": CONTEXT}}
    ).encode()


async def _populate(url: str) -> None:
    """Two dead letters (d1 finished before d2), one delivered, one pending: real store operations."""
    backend = open_backend(url)
    store = backend.outbox
    for key, conversation in (("d1", "CA-1"), ("d2", "CA-2"), ("ok", "CA-3"), ("p1", "CA-4")):
        await store.add(NewMessage(key, conversation, "chatwoot", URL, _body(key, conversation), T0))
    claimed = {m.key for m in await store.claim(T0, T0 + 30, 10)}
    assert claimed == {"d1", "d2", "ok", "p1"}
    await store.finish("d1", "dead", T0 + 1, "HTTP 500")
    await store.finish("d2", "dead", T0 + 2, "timeout")
    await store.finish("ok", "delivered", T0 + 3, None)
    await store.retry("p1", T0 + 60, "HTTP 503")
    await backend.close()


async def _erase(url: str) -> None:
    backend = open_backend(url)
    for conversation in ("CA-1", "CA-2", "CA-3", "CA-4"):
        await backend.outbox.erase(conversation)
    await backend.close()


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def outbox_url(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A populated outbox that the CLI finds through SWITCHBOARD_OUTBOX."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'outbox.sqlite3'}"
    else:
        url = request.getfixturevalue("redis_url")
    for name in ("SWITCHBOARD_CALLBACK_URL", "SWITCHBOARD_CALLBACK_URLS", "SWITCHBOARD_STORE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("SWITCHBOARD_OUTBOX", url)
    asyncio.run(_populate(url))
    yield url
    asyncio.run(_erase(url))


def test_list_shows_dead_letters_as_a_table_without_bodies(
    outbox_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["callbacks", "list"]) == 0
    captured = capsys.readouterr()
    header, *rows = captured.out.splitlines()
    assert header.split() == [
        "key",
        "state",
        "attempts",
        "last_error",
        "source",
        "conversation_id",
        "finished_at",
        "url",
    ]
    assert [row.split()[:4] for row in rows] == [["d2", "dead", "1", "timeout"], ["d1", "dead", "1", "HTTP"]]
    assert "2025-01-09T17:30:47Z" in rows[0]
    assert "https://hooks:***@crm.example.com/decisions?token=***&v=***" in rows[0]
    assert "s3cret" not in captured.out and "pa55word" not in captured.out
    assert "CARD_NUMBER" not in captured.out and "cancel" not in captured.out
    assert "outbox: 1 pending, 1 delivered, 2 dead" in captured.err


def test_list_json_by_state_and_limit(outbox_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["callbacks", "list", "--state", "pending", "--json"]) == 0
    (pending,) = json.loads(capsys.readouterr().out)
    assert pending == {
        "key": "p1",
        "conversation_id": "CA-4",
        "source": "chatwoot",
        "url": "https://hooks:***@crm.example.com/decisions?token=***&v=***",
        "state": "pending",
        "attempts": 1,
        "last_error": "HTTP 503",
        "created_at": "2025-01-09T17:30:45Z",
        "finished_at": None,
    }
    assert main(["callbacks", "list", "--state", "delivered", "--json"]) == 0
    assert [c["key"] for c in json.loads(capsys.readouterr().out)] == ["ok"]
    assert main(["callbacks", "list", "--limit", "1", "--body"]) == 0
    (newest,) = json.loads(capsys.readouterr().out)
    assert newest["key"] == "d2" and newest["body"]["context"]["summary"] == CONTEXT


def test_show_metadata_and_body_only_when_asked(outbox_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["callbacks", "show", "d1"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["key"], shown["state"], shown["last_error"]) == ("d1", "dead", "HTTP 500")
    assert shown["finished_at"] == "2025-01-09T17:30:46Z" and "body" not in shown
    assert main(["callbacks", "show", "d1", "--body"]) == 0
    assert json.loads(capsys.readouterr().out)["body"] == json.loads(_body("d1", "CA-1"))
    assert main(["callbacks", "show", "nope"]) == 1
    assert "no callback with key 'nope'" in capsys.readouterr().err


def test_redrive_named_keys(outbox_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["callbacks", "redrive", "d1", "nope"]) == 1  # an unknown key: nothing is sent again
    assert "unknown callback key 'nope'" in capsys.readouterr().err
    assert main(["callbacks", "show", "d1"]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "dead"

    assert main(["callbacks", "redrive", "d1", "ok"]) == 0
    captured = capsys.readouterr()
    assert "1 callback(s) will be sent again" in captured.out
    assert "ok: not dead (delivered); left as it is" in captured.err
    assert main(["callbacks", "show", "d1"]) == 0
    redriven = json.loads(capsys.readouterr().out)
    assert (redriven["state"], redriven["attempts"], redriven["finished_at"]) == ("pending", 0, None)
    assert main(["callbacks", "list", "--json"]) == 0
    assert [c["key"] for c in json.loads(capsys.readouterr().out)] == ["d2"]


def test_redrive_all_and_usage_errors(outbox_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["callbacks", "redrive"]) == 2
    assert main(["callbacks", "redrive", "d1", "--all"]) == 2
    capsys.readouterr()
    assert main(["callbacks", "redrive", "--all", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"redriven": 2, "keys": None, "not_dead": None}
    assert main(["callbacks", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["callbacks", "list", "--state", "pending", "--json"]) == 0
    assert {c["key"] for c in json.loads(capsys.readouterr().out)} == {"d1", "d2", "p1"}


def test_unreachable_backend_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "blocked.sqlite3").mkdir()  # a folder where the database file should be
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("SWITCHBOARD_OUTBOX", f"sqlite:///{tmp_path / 'blocked.sqlite3'}")
    assert main(["callbacks", "list"]) == 2
    assert "the outbox backend is unavailable" in capsys.readouterr().err
