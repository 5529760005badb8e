"""Loaders for the public training sets and for a user's own CSV.

Every loader returns plain ``Example`` records; none of them downloads anything.
The folder layout is the one described in ``../shared/data/README.md``; the
root is configurable (``--data``). The data itself is never committed.
"""

from __future__ import annotations

import csv
import json
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from routing.taxonomy import (
    EMOTION_LABELS,
    GOEMOTIONS_MAP,
    INTENT_ALIASES,
    INTENT_LABELS,
    OUT_OF_SCOPE,
    SENTIMENT_LABELS,
)

IN_SCOPE_CLINC_DOMAINS = ("banking", "credit_cards")
T = TypeVar("T")


@dataclass(frozen=True)
class Example:
    """One training example for one head.

    ``label`` is the label name for single-label heads; ``labels`` the set of
    label names for the multi-label emotion head. ``source`` names the data
    set, so metrics can be reported per source.
    """

    text: str
    head: str
    label: str = ""
    labels: tuple[str, ...] = ()
    source: str = ""


@dataclass
class Splits:
    """Train and validation examples for every head, plus a record of what was used."""

    train: list[Example] = field(default_factory=list)
    val: list[Example] = field(default_factory=list)
    used: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, name: str, train: Sequence[Example], val: Sequence[Example]) -> None:
        """Append a source's examples and record their counts."""
        self.train.extend(train)
        self.val.extend(val)
        self.used[name] = {"train": len(train), "val": len(val)}


class DataError(ValueError):
    """A data file is missing or not in the documented format."""


def _require(path: Path) -> Path:
    if not path.exists():
        raise DataError(f"missing data file: {path}")
    return path


def split_holdout(
    examples: Sequence[Example], fraction: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """Deterministic stratified split: ``fraction`` of each label goes to validation."""
    by_label: dict[str, list[Example]] = {}
    for ex in examples:
        by_label.setdefault(ex.label or "|".join(ex.labels), []).append(ex)
    rng = random.Random(seed)
    train: list[Example] = []
    val: list[Example] = []
    for key in sorted(by_label):
        group = list(by_label[key])
        rng.shuffle(group)
        cut = round(len(group) * fraction)
        val.extend(group[:cut])
        train.extend(group[cut:])
    return train, val


def subsample(examples: Sequence[T], limit: int | None, seed: int) -> list[T]:
    """Deterministic random subsample of at most ``limit`` examples (all when None)."""
    items = list(examples)
    if limit is None or len(items) <= limit:
        return items
    rng = random.Random(seed)
    return rng.sample(items, limit)


# --- intent ---------------------------------------------------------------------------


def load_banking77(root: Path) -> list[Example]:
    """Banking77 ``train.csv`` (``text,category``); labels keep their original names."""
    with _require(root / "banking77" / "train.csv").open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    if rows and ("text" not in rows[0] or "category" not in rows[0]):
        raise DataError("banking77/train.csv must have columns text,category")
    return [Example(r["text"].strip(), "intent", r["category"].strip(), source="banking77") for r in rows]


def load_bitext(root: Path) -> list[Example]:
    """Bitext customer-service CSV (``flags,utterance,category,intent``), BOM-tolerant; intents that
    mean the same as a Banking77 one take its name (``INTENT_ALIASES``)."""
    path = _require(root / "bitext_customer_service" / "train.csv")
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    if rows and ("utterance" not in rows[0] or "intent" not in rows[0]):
        raise DataError("bitext train.csv must have columns flags,utterance,category,intent")
    return [
        Example(
            r["utterance"].strip(),
            "intent",
            INTENT_ALIASES.get(r["intent"].strip(), r["intent"].strip()),
            source="bitext",
        )
        for r in rows
        if r["utterance"].strip()
    ]


def load_clinc(
    root: Path, *, oos_other_domains: int | None, seed: int
) -> tuple[list[Example], list[Example]]:
    """CLINC150: banking/credit_cards intents (aliased) plus out_of_scope.

    ``out_of_scope`` combines CLINC's own ``oos`` examples and utterances from
    the eight other domains (``oos_other_domains`` caps how many of the latter
    are used per split, sampled deterministically). Returns (train, val).
    """
    data = json.loads(_require(root / "clinc150" / "data_full.json").read_text())
    domains = json.loads(_require(root / "clinc150" / "domains.json").read_text())
    in_scope = {i for d in IN_SCOPE_CLINC_DOMAINS for i in domains[d]}

    def convert(split: str, oos_split: str, limit: int | None, salt: int) -> list[Example]:
        kept: list[Example] = []
        other: list[Example] = []
        for text, intent in data[split]:
            if intent in in_scope:
                kept.append(Example(text, "intent", INTENT_ALIASES.get(intent, intent), source="clinc"))
            else:
                other.append(Example(text, "intent", OUT_OF_SCOPE, source="clinc_other_domains"))
        oos = [Example(t, "intent", OUT_OF_SCOPE, source="clinc_oos") for t, _ in data[oos_split]]
        return kept + oos + subsample(other, limit, seed + salt)

    val_limit = None if oos_other_domains is None else max(1, oos_other_domains // 5)
    return convert("train", "oos_train", oos_other_domains, 1), convert("val", "oos_val", val_limit, 2)


# --- sentiment -------------------------------------------------------------------------

_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")


def _unescape(text: str) -> str:
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text).replace('\\"', '"').strip().strip('"')


def load_semeval(root: Path) -> list[Example]:
    """SemEval-2017 4A tweets, deduplicated by tweet id, with literal \\uXXXX escapes undone."""
    folder = _require(root / "semeval2017_task4a")
    seen: dict[str, Example] = {}
    for path in sorted(folder.glob("twitter-20*.tsv")):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            parts = line.split("\t")
            if len(parts) < 3 or parts[1] not in SENTIMENT_LABELS:
                continue
            text = _unescape("\t".join(parts[2:]))
            if text and parts[0] not in seen:
                seen[parts[0]] = Example(text, "sentiment", parts[1], source="semeval2017")
    if not seen:
        raise DataError(f"no SemEval tweets found in {folder}")
    return list(seen.values())


def _lines(path: Path) -> list[str]:
    return _require(path).read_text(encoding="utf-8").splitlines()


def _mapping(path: Path) -> dict[str, str]:
    return dict(line.split("\t")[:2] for line in _lines(path) if "\t" in line)


def load_tweeteval_sentiment(root: Path) -> list[Example]:
    """TweetEval sentiment validation split (label ids per ``mapping.txt``)."""
    folder = root / "tweeteval" / "sentiment"
    names = _mapping(folder / "mapping.txt")
    texts, labels = _lines(folder / "val_text.txt"), _lines(folder / "val_labels.txt")
    return [
        Example(t.strip(), "sentiment", names[y.strip()], source="tweeteval_sentiment")
        for t, y in zip(texts, labels, strict=True)
    ]


def load_sst2(root: Path, split: str = "train") -> list[Example]:
    """SST-2 binary sentences (0 negative, 1 positive)."""
    rows = _lines(root / "sst2" / f"{split}.tsv")[1:]
    out = []
    for row in rows:
        label, _, text = row.partition("\t")
        if label in ("0", "1") and text.strip():
            out.append(
                Example(text.strip(), "sentiment", "negative" if label == "0" else "positive", source="sst2")
            )
    return out


# Intents whose utterances report a problem. A report is calm by itself ("my card
# still hasn't arrived"): ``export/mix.py`` labels it neutral and never angry or positive.
PROBLEM_INTENTS = frozenset(
    {
        "card_arrival",
        "card_not_working",
        "contactless_not_working",
        "card_payment_wrong_exchange_rate",
        "extra_charge_on_statement",
        "wrong_amount_of_cash_received",
        "transfer_not_received_by_recipient",
        "top_up_reverted",
        "balance_not_updated_after_cheque_or_cash_deposit",
        "card_payment_not_recognised",
        "unable_to_verify_identity",
        "compromised_card",
        "direct_debit_payment_not_recognised",
        "declined_cash_withdrawal",
        "lost_or_stolen_phone",
        "declined_transfer",
        "Refund_not_showing_up",
        "declined_card_payment",
        "card_swallowed",
        "transaction_charged_twice",
        "reverted_card_payment?",
        "beneficiary_not_allowed",
        "failed_transfer",
        "virtual_card_not_working",
        "top_up_failed",
        "balance_not_updated_after_bank_transfer",
        "cash_withdrawal_not_recognised",
        "pin_blocked",
        "lost_or_stolen_card",
        "wrong_exchange_rate_for_cash_withdrawal",
        "complaint",
        "payment_issue",
        "registration_problems",
    }
)

# --- emotion --------------------------------------------------------------------------


def load_goemotions(root: Path, split: str) -> list[Example]:
    """GoEmotions mapped to the contact-centre emotion set.

    Examples whose labels all map to nothing (curiosity, desire, realization,
    surprise) are dropped, as the label contract requires.
    """
    names = _lines(root / "goemotions" / "labels.txt")
    out = []
    for row in _lines(root / "goemotions" / f"{split}.tsv"):
        parts = row.split("\t")
        if len(parts) < 2:
            continue
        mapped = {
            GOEMOTIONS_MAP[names[int(i)]] for i in parts[1].split(",") if names[int(i)] in GOEMOTIONS_MAP
        }
        if mapped and parts[0].strip():
            out.append(Example(parts[0].strip(), "emotion", labels=_ordered(mapped), source="goemotions"))
    return out


DAIR_MAP = {"sadness": "sadness", "joy": "joy", "love": "joy", "anger": "anger", "fear": "anxiety"}
TWEETEVAL_EMOTION_MAP = {"anger": "anger", "joy": "joy", "optimism": "joy", "sadness": "sadness"}


def _ordered(labels: Iterable[str]) -> tuple[str, ...]:
    wanted = set(labels)
    return tuple(label for label in EMOTION_LABELS if label in wanted)


def load_dair_emotion(root: Path, split: str = "train") -> list[Example]:
    """dair-ai emotion (``text;label``); ``surprise`` has no counterpart and is dropped."""
    out = []
    for row in _lines(root / "dair_emotion" / f"{split}.txt"):
        text, _, label = row.rpartition(";")
        if label in DAIR_MAP and text.strip():
            out.append(Example(text.strip(), "emotion", labels=(DAIR_MAP[label],), source="dair_emotion"))
    return out


def load_tweeteval_emotion(root: Path, split: str = "train") -> list[Example]:
    """TweetEval emotion (anger, joy, optimism, sadness) mapped to our set."""
    folder = root / "tweeteval" / "emotion"
    names = _mapping(folder / "mapping.txt")
    texts, labels = _lines(folder / f"{split}_text.txt"), _lines(folder / f"{split}_labels.txt")
    return [
        Example(
            t.strip(),
            "emotion",
            labels=(TWEETEVAL_EMOTION_MAP[names[y.strip()]],),
            source="tweeteval_emotion",
        )
        for t, y in zip(texts, labels, strict=True)
    ]


# --- a user's own data ----------------------------------------------------------------


def load_user_csv(path: Path, head: str) -> list[Example]:
    """A user's labelled transcripts: CSV with header ``text,label``.

    For the emotion head ``label`` may hold several labels separated by ``|``.
    Labels must belong to the head's label set; the error names the row.
    """
    allowed = {"sentiment": SENTIMENT_LABELS, "emotion": EMOTION_LABELS, "intent": INTENT_LABELS}[head]
    with _require(path).open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"text", "label"} <= set(reader.fieldnames):
            raise DataError(f"{path}: expected a header with columns text,label")
        out = []
        for number, row in enumerate(reader, start=2):
            text, raw = (row["text"] or "").strip(), (row["label"] or "").strip()
            labels = tuple(x.strip() for x in raw.split("|")) if head == "emotion" else (raw,)
            unknown = [x for x in labels if x not in allowed]
            if not text or unknown:
                problem = "empty text" if not text else f"unknown {head} label {unknown[0]!r}"
                raise DataError(f"{path}:{number}: {problem}")
            if head == "emotion":
                out.append(Example(text, head, labels=_ordered(labels), source=path.name))
            else:
                out.append(Example(text, head, labels[0], source=path.name))
    return out
