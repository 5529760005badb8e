"""Experiment assignment: stable, share-proportional, independent across experiments."""

from __future__ import annotations

import hashlib
from collections import Counter

from routing.conditions import AllOf
from routing.experiments import assign_variant, bucket
from routing.policy import Experiment, Rule, Target, Variant

_DEFAULT = Rule(id="default", when=AllOf(path="default", items=()), target=Target("specialist", "general"))


def experiment(shares: list[float], exp_id: str = "exp") -> Experiment:
    variants = tuple(Variant(id=f"v{i}", share=s, rules=(), default=_DEFAULT) for i, s in enumerate(shares))
    return Experiment(id=exp_id, variants=variants)


def test_bucket_is_the_documented_sha256() -> None:
    digest = hashlib.sha256(b"exp\x00conv-1").digest()
    assert bucket("exp", "conv-1") == int.from_bytes(digest[:8], "big") / 2.0**64
    # Pinned values: assignment must never change between releases.
    assert bucket("bot-holdout", "conv-2") == 0.10001324009309091
    assert bucket("exp", "conv-1") == 0.5585501654274874
    assert 0.0 <= bucket("", "") < 1.0


def test_assignment_is_stable() -> None:
    exp = experiment([0.5, 0.5])
    assert all(assign_variant(exp, f"c{i}") == assign_variant(exp, f"c{i}") for i in range(50))


def test_assignment_follows_the_shares() -> None:
    exp = experiment([0.1, 0.6, 0.3])
    counts = Counter(assign_variant(exp, f"conversation-{i}").id for i in range(20_000))
    assert abs(counts["v0"] / 20_000 - 0.1) < 0.01
    assert abs(counts["v1"] / 20_000 - 0.6) < 0.015
    assert abs(counts["v2"] / 20_000 - 0.3) < 0.015


def test_experiments_split_independently() -> None:
    a, b = experiment([0.5, 0.5], "a"), experiment([0.5, 0.5], "b")
    same = sum(assign_variant(a, f"c{i}").id == assign_variant(b, f"c{i}").id for i in range(4000))
    assert 0.45 < same / 4000 < 0.55


def test_float_rounding_in_shares_still_assigns() -> None:
    exp = experiment([0.1] * 10)  # sums to 0.9999999999999999
    assert all(assign_variant(exp, f"c{i}").id.startswith("v") for i in range(2000))
