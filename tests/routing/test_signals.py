"""Incremental conversation signals: reason, trajectory, emotions, escalation, state."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing.errors import TurnError
from routing.signals import ConversationSignals, SignalConfig, new_signals, update_signals
from routing.taxonomy import INTENT_LABELS
from routing.types import TurnScores

CFG = SignalConfig()
MakeTurn = Callable[..., TurnScores]


def fold(turns: list[TurnScores], config: SignalConfig = CFG) -> ConversationSignals:
    state = new_signals()
    for turn in turns:
        state = update_signals(state, turn, config)
    return state


# --- contact reason ----------------------------------------------------------


def test_confident_reason_from_one_clear_turn(make_turn: MakeTurn) -> None:
    s = fold(
        [
            make_turn(
                0, text="where is my card", intent=[["card_arrival", 0.8], ["card_delivery_estimate", 0.1]]
            )
        ]
    )
    assert s.reason.status == "confident"
    assert s.reason.intent == "card_arrival"
    assert s.reason.category == "cards"
    assert s.reason.confidence == pytest.approx(0.8)
    assert s.reason.since_turn == 0
    assert s.evidence["card_arrival"].turns == (0,)


def test_low_top_confidence_is_out_of_scope(make_turn: MakeTurn) -> None:
    s = fold([make_turn(0, intent=[["card_arrival", 0.45], ["balance", 0.1]])])
    assert s.reason.status == "low_confidence"
    assert s.reason.intent == "out_of_scope"
    assert s.reason.category == "out_of_scope"
    assert s.reason.confidence == pytest.approx(0.45)
    assert s.reason.ranked[0] == ("card_arrival", pytest.approx(0.45))


def test_close_top_two_is_ambiguous(make_turn: MakeTurn) -> None:
    s = fold([make_turn(0, intent=[["pending_transfer", 0.52], ["pending_top_up", 0.44]])])
    assert s.reason.status == "ambiguous"
    assert s.reason.intent == "out_of_scope"


def test_threshold_and_gap_are_configurable(make_turn: MakeTurn) -> None:
    turn = make_turn(0, intent=[["pending_transfer", 0.52], ["pending_top_up", 0.44]])
    lenient = SignalConfig(confidence_threshold=0.4, ambiguity_gap=0.05)
    assert fold([turn], lenient).reason.intent == "pending_transfer"
    strict = SignalConfig(confidence_threshold=0.95)
    assert fold([make_turn(0, intent="balance")], strict).reason.status == "low_confidence"


def test_greetings_and_meta_intents_state_no_reason(make_turn: MakeTurn) -> None:
    s = fold(
        [
            make_turn(0, text="hi"),
            make_turn(1, text="get me an agent", intent="contact_human_agent"),
            make_turn(2, text="ok", intent=[["balance", 0.2]]),  # too unsure to state a reason
        ]
    )
    assert s.reason.status == "none"
    assert s.reason_turns == 0
    assert s.evidence == {}
    # The first turn that does state a reason gets full weight.
    s = update_signals(s, make_turn(3, text="my balance is wrong", intent="balance"), CFG)
    assert s.reason.intent == "balance"
    assert s.evidence_total == 1.0


def test_early_turns_weigh_more(make_turn: MakeTurn) -> None:
    # Same strength, opposite order: the earlier statement wins.
    a = fold([make_turn(0, intent=[["card_arrival", 0.6]]), make_turn(1, intent=[["balance", 0.6]])])
    b = fold([make_turn(0, intent=[["balance", 0.6]]), make_turn(1, intent=[["card_arrival", 0.6]])])
    assert a.reason.ranked[0][0] == "card_arrival"
    assert b.reason.ranked[0][0] == "balance"
    weights = a.evidence
    assert weights["card_arrival"].weight == pytest.approx(0.6)
    assert weights["balance"].weight == pytest.approx(0.6 * CFG.early_turn_decay)


def test_hysteresis_keeps_a_confident_reason(make_turn: MakeTurn) -> None:
    config = SignalConfig(early_turn_decay=1.0)  # equal weights isolate the hysteresis
    turns = [
        make_turn(0, intent=[["card_swallowed", 0.9]]),
        make_turn(1, intent=[["balance", 0.95]]),
        make_turn(2, intent=[["balance", 0.95]]),
    ]
    s = fold(turns[:2], config)
    # balance now leads on its own (0.475 vs 0.45) but not by the switch margin.
    assert s.reason.ranked[0][0] == "balance"
    assert s.reason.intent == "card_swallowed"
    assert s.reason.since_turn == 0
    # A clear lead makes it switch.
    s = fold(turns, config)
    assert s.reason.intent == "balance"
    assert s.reason.since_turn == 2


def test_without_hysteresis_the_reason_would_flip(make_turn: MakeTurn) -> None:
    config = SignalConfig(
        early_turn_decay=1.0, switch_margin=0.0, ambiguity_gap=0.0, confidence_threshold=0.4
    )
    s = fold(
        [make_turn(0, intent=[["card_swallowed", 0.9]]), make_turn(1, intent=[["balance", 0.95]])], config
    )
    assert s.reason.intent == "balance"


def test_stated_turns_and_quote(make_turn: MakeTurn) -> None:
    s = fold(
        [
            make_turn(
                0,
                text="is my card on its way",
                intent=[["card_delivery_estimate", 0.5], ["card_arrival", 0.4]],
            ),
            make_turn(1, text="it hasn't arrived", intent=[["card_arrival", 0.9]]),
            make_turn(2, text="still not arrived", intent=[["card_arrival", 0.9]]),
        ]
    )
    evidence = s.evidence["card_arrival"]
    assert evidence.turns == (1, 2)
    assert evidence.ref is not None and evidence.ref.index == 1  # first turn where it was the top intent
    assert s.evidence["card_delivery_estimate"].ref.index == 0  # type: ignore[union-attr]


def test_tracked_intents_are_bounded_and_keep_the_locked_one(make_turn: MakeTurn) -> None:
    config = SignalConfig(max_tracked_intents=3)
    turns = [make_turn(0, intent=[["card_arrival", 0.9]])]
    labels = [label for label in INTENT_LABELS if label not in ("card_arrival", "out_of_scope")][:40]
    for i, label in enumerate(labels, start=1):
        turns.append(make_turn(i, intent=[[label, 0.5], [labels[-i], 0.4]]))
    s = fold(turns, config)
    assert len(s.evidence) <= 3
    assert "card_arrival" in s.evidence
    assert s.reason.intent == "card_arrival"


# --- sentiment trajectory ----------------------------------------------------


def test_level_is_exponentially_weighted(make_turn: MakeTurn) -> None:
    s = fold([make_turn(0, sentiment=-0.5), make_turn(1, sentiment=0.5)])
    assert s.customer.level == pytest.approx(CFG.ewm_alpha * 0.5 + (1 - CFG.ewm_alpha) * -0.5)
    assert s.customer.last_score == 0.5
    assert s.customer.last_label == "positive"


@pytest.mark.parametrize(
    ("scores", "band"),
    [
        ([0.0, 0.0], "unknown"),  # too few turns
        ([-0.8, -0.6, 0.2, 0.4], "improving"),
        ([0.1, 0.0, 0.1, 0.0], "steady"),
        ([0.6, 0.4, -0.5, -0.7], "declining"),
    ],
)
def test_trend_bands(make_turn: MakeTurn, scores: list[float], band: str) -> None:
    s = fold([make_turn(i, sentiment=v) for i, v in enumerate(scores)])
    assert s.customer.trend == band
    if band != "unknown":
        start = sum(scores[:2]) / 2
        recent = sum(scores[-2:]) / 2
        assert s.customer.trend_value == pytest.approx((recent - start) / 2)


def test_most_negative_turn_and_runs(make_turn: MakeTurn) -> None:
    scores = [-0.3, -0.6, 0.1, -0.4, -0.9, -0.5]
    s = fold([make_turn(i, text=f"turn {i}", sentiment=v) for i, v in enumerate(scores)])
    assert s.most_negative is not None
    assert s.most_negative.index == 4
    assert s.most_negative.text == "turn 4"
    assert s.customer.negative_run == 3
    assert s.customer.max_negative_run == 3
    assert s.customer.negative_turns == 5
    s = update_signals(s, make_turn(6, sentiment=0.5), CFG)
    assert s.customer.negative_run == 0
    assert s.customer.max_negative_run == 3


def test_agent_and_bot_sentiment_are_kept_apart(make_turn: MakeTurn) -> None:
    s = fold(
        [
            make_turn(0, sentiment=0.5, intent="balance"),
            make_turn(1, "agent", "read the FAQ", sentiment=-0.7),
            make_turn(2, "bot", "Happy to help!", sentiment=0.8),
            make_turn(3, "system", "transferred", sentiment=-1.0),
        ]
    )
    assert s.customer.turns == 1 and s.customer.level == 0.5
    assert s.agent.turns == 1 and s.agent.negative_turns == 1 and s.agent.min_score == -0.7
    assert s.bot.turns == 1 and s.bot.level == 0.8
    assert s.turns.total == 4 and s.turns.system == 1
    assert s.most_negative is not None and s.most_negative.index == 0


# --- emotions and escalation -------------------------------------------------


def test_emotion_peaks_and_current(make_turn: MakeTurn) -> None:
    s = fold(
        [
            make_turn(0, emotions={"anger": 0.4, "confusion": 0.7}),
            make_turn(1, emotions={"anger": 0.8, "neutral": 0.9}),
            make_turn(2, emotions={"anger": 0.2, "gratitude": 0.6}),
        ]
    )
    assert s.emotion_peaks["anger"].score == 0.8 and s.emotion_peaks["anger"].turn == 1
    assert s.emotion_peaks["confusion"].turn == 0
    assert "neutral" not in s.emotion_peaks
    assert s.current_emotions == ("gratitude",)
    assert s.flags["anger_peak"].turn == 1
    assert s.flags["anger_peak"].evidence == "anger 0.80"


def test_unknown_emotions_are_ignored(make_turn: MakeTurn) -> None:
    turn = make_turn(0, emotions={"anger": 0.2})
    turn = msgspec.structs.replace(turn, emotions={"anger": 0.2, "awe": 0.9}, emotion_labels=["awe"])
    s = fold([turn])
    assert set(s.emotion_peaks) == {"anger"}
    assert s.current_emotions == ()


@pytest.mark.parametrize(
    ("text", "intent", "flag", "source"),
    [
        ("agent", None, "human_request", "phrase"),
        ("hello", "contact_human_agent", "human_request", "intent"),
        ("please close my account", None, "churn_intent", "phrase"),
        ("bye", "terminate_account", "churn_intent", "intent"),
        ("I want to file a complaint", None, "complaint", "phrase"),
        ("this is bad", "complaint", "complaint", "intent"),
        ("I'm calling my lawyer", None, "legal_threat", "phrase"),
    ],
)
def test_escalation_flags(make_turn: MakeTurn, text: str, intent: str | None, flag: str, source: str) -> None:
    s = fold([make_turn(0, text=text, intent=intent)])
    assert s.flags[flag].source == source
    assert s.flags[flag].turn == 0


def test_weak_intent_does_not_raise_a_flag(make_turn: MakeTurn) -> None:
    s = fold([make_turn(0, text="hmm", intent=[["contact_human_agent", 0.4]])])
    assert "human_request" not in s.flags


def test_flags_are_sticky_and_keep_the_first_hit(make_turn: MakeTurn) -> None:
    s = fold([make_turn(0, text="agent please"), make_turn(1, text="thanks, all good", sentiment=0.8)])
    assert s.flags["human_request"].turn == 0
    s = update_signals(s, make_turn(2, text="agent again"), CFG)
    assert s.flags["human_request"].turn == 0


def test_agent_and_bot_turns_raise_no_flags(make_turn: MakeTurn) -> None:
    s = fold(
        [make_turn(0, "agent", "I'll sue you, talk to a human"), make_turn(1, "bot", "close my account")]
    )
    assert s.flags == {}


def test_bot_loop_needs_bot_replies(make_turn: MakeTurn) -> None:
    ask = dict(text="where is my order", intent="track_order")
    looped = fold(
        [
            make_turn(0, **ask),
            make_turn(1, "bot", "Check the app."),
            make_turn(2, **ask),
            make_turn(3, "bot", "Check the app."),
            make_turn(4, **ask),
        ]
    )
    assert looped.loop_count == 3
    assert looped.flags["bot_loop"].turn == 4
    # Three messages in a row without bot replies are not a loop.
    burst = fold([make_turn(0, **ask), make_turn(1, **ask), make_turn(2, **ask)])
    assert burst.loop_count == 1 and "bot_loop" not in burst.flags


def test_bot_loop_resets_on_a_new_intent_or_an_agent(make_turn: MakeTurn) -> None:
    ask = dict(intent="track_order")
    s = fold(
        [
            make_turn(0, **ask),
            make_turn(1, "bot"),
            make_turn(2, **ask),
            make_turn(3, "agent"),
            make_turn(4, **ask),
            make_turn(5, "bot"),
            make_turn(6, intent="balance"),
        ]
    )
    assert s.loop_count == 1 and s.loop_intent == "balance"
    assert "bot_loop" not in s.flags
    # Small talk in between neither counts nor breaks the loop.
    s = fold(
        [
            make_turn(0, **ask),
            make_turn(1, "bot"),
            make_turn(2, text="ok"),
            make_turn(3, "bot"),
            make_turn(4, **ask),
        ]
    )
    assert s.loop_count == 2


def repeat(make_turn: MakeTurn, index: int) -> TurnScores:
    return make_turn(index, text="sorry can you say that again", act="repeat_request", lexical=False)


def test_asking_the_bot_to_repeat_itself_again_and_again_is_a_bot_loop(make_turn: MakeTurn) -> None:
    turns = [make_turn(0, "bot", "Please say or enter your account number.")]
    for index in range(1, 6, 2):
        turns += [
            repeat(make_turn, index),
            make_turn(index + 1, "bot", "Please say or enter your account number."),
        ]
    s = fold(turns[:-1])
    assert s.repeat_requests == 3 and s.flags["bot_loop"].turn == 5
    assert s.flags["bot_loop"].evidence == "asked the bot to repeat itself 3 times, each after a bot turn"
    # Weightless otherwise: counted as non-lexical, no reason, no sentiment.
    assert s.turns.customer_non_lexical == 3 and s.customer.turns == 0 and s.last_act == "repeat_request"
    assert fold(turns[:-3]).repeat_requests == 2 and "bot_loop" not in fold(turns[:-3]).flags


def test_repeat_requests_count_once_per_bot_turn_and_restart_with_a_person(make_turn: MakeTurn) -> None:
    bot = make_turn(0, "bot", "Which account?")
    # Without a bot turn before it, or twice in a row, a request to repeat counts once at most.
    assert fold([repeat(make_turn, 0), repeat(make_turn, 1)]).repeat_requests == 0
    assert fold([bot, repeat(make_turn, 1), repeat(make_turn, 2), repeat(make_turn, 3)]).repeat_requests == 1
    # A customer turn that says something in between: the bot is no longer the last to speak.
    said = fold([bot, make_turn(1, text="my savings account", act="inform"), repeat(make_turn, 2)])
    assert said.repeat_requests == 0
    # Noise in between does not break it.
    noise = make_turn(1, text="[noise]", act="non_lexical", lexical=False)
    assert fold([bot, noise, repeat(make_turn, 2)]).repeat_requests == 1
    # An agent takes over: whatever the bot did is no longer a loop, and asking a person to
    # repeat is not the bot's failure.
    turns = [bot, repeat(make_turn, 1), make_turn(2, "bot", "Which account?"), repeat(make_turn, 3)]
    agent = fold([*turns, make_turn(4, "agent", "Hi, I'm Sam, how can I help?"), repeat(make_turn, 5)])
    assert agent.repeat_requests == 0 and "bot_loop" not in agent.flags
    assert "bot_loop" in fold(turns, SignalConfig(bot_loop_turns=2)).flags


def test_bot_loop_length_is_configurable(make_turn: MakeTurn) -> None:
    turns = [make_turn(0, intent="balance"), make_turn(1, "bot"), make_turn(2, intent="balance")]
    assert "bot_loop" in fold(turns, SignalConfig(bot_loop_turns=2)).flags
    assert "bot_loop" not in fold(turns).flags


# --- time, text, validation --------------------------------------------------


def test_duration_from_timestamps_naive_and_aware(make_turn: MakeTurn) -> None:
    t0 = datetime(2025, 1, 1, 12, 0, 0)
    plus_one = timezone(timedelta(hours=1))
    s = fold(
        [
            make_turn(0, ts=t0),
            make_turn(1, "bot", ts=None),
            make_turn(2, ts=datetime(2025, 1, 1, 13, 5, 0, tzinfo=plus_one)),  # 12:05 UTC
        ]
    )
    assert s.first_ts == datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    assert s.last_ts == datetime(2025, 1, 1, 12, 5, tzinfo=UTC)


def test_long_turns_are_clipped_without_splitting_pii(make_turn: MakeTurn) -> None:
    text = "x " * 30 + "card 4111 1111 1111 1111 " + "y " * 100
    s = fold([make_turn(0, text=text)], SignalConfig(max_excerpt_chars=70))
    assert s.last_customer is not None
    assert len(s.last_customer.text) <= 70
    assert "4111" not in s.last_customer.text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"speaker": "robot"}, "turn 0: speaker must be one of customer, agent, bot, system, got 'robot'"),
        ({"sentiment_label": "angry"}, "turn 0: sentiment_label must be one of negative, neutral, positive"),
        ({"sentiment_score": math.nan}, "turn 0: sentiment_score must be a finite number, got nan"),
        ({"sentiment_score": 1.5}, "turn 0: sentiment_score must be between -1 and 1, got 1.5"),
        ({"emotions": {"anger": 2.0}}, "turn 0: emotions['anger'] must be between 0 and 1, got 2.0"),
        ({"intent": [("balance", -0.1)]}, "turn 0: intent 'balance' must be between 0 and 1, got -0.1"),
    ],
)
def test_unusable_turns_are_rejected(make_turn: MakeTurn, change: dict[str, object], message: str) -> None:
    turn = msgspec.structs.replace(make_turn(0), **change)
    with pytest.raises(TurnError) as info:
        update_signals(new_signals(), turn, CFG)
    assert str(info.value).startswith(message)


def test_float_noise_at_the_edges_is_tolerated(make_turn: MakeTurn) -> None:
    turn = msgspec.structs.replace(make_turn(0), sentiment_score=1.0000000001, emotions={"joy": -1e-9})
    s = update_signals(new_signals(), turn, CFG)
    assert s.customer.last_score == 1.0
    assert s.emotion_peaks["joy"].score == 0.0


def test_config_problems() -> None:
    bad = SignalConfig(confidence_threshold=1.2, ewm_alpha=0.0, bot_loop_turns=1)
    assert dict(bad.problems()) == {
        "confidence_threshold": "must be between 0 and 1, got 1.2",
        "ewm_alpha": "must be greater than 0 and at most 1, got 0.0",
        "bot_loop_turns": "must be at least 2, got 1",
    }
    assert SignalConfig().problems() == []


# --- state: purity, O(1), round trip -----------------------------------------


def test_update_does_not_modify_its_input(make_turn: MakeTurn) -> None:
    before = fold([make_turn(0, intent="balance", emotions={"anger": 0.7}), make_turn(1, "bot")])
    snapshot = msgspec.json.encode(before)
    update_signals(before, make_turn(2, text="agent", intent="card_arrival", emotions={"anger": 0.9}), CFG)
    assert msgspec.json.encode(before) == snapshot


def test_state_size_does_not_grow_with_the_conversation(make_turn: MakeTurn) -> None:
    def conversation(n: int) -> ConversationSignals:
        turns = []
        for i in range(n):
            label = INTENT_LABELS[i % 40]
            turns.append(
                make_turn(2 * i, text="word " * 30, sentiment=((i % 7) - 3) / 3, intent=[[label, 0.6]])
            )
            turns.append(make_turn(2 * i + 1, "bot", text="reply " * 30))
        return fold(turns)

    short, long = (len(msgspec.json.encode(conversation(n))) for n in (60, 600))
    assert long <= short * 1.05


@given(data=st.data())
@settings(max_examples=80, derandomize=True, deadline=None)
def test_state_round_trips_through_json_at_every_step(
    data: st.DataObject, turn_lists: st.SearchStrategy[list[TurnScores]]
) -> None:
    turns = data.draw(turn_lists)
    state = new_signals()
    for turn in turns:
        state = update_signals(state, turn, CFG)
        restored = msgspec.json.decode(msgspec.json.encode(state), type=ConversationSignals)
        assert restored == state
        state = restored
    assert state.turns.total == len(turns)
    assert 0.0 <= state.reason.confidence <= 1.0 + 1e-9
    if state.customer.level is not None:
        assert -1.0 <= state.customer.level <= 1.0


# --- acts, non-lexical turns, language, closing --------------------------------

NOISE = {"text": "[noise]", "lexical": False}


def _conversation_signals(state: ConversationSignals) -> dict[str, object]:
    """Every conversation-level signal a non-lexical turn must leave alone."""
    return {
        "customer": state.customer,
        "most_negative": state.most_negative,
        "last_customer": state.last_customer,
        "reason": state.reason,
        "evidence": state.evidence,
        "evidence_total": state.evidence_total,
        "reason_turns": state.reason_turns,
        "current_intent": state.current_intent,
        "emotion_peaks": state.emotion_peaks,
        "current_emotions": state.current_emotions,
        "flags": state.flags,
        "loop": (state.loop_intent, state.loop_count, state.bot_answered),
        "agent": state.agent,
        "bot": state.bot,
        "closing": state.closing,
        "language": (state.languages, state.language, state.language_supported),
    }


def test_non_lexical_turns_weigh_nothing(make_turn: MakeTurn) -> None:
    spoken = [
        make_turn(0, text="my card is not working", sentiment=-0.2, intent="card_not_working", language="en"),
        make_turn(1, "bot", "Have you tried another shop?"),
        make_turn(
            2,
            text="yes it still fails",
            sentiment=-0.5,
            emotions={"frustration": 0.7},
            intent="card_not_working",
        ),
        make_turn(3, "bot", "Let me check."),
        make_turn(4, text="thank you so much", sentiment=0.8, act="thanks_or_closing"),
    ]
    base = new_signals()
    for turn in spoken:
        before = _conversation_signals(base)
        # A noise turn, a filler and a digit run, from every speaker, between every two turns.
        for speaker in ("customer", "agent", "bot", "customer"):
            noise = make_turn(turn.index, speaker, **NOISE)
            after = update_signals(base, noise, CFG)
            assert _conversation_signals(after) == before, speaker
            assert after.turns.total == base.turns.total + 1
            base = after
        base = update_signals(base, turn, CFG)
    clean = fold(spoken)
    assert _conversation_signals(base) == _conversation_signals(clean)
    assert base.customer.level == clean.customer.level and base.customer.trend == clean.customer.trend
    assert base.turns.customer == clean.turns.customer + 10
    assert base.turns.customer_non_lexical == 10 and clean.turns.customer_non_lexical == 0


def test_a_non_lexical_turn_is_still_the_last_act(make_turn: MakeTurn) -> None:
    s = fold([make_turn(0, text="thanks, that's all", act="thanks_or_closing"), make_turn(1, **NOISE)])
    assert s.last_act == "non_lexical"
    assert s.closing is True  # noise after a calm goodbye does not reopen the conversation
    assert s.last_customer is not None and s.last_customer.index == 0


def test_act_non_lexical_counts_as_non_lexical_even_if_the_flag_says_lexical(make_turn: MakeTurn) -> None:
    turn = msgspec.structs.replace(
        make_turn(0, text="uh", intent="balance", sentiment=-0.9), act="non_lexical"
    )
    s = fold([turn])
    assert s.customer.turns == 0 and s.reason.status == "none" and s.turns.customer_non_lexical == 1


@pytest.mark.parametrize("act", ["inform", "affirm", "deny", "thanks_or_closing", "greeting", "hold"])
def test_turns_that_state_no_reason_add_no_evidence(make_turn: MakeTurn, act: str) -> None:
    s = fold(
        [
            make_turn(0, text="I want to order a new card", intent="card_arrival", act="reason"),
            make_turn(1, text="it is 4111", intent=[["balance", 0.95]], act=act, sentiment=-0.6),
        ]
    )
    assert s.reason.intent == "card_arrival" and s.reason.confidence == pytest.approx(0.9)
    assert "balance" not in s.evidence and s.reason_turns == 1 and s.evidence_total == 1.0
    # The turn still counts for everything else.
    assert s.customer.turns == 2 and s.customer.last_label == "negative"
    assert s.current_intent == "balance" and s.last_act == act


def test_an_inform_turn_alone_leaves_the_reason_unstated(make_turn: MakeTurn) -> None:
    s = fold([make_turn(0, text="my account number is 12345678", intent="balance", act="inform")])
    assert s.reason.status == "none" and s.evidence == {}


@pytest.mark.parametrize("act", ["reason", "question", "", "unknown", "some_future_act"])
def test_reason_bearing_and_unknown_acts_count(make_turn: MakeTurn, act: str) -> None:
    s = fold([make_turn(0, text="where is my card", intent="card_arrival", act=act)])
    assert s.reason.status == "confident" and s.reason.intent == "card_arrival"
    assert s.last_act == (act if act in ("reason", "question") else "unknown")


@pytest.mark.parametrize(
    ("turn", "closing"),
    [
        ({"text": "thanks, that's all", "act": "thanks_or_closing", "sentiment": 0.6}, True),
        ({"text": "ok bye", "act": "thanks_or_closing"}, True),
        ({"text": "thanks for nothing", "act": "thanks_or_closing", "sentiment": -0.6}, False),
        ({"text": "bye.", "act": "thanks_or_closing", "emotions": {"anger": 0.8}}, False),
        ({"text": "bye.", "act": "thanks_or_closing", "emotions": {"frustration": 0.6}}, False),
        ({"text": "thanks, and my card?", "act": "question"}, False),
        # A pack without an act head: closing phrasing is enough, the whole turn must be one.
        ({"text": "thanks", "act": ""}, True),
        ({"text": "Perfect, thank you so much!", "act": "", "sentiment": 0.8}, True),
        ({"text": "thanks, and where is my card?", "act": ""}, False),
        ({"text": "thanks", "act": "reason"}, False),
        ({"text": "yes, thank you", "act": "affirm"}, False),
        ({"text": "no, that's all, thank you", "act": "deny"}, True),
    ],
)
def test_calm_closing(make_turn: MakeTurn, turn: dict[str, object], closing: bool) -> None:
    s = fold([make_turn(0, text="where is my card", intent="card_arrival"), make_turn(1, **turn)])
    assert s.closing is closing


def test_closing_survives_other_speakers_and_ends_with_the_next_customer_turn(make_turn: MakeTurn) -> None:
    turns = [
        make_turn(0, text="where is my card", intent="card_arrival"),
        make_turn(1, text="great, thanks, bye", act="thanks_or_closing", sentiment=0.7),
        make_turn(2, "bot", "Goodbye!"),
        make_turn(3, "agent", "Take care."),
    ]
    assert fold(turns).closing is True
    assert fold([*turns, make_turn(4, text="wait, one more thing", act="reason")]).closing is False


def test_conversation_language_from_judged_customer_turns_only(make_turn: MakeTurn) -> None:
    s = fold(
        [
            make_turn(0, text="ok", language="und"),
            make_turn(
                1, "agent", text="Hola, ¿en qué puedo ayudarle hoy?", language="es", language_supported=False
            ),
            make_turn(2, text="hmm yes", language="und"),
        ]
    )
    assert (s.language, s.language_supported, s.languages) == ("und", True, {})
    spanish = [
        make_turn(0, text="Hola, perdí mi tarjeta de crédito ayer", language="es", language_supported=False),
        make_turn(1, text="ok", language="und"),
        make_turn(2, text="necesito ayuda por favor", language="es", language_supported=False),
    ]
    s = fold(spanish)
    assert (s.language, s.language_supported) == ("es", False)
    assert s.languages["es"].turns == 2
    assert s.languages["es"].weight == sum(c.isalpha() for c in spanish[0].text + spanish[2].text)


def test_conversation_language_weighs_letters(make_turn: MakeTurn) -> None:
    english = "I lost my credit card yesterday and I need a new one sent to my home address"
    s = fold(
        [
            make_turn(0, text="gracias señor amigo", language="es", language_supported=False),
            make_turn(1, text=english, intent="lost_or_stolen_card", language="en"),
        ]
    )
    assert (s.language, s.language_supported) == ("en", True)
    s = fold(
        [
            make_turn(0, text="where is my card", intent="card_arrival", language="en"),
            make_turn(
                1,
                text="No entiendo nada de lo que me dice, quiero hablar en español",
                language="es",
                language_supported=False,
            ),
        ]
    )
    assert (s.language, s.language_supported) == ("es", False)


def test_a_language_once_reported_unsupported_stays_unsupported(make_turn: MakeTurn) -> None:
    # The detector says "supported" for a low-confidence guess; the language is still not the pack's.
    s = fold(
        [
            make_turn(0, text="necesito ayuda con mi tarjeta", language="es", language_supported=False),
            make_turn(1, text="mi tarjeta no funciona", language="es", language_supported=True),
        ]
    )
    assert (s.language, s.language_supported) == ("es", False)


def test_a_tie_goes_to_the_supported_language(make_turn: MakeTurn) -> None:
    s = fold(
        [
            make_turn(0, text="abcdefghijkl", language="es", language_supported=False),
            make_turn(1, text="mnopqrstuvwx", language="en"),
        ]
    )
    assert (s.language, s.language_supported) == ("en", True)


def test_tracked_languages_are_bounded(make_turn: MakeTurn) -> None:
    codes = ["en", "es", "fr", "de", "it", "pt", "nl", "pl", "ro", "sv", "da", "fi"]
    turns = [make_turn(i, text="x" * (i + 1), language=code) for i, code in enumerate(codes)]
    s = fold(turns)
    assert len(s.languages) == 8
    assert s.language == "fi" and "en" not in s.languages


def test_unsupported_language_turns_carry_no_sentiment_emotion_or_intent(make_turn: MakeTurn) -> None:
    turn = make_turn(
        0, text="Hola, perdí mi tarjeta de crédito ayer", language="es", language_supported=False
    )
    assert turn.sentiment_label == "unknown" and turn.intent == []
    s = fold([turn])
    assert s.customer == new_signals().customer and s.most_negative is None
    assert s.emotion_peaks == {} and s.reason.status == "none" and s.evidence == {}
    assert s.current_intent is None and s.last_act == "unknown" and s.closing is False
    assert s.last_customer is not None and s.last_customer.text == turn.text  # quoted for the human
    # Scores that came with it anyway are ignored, not judged.
    loud = msgspec.structs.replace(
        turn,
        sentiment_label="negative",
        sentiment_score=-0.9,
        emotions={"anger": 0.9},
        emotion_labels=["anger"],
        intent=[("lost_or_stolen_card", 0.99)],
    )
    s = fold([loud])
    assert (
        s.customer.turns == 0 and s.emotion_peaks == {} and s.evidence == {} and "anger_peak" not in s.flags
    )


def test_unsupported_language_still_honours_a_request_for_a_person_we_can_read(make_turn: MakeTurn) -> None:
    s = fold(
        [
            make_turn(
                0,
                text="agente por favor, I want to speak to a real person",
                language="es",
                language_supported=False,
            )
        ]
    )
    assert "human_request" in s.flags


def test_unknown_sentiment_only_for_an_unsupported_language(make_turn: MakeTurn) -> None:
    turn = msgspec.structs.replace(make_turn(0), sentiment_label="unknown")
    with pytest.raises(
        TurnError, match="sentiment_label must be one of negative, neutral, positive, got 'unknown'"
    ):
        update_signals(new_signals(), turn, CFG)
    for speaker in ("agent", "bot"):
        other = make_turn(0, speaker, text="Hola", language="es", language_supported=False)
        s = update_signals(new_signals(), other, CFG)
        assert getattr(s, speaker).turns == 0  # no sentiment evidence from the agent or bot either


def test_state_stored_before_acts_and_languages_still_decodes(make_turn: MakeTurn) -> None:
    state = fold(
        [make_turn(0, text="where is my card", intent="card_arrival", sentiment=-0.3), make_turn(1, "bot")]
    )
    raw = msgspec.json.decode(msgspec.json.encode(state))
    for key in ("last_act", "closing", "languages", "language", "language_supported"):
        del raw[key]
    del raw["turns"]["customer_non_lexical"]
    raw["schema"] = 1
    old = msgspec.json.decode(msgspec.json.encode(raw), type=ConversationSignals)
    assert old.schema == 1 and old.last_act == "" and old.closing is False
    assert (old.language, old.language_supported, old.languages) == ("und", True, {})
    assert old.turns.customer_non_lexical == 0
    assert old.reason == state.reason and old.customer == state.customer
    # And it keeps going, with old-style turns (no act, no language) too.
    old_turn = TurnScores(
        index=2,
        speaker="customer",
        text="thanks",
        ts=None,
        sentiment_label="positive",
        sentiment_score=0.5,
        emotions={},
        emotion_labels=[],
        intent=[("card_arrival", 0.9)],
    )
    s = update_signals(old, old_turn, CFG)
    assert s.reason_turns == 2 and s.last_act == "unknown" and s.schema == 2


# --- intent, family, category ------------------------------------------------

FAMILIES = SignalConfig(
    families={
        "card_delivery": ("card_arrival", "card_delivery_estimate"),
        "card_replacement": ("new_card", "order_physical_card", "getting_spare_card"),
    }
)


def test_near_synonyms_make_a_confident_family(make_turn: MakeTurn) -> None:
    turn = make_turn(0, intent=[["card_arrival", 0.4], ["card_delivery_estimate", 0.36], ["balance", 0.1]])
    without = fold([turn])
    # No families: the intents split the evidence, but they share a category, which is confident.
    assert (without.reason.status, without.reason.level) == ("confident", "category")
    assert (without.reason.intent, without.reason.category, without.reason.family) == (
        "out_of_scope",
        "cards",
        None,
    )
    assert without.reason.confidence == pytest.approx(0.76)
    with_family = fold([turn], FAMILIES)
    assert (with_family.reason.level, with_family.reason.family, with_family.reason.category) == (
        "family",
        "card_delivery",
        "cards",
    )
    assert with_family.reason.intent == "out_of_scope"
    assert with_family.reason.group == "card_delivery" and with_family.reason.group_since == 0


def test_a_confident_intent_reports_its_family(make_turn: MakeTurn) -> None:
    s = fold([make_turn(0, intent=[["card_arrival", 0.8], ["card_delivery_estimate", 0.1]])], FAMILIES)
    assert (s.reason.level, s.reason.intent, s.reason.family) == ("intent", "card_arrival", "card_delivery")
    s = fold([make_turn(0, intent=[["balance", 0.9]])], FAMILIES)
    assert (s.reason.level, s.reason.family) == ("intent", None)


def test_group_levels_use_the_same_threshold_and_gap(make_turn: MakeTurn) -> None:
    # Two categories too close: nothing is confident at any level.
    s = fold([make_turn(0, intent=[["card_arrival", 0.4], ["pending_transfer", 0.36]])], FAMILIES)
    assert (s.reason.status, s.reason.level, s.reason.category) == ("low_confidence", "", "out_of_scope")
    # A family under the threshold: its category (0.3 + 0.25 = 0.55) decides.
    s = fold(
        [make_turn(0, intent=[["card_arrival", 0.3], ["card_not_working", 0.25], ["balance", 0.2]])], FAMILIES
    )
    assert (s.reason.level, s.reason.category) == ("category", "cards")
    # out_of_scope competes but never wins.
    s = fold([make_turn(0, intent=[["card_arrival", 0.35], ["out_of_scope", 0.3]])], FAMILIES)
    assert s.reason.status == "low_confidence"


def test_a_confident_family_sticks_and_a_confident_intent_takes_precedence(make_turn: MakeTurn) -> None:
    first = make_turn(0, intent=[["new_card", 0.4], ["order_physical_card", 0.3]])
    side = make_turn(1, intent=[["top_up_limits", 0.9]])
    s = fold([first, side], FAMILIES)
    # The side issue dilutes the family below the threshold, but it stays confident (hysteresis).
    assert (s.reason.level, s.reason.family, s.reason.group_since) == ("family", "card_replacement", 0)
    s = fold([first, make_turn(1, intent=[["new_card", 0.95]])], FAMILIES)
    assert (s.reason.level, s.reason.intent, s.reason.family) == ("intent", "new_card", "card_replacement")


def test_a_family_refines_a_confident_category(make_turn: MakeTurn) -> None:
    vague = make_turn(0, intent=[["card_not_working", 0.3], ["new_card", 0.25], ["card_arrival", 0.1]])
    s = fold([vague], FAMILIES)
    assert (s.reason.level, s.reason.category) == ("category", "cards")
    finer = make_turn(1, intent=[["getting_spare_card", 0.5], ["order_physical_card", 0.45]])
    s = fold([vague, finer], FAMILIES)
    assert (s.reason.level, s.reason.family, s.reason.category) == ("family", "card_replacement", "cards")


def test_state_with_levels_round_trips(make_turn: MakeTurn) -> None:
    s = fold([make_turn(0, intent=[["card_arrival", 0.4], ["card_delivery_estimate", 0.36]])], FAMILIES)
    assert msgspec.json.decode(msgspec.json.encode(s), type=ConversationSignals) == s


def test_answering_the_bot_s_questions_is_not_a_bot_loop(make_turn: MakeTurn) -> None:
    appointment = {"intent": "book_appointment"}
    turns = [
        make_turn(0, text="could you book me an appointment?", act="reason", **appointment),
        make_turn(1, "bot", "Where and when?"),
        make_turn(2, text="at the branch on Saturday at 6", act="inform", **appointment),
        make_turn(3, "bot", "To confirm: Saturday at 6?"),
        make_turn(4, text="yes, that's right", act="affirm", **appointment),
        make_turn(5, "bot", "Booked."),
    ]
    s = fold(turns)
    assert "bot_loop" not in s.flags and s.loop_count == 1
    # Asking for it again and again is one.
    again = [*turns, make_turn(6, text="book me an appointment", act="reason", **appointment)]
    again += [
        make_turn(7, "bot", "Booked."),
        make_turn(8, text="book an appointment!", act="reason", **appointment),
    ]
    assert "bot_loop" in fold(again).flags


def test_a_bot_that_only_asks_is_slot_filling_not_an_answer(make_turn: MakeTurn) -> None:
    booking = {"intent": "book_appointment", "act": "reason"}
    turns = [
        make_turn(0, text="book me an appointment", **booking),
        make_turn(1, "bot", "Which branch, and when?"),
        make_turn(2, text="the appointment at the main branch on Saturday", **booking),
        make_turn(3, "bot", "Just to confirm, Saturday at 6:30 pm?"),
        make_turn(4, text="yes, the appointment on Saturday please", **booking),
    ]
    assert fold(turns).loop_count == 1 and "bot_loop" not in fold(turns).flags
    # A bot that answers (even when it ends with a question) is answering: repeats count.
    answered = [
        turns[0],
        make_turn(1, "bot", "You can book in the app. Anything else?"),
        turns[2],
        make_turn(3, "bot", "You can book in the app."),
        turns[4],
    ]
    assert "bot_loop" in fold(answered).flags


def test_requote_replaces_every_quote_of_one_turn(make_turn: MakeTurn) -> None:
    from routing.signals import requote

    s = fold(
        [
            make_turn(0, text="my card is 4111 1111", sentiment=-0.6, intent=[["card_arrival", 0.9]]),
            make_turn(1, text="thanks", sentiment=0.2, intent=[["card_arrival", 0.5]]),
        ]
    )
    assert s.most_negative is not None and s.most_negative.text == "my card is 4111 1111"
    fixed = requote(s, 0, "my card is [CARD_NUMBER]", CFG)
    assert fixed.most_negative is not None and fixed.most_negative.text == "my card is [CARD_NUMBER]"
    assert "4111" not in msgspec.json.encode(fixed).decode()
    assert fixed.last_customer == s.last_customer  # other turns' quotes are left alone
    assert requote(s, 7, "x", CFG) == s
