"""The figures ``rsseg eval`` writes beside its results.json (``plots=false`` turns them off):
``confusion_<split>.png``, the confusion matrix with each true class's row normalised, and ``iou_<split>.png``,
the per-class IoU bars (a class with no pixel in labels or predictions has no bar)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rsseg.runtime.plots import confusion_figure, drawn, iou_bars_figure, save_png


def write_eval_plots(folder: Path, metrics: dict, class_names: list[str], split: str, title: str) -> list[Path]:
    """Both figures of one evaluation from its metrics (``metrics_from_confusion`` plus ``confusion``); returns the
    files written."""
    folder = Path(folder)
    confusion_path, iou_path = folder / f"confusion_{split}.png", folder / f"iou_{split}.png"

    def confusion() -> bool:
        figure = confusion_figure(np.asarray(metrics["confusion"]), class_names, f"{title}, row-normalised")
        return bool(save_png(figure, confusion_path))

    def iou() -> bool:
        per_class = metrics["per_class"]
        values = np.array([[100 * float(per_class[name]["iou"]) for name in class_names]])
        label = f"mIoU {100 * metrics['miou']:.2f}"
        figure = iou_bars_figure([label], values, np.full_like(values, np.nan), class_names, f"{title}: per-class IoU")
        return bool(save_png(figure, iou_path))

    return [path for path, draw in ((confusion_path, confusion), (iou_path, iou)) if drawn(path.name, draw)]
