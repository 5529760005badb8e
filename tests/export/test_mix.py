"""The pack-v2 training mixture: acts from SGD, weak labels per head, spoken form, normalisation."""

from __future__ import annotations

from pathlib import Path

import pytest

from export import data as d
from export.mix import (
    CALM_EMOTION,
    MixSettings,
    Sample,
    as_turn,
    build_mixture,
    complaint_samples,
    dataset_counts,
    emotion_sample,
    prepared,
    request_samples,
    sgd_act,
    spoken,
)
from models.normalize import normalize
from routing.taxonomy import OUT_OF_SCOPE


@pytest.mark.parametrize(
    ("acts", "expected"),
    [
        (["INFORM_INTENT"], "reason"),
        (["INFORM", "INFORM_INTENT"], "reason"),
        (["INFORM"], "inform"),
        (["REQUEST"], "question"),
        (["REQUEST_ALTS"], "question"),
        (["AFFIRM"], "affirm"),
        (["SELECT"], "affirm"),
        (["NEGATE"], "deny"),
        (["NEGATE", "THANK_YOU"], "thanks_or_closing"),  # "no, thank you": the customer is done
        (["GOODBYE", "SELECT"], "thanks_or_closing"),
        (["AFFIRM", "REQUEST"], "question"),
        ([], ""),
    ],
)
def test_sgd_acts_map_by_priority(acts: list[str], expected: str) -> None:
    assert sgd_act(acts) == expected


def test_requests_are_calm_reasons_and_complaints_negative() -> None:
    examples = [
        d.Example("how do I change my pin", "intent", "change_pin", source="banking77"),
        d.Example("my card still hasn't arrived", "intent", "card_arrival", source="banking77"),
        d.Example("I want to file a complaint", "intent", "complaint", source="bitext"),
        d.Example("edit the damn address", "intent", "change_shipping_address", source="bitext"),
        d.Example("what's the weather", "intent", OUT_OF_SCOPE, source="clinc_other_domains"),
    ]
    plain, report, complaint, offensive, other = request_samples(examples, {"edit the damn address": "BLW"})
    assert plain.act == "reason" and plain.sentiment == ("neutral",) and plain.emotion == CALM_EMOTION
    assert report.sentiment == ("neutral",)  # a problem report is not by itself negative
    assert dict(report.emotion) == {"anger": 0.0, "gratitude": 0.0, "joy": 0.0}
    assert complaint.sentiment == ("negative",) and dict(complaint.emotion)["gratitude"] == 0.0
    assert offensive.sentiment == ("negative",) and dict(offensive.emotion)["frustration"] == 1.0
    assert other.sentiment == () and other.intent == OUT_OF_SCOPE


def test_complaints_are_negative_and_other_tweets_partially_labelled() -> None:
    complaint, other = complaint_samples(
        [
            {"text": "worst service ever", "complaint": True},
            {"text": "do you open sunday", "complaint": False},
        ]
    )
    assert complaint.sentiment == ("negative",)
    assert other.sentiment == ("neutral", "positive") and other.emotion == ()


def test_goemotions_teaches_sentiment_only_when_polarity_agrees() -> None:
    assert emotion_sample(d.Example("grr", "emotion", labels=("anger", "frustration"))).sentiment == (
        "negative",
    )
    assert emotion_sample(d.Example("yay", "emotion", labels=("gratitude", "joy"))).sentiment == ("positive",)
    assert emotion_sample(d.Example("hm", "emotion", labels=("anger", "joy"))).sentiment == ()
    assert emotion_sample(d.Example("ok", "emotion", labels=("neutral",))).sentiment == ("neutral",)


def test_spoken_form_and_normalisation() -> None:
    assert spoken("Hello, how long does it take?") == "hello how long does it take"
    samples = [Sample("um, I lost my card [noise]", "sgd", "sgd"), Sample("[noise] uh", "sgd", "sgd")]
    (kept,) = prepared(samples)  # the turn with no lexical content is dropped
    assert kept.text == "I lost my card"
    assert prepared(samples, spoken_fraction=1.0)[0].text == "i lost my card"


def test_a_tweet_as_a_turn_loses_its_handles_and_links_only() -> None:
    tweet = normalize("@AcmeHelp my card was charged twice!! https://t.co/abc @AcmeHelp").text
    assert tweet == "@user my card was charged twice!! http @user"
    assert as_turn(tweet) == "my card was charged twice!!"
    kept = "the https page, @username and user@example"  # not a handle, not a link placeholder
    assert as_turn(kept) == kept


def test_mixture_from_every_format(tiny_data: Path) -> None:
    mix = build_mixture(MixSettings(data_dir=str(tiny_data), sgd_oos_limit=5))
    assert set(mix.train) == {"requests", "sgd", "complaints", "tweets", "goemotions"}
    intents = {s.intent for s in mix.train["requests"]}
    assert {"balance", "book_appointment", "transfer", OUT_OF_SCOPE} <= intents  # from SGD
    assert all(s.act for s in mix.train["sgd"])
    assert not any("random" in s.text for s in mix.train["complaints"])
    assert {"requests", "sgd", "complaints", "tweeteval", "goemotions"} <= set(mix.val)
    counts = dataset_counts(mix)
    assert counts["sgd"]["train"] > 0 and counts["complaints"]["val"] > 0 and counts["clinc150"]["train"] > 0
