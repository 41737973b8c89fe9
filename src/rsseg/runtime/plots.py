"""The one home of rsseg's drawing: every figure a run folder, ``rsseg eval`` or ``rsseg tables`` shows is drawn
by the functions here (matplotlib's object API on the Agg canvas: no display, no pyplot state).

* :func:`confusion_figure`: a confusion matrix with each true class's row divided by its pixel count;
* :func:`iou_bars_figure`: per-class IoU bars, one bar per model in each class's group;
* :func:`prediction_grid_figure`: image | label | prediction(s) on the same tiles, a class legend below;
* :func:`run_curves_figure`: a run's losses and validation mIoU per epoch, read by :func:`epoch_curves` from the
  CSV log Lightning writes (``csv/version_N/metrics.csv``);
* :func:`validation_curves_figure`: validation mIoU over optimiser steps of several rows and seeds (tables).

matplotlib is imported inside the functions, so that importing this module (and every command that may draw)
stays cheap: a refused command answers before any plotting library loads. The figures carry no colours of a
dataset themselves: callers pass the class colours (:func:`rsseg.data.labels.colour_table`).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rsseg.runtime.console import warn
from rsseg.runtime.files import natural_key, replaced_when_complete

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# The CSV log's columns a run's curves are drawn from: per-epoch training loss, validation loss and mIoU.
CURVES = {"train loss": "train/loss_epoch", "val loss": "val/loss", "val mIoU": "val/miou"}


def save_png(figure: Figure, path: str | os.PathLike, metadata: Mapping[str, str] | None = None) -> Path:
    """``figure`` as a PNG at ``path``, written under a temporary name and renamed when complete."""
    path = Path(path)
    with replaced_when_complete(path) as tmp:
        figure.savefig(tmp, format="png", dpi=150, bbox_inches="tight", metadata=dict(metadata or {}))
    return path


def drawn(name: str, draw: Callable[[], bool]) -> bool:
    """Run ``draw`` (which says whether it had anything to draw); a figure that fails is one warning line naming
    it, never an error: a figure must not cost a run its results."""
    try:
        return bool(draw())
    except Exception as error:  # noqa: BLE001 - see the docstring
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        warn(f"{name} not drawn: {reason}")
        return False


def normalise_rows(confusion: np.ndarray) -> np.ndarray:
    """Each true class's row (rows: true, columns: predicted) divided by its pixel count; empty rows stay 0."""
    counts = np.asarray(confusion, dtype=np.float64)
    totals = counts.sum(1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def confusion_figure(confusion: np.ndarray, class_names: Sequence[str], title: str) -> Figure:
    """The row-normalised confusion matrix, class names on both axes and each cell's fraction written in it."""
    from matplotlib.figure import Figure

    normalised = normalise_rows(confusion)
    k = len(class_names)
    if normalised.shape != (k, k):
        raise ValueError(f"a {' x '.join(map(str, normalised.shape))} confusion matrix for {k} class names")
    side = 1.2 + 0.55 * k
    figure = Figure(figsize=(side + 1.2, side))
    axes = figure.add_subplot()
    image = axes.imshow(normalised, vmin=0.0, vmax=1.0, cmap="Blues")
    axes.set_xticks(range(k), class_names, rotation=45, ha="right")
    axes.set_yticks(range(k), class_names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title, fontsize=9)
    for i in range(k):
        for j in range(k):
            value = normalised[i, j]
            axes.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                      color="white" if value > 0.5 else "black")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="fraction of the true class")
    return figure


def iou_bars_figure(labels: Sequence[str], means: np.ndarray, stds: np.ndarray, class_names: Sequence[str],
                    title: str) -> Figure:
    """Grouped bars: one group per class, one bar per model (``means``/``stds`` are ``[models, classes]`` in %;
    NaN draws no bar and no error bar)."""
    from matplotlib.figure import Figure

    models, k = means.shape
    width = 0.8 / max(models, 1)
    figure = Figure(figsize=(max(6.0, 0.9 * k * max(1, models) ** 0.5 + 2), 4.0))
    axes = figure.add_subplot()
    x = np.arange(k)
    for index, label in enumerate(labels):
        errors = np.nan_to_num(stds[index], nan=0.0)
        axes.bar(x + (index - (models - 1) / 2) * width, np.nan_to_num(means[index], nan=0.0), width,
                 yerr=errors if errors.any() else None, capsize=2, label=label)
    axes.set_xticks(x, class_names, rotation=30, ha="right")
    axes.set_ylabel("IoU (%)")
    axes.set_ylim(0, 100)
    axes.set_title(title, fontsize=9)
    axes.legend(fontsize=7, ncols=min(models, 4), loc="upper center", bbox_to_anchor=(0.5, -0.25))
    return figure


def colourise(classes: np.ndarray, colours: Mapping[int, Sequence[int]]) -> np.ndarray:
    """Class indices ``[H, W]`` as RGB ``[H, W, 3]`` uint8; ``colours`` maps an index to its (r, g, b[, a]),
    every other value (ignored, outside the scene) is black."""
    lookup = np.zeros((256, 3), dtype=np.uint8)
    for index, colour in colours.items():
        if 0 <= index < 256:
            lookup[index] = list(colour)[:3]
    return lookup[np.clip(classes, 0, 255).astype(np.uint8)]


def stretch(image: np.ndarray) -> np.ndarray:
    """A raw ``[bands, H, W]`` tile as displayable RGB ``[H, W, 3]`` in 0..1: the first three bands (or one as
    grey), each stretched between its 2nd and 98th percentile (a 16-bit or NIR band is dark or white otherwise)."""
    bands = image[:3] if image.shape[0] >= 3 else np.repeat(image[:1], 3, axis=0)
    out = np.empty(bands.shape, dtype=np.float64)
    for index, band in enumerate(bands):
        low, high = np.nanpercentile(band, (2, 98))
        out[index] = np.clip((band - low) / (high - low if high > low else 1.0), 0.0, 1.0)
    return np.nan_to_num(out).transpose(1, 2, 0)


def prediction_grid_figure(images: Sequence[np.ndarray], labels: np.ndarray, names: Sequence[str],
                           predictions: Sequence[tuple[str, np.ndarray]], class_names: Sequence[str],
                           colours: Mapping[int, Sequence[int]]) -> Figure:
    """Rows: tiles; columns: image (displayable RGB, e.g. from :func:`stretch`), label, then each prediction
    ``(title, classes [N, H, W])``; a class legend below. Pixels whose label is no class are black in every panel."""
    import textwrap

    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    k = len(class_names)
    columns = 2 + len(predictions)
    figure = Figure(figsize=(2.1 * columns, 2.1 * len(images) + 0.6))
    grid = figure.subplots(len(images), columns, squeeze=False)
    titles = ["image", "label", *(label for label, _ in predictions)]
    for r, image in enumerate(images):
        unlabelled = labels[r] >= k  # outside the scene or ignored: shown black in every panel
        panels = [image, colourise(labels[r], colours),
                  *(colourise(np.where(unlabelled, 255, classes[r]), colours) for _, classes in predictions)]
        for c, panel in enumerate(panels):
            axes = grid[r][c]
            axes.imshow(panel, interpolation="nearest")
            axes.set_xticks([])
            axes.set_yticks([])
            if r == 0:
                axes.set_title(textwrap.fill(titles[c], 18), fontsize=8)
        grid[r][0].set_ylabel(names[r], fontsize=6)
    legend = colourise(np.arange(k), colours) / 255.0
    handles = [Patch(facecolor=legend[i], edgecolor="black", linewidth=0.3, label=n) for i, n in enumerate(class_names)]
    figure.legend(handles=handles, loc="lower center", ncols=min(k, 8), fontsize=7, frameon=False)
    figure.subplots_adjust(bottom=0.45 / (2.1 * len(images) + 0.6), wspace=0.04, hspace=0.04)
    return figure


def validation_curves_figure(curves: Sequence[tuple[str, list[tuple[np.ndarray, np.ndarray]]]], title: str) -> Figure:
    """Validation mIoU (%) over optimiser steps: per row, each seed's curve thin and the mean over seeds thick."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.0))
    axes = figure.add_subplot()
    for index, (label, seeds) in enumerate(curves):
        colour = f"C{index % 10}"
        for steps, values in seeds:
            axes.plot(steps, values, color=colour, alpha=0.35, linewidth=0.8)
        common = sorted(set.intersection(*(set(steps.tolist()) for steps, _ in seeds)))
        if common:
            mean = [np.mean([values[list(steps).index(step)] for steps, values in seeds]) for step in common]
            axes.plot(common, mean, color=colour, linewidth=2.0, marker="o", markersize=3,
                      label=f"{label} (n={len(seeds)})")
    axes.set_xlabel("optimiser step")
    axes.set_ylabel("validation mIoU (%)")
    axes.set_title(title, fontsize=9)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    return figure


def newest_csv_log(folder: Path) -> Path | None:
    """The newest ``csv/version_*/metrics.csv`` of a run folder, None without one."""
    logs = sorted(Path(folder).glob("csv/version_*/metrics.csv"), key=lambda p: natural_key(p.parent.name))
    return logs[-1] if logs else None


def epoch_curves(metrics_csv: Path) -> dict[str, tuple[list[int], list[float]]]:
    """Per curve of :data:`CURVES` logged at least once: (epochs, values) in the order of the log.

    After ``fit``, re-scoring the best checkpoint (``validate_best``) and the test split log again, at the epoch
    count (one past the last trained epoch) or at the last validation's step: only a step's first value counts,
    and nothing past the last trained epoch, so each point is a validation of the training as it went."""
    seen: dict[str, set[int]] = {name: set() for name in CURVES}
    curves: dict[str, tuple[list[int], list[float]]] = {}
    with open(metrics_csv, newline="") as handle:
        for record in csv.DictReader(handle):
            for name, column in CURVES.items():
                value, step = record.get(column), record.get("step")
                if not value or not record.get("epoch"):
                    continue
                step_key = int(float(step)) if step else -1
                if step_key in seen[name]:
                    continue
                seen[name].add(step_key)
                epochs, values = curves.setdefault(name, ([], []))
                epochs.append(int(float(record["epoch"])))
                values.append(float(value))
    if "train loss" in curves:
        last = max(curves["train loss"][0])
        curves = {name: ([e for e in epochs if e <= last], [v for e, v in zip(epochs, values) if e <= last])
                  for name, (epochs, values) in curves.items()}
    return {name: curve for name, curve in curves.items() if curve[0]}


def run_curves_figure(curves: Mapping[str, tuple[Sequence[int], Sequence[float]]], title: str,
                      best_epoch: int | None = None) -> Figure:
    """Two panels over epochs: training and validation loss; validation mIoU (%). ``best_epoch`` marks the
    epoch of the checkpoint the run keeps."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(9.0, 3.6))
    losses, miou = figure.subplots(1, 2)
    for name, colour in (("train loss", "C0"), ("val loss", "C1")):
        if name in curves:
            epochs, values = curves[name]
            losses.plot(epochs, values, color=colour, marker="o", markersize=3, label=name)
    if "val mIoU" in curves:
        epochs, values = curves["val mIoU"]
        miou.plot(epochs, [100 * v for v in values], color="C2", marker="o", markersize=3, label="val mIoU")
    for axes, label in ((losses, "loss"), (miou, "validation mIoU (%)")):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        if best_epoch is not None:
            axes.axvline(best_epoch, color="grey", linestyle=":", linewidth=1, label="best checkpoint")
        axes.set_xlabel("epoch")
        axes.set_ylabel(label)
        axes.grid(alpha=0.3)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize=7)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    return figure
