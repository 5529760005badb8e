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


def test_training_device_defaults_to_the_cpu_and_refuses_a_missing_gpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from export.train import training_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert training_device("cpu").type == "cpu"
    assert training_device("auto").type == "cpu"
    with pytest.raises(ValueError, match="no CUDA device"):
        training_device("cuda")
    with pytest.raises(ValueError, match="unknown training device 'tpu'"):
        training_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert training_device("auto").type == "cuda"


def test_batches_and_targets_follow_the_logits_device() -> None:
    import numpy as np

    from export.batches import Encoded
    from export.train import batch_losses, on_device

    batch = on_device(pad_batch([[101, 7, 102]], pad_id=0), torch.device("cpu"))
    assert batch["input_ids"].device.type == "cpu"
    enc = Encoded(
        ids=[[101, 102]],
        allowed=np.array([[1.0, 0.0, 0.0]], np.float32),
        emotion=np.zeros((1, 8), np.float32),
        emotion_mask=np.zeros((1, 8), np.float32),
        intent=np.array([IGNORE]),
        act=np.array([2]),
        samples=[],
    )
    logits = {
        "sentiment": torch.zeros(1, 3),
        "emotion": torch.zeros(1, 8),
        "intent": torch.zeros(1, 4),
        "act": torch.zeros(1, 6),
    }
    parts = batch_losses(logits, enc, [0])
    assert sorted(parts) == ["act", "sentiment"]  # no emotion cell and no intent label is known
    assert value(parts["sentiment"]) == pytest.approx(math.log(3))
