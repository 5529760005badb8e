"""Experiment assignment: a stable hash of the conversation id picks the variant.

The bucket is the first 8 bytes of ``sha256(experiment_id + NUL +
conversation_id)`` read as a fraction in [0, 1); variants own consecutive
slices of [0, 1) in file order, sized by their shares. The same conversation
always lands in the same variant (across restarts, replicas and Python
versions, unlike ``hash()``), and different experiments split independently.
"""

from __future__ import annotations

import hashlib

from routing.policy import Experiment, Variant


def bucket(experiment_id: str, conversation_id: str) -> float:
    """Return the conversation's stable position in [0, 1) for this experiment."""
    digest = hashlib.sha256(f"{experiment_id}\x00{conversation_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def assign_variant(experiment: Experiment, conversation_id: str) -> Variant:
    """Return the variant ``conversation_id`` belongs to (deterministic; never raises)."""
    position = bucket(experiment.id, conversation_id)
    upper = 0.0
    for variant in experiment.variants:
        upper += variant.share
        if position < upper:
            return variant
    # Shares add up to 1 within float rounding; the last slice takes the remainder.
    return experiment.variants[-1]
