"""Conversations stored in the first layout move to heads and turn records, with nothing lost."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgspec
import pytest

from models.runtime import Runtime
from routing.decision import decide
from routing.signals import new_signals
from service.analysis import customer_info, fold
from service.migration import LegacyState, migrate_legacy
from service.store.sqlite import SQLiteStore
from tests.service.test_conversations import make_service, turn

pytestmark = pytest.mark.pack


@pytest.fixture(scope="module")
def runtime(test_pack: Path) -> Runtime:
    return Runtime.load(test_pack)


def legacy_table(path: Path, rows: list[tuple[str, int, float, int, bytes]]) -> None:
    """The first layout's table, as the previous release created it."""
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE conversations (id TEXT PRIMARY KEY, version INTEGER NOT NULL, "
            "updated_at REAL NOT NULL, closed INTEGER NOT NULL DEFAULT 0, data BLOB NOT NULL)"
        )
        conn.executemany("INSERT INTO conversations VALUES (?, ?, ?, ?, ?)", rows)


async def test_first_layout_conversations_migrate_and_keep_working(runtime: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    service = make_service(runtime, SQLiteStore(tmp_path / "scratch.sqlite3", ttl_s=600))
    turns = [turn("my card was declined twice", "a"), turn("I can check that", "b", speaker="agent")]
    policy = service.analyzer.policy
    # What the previous release stored for these turns: scored turns, folded signals, the decision.
    scored, _ = await service.analyzer.score(turns, 0)
    stored_turns = [t.out for t in scored]
    signals = fold(new_signals(), scored, policy.signals)
    decision = decide(signals, customer_info(None), policy, "old")
    state = LegacyState(
        conversation_id="old",
        created_at=1.0,
        updated_at=2.0,
        signals=signals,
        turns=stored_turns,
        decision=msgspec.to_builtins(decision),
        channel="voice",
        sources=["twilio_voice"],
    )
    legacy_table(path, [("old", 2, 9e12, 0, msgspec.json.encode(state)), ("junk", 1, 9e12, 0, b"not json")])
    store = SQLiteStore(path, ttl_s=600)
    assert await migrate_legacy(store) == 1
    assert await store.legacy_ids() == ["junk"]  # an undecodable record is left in place, not lost
    migrated = make_service(runtime, store)
    got = await migrated.get("old")
    assert got.turns == stored_turns and got.turn_count == 2 and got.decision.route == decision.route
    assert got.channel == "voice"
    retry = await migrated.append("old", [turn("my card was declined twice", "a")])
    assert retry.duplicates == 1  # the migrated turn ids still recognise retries
    more = await migrated.append("old", [turn("and now it is blocked", "c")])
    assert more.appended == [2] and more.turn_count == 3
    assert await migrate_legacy(store) == 0  # idempotent
    await store.close()
