"""Head refit helpers: turn-form copies for the sentiment head, its selection score, labelled rows."""

from __future__ import annotations

import numpy as np
import pytest

from export.batches import IGNORE, Encoded
from export.mix import Sample
from export.refit import TURN_COPIES, labelled_rows, sentiment_score, turn_copies


def _encoded(samples: list[Sample]) -> Encoded:
    """Labels as ``export.batches.encode`` makes them, without a tokenizer (ids are not read here)."""
    allowed = np.zeros((len(samples), 3), np.float32)
    for row, sample in enumerate(samples):
        for label in sample.sentiment:
            allowed[row, ["negative", "neutral", "positive"].index(label)] = 1.0
    n = len(samples)
    return Encoded(
        ids=[[101, 102]] * n,
        allowed=allowed,
        emotion=np.zeros((n, 8), np.float32),
        emotion_mask=np.zeros((n, 8), np.float32),
        intent=np.full(n, IGNORE, np.int64),
        act=np.full(n, IGNORE, np.int64),
        samples=samples,
    )


def test_every_complaint_gets_a_chat_and_a_spoken_copy_without_its_handle() -> None:
    complaints = [
        Sample("@user Your app crashed AGAIN!! http", "complaints", "complaints", ("negative",)),
        Sample("Thanks, @user, all sorted.", "complaints", "complaints", ("neutral", "positive")),
        Sample("already a spoken turn", "complaints", "complaints", ("negative",)),
    ]
    copies = turn_copies({"complaints": complaints}, seed=1)
    assert [c.text for c in copies] == [
        "Your app crashed AGAIN!!",
        "your app crashed again",
        "Thanks, , all sorted.",
        "thanks all sorted",
    ]  # the third is a turn already: no copy
    assert [c.sentiment for c in copies] == [("negative",)] * 2 + [("neutral", "positive")] * 2


def test_turn_copies_sample_the_large_groups_and_skip_unlabelled_texts() -> None:
    limit = TURN_COPIES["tweets"]
    assert limit is not None
    tweets = [
        Sample(f"Great game number {i}!", "tweets", "semeval", ("positive",)) for i in range(limit + 50)
    ]
    go = [Sample("Wow, what a day.", "goemotions", "goemotions", ())]  # no sentiment label: no copy
    copies = turn_copies({"tweets": tweets, "goemotions": go}, seed=1)
    assert len(copies) == limit  # no handle to drop: only the spoken copy differs
    assert all(c.text == c.text.lower() and "!" not in c.text for c in copies)
    assert turn_copies({"tweets": tweets}, seed=1) == copies  # deterministic for a seed


def _score_set() -> tuple[Encoded, np.ndarray]:
    samples = [
        Sample("a", "complaints", "complaints", ("negative",)),
        Sample("b", "complaints", "complaints", ("neutral", "positive")),
        Sample("c", "val", "tweeteval", ("negative",)),
        Sample("d", "val", "tweeteval", ("neutral",)),
        Sample("e", "val", "tweeteval", ("positive",)),
        Sample("f", "sgd", "sgd", ("neutral",)),
    ]
    enc = _encoded(samples)
    truth = np.array([0, 1, 0, 1, 2, 1])
    return enc, truth


def test_sentiment_score_is_one_for_perfect_predictions() -> None:
    enc, truth = _score_set()
    logits = np.eye(3, dtype=np.float32)[truth] * 5
    assert sentiment_score(logits, enc) == pytest.approx(1.0)


def test_sentiment_score_weighs_complaints_tweets_and_calm_turns_equally() -> None:
    enc, _ = _score_set()
    neutral = np.tile(np.array([0.0, 5.0, 0.0], np.float32), (6, 1))
    # complaints: recall 0, non-complaints kept off negative 1 -> 0.5; tweets: macro-recall 1/3; calm: 1
    assert sentiment_score(neutral, enc) == pytest.approx((0.5 + 1 / 3 + 1.0) / 3)
    negative = np.tile(np.array([5.0, 0.0, 0.0], np.float32), (6, 1))
    assert sentiment_score(negative, enc) == pytest.approx((0.5 + 1 / 3 + 0.0) / 3)


def test_labelled_rows_per_head() -> None:
    samples = [
        Sample("a", "complaints", "complaints", ("negative",)),
        Sample("b", "goemotions", "goemotions", ()),
    ]
    enc = _encoded(samples)
    assert labelled_rows("sentiment", enc).tolist() == [True, False]
    assert labelled_rows("intent", enc).tolist() == [False, False]
    assert labelled_rows("emotion", enc).tolist() == [False, False]
