"""Confusion-matrix metrics for semantic segmentation and the reporting conventions built on them.

One confusion matrix per stage is accumulated with torchmetrics (so it is summed across DDP ranks) and every
figure is derived from it:

* per-class IoU, precision, recall and F1;
* mIoU, macro precision, macro recall and macro F1 (the mean of per-class F1, as mmsegmentation and GeoSeg report);
* OA, the overall pixel accuracy (trace / total), always over every class, as GeoSeg reports it;
* ``f1_paper``: the harmonic mean of macro precision and macro recall. This is the F1 of MST-DeepLabv3+
  (Wang et al., Scientific Reports 14:9716, 2024): 2 * 90.34 * 90.12 / (90.34 + 90.12) = 90.23.

A class absent from both the labels and the predictions has no defined IoU/precision/recall; it is reported as
NaN and left out of the means (unlike some public scripts that count it as 0). Classes listed in
``exclude_from_mean`` (clutter, as GeoSeg does on ISPRS) are still reported per class but left out of the means.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torchmetrics import Metric


def metrics_from_confusion(
    confusion: torch.Tensor, class_names: Sequence[str], exclude_from_mean: Sequence[str | int] = ()
) -> dict:
    """All metrics from a confusion matrix whose rows are true classes and columns predicted classes."""
    confusion = torch.as_tensor(confusion, dtype=torch.float64)
    num_classes = confusion.shape[0]
    if confusion.shape != (num_classes, num_classes) or len(class_names) != num_classes:
        raise ValueError(
            f"confusion matrix of shape {tuple(confusion.shape)} does not match {len(class_names)} class names"
        )
    excluded = {_class_index(c, class_names) for c in exclude_from_mean}

    true_positive = confusion.diag()
    support = confusion.sum(1)  # pixels labelled as the class
    predicted = confusion.sum(0)  # pixels predicted as the class
    nan = torch.tensor(float("nan"), dtype=torch.float64)

    def ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
        return torch.where(den > 0, num / den.clamp(min=1e-300), nan)

    iou = ratio(true_positive, support + predicted - true_positive)
    precision = ratio(true_positive, predicted)
    recall = ratio(true_positive, support)
    # A class present in the labels but never predicted has precision 0 by convention, not NaN, so that a model
    # which ignores a class is penalised in the macro precision as it is in the mIoU.
    precision = torch.where((predicted == 0) & (support > 0), torch.zeros_like(precision), precision)
    f1 = ratio(2 * precision * recall, precision + recall)
    f1 = torch.where((precision == 0) & (recall == 0), torch.zeros_like(f1), f1)

    in_mean = torch.tensor([i not in excluded for i in range(num_classes)])

    def mean(values: torch.Tensor) -> float:
        chosen = values[in_mean]
        chosen = chosen[~chosen.isnan()]
        return float(chosen.mean()) if chosen.numel() else float("nan")

    total = confusion.sum()
    mprecision, mrecall = mean(precision), mean(recall)
    return {
        "miou": mean(iou),
        "oa": float(true_positive.sum() / total) if total > 0 else float("nan"),
        "mprecision": mprecision,
        "mrecall": mrecall,
        "mf1": mean(f1),
        "f1_paper": paper_f1(mprecision, mrecall),
        "per_class": {
            name: {
                "iou": float(iou[i]),
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(class_names)
        },
        "classes_in_mean": [name for i, name in enumerate(class_names) if i not in excluded],
    }


def paper_f1(macro_precision: float, macro_recall: float) -> float:
    """MST-DeepLabv3+'s F1: the harmonic mean of macro precision and macro recall (90.34, 90.12 -> 90.23)."""
    if not (math.isfinite(macro_precision) and math.isfinite(macro_recall)) or macro_precision + macro_recall <= 0:
        return float("nan")
    return 2 * macro_precision * macro_recall / (macro_precision + macro_recall)


def _class_index(name_or_index: str | int, class_names: Sequence[str]) -> int:
    if isinstance(name_or_index, int):
        if not 0 <= name_or_index < len(class_names):
            raise ValueError(f"exclude_from_mean: class index {name_or_index} is outside 0..{len(class_names) - 1}")
        return name_or_index
    if name_or_index not in class_names:
        raise ValueError(f"exclude_from_mean: unknown class {name_or_index!r}; expected one of {list(class_names)}")
    return list(class_names).index(name_or_index)


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
            _class_index(item, self.class_names)
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
        result = metrics_from_confusion(self.confusion, self.class_names, self.exclude_from_mean)
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


def flatten_for_logging(metrics: dict, prefix: str) -> dict[str, float]:
    """Scalars to log: ``val/miou`` ... and ``val/iou/<class name>`` per class (NaN classes are skipped)."""
    flat = {f"{prefix}/{key}": value for key, value in metrics.items() if isinstance(value, float)}
    for name, values in metrics["per_class"].items():
        for key in ("iou", "f1"):
            if math.isfinite(values[key]):
                flat[f"{prefix}/{key}/{name}"] = values[key]
    return flat


def format_table(metrics: dict, title: str | None = None) -> str:
    """A plain-text per-class table (percentages) followed by the summary figures."""

    def pct(value: float) -> str:
        return f"{100 * value:6.2f}" if math.isfinite(value) else "   n/a"

    names = list(metrics["per_class"])
    width = max([len("class")] + [len(n) for n in names]) + 2
    lines = [title] if title else []
    lines.append(f"{'class':<{width}}{'IoU':>8}{'Prec':>8}{'Rec':>8}{'F1':>8}{'pixels':>14}")
    in_mean = set(metrics.get("classes_in_mean", names))
    for name in names:
        row = metrics["per_class"][name]
        mark = "" if name in in_mean else "  (not in means)"
        lines.append(
            f"{name:<{width}}{pct(row['iou']):>8}{pct(row['precision']):>8}{pct(row['recall']):>8}"
            f"{pct(row['f1']):>8}{row['support']:>14,}{mark}"
        )
    lines.append(
        f"mIoU {pct(metrics['miou']).strip()}  OA {pct(metrics['oa']).strip()}  "
        f"mP {pct(metrics['mprecision']).strip()}  mR {pct(metrics['mrecall']).strip()}  "
        f"mF1 {pct(metrics['mf1']).strip()}  F1(paper) {pct(metrics['f1_paper']).strip()}"
    )
    return "\n".join(lines)
