"""Figures beside the tables of ``rsseg tables`` (matplotlib, Agg; every figure as PNG and PDF).

* a row-normalised confusion matrix per run (rows: true class, each summing to 1; columns: predicted class);
* per-class IoU bars per model: grouped bars, mean over seeds, the seeds' standard deviation as error bars;
* a grid of image | label | each row's prediction on the same validation tiles: the first ``N`` windows of the
  validation split's evaluation grid, predicted on CPU by each row's best checkpoint (its lowest seed);
* validation mIoU over the optimiser steps per row, from the runs' CSV logs (``csv/version_*/metrics.csv``
  beside each results.json): each seed thin, their mean thick, to see whether a budget let the curve flatten.

Each figure carries its caption and the tables' provenance (the command, the training commands, the runs'
commits, the scale) in its PNG text chunks and PDF metadata, and in ``<figure>.txt`` beside it.

A figure that cannot be drawn (no confusion matrix in results.json, a checkpoint that is gone, data that is not
where the checkpoint's config says) is skipped with a note; it never stops the tables.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from rsseg.runtime.console import progress
from rsseg.runtime.files import natural_key, replaced_when_complete
from rsseg.tables.bootstrap import summarise
from rsseg.tables.build import GroupTables
from rsseg.tables.columns import metric_value
from rsseg.tables.groups import Row

FORMATS = ("png", "pdf")


def save_figure(figure: Figure, stem: Path, caption: str, provenance: Sequence[str]) -> list[Path]:
    """``<stem>.png``, ``<stem>.pdf`` and the caption file ``<stem>.txt``, each written under a temporary name and
    renamed; the caption and provenance also go into the PNG's text chunks and the PDF's metadata (without a
    creation date, so that the same runs give the same files)."""
    from rsseg._version import __version__

    described = "\n".join([caption, *provenance])
    metadata = {
        "png": {"Title": caption, "Description": described, "Software": f"rsseg {__version__}"},
        "pdf": {"Title": caption, "Subject": described, "Creator": f"rsseg {__version__}", "CreationDate": None},
    }
    written = []
    for fmt in FORMATS:
        path = stem.with_name(f"{stem.name}.{fmt}")
        with replaced_when_complete(path) as tmp:
            figure.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight", metadata=metadata[fmt])
        written.append(path)
    path = stem.with_name(f"{stem.name}.txt")
    with replaced_when_complete(path) as tmp:
        tmp.write_text(described + "\n", encoding="utf-8")
    return written + [path]


def shown_path(path: Path) -> Path:
    """A run's path as a caption shows it: relative to the working folder when inside it, so that the same
    runs give the same captions wherever the repository lies."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path


def validation_curves_figure(curves: Sequence[tuple[str, list[tuple[np.ndarray, np.ndarray]]]], title: str) -> Figure:
    """Validation mIoU (%) over optimiser steps: per row, each seed's curve thin and the mean over seeds thick."""
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


def read_validation_curve(results_path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(steps, val mIoU in %) from the newest CSV log beside a results.json, None without one."""
    import csv

    logs = sorted(results_path.parent.glob("csv/version_*/metrics.csv"), key=lambda p: natural_key(p.parent.name))
    if not logs:
        return None
    points = {}
    with open(logs[-1], newline="") as handle:
        for record in csv.DictReader(handle):
            if record.get("val/miou") and record.get("step"):
                points[int(float(record["step"]))] = 100 * float(record["val/miou"])
    if not points:
        return None
    steps = np.array(sorted(points))
    return steps, np.array([points[step] for step in steps])


def confusion_figure(confusion: np.ndarray, class_names: Sequence[str], title: str) -> Figure:
    """The confusion matrix with each true class's row divided by its pixel count (empty rows stay 0)."""
    counts = np.asarray(confusion, dtype=np.float64)
    totals = counts.sum(1, keepdims=True)
    normalised = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    k = len(class_names)
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
    """Grouped bars: one group per class, one bar per model (``means``/``stds`` are ``[models, classes]`` in %)."""
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


def colourise(classes: np.ndarray, palette: Sequence[Sequence[int]] | None, num_classes: int) -> np.ndarray:
    """Class indices ``[H, W]`` as RGB ``[H, W, 3]`` uint8 in the dataset's palette (ignored pixels black)."""
    from rsseg.data.labels import colour_table

    lookup = np.zeros((256, 3), dtype=np.uint8)
    for index, colour in colour_table(palette, num_classes).items():
        if index < num_classes:
            lookup[index] = colour[:3]
    return lookup[np.clip(classes, 0, 255).astype(np.uint8)]


def stretch(image: np.ndarray) -> np.ndarray:
    """A raw ``[bands, H, W]`` tile as displayable RGB in 0..1: the first three bands (or one as grey), each
    stretched between its 2nd and 98th percentile."""
    bands = image[:3] if image.shape[0] >= 3 else np.repeat(image[:1], 3, axis=0)
    out = np.empty(bands.shape, dtype=np.float64)
    for index, band in enumerate(bands):
        low, high = np.nanpercentile(band, (2, 98))
        out[index] = np.clip((band - low) / (high - low if high > low else 1.0), 0.0, 1.0)
    return np.nan_to_num(out).transpose(1, 2, 0)


@dataclass
class ValidationTiles:
    """The first ``count`` windows of the validation split's evaluation grid: raw pixels and class labels."""

    images: np.ndarray  # [N, bands, T, T], the raster's own values
    labels: np.ndarray  # [N, T, T], class indices, the ignore index where unlabelled
    names: list[str]

    @classmethod
    def from_checkpoint_config(cls, stored, spec, count: int) -> ValidationTiles:
        """The tiles of the data config a checkpoint stores, built as ``rsseg eval`` builds its data module."""
        from omegaconf import OmegaConf

        from rsseg.data.dataset import GridWindowDataset, SceneReader
        from rsseg.data.raster import open_raster, scene_size
        from rsseg.evaluation.scenes import scenes_for_model

        mean_std = {"mean": spec.mean, "std": spec.std, "in_channels": spec.in_channels}
        choice = OmegaConf.create({"split": "val"})
        scenes, _, decoder, bands, nodata = scenes_for_model(choice, stored.data, spec, mean_std)
        sizes = []
        for scene in scenes:
            with open_raster(scene.image) as handle:
                sizes.append(scene_size(scene, (handle.height, handle.width)))
        reader = SceneReader(decoder, bands, nodata, int(stored.data.get("ignore_index", 255)))  # raw values
        grid = GridWindowDataset(scenes, sizes, reader, spec.tile_size)
        picked = spread_over_scenes(grid.items, sizes, spec.tile_size, count)
        items = [grid[i] for i in picked]
        names = [f"{scenes[grid.items[i][0]].name} r{int(grid.items[i][1].row_off)} c{int(grid.items[i][1].col_off)}"
                 for i in picked]
        return cls(np.stack([item["image"].numpy() for item in items]),
                   np.stack([item["mask"].numpy() for item in items]), names)


def spread_over_scenes(items, sizes, tile_size: int, count: int) -> list[int]:
    """Indices of ``count`` grid windows taken from one scene after another, each scene's windows that lie wholly
    inside it first (a window reaching past the scene's edge is mostly padding)."""
    by_scene: dict[int, list[int]] = {}
    for index, (scene, window) in enumerate(items):
        height, width = sizes[scene]
        inside = window.row_off + tile_size <= height and window.col_off + tile_size <= width
        by_scene.setdefault(scene, []).append((not inside, index))
    queues = [[index for _, index in sorted(windows)] for _, windows in sorted(by_scene.items())]
    picked: list[int] = []
    while len(picked) < count and any(queues):
        for queue in queues:
            if queue and len(picked) < count:
                picked.append(queue.pop(0))
    return picked


def predict_tiles(model, spec, images: np.ndarray) -> np.ndarray:
    """Class indices ``[N, T, T]`` for raw tiles, normalised with the checkpoint's own statistics, on CPU."""
    import torch

    from rsseg.inference.predictor import TilePredictor

    predictor = TilePredictor(model, spec.mean, spec.std, spec.num_classes, "cpu", "32", batch_size=len(images))
    with torch.no_grad():
        return predictor.probabilities(torch.from_numpy(images)).argmax(1).numpy()


def prediction_grid_figure(tiles: ValidationTiles, predictions: Sequence[tuple[str, np.ndarray]],
                           class_names: Sequence[str], palette) -> Figure:
    """Rows: tiles; columns: image, label, then each model's prediction; a class legend below."""
    k = len(class_names)
    columns = 2 + len(predictions)
    figure = Figure(figsize=(2.1 * columns, 2.1 * len(tiles.images) + 0.6))
    grid = figure.subplots(len(tiles.images), columns, squeeze=False)
    titles = ["image", "label", *(label for label, _ in predictions)]
    for r, image in enumerate(tiles.images):
        unlabelled = tiles.labels[r] >= k  # outside the scene or ignored: shown black in every panel
        panels = [stretch(image), colourise(tiles.labels[r], palette, k),
                  *(colourise(np.where(unlabelled, 255, classes[r]), palette, k) for _, classes in predictions)]
        for c, panel in enumerate(panels):
            axes = grid[r][c]
            axes.imshow(panel, interpolation="nearest")
            axes.set_xticks([])
            axes.set_yticks([])
            if r == 0:
                axes.set_title(textwrap.fill(titles[c], 18), fontsize=8)
        grid[r][0].set_ylabel(tiles.names[r], fontsize=6)
    colours = colourise(np.arange(k), palette, k) / 255.0
    handles = [Patch(facecolor=colours[i], edgecolor="black", linewidth=0.3, label=n) for i, n in enumerate(class_names)]
    figure.legend(handles=handles, loc="lower center", ncols=min(k, 8), fontsize=7, frameon=False)
    figure.subplots_adjust(bottom=0.45 / (2.1 * len(tiles.images) + 0.6), wspace=0.04, hspace=0.04)
    return figure


class GroupFigures:
    """The figures of one group of tables, under ``<folder>/<group>-...``; problems become notes."""

    def __init__(self, tables: GroupTables, folder: Path) -> None:
        self.tables, self.folder = tables, folder
        self.slug = tables.group.slug
        self.class_names = tables.class_names
        self.rows = [row for row in tables.rows if row.runs and "metrics" in row.runs[0].payload]
        self.written: list[Path] = []
        self.notes: list[str] = []

    def split(self, row: Row) -> str:
        return self.tables.row_splits[row.name]

    def save(self, figure: Figure, name: str, caption: str) -> list[Path]:
        return save_figure(figure, self.folder / f"{self.slug}-{name}", caption, self.tables.provenance)

    def attempt(self, what: str, draw) -> None:
        try:
            draw()
        except Exception as error:  # noqa: BLE001 - a figure must never cost the tables
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            self.notes.append(f"{self.slug}: {what} skipped ({reason})")

    def confusion_matrices(self) -> None:
        for row in self.rows:
            for run in row.runs:
                split = self.split(row)
                confusion = run.metrics(split).get("confusion")
                if not confusion:
                    self.notes.append(f"{self.slug}: no confusion matrix in {run.path}; its figure is left out")
                    continue
                seed = f"seed{run.seed}" if run.seed is not None else run.path.parent.name
                title = f"{row.label}, {seed.replace('seed', 'seed ')} ({split}, {self.tables.group.data})"
                figure = confusion_figure(np.asarray(confusion), self.class_names, title)
                self.written += self.save(figure, f"confusion-{row.name}-{seed}",
                                          f"Row-normalised confusion matrix of {title} ({shown_path(run.path)})")

    def iou_bars(self) -> None:
        if not self.rows:
            return
        means = np.full((len(self.rows), len(self.class_names)), np.nan)
        stds = np.full_like(means, np.nan)
        for r, row in enumerate(self.rows):
            for c, name in enumerate(self.class_names):
                estimate = summarise([100 * metric_value(run.metrics(self.split(row)), f"per_class.iou.{name}")
                                      for run in row.runs])
                if estimate is not None:
                    means[r, c] = estimate.mean
                    stds[r, c] = estimate.std if estimate.std is not None else np.nan
        title = f"{self.tables.spec.get('title') or 'Comparison'}: per-class IoU ({self.tables.group.data}, " \
                f"scale {self.tables.group.scale}; mean ± std over seeds)"
        figure = iou_bars_figure([row.label for row in self.rows], means, stds, self.class_names, title)
        self.written += self.save(figure, "iou", title)

    def prediction_grid(self, count: int) -> None:
        from rsseg.inference.model import load_checkpoint

        if count <= 0 or not self.rows:
            return
        tiles, predictions, palette = None, [], None
        for row in self.rows:
            checkpoint = row.runs[0].payload.get("checkpoint")  # the lowest seed's best checkpoint
            if not checkpoint or not Path(checkpoint).is_file():
                self.notes.append(f"{self.slug}: row {row.name} has no checkpoint ({checkpoint}); left out of the "
                                  f"prediction grid")
                continue
            spec = load_checkpoint(checkpoint)  # a TrainedModel: the network, its classes and stored config
            model, stored = spec.model, spec.config
            if spec.class_names != self.class_names:
                self.notes.append(f"{self.slug}: {checkpoint} predicts {spec.class_names}, not the table's classes; "
                                  f"left out of the prediction grid")
                continue
            if tiles is None:
                tiles, palette = ValidationTiles.from_checkpoint_config(stored, spec, count), spec.palette
            predictions.append((row.label, predict_tiles(model, spec, tiles.images)))
        if tiles is None:
            self.notes.append(f"{self.slug}: no row has a checkpoint; no prediction grid")
            return
        figure = prediction_grid_figure(tiles, predictions, self.class_names, palette)
        self.written += self.save(figure, "predictions", f"Image, label and each row's prediction on {count} "
                                  f"validation tiles ({self.tables.group.data}; each row's lowest seed)")

    def validation_curves(self) -> None:
        curves = []
        for row in self.rows:
            seeds = [curve for curve in (read_validation_curve(run.path) for run in row.runs) if curve is not None]
            if seeds:
                curves.append((row.label, seeds))
        if not curves:
            return
        title = (f"{self.tables.spec.get('title') or 'Comparison'}: validation mIoU during training "
                 f"({self.tables.group.data}, scale {self.tables.group.scale})")
        self.written += self.save(validation_curves_figure(curves, title), "validation_curves",
                                  f"{title}; each seed thin, the mean over seeds thick; from the runs' CSV logs")


def write_group_figures(tables: GroupTables, folder: Path, tiles: int = 4) -> tuple[list[Path], list[str]]:
    """Every figure of one group; returns the files written and notes on what was skipped."""
    figures = GroupFigures(tables, folder)
    steps = [("confusion matrices", figures.confusion_matrices), ("per-class IoU bars", figures.iou_bars),
             ("prediction grid", lambda: figures.prediction_grid(tiles)),
             ("validation curves", figures.validation_curves)]
    for name, draw in progress(steps, f"figures of {tables.group.slug}", "figure"):
        figures.attempt(name, draw)
    return figures.written, figures.notes
