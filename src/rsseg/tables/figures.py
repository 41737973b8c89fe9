"""Figures beside the tables of ``rsseg tables`` (matplotlib, Agg; every figure as PNG and PDF).

* a row-normalised confusion matrix per run (rows: true class, each summing to 1; columns: predicted class);
* per-class IoU bars per model: grouped bars, mean over seeds, the seeds' standard deviation as error bars;
* a grid of image | label | each row's prediction on the same validation tiles: the first ``N`` windows of the
  validation split's evaluation grid, predicted on CPU by each row's best checkpoint (its lowest seed);
* validation mIoU over the optimiser steps per row, from the runs' CSV logs (``csv/version_*/metrics.csv``
  beside each results.json): each seed thin, their mean thick, to see whether a budget let the curve flatten.

Each figure carries its caption and the tables' provenance (the command, the training commands, the runs'
commits, the scale) in its PNG text chunks and PDF metadata, and in ``<figure>.txt`` beside it.

Every figure is drawn by :mod:`rsseg.runtime.plots`, as a run folder's and ``rsseg eval``'s own figures are;
this module chooses what each shows.

A figure that cannot be drawn (no confusion matrix in results.json, a checkpoint that is gone, data that is not
where the checkpoint's config says) is skipped with a note; it never stops the tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rsseg.runtime.console import progress
from rsseg.runtime.files import replaced_when_complete
from rsseg.runtime.plots import (
    confusion_figure,
    iou_bars_figure,
    newest_csv_log,
    prediction_grid_figure,
    stretch,
    validation_curves_figure,
)
from rsseg.tables.bootstrap import summarise
from rsseg.tables.build import GroupTables
from rsseg.tables.columns import metric_value
from rsseg.tables.groups import Row

if TYPE_CHECKING:
    from matplotlib.figure import Figure

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


def read_validation_curve(results_path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(steps, val mIoU in %) from the newest CSV log beside a results.json, None without one."""
    import csv

    log = newest_csv_log(results_path.parent)
    if log is None:
        return None
    points = {}
    with open(log, newline="") as handle:
        for record in csv.DictReader(handle):
            if record.get("val/miou") and record.get("step"):
                points[int(float(record["step"]))] = 100 * float(record["val/miou"])
    if not points:
        return None
    steps = np.array(sorted(points))
    return steps, np.array([points[step] for step in steps])


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
            if row.shared_from:  # one figure per run: the experiment that trained it draws it
                continue
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
        shown, left_out = [], []
        for row in self.rows:
            checkpoint = row.runs[0].payload.get("checkpoint")  # the lowest seed's best checkpoint
            if not checkpoint or not Path(checkpoint).is_file():
                self.notes.append(f"{self.slug}: row {row.name} has no checkpoint ({checkpoint}); left out of the "
                                  f"prediction grid")
                left_out.append(row.name)
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
            shown.append(f"{row.name} {shown_path(row.runs[0].path)}")
        if tiles is None:
            self.notes.append(f"{self.slug}: no row has a checkpoint; no prediction grid")
            return
        from rsseg.data.labels import colour_table

        figure = prediction_grid_figure([stretch(image) for image in tiles.images], tiles.labels, tiles.names,
                                        predictions, self.class_names, colour_table(palette, len(self.class_names)))
        # The grid needs checkpoints, which committed runs do not keep: the caption names what it could draw.
        caption = (f"Image, label and each row's prediction on {count} validation tiles ({self.tables.group.data}; "
                   f"each row's lowest seed)\nrows shown: {'; '.join(shown)}")
        if left_out:
            caption += f"\nrows left out (checkpoint not on this machine): {', '.join(left_out)}"
        self.written += self.save(figure, "predictions", caption)

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
