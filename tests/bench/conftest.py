"""A tiny stand-in for ``../shared/data`` (the train files the suite builder reads)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from bench import build_suite as b

CLOSINGS = [
    "Thank you very much.",
    "Thanks a lot.",
    "Thanks, that's all.",
    "Thank you for your help.",
    "Thanks so much!",
    "No, that's all, thank you.",
    "Thanks for everything.",
    "That will be all. Thank you!",
    "Thanks a bunch.",
    "I'm all set, thanks.",
    "Thank you so much for your help.",
    "Great, thank you.",
    "Thanks for the help.",
]
OUT_OF_SCOPE = [
    ("Find me a restaurant.", "In San Jose."),
    ("Check the weather.", "In Paris."),
    ("I need a movie.", "A comedy."),
    ("I am hungry and would like to find a nice place to eat tonight", "Cheap."),
]
OFFENSIVE = [("order", "track_order"), ("account", "delete_account"), ("bill", "check_invoice")]


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def _sgd(
    dialogue: str, turn: int, text: str, acts: list[str], intents: list[str], service: str
) -> dict[str, Any]:
    previous = None if turn == 0 else "What else can I do?"
    return {
        "dialogue_id": dialogue,
        "turn": turn,
        "text": text,
        "acts": acts,
        "intents": intents,
        "services": [service],
        "previous_system": previous,
    }


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    labels = sorted({*b.TIER1_BANKING77, *b.PROBLEMS_BANKING77, *b.FRAUD_BANKING77})
    banking = [[f"question {i} about {label.replace('_', ' ')}", label] for label in labels for i in range(8)]
    _write_csv(root / "banking77" / "train.csv", ["text", "category"], banking)
    intents = (*b.TIER1_BITEXT, "complaint", "delete_account")
    bitext = [
        ["B", f"help {i} with {intent.replace('_', ' ')}", "X", intent]
        for intent in intents
        for i in range(12)
    ]
    bitext += [["B", f"can I talk to a human {i}", "X", "contact_human_agent"] for i in range(24)]
    bitext += [
        ["BW", f"where is my damn {what} {i}", "X", intent] for i in range(3) for what, intent in OFFENSIVE
    ]
    _write_csv(
        root / "bitext_customer_service" / "train.csv", ["flags", "utterance", "category", "intent"], bitext
    )
    sgd = [_sgd(f"1_{n:05d}", 4, text, ["THANK_YOU"], [], "Restaurants_1") for n, text in enumerate(CLOSINGS)]
    for n, (first, then) in enumerate(OUT_OF_SCOPE):
        sgd.append(_sgd(f"2_{n:05d}", 0, first, ["INFORM_INTENT"], ["X"], "Restaurants_1"))
        sgd.append(_sgd(f"2_{n:05d}", 2, then, ["INFORM"], ["X"], "Restaurants_1"))
    sgd.append(_sgd("3_00000", 0, "What is my balance?", ["INFORM_INTENT"], ["CheckBalance"], "Banks_1"))
    sgd.append(_sgd("3_00000", 2, "Thanks, that's all.", ["THANK_YOU"], ["CheckBalance"], "Banks_1"))
    _jsonl(root / "sgd" / "train_user_turns.jsonl", sgd)
    tweet = "@Shop your delivery {} was late and nobody answered my emails http://x.co"
    complaints = [
        {"id": str(i), "text": tweet.format(i), "complaint": True, "domain": "retail"} for i in range(30)
    ]
    complaints.append(
        {"id": "x", "text": "@Shop lovely day at the beach", "complaint": False, "domain": "retail"}
    )
    _jsonl(root / "complaints" / "complaints.jsonl", complaints)
    return root
