"""Losses selectable from ``conf/loss``: cross-entropy here, Dice/Focal/Lovasz from segmentation-models-pytorch."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class CrossEntropy(nn.CrossEntropyLoss):
    """Cross-entropy with an ignore index and optional per-class weights given as a plain list in the config.

    A batch without a single labelled pixel (windows entirely under nodata) gives 0 instead of torch's 0 / 0 = NaN,
    which would otherwise turn every weight into NaN at the next optimiser step.
    """

    def __init__(self, ignore_index: int = 255, class_weights: Sequence[float] | None = None, label_smoothing: float = 0.0):
        weight = torch.tensor(list(class_weights), dtype=torch.float32) if class_weights else None
        super().__init__(weight=weight, ignore_index=ignore_index, label_smoothing=label_smoothing)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if not bool((target != self.ignore_index).any()):
            return logits.sum() * 0.0  # no gradient, no NaN
        return super().forward(logits, target)


class WeightedSum(nn.Module):
    """A weighted sum of losses, e.g. cross-entropy + Dice as mmsegmentation's multi-loss configs do."""

    def __init__(self, losses: dict[str, nn.Module], weights: dict[str, float] | None = None) -> None:
        super().__init__()
        self.losses = nn.ModuleDict(losses)
        self.weights = dict(weights or {})

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sum(self.weights.get(name, 1.0) * loss(logits, target) for name, loss in self.losses.items())
