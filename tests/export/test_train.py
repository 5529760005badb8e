"""Training losses: partial-label sentiment, masked emotion, ignored intent/act rows."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pytest

torch = pytest.importorskip("torch")

from export.batches import IGNORE, class_loss, emotion_loss, pad_batch, sentiment_loss  # noqa: E402

if TYPE_CHECKING:
    from torch import Tensor

pytestmark = pytest.mark.export


def value(loss: Tensor | None) -> float:
    """The loss as a float; a loss of None (no labelled row) fails the test here."""
    assert loss is not None
    return float(loss)


def test_single_label_sentiment_is_cross_entropy() -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    allowed = torch.tensor([[1.0, 0.0, 0.0]])
    expected = torch.nn.functional.cross_entropy(logits, torch.tensor([0]))
    assert value(sentiment_loss(logits, allowed)) == pytest.approx(float(expected))


def test_partial_label_is_minus_log_of_the_allowed_mass() -> None:
    logits = torch.tensor([[0.0, 1.0, 1.0]])
    allowed = torch.tensor([[0.0, 1.0, 1.0]])  # neutral or positive
    p = torch.softmax(logits, 1)[0]
    assert value(sentiment_loss(logits, allowed)) == pytest.approx(-math.log(float(p[1] + p[2])), rel=1e-5)


def test_rows_without_a_label_do_not_count() -> None:
    logits = torch.tensor([[5.0, 0.0, 0.0], [0.0, 0.0, 3.0]])
    allowed = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    only_second = sentiment_loss(logits[1:], allowed[1:])
    assert value(sentiment_loss(logits, allowed)) == pytest.approx(value(only_second))
    assert sentiment_loss(logits, torch.zeros_like(allowed)) is None


def test_emotion_loss_uses_known_cells_only() -> None:
    logits = torch.tensor([[10.0, -10.0]])
    target = torch.tensor([[0.0, 0.0]])
    mask = torch.tensor([[0.0, 1.0]])  # the confident wrong first cell is unknown: no loss
    assert value(emotion_loss(logits, target, mask)) < 1e-3
    assert emotion_loss(logits, target, torch.zeros_like(mask)) is None


def test_class_loss_ignores_unlabelled_rows() -> None:
    logits = torch.tensor([[3.0, 0.0], [0.0, 3.0]])
    assert class_loss(logits, torch.tensor([IGNORE, IGNORE])) is None
    both = class_loss(logits, torch.tensor([0, IGNORE]))
    assert value(both) == pytest.approx(
        float(torch.nn.functional.cross_entropy(logits[:1], torch.tensor([0])))
    )


def test_pad_batch_pads_to_the_longest_sequence_and_masks_the_padding() -> None:
    batch = pad_batch([[5, 6, 7], [8]], pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["token_type_ids"].tolist() == [[0, 0, 0], [0, 0, 0]]
