"""Tiny copies of every public data format, written by the tests themselves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from routing.taxonomy import EMOTION_LABELS

B77 = {
    "card_arrival": ["my card has not arrived yet", "where is my new card", "still waiting on my card"],
    "request_refund": ["I want my money back", "please refund my purchase", "can I get a refund"],
    "terminate_account": ["close my account now", "I want to delete my account", "how do I close my account"],
    "exchange_rate": [
        "what is the exchange rate",
        "how much is one euro in dollars",
        "current exchange rates?",
    ],
}
BITEXT = {
    "contact_human_agent": [
        "let me talk to a person",
        "I need a human agent",
        "connect me to a representative",
    ],
    "complaint": [
        "I want to file a complaint",
        "your service is terrible, I'm complaining",
        "lodge a complaint",
    ],
    "track_order": ["where is my order {{Order Number}}", "track my order", "has my order shipped"],
}
CLINC_IN = {
    "report_lost_card": ["i lost my card", "my card is lost", "report my card as lost"],
    "balance": ["what is my balance", "how much money do i have", "check my balance"],
}
CLINC_OTHER = {"weather": ["will it rain tomorrow", "what's the weather", "is it sunny"]}
GO_LABELS = [
    "admiration",
    "amusement",
    "anger",
    "annoyance",
    "approval",
    "caring",
    "confusion",
    "curiosity",
    "desire",
    "disappointment",
    "disapproval",
    "disgust",
    "embarrassment",
    "excitement",
    "fear",
    "gratitude",
    "grief",
    "joy",
    "love",
    "nervousness",
    "optimism",
    "pride",
    "realization",
    "relief",
    "remorse",
    "sadness",
    "surprise",
    "neutral",
]


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def write_tiny_data(root: Path) -> Path:
    """Write every format of ../shared/data at toy size; returns ``root``."""
    rows = ["text,category"] + [f'"{t}",{label}' for label, ts in B77.items() for t in ts * 4]
    _write(root / "banking77" / "train.csv", "\n".join(rows) + "\n")
    _write(root / "banking77" / "categories.json", json.dumps(list(B77)))
    rows = ["flags,utterance,category,intent"] + [
        f'B,"{t}",X,{label}' for label, ts in BITEXT.items() for t in ts * 4
    ]
    _write(root / "bitext_customer_service" / "train.csv", "\ufeff" + "\n".join(rows) + "\n")
    clinc = {
        "train": [[t, i] for i, ts in {**CLINC_IN, **CLINC_OTHER}.items() for t in ts * 3],
        "val": [[t, i] for i, ts in {**CLINC_IN, **CLINC_OTHER}.items() for t in ts],
        "oos_train": [["how tall is everest", "oos"], ["sing me a song", "oos"]],
        "oos_val": [["who won the game", "oos"]],
    }
    _write(root / "clinc150" / "data_full.json", json.dumps(clinc))
    _write(
        root / "clinc150" / "domains.json",
        json.dumps({"banking": ["balance"], "credit_cards": ["report_lost_card"], "weather": ["weather"]}),
    )
    tweets = [
        ("1", "negative", "this is awful \\u002c I hate it"),
        ("2", "positive", "love it, great service"),
        ("3", "neutral", "the store opens at 9"),
        ("1", "negative", "duplicate id is dropped"),
        ("4", "positive", "best day ever\textra\tfields"),
    ] * 1
    body = "\n".join("\t".join(t) for t in tweets)
    _write(root / "semeval2017_task4a" / "twitter-2013train-A.tsv", body + "\n")
    _write(
        root / "semeval2017_task4a" / "twitter-2016dev-A.tsv",
        "5\tneutral\tjust a normal tuesday\n6\tbogus\tx\n",
    )
    for split, n in (("val", 6),):
        texts = ["meh ok", "so angry right now", "thank you!"] * (n // 3)
        labels = ["1", "0", "2"] * (n // 3)
        _write(root / "tweeteval" / "sentiment" / f"{split}_text.txt", "\n".join(texts) + "\n")
        _write(root / "tweeteval" / "sentiment" / f"{split}_labels.txt", "\n".join(labels) + "\n")
    _write(root / "tweeteval" / "sentiment" / "mapping.txt", "0\tnegative\n1\tneutral\n2\tpositive\n")
    _write(root / "sst2" / "train.tsv", "label\tsentence\n0\ta dull film\n1\ta joyous ride\n")
    _write(root / "goemotions" / "labels.txt", "\n".join(GO_LABELS) + "\n")
    go = [
        ("thanks a lot!", "15"),
        ("this is so annoying", "3"),
        ("why would they do that?", "7"),
        ("I'm scared and nervous", "14,19"),
        ("ok", "27"),
        ("wow what a surprise", "26"),
        ("so sad to hear", "25"),
        ("you are amazing", "0,17"),
        ("I don't get it", "6"),
        ("disgusting", "11"),
    ]
    body = "\n".join(f"{t}\t{ids}\tc{i}" for i, (t, ids) in enumerate(go * 3))
    _write(root / "goemotions" / "train.tsv", body + "\n")
    _write(
        root / "goemotions" / "dev.tsv",
        "\n".join(f"{t}\t{ids}\td{i}" for i, (t, ids) in enumerate(go)) + "\n",
    )
    _write(
        root / "dair_emotion" / "train.txt", "i feel great;joy\ni am so afraid;fear\nwhat a twist;surprise\n"
    )
    _write(root / "tweeteval" / "emotion" / "mapping.txt", "0\tanger\n1\tjoy\n2\toptimism\n3\tsadness\n")
    _write(root / "tweeteval" / "emotion" / "train_text.txt", "grr\nyay\nhope so\nsigh\n")
    _write(root / "tweeteval" / "emotion" / "train_labels.txt", "0\n1\n2\n3\n")
    sgd = [
        ("I need to check my account balance.", ["INFORM_INTENT"], ["CheckBalance"]),
        ("Can you book an appointment at the dentist?", ["INFORM_INTENT"], ["BookAppointment"]),
        ("I want to find a restaurant in San Jose.", ["INFORM_INTENT"], ["FindRestaurants"]),
        ("My checking account, please.", ["INFORM"], ["CheckBalance"]),
        ("What is the address?", ["REQUEST"], ["FindRestaurants"]),
        ("Yes, that works.", ["AFFIRM"], ["BookAppointment"]),
        ("No, not that one.", ["NEGATE"], ["FindRestaurants"]),
        ("No, thank you so much.", ["NEGATE", "THANK_YOU"], ["CheckBalance"]),
        ("Thanks, bye!", ["GOODBYE", "THANK_YOU"], ["TransferMoney"]),
        ("Send 200 dollars to Anna.", ["INFORM", "INFORM_INTENT"], ["TransferMoney"]),
    ]
    for split, copies in (("train", 4), ("dev", 1)):
        rows = [
            json.dumps(
                {
                    "dialogue_id": f"{split}_{i}",
                    "turn": 0,
                    "text": text,
                    "acts": acts,
                    "intents": intents,
                    "services": ["Banks_1"],
                    "previous_system": None,
                }
            )
            for i, (text, acts, intents) in enumerate(sgd * copies)
        ]
        _write(root / "sgd" / f"{split}_user_turns.jsonl", "\n".join(rows) + "\n")
    complaints = [
        ("@Shop my order never arrived and nobody answers", True, "retail"),
        ("@Air worst airline ever, lost my bag again", True, "transport"),
        ("@Phone charged twice for one bill, fix it now", True, "services"),
        ("@Shop do you open on sunday?", False, "retail"),
        ("@Air thanks for the quick help today", False, "transport"),
        ("@Phone is the new plan available in my area?", False, "services"),
        ("what a lovely morning", False, "random_tweet"),
    ]
    rows = [
        json.dumps({"id": str(i), "text": t, "complaint": c, "domain": d})
        for i, (t, c, d) in enumerate(complaints * 4)
    ]
    _write(root / "complaints" / "complaints.jsonl", "\n".join(rows) + "\n")
    assert len(EMOTION_LABELS) == 8
    return root


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder laid out like ../shared/data, with a few examples per label."""
    return write_tiny_data(tmp_path_factory.mktemp("data"))
