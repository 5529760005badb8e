"""Shared builders for the routing tests.

Builders are session-scoped fixtures returning plain functions, so they also
work inside hypothesis tests. ``make_turn`` writes a ``TurnScores`` the way the
models layer would: sentiment label from the score, emotion labels over 0.5,
intents best first (``None`` for non-customer turns); a non-lexical turn is
neutral with no emotion and no intent, a turn in an unsupported language has
sentiment ``unknown``, no emotion and no intent.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import strategies as st

from routing.policy import Policy, default_policy, load_policy
from routing.taxonomy import CONVERSATION_ACTS, EMOTION_LABELS, INTENT_LABELS, SENTIMENT_LABELS
from routing.types import CustomerInfo, TurnScores

HERE = Path(__file__).parent
T0 = datetime(2025, 1, 6, 9, 0, 0)

MakeTurn = Callable[..., TurnScores]


def _label(score: float) -> str:
    if score <= -0.25:
        return "negative"
    if score >= 0.25:
        return "positive"
    return "neutral"


def build_turn(
    index: int,
    speaker: str = "customer",
    text: str = "",
    sentiment: float = 0.0,
    *,
    label: str | None = None,
    emotions: dict[str, float] | None = None,
    intent: str | list[Any] | None = None,
    ts: datetime | bool | None = True,
    act: str = "",
    lexical: bool = True,
    language: str = "und",
    language_supported: bool = True,
) -> TurnScores:
    """Build a scored turn. ``intent`` is a label (taken as 0.9 sure) or ``[[label, p], ...]``;
    customer turns without one get ``out_of_scope`` (no intent at all when non-lexical or in an
    unsupported language). ``ts=True`` means T0 + 30 s per index."""
    emotions = dict(emotions or {})
    intents: list[tuple[str, float]] | None = None
    quiet = not lexical or not language_supported
    if quiet:
        sentiment, emotions = 0.0, {}
        label = label or ("neutral" if not lexical else "unknown")
    if speaker == "customer":
        if quiet and intent is None:
            intents = []
        elif intent is None:
            intents = [("out_of_scope", 0.9)]
        elif isinstance(intent, str):
            intents = [(intent, 0.9), ("out_of_scope", 0.05)]
        else:
            intents = [(str(label_), float(p)) for label_, p in intent]
    when = T0 + timedelta(seconds=30 * index) if ts is True else (ts or None)
    return TurnScores(
        index=index,
        speaker=speaker,  # type: ignore[arg-type]
        text=text,
        ts=when,
        sentiment_label=label or _label(sentiment),
        sentiment_score=sentiment,
        emotions=emotions,
        emotion_labels=[k for k, v in sorted(emotions.items(), key=lambda kv: -kv[1]) if v >= 0.5],
        intent=intents,
        act=act or "non_lexical" if not lexical else act,
        lexical=lexical,
        language=language,
        language_supported=language_supported,
    )


def turns_from_spec(specs: list[dict[str, Any]]) -> list[TurnScores]:
    """Build turns from scenario-file entries (keys as ``build_turn``'s arguments)."""
    return [build_turn(i, **spec) for i, spec in enumerate(specs)]


@pytest.fixture(scope="session")
def make_turn() -> MakeTurn:
    return build_turn


@pytest.fixture(scope="session")
def make_turns() -> Callable[[list[dict[str, Any]]], list[TurnScores]]:
    return turns_from_spec


@pytest.fixture(scope="session")
def policy() -> Policy:
    return default_policy()


@pytest.fixture(scope="session")
def test_policy() -> Callable[[str], Policy]:
    """Load ``tests/routing/policies/<name>.toml`` (``default`` = the committed default)."""
    cache: dict[str, Policy] = {}

    def load(name: str) -> Policy:
        if name not in cache:
            cache[name] = (
                default_policy()
                if name == "default"
                else load_policy((HERE / "policies" / f"{name}.toml").read_text())
            )
        return cache[name]

    return load


@pytest.fixture(scope="session")
def customer_from() -> Callable[[dict[str, Any] | None], CustomerInfo]:
    import msgspec

    return lambda raw: msgspec.convert(raw or {}, CustomerInfo)


_prob = st.floats(0.0, 1.0, allow_nan=False)
_texts = st.sampled_from(
    ["", "agent!", "close my account", "I'll sue", "card 4111 1111 1111 1111", "hello", "where is my order"]
)
_intents = st.lists(st.tuples(st.sampled_from(INTENT_LABELS), _prob), min_size=1, max_size=4).map(
    lambda pairs: sorted(pairs, key=lambda p: -p[1])
)
_turn = st.tuples(
    st.sampled_from(["customer", "customer", "agent", "bot", "system"]),
    _texts,
    st.floats(-1.0, 1.0, allow_nan=False),
    st.sampled_from(SENTIMENT_LABELS),
    st.dictionaries(st.sampled_from(EMOTION_LABELS), _prob, max_size=3),
    _intents,
    st.one_of(st.none(), st.integers(0, 10**6)),
    # act, lexical, (language, supported): mostly ordinary English turns, sometimes anything.
    st.sampled_from(["", "", "", "unknown", *CONVERSATION_ACTS]),
    st.sampled_from([True, True, True, False]),
    st.sampled_from([("und", True), ("en", True), ("en", True), ("es", False), ("fr", True)]),
)


def _build(i: int, raw: tuple[Any, ...]) -> TurnScores:
    speaker, text, score, label, emotions, intents, offset, act, lexical, (language, supported) = raw
    if not lexical:  # as the models layer reports it: quiet, no intent
        score, label, emotions, intents, act = 0.0, "neutral", {}, [], "non_lexical"
    elif not supported:
        score, label, emotions, intents, act = 0.0, "unknown", {}, [], "unknown"
    return TurnScores(
        index=i,
        speaker=speaker,
        text=text,
        ts=None if offset is None else datetime(2025, 1, 1) + timedelta(seconds=offset),
        sentiment_label=label,
        sentiment_score=score,
        emotions=emotions,
        emotion_labels=[k for k, v in emotions.items() if v >= 0.5],
        intent=intents if speaker == "customer" else None,
        act=act,
        lexical=lexical,
        language=language,
        language_supported=supported,
    )


def _turn_lists() -> st.SearchStrategy[list[TurnScores]]:
    return st.lists(_turn, max_size=12).map(lambda raws: [_build(i, raw) for i, raw in enumerate(raws)])


@pytest.fixture(scope="session")
def turn_lists() -> st.SearchStrategy[list[TurnScores]]:
    """Hypothesis strategy: arbitrary valid turns, as the models layer could produce them."""
    return _turn_lists()
