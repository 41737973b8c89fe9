"""The torch side of the metrics: arg-max over class logits and the torchmetrics accumulators of confusion
matrices that training sums across DDP ranks. The scores come from :func:`rsseg.metrics.metrics_from_confusion`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torchmetrics import Metric

from rsseg.metrics import class_index, metrics_from_confusion


def argmax_classes(logits: torch.Tensor) -> torch.Tensor:
    """``logits.argmax(1)`` for ``[B, C, H, W]`` logits, as uint8 when ``C <= 255``.

    On CPU a reduction over the strided class axis is about ten times slower than ``C`` element-wise passes,
    which matters when it runs on every training step; ties go to the lowest class, as with ``argmax``.
    """
    if logits.is_cuda or logits.shape[1] > 255:
        return logits.argmax(1)
    best = logits[:, 0].clone()
    index = torch.zeros(best.shape, dtype=torch.uint8, device=logits.device)
    for c in range(1, logits.shape[1]):
        better = logits[:, c] > best
        torch.maximum(best, logits[:, c], out=best)
        index.masked_fill_(better, c)
    return index


def _bincount(codes: torch.Tensor, length: int) -> torch.Tensor:
    if codes.is_cuda:
        return torch.bincount(codes, minlength=length)
    # numpy's bincount is several times faster than torch's on CPU.
    return torch.from_numpy(np.bincount(codes.numpy(), minlength=length))


class SegmentationMetrics(Metric):
    """A confusion matrix accumulated over a stage (summed across DDP ranks) and the metrics derived from it.

    ``update`` takes logits ``[B, C, H, W]`` or predicted indices ``[B, H, W]`` and targets ``[B, H, W]``; pixels
    whose target equals ``ignore_index`` are left out. The matrix is accumulated with ``torch.bincount``, the
    same counting torchmetrics' ``MulticlassConfusionMatrix`` does, but kept in int64 so that whole-dataset
    counts over billions of pixels stay exact.
    """

    full_state_update = False

    def __init__(
        self,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        ignore_index: int | None = 255,
        exclude_from_mean: Sequence[str | int] = (),
    ) -> None:
        super().__init__()
        self.num_classes = int(num_classes)
        self.class_names = list(class_names) if class_names else [f"class_{i}" for i in range(num_classes)]
        if len(self.class_names) != self.num_classes:
            raise ValueError(f"{len(self.class_names)} class names given for {self.num_classes} classes")
        self.ignore_index = ignore_index
        self.exclude_from_mean = list(exclude_from_mean)
        for item in self.exclude_from_mean:
            class_index(item, self.class_names)
        self.add_state(
            "confusion", default=torch.zeros(num_classes, num_classes, dtype=torch.long), dist_reduce_fx="sum"
        )

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        if preds.dim() == target.dim() + 1:
            preds = argmax_classes(preds)
        if preds.shape != target.shape:
            raise ValueError(f"prediction shape {tuple(preds.shape)} differs from target {tuple(target.shape)}")
        target = target.reshape(-1).long()
        codes = target * self.num_classes + preds.reshape(-1).long()
        outside = (target < 0) | (target >= self.num_classes)
        if self.ignore_index is not None:
            outside |= target == self.ignore_index
        # Ignored pixels go to one extra bin that is dropped: cheaper than boolean indexing.
        codes.masked_fill_(outside, self.num_classes**2)
        counts = _bincount(codes, self.num_classes**2 + 1)[:-1]
        self.confusion += counts.reshape(self.num_classes, self.num_classes).to(self.confusion.device)

    def compute(self) -> dict:
        result = metrics_from_confusion(self.confusion.cpu().numpy(), self.class_names, self.exclude_from_mean)
        result["confusion"] = self.confusion.tolist()
        return result


class SceneConfusion(Metric):
    """One confusion matrix per evaluation scene, summed across DDP ranks.

    Per-scene matrices are what per-scene scores and the bootstrap intervals over test scenes of ``rsseg.tables.bootstrap``
    are computed from; their sum is the stage's confusion matrix. ``update`` takes predicted indices ``[B, H, W]``,
    targets ``[B, H, W]`` and the scene index of each window ``[B]`` (negative: a padding window, left out).
    """

    full_state_update = False

    def __init__(self, num_scenes: int, num_classes: int, ignore_index: int | None = 255) -> None:
        super().__init__()
        self.num_scenes, self.num_classes, self.ignore_index = int(num_scenes), int(num_classes), ignore_index
        self.add_state(
            "confusion", default=torch.zeros(self.num_scenes, num_classes, num_classes, dtype=torch.long),
            dist_reduce_fx="sum",
        )

    def update(self, preds: torch.Tensor, target: torch.Tensor, scene: torch.Tensor) -> None:
        k = self.num_classes
        scene = scene.reshape(-1, 1, 1).expand_as(target).reshape(-1).long()
        target = target.reshape(-1).long()
        codes = scene * k * k + target * k + preds.reshape(-1).long()
        outside = (target < 0) | (target >= k) | (scene < 0) | (scene >= self.num_scenes)
        if self.ignore_index is not None:
            outside |= target == self.ignore_index
        codes.masked_fill_(outside, self.num_scenes * k * k)
        counts = _bincount(codes, self.num_scenes * k * k + 1)[:-1]
        self.confusion += counts.reshape(self.num_scenes, k, k).to(self.confusion.device)

    def compute(self) -> torch.Tensor:
        return self.confusion


