"""The weight average: what it folds in, and that swapping it in is undone."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from torch import nn

from export.ema import WeightAverage

pytestmark = pytest.mark.export


def _model() -> nn.Sequential:
    torch.manual_seed(0)
    last = nn.Linear(2, 1)
    last.bias.requires_grad_(False)
    return nn.Sequential(nn.Linear(3, 2), last)


def _weight(model: nn.Sequential) -> torch.Tensor:
    """The first layer's weight: the first parameter the average tracks."""
    return next(model.parameters())


def test_rejects_a_decay_outside_zero_one() -> None:
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(_model(), 1.0)


def test_average_follows_the_formula_after_warm_up() -> None:
    model = _model()
    average = WeightAverage(model, 0.5)
    average.updates = 1000  # past the warm-up: the decay is the configured one
    before = _weight(model).detach().clone()
    with torch.no_grad():
        _weight(model).add_(2.0)
    average.update()
    assert torch.allclose(average.shadow[0], before + 1.0)


def test_frozen_parameters_are_not_averaged() -> None:
    model = _model()
    average = WeightAverage(model, 0.9)
    assert len(average.params) == len([p for p in model.parameters() if p.requires_grad]) == 3


def test_swapped_in_holds_the_average_and_restores_the_raw_weights() -> None:
    model = _model()
    average = WeightAverage(model, 0.99)
    raw = _weight(model).detach().clone()
    average.shadow[0].fill_(7.0)
    with average.swapped_in():
        assert torch.all(_weight(model) == 7.0)
    assert torch.equal(_weight(model), raw)
    assert _weight(model).requires_grad


def test_warm_up_lets_the_average_follow_early_steps() -> None:
    model = _model()
    average = WeightAverage(model, 0.999)
    old = _weight(model).detach().clone()
    with torch.no_grad():
        _weight(model).fill_(1.0)
    average.update()  # decay (1 + 1) / (10 + 1), not 0.999: mostly the new weights
    assert torch.allclose(average.shadow[0], old * 2 / 11 + 9 / 11)


def test_tiny_training_with_an_average_records_it_and_writes_a_checkpoint(
    tiny_data: Path, tmp_path: Path
) -> None:
    from export.recipe import Recipe, tiny
    from export.train import train

    recipe = dataclasses.replace(tiny(Recipe(data_dir=str(tiny_data))), ema_decay=0.9, refit_heads=False)
    summary = train(recipe, tmp_path / "run", progress=False)
    assert summary["recipe"]["ema_decay"] == 0.9  # type: ignore[index]
    assert (tmp_path / "run" / "checkpoint").is_dir()
