"""Each loader on tiny fixture files in the documented formats."""

from __future__ import annotations

from pathlib import Path

import pytest

from export import data as d
from routing.taxonomy import INTENT_LABELS, OUT_OF_SCOPE


def test_banking77_keeps_original_names(tiny_data: Path) -> None:
    examples = d.load_banking77(tiny_data)
    assert {e.label for e in examples} == {
        "card_arrival",
        "request_refund",
        "terminate_account",
        "exchange_rate",
    }
    assert all(e.head == "intent" and e.source == "banking77" for e in examples)


def test_bitext_reads_bom_and_intent_column(tiny_data: Path) -> None:
    examples = d.load_bitext(tiny_data)
    assert {e.label for e in examples} == {"contact_human_agent", "complaint", "track_order"}
    assert not any(e.text.startswith("\ufeff") for e in examples)


def test_clinc_aliases_and_out_of_scope(tiny_data: Path) -> None:
    train, val = d.load_clinc(tiny_data, oos_other_domains=None, seed=1)
    labels = {e.label for e in train}
    assert "lost_or_stolen_card" in labels and "report_lost_card" not in labels
    assert OUT_OF_SCOPE in labels and "weather" not in labels
    assert {e.source for e in train if e.label == OUT_OF_SCOPE} == {"clinc_oos", "clinc_other_domains"}
    assert all(e.label in INTENT_LABELS for e in train + val)


def test_clinc_caps_other_domains(tiny_data: Path) -> None:
    train, _ = d.load_clinc(tiny_data, oos_other_domains=2, seed=1)
    assert sum(e.source == "clinc_other_domains" for e in train) == 2


def test_semeval_dedupes_ids_and_unescapes(tiny_data: Path) -> None:
    examples = d.load_semeval(tiny_data)
    texts = [e.text for e in examples]
    assert "this is awful , I hate it" in texts
    assert "duplicate id is dropped" not in texts
    assert all(e.label in ("negative", "neutral", "positive") for e in examples)
    assert any("extra" in t for t in texts)  # extra tab fields stay part of the text


def test_tweeteval_sentiment_uses_mapping(tiny_data: Path) -> None:
    examples = d.load_tweeteval_sentiment(tiny_data)
    assert [e.label for e in examples[:3]] == ["neutral", "negative", "positive"]


def test_sst2_binary(tiny_data: Path) -> None:
    assert [e.label for e in d.load_sst2(tiny_data)] == ["negative", "positive"]


def test_goemotions_mapping_and_drop(tiny_data: Path) -> None:
    examples = d.load_goemotions(tiny_data, "dev")
    by_text = {e.text: e.labels for e in examples}
    assert by_text["I'm scared and nervous"] == ("anxiety",)
    assert by_text["you are amazing"] == ("joy",)
    assert by_text["this is so annoying"] == ("frustration",)
    assert "why would they do that?" not in by_text  # curiosity only
    assert "wow what a surprise" not in by_text  # surprise only


def test_dair_and_tweeteval_emotion(tiny_data: Path) -> None:
    assert [e.labels for e in d.load_dair_emotion(tiny_data)] == [("joy",), ("anxiety",)]
    assert [e.labels[0] for e in d.load_tweeteval_emotion(tiny_data)] == ["anger", "joy", "joy", "sadness"]


def test_user_csv(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    path.write_text("text,label\nhello there,neutral\nawful,negative\n")
    assert [e.label for e in d.load_user_csv(path, "sentiment")] == ["neutral", "negative"]
    multi = tmp_path / "emo.csv"
    multi.write_text("text,label\nugh,anger|frustration\n")
    assert d.load_user_csv(multi, "emotion")[0].labels == ("anger", "frustration")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("words,label\nx,neutral\n", "expected a header"),
        ("text,label\n,neutral\n", ":2: empty text"),
        ("text,label\nhi,happy\n", ":2: unknown sentiment label 'happy'"),
    ],
)
def test_user_csv_errors_name_the_row(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(d.DataError, match=message):
        d.load_user_csv(path, "sentiment")


def test_missing_file_is_clear(tmp_path: Path) -> None:
    with pytest.raises(d.DataError, match="missing data file"):
        d.load_banking77(tmp_path)


def test_split_holdout_is_stratified_and_deterministic(tiny_data: Path) -> None:
    examples = d.load_banking77(tiny_data)
    a = d.split_holdout(examples, 0.25, seed=3)
    b = d.split_holdout(examples, 0.25, seed=3)
    assert a == b
    assert {e.label for e in a[1]} == {e.label for e in examples}
