"""Exponential moving average of a model's trainable weights.

The mixture's groups take turns batch by batch, so the raw weights at any one
step lean towards whichever groups came last; the average over the last
~1/(1 - decay) steps does not, and it is what evaluation and the checkpoint see.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


class WeightAverage:
    """Keeps ``avg = decay * avg + (1 - decay) * weight`` for every trainable parameter."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.params: list[torch.Tensor] = [p for p in model.parameters() if p.requires_grad]
        self.shadow = [p.detach().clone() for p in self.params]
        self.updates = 0

    @torch.no_grad()
    def update(self) -> None:
        """Fold the current weights into the average (call after each optimiser step)."""
        self.updates += 1
        # Early on the average would mostly be the pretrained weights; the warm-up
        # decay (1 + n) / (10 + n) lets it follow the model until n is large.
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_mul_(self.shadow, decay)
        torch._foreach_add_(self.shadow, self.params, alpha=1 - decay)

    @contextmanager
    def swapped_in(self) -> Iterator[None]:
        """Within the block the model holds the averaged weights; the raw ones come back after."""
        with torch.no_grad():
            raw = [p.clone() for p in self.params]
            torch._foreach_copy_(self.params, self.shadow)
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_(self.params, raw)
