"""ConversationService: compare-and-set retries across "processes", idempotency, listeners, erase.

Two services over one SQLite file stand for two worker processes: each has its
own connection, thread and in-process locks, so only the store's versioning
keeps them consistent. Predictions come from the real default pack.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
import pytest

from models.runtime import Runtime
from models.types import TextPrediction
from service.analysis import Analyzer, models_summary
from service.conversations import ConversationService, decode_head, decode_turns
from service.errors import Conflict, Gone, NotFound, ValidationFailed
from service.metrics import Metrics
from service.policy_source import PolicySource
from service.schemas import AnalysisResponse, CustomerIn, TurnIn
from service.settings import Settings
from service.store.base import ConversationStore, StoreError
from service.store.memory import MemoryStore
from service.store.sqlite import SQLiteStore

pytestmark = pytest.mark.pack


@pytest.fixture(scope="module")
def runtime(test_pack: Path) -> Runtime:
    return Runtime.load(test_pack)


class OneTextPerRun:
    """The real pack, one text per ONNX run: dynamic int8 quantization makes results depend
    slightly on the batch, and these tests compare paths exactly."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def predict(self, texts: list[str]) -> list[TextPrediction]:
        return await asyncio.to_thread(lambda: [self.runtime.predict([text])[0] for text in texts])


def make_service(runtime: Runtime, store: ConversationStore, **env: str) -> ConversationService:
    settings = Settings.from_env({"SWITCHBOARD_AUTH_DISABLED": "true", **env})
    metrics = Metrics()
    analyzer = Analyzer(
        settings, PolicySource(None, metrics), OneTextPerRun(runtime), models_summary(runtime.info), metrics
    )
    return ConversationService(analyzer, store)


class RacingStore(SQLiteStore):
    """A real SQLite store that lets a rival write first just before our first append."""

    def __init__(self, path: Path, rival: Any) -> None:
        super().__init__(path, ttl_s=600)
        self.rival = rival
        self.appends = 0

    async def append(self, conversation_id: str, head: bytes, turns: Any, **kwargs: Any) -> int:
        self.appends += 1
        if self.appends == 1:
            await self.rival()
        return await super().append(conversation_id, head, turns, **kwargs)


def turn(text: str, turn_id: str | None = None, speaker: str = "customer") -> TurnIn:
    return TurnIn(speaker=speaker, text=text, id=turn_id)  # type: ignore[arg-type]


async def test_lost_race_is_retried_on_top_of_the_winner(runtime: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    other = make_service(runtime, SQLiteStore(path, ttl_s=600))

    async def rival_appends() -> None:
        await other.append("race", [turn("I need help with my card", "b")])

    racing = RacingStore(path, rival_appends)
    mine = make_service(runtime, racing)
    result = await mine.append("race", [turn("it was declined twice today", "a")], include_all_turns=True)
    assert racing.appends == 2  # first append conflicted, the retry won
    assert [(t.index, t.id) for t in result.turns] == [(0, "b"), (1, "a")]
    assert result.version == 2 and result.appended == [1]
    assert mine.analyzer.metrics.store_conflicts._value.get() == 1


async def test_lost_race_drops_turns_the_winner_already_stored(runtime: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    other = make_service(runtime, SQLiteStore(path, ttl_s=600))

    async def rival_appends_same_turn() -> None:  # e.g. a webhook retry landing on another replica
        await other.append("dup", [turn("cancel my subscription", "x")])

    mine = make_service(runtime, RacingStore(path, rival_appends_same_turn))
    result = await mine.append("dup", [turn("cancel my subscription", "x"), turn("right now", "y")])
    assert [t.id for t in result.turns] == ["y"] and result.duplicates == 1 and result.appended == [1]
    assert result.turn_count == 2


async def test_two_services_interleaving_lose_nothing(runtime: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    services = [make_service(runtime, SQLiteStore(path, ttl_s=600)) for _ in range(2)]
    await asyncio.gather(
        *(services[n % 2].append("busy", [turn(f"turn number {n}", f"id{n}")]) for n in range(16))
    )
    final = await services[0].get("busy", limit=1000)
    assert [t.index for t in final.turns] == list(range(16))
    assert sorted(t.id or "" for t in final.turns) == sorted(f"id{n}" for n in range(16))
    assert final.version == 16


async def test_decision_listeners_fire_only_on_change(runtime: Runtime) -> None:
    service = make_service(runtime, MemoryStore(600))
    calls: list[tuple[str, str, str | None]] = []

    async def listener(cid: str, analysis: AnalysisResponse, source: str | None) -> None:
        calls.append((cid, analysis.decision.route, source))

    async def failing(cid: str, analysis: AnalysisResponse, source: str | None) -> None:
        raise RuntimeError("callback store down")

    service.add_decision_listener(failing)
    service.add_decision_listener(listener)
    first = await service.append("c", [turn("hello")], source="twilio_voice")
    assert calls == [("c", first.decision.route, "twilio_voice")]  # the first decision is a change
    assert service.analyzer.metrics.listener_failures._value.get() == 1  # and a failing listener is survived
    again = await service.append("c", [turn("hello")])
    assert len(calls) == 1 + int(again.decision.changed)  # a listener call exactly when it changed
    await service.append("c", [turn("I want to talk to a real person right now")])
    assert calls[-1][1] != "self_serve_bot"


async def test_customer_is_merged_and_close_blocks_appends(runtime: Runtime) -> None:
    service = make_service(runtime, MemoryStore(600))
    await service.append("m", [turn("hi")], customer=CustomerIn(tier="gold", attributes={"a": 1}))
    result = await service.append(
        "m", [turn("hi again")], customer=CustomerIn(tenure_months=3, attributes={"b": 2})
    )
    assert result.context.customer.tier == "gold" and result.context.customer.tenure_months == 3
    assert result.context.customer.attributes == {"a": 1, "b": 2}
    closed = await service.close("m")
    assert closed.closed and (await service.close("m")).closed
    with pytest.raises(Conflict):
        await service.append("m", [turn("more")])


async def test_delete_calls_erase_listeners(runtime: Runtime) -> None:
    service = make_service(runtime, MemoryStore(600))
    erased: list[str] = []

    async def on_erase(cid: str) -> None:
        erased.append(cid)

    service.add_erase_listener(on_erase)
    await service.append("gone", [turn("hi", "t1")])
    assert await service.delete("gone") is True
    assert erased == ["gone"]
    with pytest.raises(NotFound):
        await service.get("gone")
    # The tombstone: a replayed event cannot re-create the erased conversation.
    with pytest.raises(Gone):
        await service.append("gone", [turn("hi", "t1")])
    assert await service.store.load_head("gone") is None


async def test_expiry_goes_through_the_erase_listeners(runtime: Runtime) -> None:
    now = [1_000_000.0]
    service = make_service(runtime, MemoryStore(60, clock=lambda: now[0]))
    erased: list[str] = []

    async def on_erase(cid: str) -> None:
        erased.append(cid)

    service.add_erase_listener(on_erase)
    await service.append("idle", [turn("hi")])
    now[0] += 61
    assert await service.purge_expired() == ["idle"] and erased == ["idle"]
    await service.append("idle", [turn("hi again")])  # expiry leaves no tombstone: the id is free


async def test_a_turn_id_resent_with_other_content_is_a_conflict(runtime: Runtime) -> None:
    service = make_service(runtime, MemoryStore(600))
    await service.append("c", [turn("my card was declined", "t1")])
    retry = await service.append("c", [turn("my card was declined", "t1")])
    assert retry.duplicates == 1 and retry.appended == [] and retry.turn_count == 1
    with pytest.raises(Conflict) as info:
        await service.append("c", [turn("something else entirely", "t1"), turn("and more", "t2")])
    assert "'t1'" in info.value.detail and info.value.extra == {"turn_id": "t1", "index": 0}
    with pytest.raises(Conflict):  # inside one request too
        await service.append("c", [turn("one", "t9"), turn("two", "t9")])
    assert (await service.get("c")).turn_count == 1  # nothing of the refused requests was stored


async def test_appends_return_new_turns_and_get_pages(runtime: Runtime) -> None:
    service = make_service(runtime, MemoryStore(600))
    for n in range(5):
        result = await service.append("p", [turn(f"question number {n}", f"q{n}")])
        assert [t.index for t in result.turns] == [n] and result.turn_count == n + 1
    every = await service.append("p", [turn("last one", "q5")], include_all_turns=True)
    assert [t.index for t in every.turns] == list(range(6))
    first = await service.get("p", limit=4)
    assert [t.index for t in first.turns] == [0, 1, 2, 3] and first.next_after == 3
    rest = await service.get("p", after=first.next_after or 0, limit=4)
    assert [t.index for t in rest.turns] == [4, 5] and rest.next_after is None
    assert rest.decision == first.decision and rest.turn_count == 6


async def test_invalid_input_is_rejected_before_anything_is_stored(runtime: Runtime) -> None:
    store = MemoryStore(600)
    service = make_service(runtime, store)
    with pytest.raises(ValidationFailed):
        await service.append("v", [turn("ok"), turn("   ")])
    with pytest.raises(ValidationFailed):
        await service.append("bad id", [turn("ok")])
    assert await store.load_head("v") is None


class RecordingStore(MemoryStore):
    """A real in-memory store that notes each load for an append, and can be made to fail them."""

    def __init__(self, events: list[str]) -> None:
        super().__init__(600)
        self.events = events
        self.down = False

    async def load_for_append(self, conversation_id: str, turn_ids: Any) -> Any:
        self.events.append("load")
        if self.down:
            raise StoreError("the store is unreachable")
        return await super().load_for_append(conversation_id, turn_ids)


class RecordingModel(OneTextPerRun):
    """The real pack, noting when texts are handed to it."""

    def __init__(self, runtime: Runtime, events: list[str]) -> None:
        super().__init__(runtime)
        self.events = events

    async def predict(self, texts: list[str]) -> list[TextPrediction]:
        self.events.append(f"predict {len(texts)}")
        return await super().predict(texts)


async def test_a_lone_turn_goes_to_the_model_before_the_store_is_read(runtime: Runtime) -> None:
    events: list[str] = []
    store = RecordingStore(events)
    service = make_service(runtime, store)
    service.analyzer.inference = RecordingModel(runtime, events)
    await service.append("order", [turn("my card was declined twice", "t1")])
    assert events == ["predict 1", "load"]
    events.clear()
    # A whole transcript is scored only once the store says which turns are new.
    await service.append("order", [turn("my card was declined twice", "t1"), turn("at the shop", "t2")])
    assert events == ["load", "predict 1"]
    events.clear()
    # Invalid input never reaches the model.
    with pytest.raises(ValidationFailed):
        await service.append("order-bad", [turn("   ", "t1")])
    assert events == [] and await store.load_head("order-bad") is None
    # In a store outage every append fails on the load: after the first, texts wait for it.
    store.down = True
    for n in range(3):
        with pytest.raises(StoreError):
            await service.append("order", [turn(f"still there? {n}", f"o{n}")])
    assert events[:2] == ["predict 1", "load"] and events[2:] == ["load", "load"]
    events.clear()
    store.down = False
    await service.append("order", [turn("hello again", "t3")])
    await service.append("order", [turn("are you there", "t4")])
    assert events[:2] == ["load", "predict 1"] and events[2:] == ["predict 1", "load"]


class InlineNotingStore(SQLiteStore):
    """A real SQLite store that notes whether each append was allowed the caller's thread."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, ttl_s=600)
        self.inline: list[bool] = []

    async def append(self, conversation_id: str, head: bytes, turns: Any, **kwargs: Any) -> int:
        self.inline.append(kwargs.get("inline", False))
        return await super().append(conversation_id, head, turns, **kwargs)


async def test_only_the_one_append_in_flight_may_write_on_the_callers_thread(
    runtime: Runtime, tmp_path: Path
) -> None:
    store = InlineNotingStore(tmp_path / "db.sqlite3")
    service = make_service(runtime, store)
    await service.append("alone", [turn("my card was declined", "t1")])
    first = service.append("one", [turn("I lost my card", "t1")])
    second = service.append("two", [turn("I want a refund", "t1")])
    await asyncio.gather(first, second)
    # The pair's first write had the other append in flight: it leaves the loop to the other.
    assert store.inline[:2] == [True, False] and len(store.inline) == 3
    for conversation in ("alone", "one", "two"):
        assert await store.load_head(conversation) is not None


async def test_stored_state_round_trips(runtime: Runtime) -> None:
    store = MemoryStore(600)
    service = make_service(runtime, store)
    result = await service.append("rt", [turn("my card 4111 1111 1111 1111 was stolen", "t1")])
    stored = await store.load_head("rt")
    assert stored is not None
    head = decode_head(stored.data)
    records = await store.load_turns("rt")
    # PII is redacted before it is stored (a bare "4111" can occur in a stored score)
    assert all(b"4111 1111" not in blob for blob in [stored.data, *records])
    assert b"[CARD_NUMBER]" in records[0]
    assert decode_turns(records) == result.turns
    # The decision is stored as routing's own Struct and decodes back to an equal one.
    assert head.decision is not None and head.decision.route == result.decision.route
    assert msgspec.json.decode(msgspec.json.encode(head.decision), type=type(head.decision)) == head.decision
    assert head.decision.explanation[0].text


async def test_undecodable_stored_state_is_an_internal_error(runtime: Runtime) -> None:
    from service.errors import InternalError

    store = MemoryStore(600)
    await store.append("broken", b'{"not": "a conversation"}', [], expected_version=0)
    with pytest.raises(InternalError):  # not a 4xx: the client did nothing wrong
        await make_service(runtime, store).get("broken")


async def test_incremental_turns_equal_the_whole_transcript(runtime: Runtime) -> None:
    """Only new turns are scored, yet the state equals scoring the whole transcript at once.

    The decision too, but for what the live conversation's previous decision adds: the
    stability lines of the explanation and ``changed`` (a stateless analysis has no previous
    decision, so it is always a change)."""
    from service.schemas import AnalyzeRequest

    turns = [
        turn("hi, I was charged twice for my order", "1"),
        turn("I can help with that. Which order?", "2", speaker="bot"),
        turn("the one from monday, I want a refund now", "3"),
        turn("Refunds take 5 days.", "4", speaker="agent"),
        turn("this is ridiculous, I'm going to close my account", "5"),
    ]
    service = make_service(runtime, MemoryStore(600))
    for one in turns:
        live = await service.append("inc", [one], include_all_turns=True)
    whole = await service.analyzer.analyze(AnalyzeRequest(turns=turns, conversation_id="inc"))

    def without_history(decision: Any) -> bytes:
        lines = [line for line in decision.explanation if line.kind != "stability"]
        return msgspec.json.encode(msgspec.structs.replace(decision, explanation=lines, changed=True))

    assert without_history(live.decision) == without_history(whole.decision)
    assert [line.kind for line in live.decision.explanation].count("stability") == 1  # "changed from ..."
    assert live.signals == whole.signals and live.contact_reason == whole.contact_reason
    assert msgspec.json.encode(live.context) == msgspec.json.encode(whole.context)
    assert [t.sentiment for t in live.turns] == [t.sentiment for t in whole.turns]


# --- callbacks fire on a real change only, never for a resolved conversation ---------------------


def _scripted(label: str, score: float, intent: str, act: str = "unknown") -> TextPrediction:
    """A prediction as the pack would give it, for tests that must not depend on the pack's outputs."""
    from models.language import LanguageResult
    from models.types import ActResult, EmotionResult, IntentResult, SentimentResult

    probs = {"negative": max(0.0, -score), "neutral": 1.0 - abs(score), "positive": max(0.0, score)}
    return TextPrediction(
        sentiment=SentimentResult(label=label, score=score, confidence=max(probs.values()), probs=probs),
        emotion=EmotionResult(labels=["neutral"], scores={"neutral": 0.9}),
        intent=IntentResult(
            label=intent, confidence=0.95, alternatives=[(intent, 0.95), ("out_of_scope", 0.03)]
        ),
        act=ActResult(label=act, confidence=0.9, probs={}),
        language=LanguageResult(code="en", confidence=0.99, supported=True),
    )


SCRIPT = {
    "Hi, how can I help?": _scripted("neutral", 0.1, "out_of_scope"),
    "what's my balance": _scripted("neutral", 0.0, "balance", "question"),
    "It is 120 euros.": _scripted("neutral", 0.0, "out_of_scope"),
    "hmm and how long does a transfer take": _scripted("neutral", 0.0, "transfer_timing", "question"),
    "this is useless, the app is broken": _scripted("negative", -0.8, "balance"),
    "ok": _scripted("neutral", 0.0, "balance"),
    "perfect, thank you so much!": _scripted("positive", 0.9, "out_of_scope"),
}


class Scripted:
    """Predictions from ``SCRIPT``."""

    async def predict(self, texts: list[str]) -> list[TextPrediction]:
        return [SCRIPT[text] for text in texts]


def scripted_service(store: ConversationStore) -> ConversationService:
    settings = Settings.from_env({"SWITCHBOARD_AUTH_DISABLED": "true"})
    metrics = Metrics()
    models = {"pack": "scripted", "version": "0", "files": {}}
    return ConversationService(
        Analyzer(settings, PolicySource(None, metrics), Scripted(), models, metrics), store
    )


async def test_callbacks_fire_on_a_real_change_and_never_for_a_resolved_conversation() -> None:
    service = scripted_service(MemoryStore(600))
    calls: list[tuple[str, str, bool]] = []

    async def listener(cid: str, analysis: AnalysisResponse, source: str | None) -> None:
        calls.append((analysis.decision.route, analysis.decision.rule, analysis.decision.changed))

    service.add_decision_listener(listener)

    async def say(speaker: str, text: str) -> AnalysisResponse:
        return await service.append("cb", [TurnIn(speaker=speaker, text=text)])  # type: ignore[arg-type]

    first = await say("bot", "Hi, how can I help?")
    assert first.decision.changed is True and calls == [("self_serve_bot", "awaiting-reason", True)]
    await say("customer", "what's my balance")  # same place, the bot: changed (the greeting bound nothing)
    await say("bot", "It is 120 euros.")
    quiet = await say("customer", "hmm and how long does a transfer take")  # still the bot: no callback
    assert quiet.decision.changed is False
    assert calls == [("self_serve_bot", "awaiting-reason", True), ("self_serve_bot", "tier1-bot", True)]
    upset = await say("customer", "this is useless, the app is broken")  # to a person: a real change
    assert (upset.decision.route, upset.decision.changed) == ("specialist", True)
    assert calls[-1] == ("specialist", "upset-customer", True)
    held = await say("customer", "ok")  # calm again: the bot rule matches, but the person keeps it
    assert (held.decision.route, held.decision.changed) == ("specialist", False)
    bye = await say("customer", "perfect, thank you so much!")
    assert (bye.decision.route, bye.decision.rule, bye.decision.resolved) == ("specialist", "resolved", True)
    assert len(calls) == 3  # neither the held decision nor the resolved one called back
    # The stored decision carries what the next one needs.
    stored = await service.get("cb")
    assert stored.decision.rule == "resolved" and stored.decision.changed is False


async def test_a_card_read_out_over_two_appends_is_redacted_in_both(runtime: Runtime) -> None:
    store = MemoryStore(600)
    service = make_service(runtime, store)
    first = await service.append("split", [turn("my card number is 4111 1111", "a")])
    assert "4111 1111" in first.turns[0].text  # eight digits alone are no card
    await service.append("split", [turn("sure", "b", speaker="agent")])
    second = await service.append("split", [turn("1111 1111 that's it", "c")])
    assert second.turns[0].text.startswith("[CARD_NUMBER]")
    stored = await service.get("split")
    assert stored.turns[0].text == "my card number is [CARD_NUMBER]"
    for blob in await store.load_turns("split"):
        assert not [text for text in _strings(msgspec.json.decode(blob)) if "1111" in text]
    head = await store.load_head("split")
    assert head is not None
    assert not [text for text in _strings(msgspec.json.decode(head.data)) if "1111" in text]


def _strings(value: Any) -> list[str]:
    """Every string (keys included) inside a decoded JSON value.

    Searching the raw bytes instead would fail on timestamps such as 1796247827.4111104.
    """
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for key, item in value.items() for s in [key, *_strings(item)]]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


async def test_a_card_split_inside_one_transcript_is_redacted(runtime: Runtime) -> None:
    from service.schemas import AnalyzeRequest

    service = make_service(runtime, MemoryStore(600))
    turns = [turn("it's four one one one, one one one one"), turn("one one one one, one one one one")]
    result = await service.analyzer.analyze(AnalyzeRequest(turns=turns))
    assert [t.text for t in result.turns] == ["it's [CARD_NUMBER]", "[CARD_NUMBER]"]


async def test_an_erase_between_commit_and_listeners_is_applied_to_what_they_stored(
    runtime: Runtime, tmp_path: Path
) -> None:
    """Another process erases the conversation right after this append committed, before the
    listener that queues its callback ran: the callback must not outlive the erasure."""
    path = tmp_path / "shared.sqlite3"
    mine = make_service(runtime, SQLiteStore(path, ttl_s=600))
    other = make_service(runtime, SQLiteStore(path, ttl_s=600))
    queued: dict[str, list[int | None]] = {}

    async def erased_elsewhere(cid: str, response: AnalysisResponse, source: str | None) -> None:
        assert await other.erase(cid) is True

    async def enqueue_callback(cid: str, response: AnalysisResponse, source: str | None) -> None:
        queued.setdefault(cid, []).append(response.version)

    async def drop_callbacks(cid: str) -> None:
        queued.pop(cid, None)

    for fn in (erased_elsewhere, enqueue_callback):
        mine.add_decision_listener(fn)
    mine.add_erase_listener(drop_callbacks)
    await mine.append("raced", [turn("I want to cancel my contract today", "t1")])
    assert queued == {}

    kept = make_service(runtime, SQLiteStore(path, ttl_s=600))  # no erase: the callback stays
    kept.add_decision_listener(enqueue_callback)
    kept.add_erase_listener(drop_callbacks)
    await kept.append("kept", [turn("I want to cancel my contract today", "t1")])
    assert queued == {"kept": [1]}


class LiveCountingStore(SQLiteStore):
    """A real SQLite store that counts its ``live`` reads (the check for an erase after the listeners)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, ttl_s=600)
        self.live_reads = 0

    async def live(self, conversation_ids: Any) -> set[str]:
        self.live_reads += 1
        return await super().live(conversation_ids)


async def test_the_erase_check_runs_only_after_a_listener_stored_something(
    runtime: Runtime, tmp_path: Path
) -> None:
    store = LiveCountingStore(tmp_path / "sb.sqlite3")
    service = make_service(runtime, store)
    heard: list[str] = []

    async def no_url(cid: str, response: AnalysisResponse, source: str | None) -> bool:
        heard.append(cid)
        return False

    service.add_decision_listener(no_url)
    await service.append("quiet", [turn("I want to cancel my contract today", "t1")])
    assert heard == ["quiet"] and store.live_reads == 0

    async def stored(cid: str, response: AnalysisResponse, source: str | None) -> None:
        return None  # no answer counts as stored: the check stays on for listeners that say nothing

    service.add_decision_listener(stored)
    await service.append("queued", [turn("I want to cancel my contract today", "t1")])
    assert heard == ["quiet", "queued"] and store.live_reads == 1


async def test_a_failing_erase_listener_after_an_append_is_counted_not_raised(
    runtime: Runtime, tmp_path: Path
) -> None:
    path = tmp_path / "shared.sqlite3"
    mine = make_service(runtime, SQLiteStore(path, ttl_s=600))
    other = make_service(runtime, SQLiteStore(path, ttl_s=600))

    async def erased_elsewhere(cid: str, response: AnalysisResponse, source: str | None) -> None:
        await other.erase(cid)

    async def outbox_down(cid: str) -> None:
        raise RuntimeError("outbox unavailable")

    mine.add_decision_listener(erased_elsewhere)
    mine.add_erase_listener(outbox_down)
    result = await mine.append("raced", [turn("I want to cancel my contract today", "t1")])
    assert result.appended == [0]
    assert mine.analyzer.metrics.listener_failures._value.get() == 1
