"""The training mixture of pack v2: every example labelled for every head it can speak to.

Pack v1 trained each head on its own sets, so the sentiment head never saw a
calm bank request and the emotion head never saw anything but Reddit. Here one
example carries what is known about it for *every* head, and what is unknown
is masked out of the loss:

- bank and customer-service requests (Banking77, Bitext, CLINC) state a need:
  intent, act ``reason``, sentiment ``neutral`` (asking, and even reporting a
  problem, is calm), no anger/joy/gratitude; the Bitext ``complaint`` intent and
  Bitext's offensive-language variants (flag ``W``) are ``negative``;
- SGD user turns are calm conversational turns: act from their dialogue acts,
  sentiment ``neutral`` (``neutral`` or ``positive`` when they thank), no
  emotion (gratitude left open when they thank); SGD's bank and appointment
  requests also teach the intent head (``balance``, ``transfer``,
  ``book_appointment``) and its other domains teach ``out_of_scope``;
- complaint tweets to customer-care accounts are ``negative`` and never
  joy/gratitude/neutral; non-complaints to the same accounts are "not negative"
  (a partial label: ``neutral`` or ``positive``);
- SemEval/SST-2 tweets and sentences keep the general sentiment scale;
- GoEmotions keeps the emotion labels, and where all of an example's emotions
  agree in polarity it also teaches sentiment.

A fraction of every group's texts (calm requests, complaints, tweets,
GoEmotions alike) is trained in a spoken form (lower case, no punctuation),
because speech-to-text output looks like that, and spoken form must not be a
shortcut to "calm" (pack 2.2 spoke only calm texts). Every text goes through
``models.normalize`` exactly as at serving time.
"""

from __future__ import annotations

import json
import random
import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from export import data as d
from models.normalize import normalize
from routing.taxonomy import ACT_LABELS, EMOTION_LABELS, OUT_OF_SCOPE, SENTIMENT_LABELS

Known = tuple[tuple[str, float], ...]
"""Emotion labels whose value is known for an example: (label, 0 or 1)."""

CALM_EMOTION: Known = tuple((label, 1.0 if label == "neutral" else 0.0) for label in EMOTION_LABELS)
NOT_POSITIVE: Known = (("gratitude", 0.0), ("joy", 0.0))
COMPLAINT_EMOTION: Known = (("gratitude", 0.0), ("joy", 0.0), ("neutral", 0.0))
REPORT_EMOTION: Known = (("anger", 0.0), ("gratitude", 0.0), ("joy", 0.0))


@dataclass(frozen=True)
class Sample:
    """One text with whatever is known about it, per head.

    ``sentiment`` is the set of allowed labels (one label, or a partial label
    such as neutral-or-positive; empty: unknown). ``emotion`` lists the known
    emotion labels with their 0/1 value. ``intent``/``act`` are label names or "".
    ``group`` decides which batches it is drawn in; ``source`` names its data set.
    """

    text: str
    group: str
    source: str
    sentiment: tuple[str, ...] = ()
    emotion: Known = ()
    intent: str = ""
    act: str = ""


@dataclass
class Mixture:
    """Training samples by group and validation samples by named set."""

    train: dict[str, list[Sample]] = field(default_factory=dict)
    val: dict[str, list[Sample]] = field(default_factory=dict)
    used: dict[str, dict[str, int]] = field(default_factory=dict)

    def add_train(self, samples: Iterable[Sample]) -> None:
        """File each sample under its group."""
        for sample in samples:
            self.train.setdefault(sample.group, []).append(sample)

    def count(self) -> None:
        """Record per-group and per-set sizes (for the manifest and the card)."""
        self.used = {
            "train": {group: len(items) for group, items in sorted(self.train.items())},
            "val": {name: len(items) for name, items in sorted(self.val.items())},
        }


# --- conversation acts -----------------------------------------------------------------

# SGD dialogue acts -> our acts, strongest first: a turn that states a new need
# is a reason whatever else it does; a goodbye closes; a question asks.
_ACT_PRIORITY: tuple[tuple[str, str], ...] = (
    ("INFORM_INTENT", "reason"),
    ("GOODBYE", "thanks_or_closing"),
    ("REQUEST", "question"),
    ("REQUEST_ALTS", "question"),
    ("NEGATE_INTENT", "deny"),
    ("THANK_YOU", "thanks_or_closing"),
    ("NEGATE", "deny"),
    ("AFFIRM", "affirm"),
    ("AFFIRM_INTENT", "affirm"),
    ("SELECT", "affirm"),
    ("INFORM", "inform"),
)


def sgd_act(acts: Iterable[str]) -> str:
    """Our conversation act for one SGD user turn's dialogue acts ("" when none maps)."""
    present = set(acts)
    for sgd, ours in _ACT_PRIORITY:
        if sgd in present:
            return ours
    return ""


# SGD intents that mean a built-in intent; the other domains are out of scope for a bank.
SGD_INTENTS = {"CheckBalance": "balance", "TransferMoney": "transfer", "BookAppointment": "book_appointment"}
SGD_BANKISH = frozenset({"MakePayment", "RequestPayment", "GetAvailableTime", "FindProvider"})


def load_sgd(root: Path, split: str) -> list[dict[str, object]]:
    """SGD user turns (``train``/``dev``) as dicts."""
    path = d._require(root / "sgd" / f"{split}_user_turns.jsonl")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def sgd_samples(rows: list[dict[str, object]], oos_limit: int, seed: int) -> list[Sample]:
    """Calm conversational turns (group ``sgd``) and SGD need statements for the intent head."""
    out: list[Sample] = []
    oos: list[Sample] = []
    for row in rows:
        acts = [str(a) for a in row["acts"]]  # type: ignore[attr-defined]
        act = sgd_act(acts)
        if not act:
            continue
        thanks = "THANK_YOU" in acts or "GOODBYE" in acts
        text = str(row["text"])
        sentiment = ("neutral", "positive") if thanks else ("neutral",)
        emotion = (
            tuple((label, v) for label, v in CALM_EMOTION if label not in ("gratitude", "joy", "neutral"))
            if thanks
            else CALM_EMOTION
        )
        intents = [str(i) for i in row["intents"]]  # type: ignore[attr-defined]
        sample = Sample(text, "sgd", "sgd", sentiment, emotion, act=act)
        if act == "reason" and len(intents) == 1 and "INFORM_INTENT" in acts:
            intent = SGD_INTENTS.get(intents[0])
            if intent:
                sample = replace(sample, group="requests", intent=intent)
            elif intents[0] not in SGD_BANKISH:
                oos.append(replace(sample, group="requests", intent=OUT_OF_SCOPE, source="sgd_other_domains"))
                continue
        out.append(sample)
    return out + d.subsample(oos, oos_limit, seed)


# --- requests ----------------------------------------------------------------------------


def request_samples(examples: Iterable[d.Example], flags: dict[str, str]) -> list[Sample]:
    """Intent-labelled requests with their weak labels for the other heads (see module doc)."""
    out = []
    for ex in examples:
        in_scope = ex.label != OUT_OF_SCOPE
        offensive = "W" in flags.get(ex.text, "")
        if ex.label == "complaint" or offensive:
            sentiment: tuple[str, ...] = ("negative",)
            emotion: Known = COMPLAINT_EMOTION + ((("frustration", 1.0),) if offensive else ())
        elif not in_scope:
            sentiment, emotion = (), NOT_POSITIVE if ex.source == "clinc_oos" else ()
        elif ex.label in d.PROBLEM_INTENTS:
            sentiment, emotion = ("neutral",), REPORT_EMOTION
        else:
            sentiment, emotion = ("neutral",), CALM_EMOTION
        out.append(Sample(ex.text, "requests", ex.source, sentiment, emotion, intent=ex.label, act="reason"))
    return out


def bitext_flags(root: Path) -> dict[str, str]:
    """Bitext utterance -> its variation flags (``W`` marks offensive language)."""
    import csv

    path = d._require(root / "bitext_customer_service" / "train.csv")
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return {r["utterance"].strip(): r["flags"] for r in csv.DictReader(handle)}


# --- complaints and tweets ---------------------------------------------------------------


def load_complaints(root: Path) -> list[dict[str, object]]:
    """Complaint tweets to customer-care accounts (random tweets excluded)."""
    path = d._require(root / "complaints" / "complaints.jsonl")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if not str(r["domain"]).startswith("random")]


def complaint_samples(rows: Iterable[dict[str, object]]) -> list[Sample]:
    """Complaints are negative; other tweets to the same accounts are neutral or positive."""
    out = []
    for row in rows:
        if row["complaint"]:
            out.append(Sample(str(row["text"]), "complaints", "complaints", ("negative",), COMPLAINT_EMOTION))
        else:
            out.append(Sample(str(row["text"]), "complaints", "complaints", ("neutral", "positive")))
    return out


def split_rows(
    rows: list[dict[str, object]], key: str, fraction: float, seed: int
) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """Deterministic split stratified by ``row[key]``: ``fraction`` to validation."""
    by: dict[str, list[dict[str, object]]] = {}
    for row in rows:
        by.setdefault(str(row[key]), []).append(row)
    train, val = [], []
    rng = random.Random(seed)
    for name in sorted(by):
        group = list(by[name])
        rng.shuffle(group)
        cut = round(len(group) * fraction)
        val += group[:cut]
        train += group[cut:]
    return train, val


NEGATIVE_EMOTIONS = frozenset({"anger", "frustration", "anxiety", "sadness"})
POSITIVE_EMOTIONS = frozenset({"gratitude", "joy"})


def emotion_sample(ex: d.Example) -> Sample:
    """A GoEmotions example; its emotions also give sentiment when they agree in polarity."""
    labels = set(ex.labels)
    if labels <= NEGATIVE_EMOTIONS:
        sentiment: tuple[str, ...] = ("negative",)
    elif labels <= POSITIVE_EMOTIONS:
        sentiment = ("positive",)
    elif labels == {"neutral"}:
        sentiment = ("neutral",)
    else:
        sentiment = ()
    emotion = tuple((label, 1.0 if label in labels else 0.0) for label in EMOTION_LABELS)
    return Sample(ex.text, "goemotions", ex.source, sentiment, emotion)


def tweet_sample(ex: d.Example, group: str = "tweets") -> Sample:
    """A general sentiment example (SemEval, SST-2, TweetEval)."""
    return Sample(ex.text, group, ex.source, (ex.label,))


# --- spoken form and normalisation -------------------------------------------------------

_PUNCT = re.compile(r"[^\w\s'’]")


def spoken(text: str) -> str:
    """What a speech-to-text bridge makes of a typed request: lower case, no punctuation."""
    return " ".join(_PUNCT.sub(" ", text).lower().split())


_ADDRESSING = re.compile(r"@user\b|(?<!\S)http(?!\S)")


def as_turn(text: str) -> str:
    """A normalised tweet as a chat or call turn would carry it: without ``@user`` handles and ``http`` links.

    Every tweet to a customer-care account starts with ``@user``; a model that learns the handle as a
    cue for complaints misses the same words in a chat or a call (pack 2.2: 0.89 of held-out complaint
    tweets recognised as negative, 0.42 of the same tweets without the handles).
    """
    return " ".join(_ADDRESSING.sub(" ", text).split())


def _stable_fraction(text: str) -> float:
    return (zlib.crc32(text.encode("utf-8")) % 10_000) / 10_000


def prepared(samples: Iterable[Sample], spoken_fraction: float = 0.0) -> list[Sample]:
    """Normalise every text as serving does; ``spoken_fraction`` of them in spoken form.

    Texts left without lexical content are dropped: serving never shows them to the model.
    """
    out = []
    for sample in samples:
        norm = normalize(sample.text)
        if not (norm.lexical and norm.text):
            continue
        text = norm.text
        if spoken_fraction and _stable_fraction(sample.text) < spoken_fraction:
            text = normalize(spoken(text)).text
        out.append(replace(sample, text=text))
    return out


# --- the whole mixture -------------------------------------------------------------------


@dataclass(frozen=True)
class MixSettings:
    """Sizes and fractions of the mixture (recorded in the manifest)."""

    data_dir: str = "../shared/data"
    seed: int = 13
    holdout_fraction: float = 0.1
    complaint_val_fraction: float = 0.25
    sentiment_train_limit: int | None = 26000
    sst2_limit: int | None = 4000
    emotion_train_limit: int | None = 22000
    oos_other_domains: int | None = 2400
    sgd_train_limit: int | None = 40000
    sgd_oos_limit: int = 2000
    sgd_val_limit: int = 4000
    spoken_fraction: float = 0.3


def build_mixture(s: MixSettings) -> Mixture:
    """Load the shared data and build training groups and validation sets (no test splits)."""
    root, seed = Path(s.data_dir), s.seed
    mix = Mixture()
    flags = bitext_flags(root)
    b77_train, b77_val = d.split_holdout(d.load_banking77(root), s.holdout_fraction, seed)
    bit_train, bit_val = d.split_holdout(d.load_bitext(root), s.holdout_fraction, seed)
    clinc_train, clinc_val = d.load_clinc(root, oos_other_domains=s.oos_other_domains, seed=seed)
    mix.add_train(prepared(request_samples(b77_train + bit_train + clinc_train, flags), s.spoken_fraction))

    sgd_train = d.subsample(load_sgd(root, "train"), s.sgd_train_limit, seed)
    mix.add_train(prepared(sgd_samples(sgd_train, s.sgd_oos_limit, seed), s.spoken_fraction))

    complaints_train, complaints_val = split_rows(
        load_complaints(root), "complaint", s.complaint_val_fraction, seed
    )
    mix.add_train(prepared(complaint_samples(complaints_train), s.spoken_fraction))

    tweeteval_val = d.load_tweeteval_sentiment(root)
    held = {ex.text for ex in tweeteval_val}
    semeval = [ex for ex in d.load_semeval(root) if ex.text not in held]
    tweets = d.subsample(semeval, s.sentiment_train_limit, seed) + d.subsample(
        d.load_sst2(root, "train"), s.sst2_limit, seed
    )
    mix.add_train(prepared((tweet_sample(ex) for ex in tweets), s.spoken_fraction))
    go_train = d.subsample(d.load_goemotions(root, "train"), s.emotion_train_limit, seed)
    mix.add_train(prepared((emotion_sample(ex) for ex in go_train), s.spoken_fraction))

    # Validation: named sets, each normalised like serving; spoken variants are their own sets.
    requests_val = request_samples(b77_val + bit_val + clinc_val, flags)
    sgd_dev = d.subsample(load_sgd(root, "dev"), s.sgd_val_limit, seed + 1)
    sgd_val = sgd_samples(sgd_dev, 10**9, seed)
    mix.val = {
        "requests": prepared(requests_val),
        "requests_spoken": prepared(
            replace(x, text=spoken(x.text)) for x in requests_val if x.source == "banking77"
        ),
        "sgd": prepared(x for x in sgd_val if x.group == "sgd"),
        "sgd_spoken": prepared(replace(x, text=spoken(x.text)) for x in sgd_val if x.group == "sgd"),
        "sgd_requests": prepared(x for x in sgd_val if x.group == "requests"),
        "complaints": prepared(complaint_samples(complaints_val)),
        "complaints_turns": prepared(
            replace(x, text=as_turn(normalize(x.text).text)) for x in complaint_samples(complaints_val)
        ),
        "complaints_spoken": prepared(
            replace(x, text=spoken(as_turn(normalize(x.text).text)))
            for x in complaint_samples(complaints_val)
        ),
        "tweeteval": prepared(tweet_sample(ex, "val") for ex in tweeteval_val),
        "goemotions": prepared(emotion_sample(ex) for ex in d.load_goemotions(root, "dev")),
    }
    mix.count()
    return mix


DATASET_OF = {
    "bitext": "bitext_customer_service",
    "clinc": "clinc150",
    "clinc_oos": "clinc150",
    "clinc_other_domains": "clinc150",
    "semeval2017": "semeval2017_task4a",
    "sgd_other_domains": "sgd",
    "tweeteval_sentiment": "tweeteval_sentiment",
}


def dataset_counts(mix: Mixture) -> dict[str, dict[str, int]]:
    """Examples used per public data set (folder of ``../shared/data``), train and validation."""
    counts: dict[str, dict[str, int]] = {}
    for part, collections in (("train", mix.train), ("val", mix.val)):
        for items in collections.values():
            for sample in items:
                name = DATASET_OF.get(sample.source, sample.source)
                entry = counts.setdefault(name, {"train": 0, "val": 0})
                entry[part] += 1
    return dict(sorted(counts.items()))


HEAD_LABELS: dict[str, tuple[str, ...]] = {
    "sentiment": SENTIMENT_LABELS,
    "emotion": EMOTION_LABELS,
    "act": ACT_LABELS,
}
