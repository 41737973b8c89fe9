"""Confusion-matrix metrics for semantic segmentation and the reporting conventions built on them.

One confusion matrix per stage is accumulated with torchmetrics (:mod:`rsseg.metrics.accumulators`, so it is
summed across DDP ranks) or streamed by ``rsseg eval`` (numpy), and every figure is derived from it here:

* per-class IoU, precision, recall and F1;
* mIoU, macro precision, macro recall and macro F1 (the mean of per-class F1, as mmsegmentation and GeoSeg report);
* OA, the overall pixel accuracy (trace / total), always over every class, as GeoSeg reports it;
* ``f1_paper``: the harmonic mean of macro precision and macro recall. This is the F1 of MST-DeepLabv3+
  (Wang et al., Scientific Reports 14:9716, 2024): 2 * 90.34 * 90.12 / (90.34 + 90.12) = 90.23.

A class absent from both the labels and the predictions has no defined IoU/precision/recall; it is reported as
NaN and left out of the means (unlike some public scripts that count it as 0). Classes listed in
``exclude_from_mean`` (clutter, as GeoSeg does on ISPRS) are still reported per class but left out of the means.

This module needs numpy only, so scoring saved predictions and building tables never import torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def metrics_from_confusion(
    confusion: np.ndarray, class_names: Sequence[str], exclude_from_mean: Sequence[str | int] = ()
) -> dict:
    """All metrics from a confusion matrix whose rows are true classes and columns predicted classes."""
    confusion = np.asarray(confusion, dtype=np.float64)
    num_classes = confusion.shape[0]
    if confusion.shape != (num_classes, num_classes) or len(class_names) != num_classes:
        raise ValueError(
            f"confusion matrix of shape {tuple(confusion.shape)} does not match {len(class_names)} class names"
        )
    excluded = {class_index(c, class_names) for c in exclude_from_mean}

    true_positive = confusion.diagonal()
    support = confusion.sum(1)  # pixels labelled as the class
    predicted = confusion.sum(0)  # pixels predicted as the class

    def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        return np.where(den > 0, num / np.maximum(den, 1e-300), np.nan)

    iou = ratio(true_positive, support + predicted - true_positive)
    precision = ratio(true_positive, predicted)
    recall = ratio(true_positive, support)
    # A class present in the labels but never predicted has precision 0 by convention, not NaN, so that a model
    # which ignores a class is penalised in the macro precision as it is in the mIoU.
    precision = np.where((predicted == 0) & (support > 0), 0.0, precision)
    with np.errstate(invalid="ignore"):
        f1 = ratio(2 * precision * recall, precision + recall)
    f1 = np.where((precision == 0) & (recall == 0), 0.0, f1)

    in_mean = np.array([i not in excluded for i in range(num_classes)], dtype=bool)

    def mean(values: np.ndarray) -> float:
        chosen = values[in_mean]
        chosen = chosen[~np.isnan(chosen)]
        return float(chosen.mean()) if chosen.size else float("nan")

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


def class_index(name_or_index: str | int, class_names: Sequence[str]) -> int:
    """The index of a class given by name or index, checked against ``class_names``."""
    if isinstance(name_or_index, int):
        if not 0 <= name_or_index < len(class_names):
            raise ValueError(f"exclude_from_mean: class index {name_or_index} is outside 0..{len(class_names) - 1}")
        return name_or_index
    if name_or_index not in class_names:
        raise ValueError(f"exclude_from_mean: unknown class {name_or_index!r}; expected one of {list(class_names)}")
    return list(class_names).index(name_or_index)


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
