"""The figures every training run leaves in ``<run>/plots/`` (``plots=false`` turns them off):

* ``curves.png``: training and validation loss and validation mIoU per epoch, from the run's own CSV log
  (``logger=csv``, the default; a run without one has no curves);
* ``confusion_val.png``: the validation confusion matrix of results.json, each true class's row normalised;
* ``samples_val.png``: image | label | prediction on the fixed validation tiles that
  :class:`~rsseg.training.callbacks.samples.ValidationSamples` keeps (``callbacks.validation_samples``).

Both validation figures show the last validation: that of the checkpoint the run keeps (``validate_best``).

A figure that cannot be drawn is one warning line; it never costs the run its results.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import lightning as L
import numpy as np
from lightning.pytorch.loggers import CSVLogger

from rsseg.data.labels import colour_table
from rsseg.runtime.plots import (
    confusion_figure,
    drawn,
    epoch_curves,
    prediction_grid_figure,
    run_curves_figure,
    save_png,
)
from rsseg.training.callbacks.samples import ValidationSamples

PLOTS = "plots"


def csv_log(trainer: L.Trainer) -> Path | None:
    """The metrics.csv of the run's CSV logger, None without one."""
    for logger in trainer.loggers:
        if isinstance(logger, CSVLogger):
            path = Path(logger.log_dir) / "metrics.csv"
            return path if path.is_file() else None
    return None


def latest_samples(trainer: L.Trainer):
    """The validation tiles the samples callback kept at the last validation, None without it."""
    for callback in trainer.callbacks:
        if isinstance(callback, ValidationSamples):
            return callback.latest
    return None


class RunPlots:
    """Draws the figures of one training run from its results (``results.json``'s content) and its trainer."""

    def __init__(self, folder: Path, results: dict, class_names: list[str], palette) -> None:
        self.folder = Path(folder) / PLOTS
        self.results, self.class_names, self.palette = results, list(class_names), palette
        self.title = " on ".join(str(n) for n in (results.get("model"), results.get("data")) if n) or "this run"
        self.written: list[Path] = []

    def attempt(self, name: str, draw: Callable[[Path], bool]) -> None:
        """``draw(path)`` writes the figure at ``plots/<name>`` and says whether it had anything to draw."""
        if drawn(f"{PLOTS}/{name}", lambda: draw(self.folder / name)):
            self.written.append(self.folder / name)

    def curves(self, path: Path, metrics_csv: Path | None) -> bool:
        if metrics_csv is None:
            return False
        curves = epoch_curves(metrics_csv)
        if not curves:
            return False
        best = (self.results.get("selection") or {}).get("epoch")
        save_png(run_curves_figure(curves, f"{self.title}: losses and validation mIoU", best), path)
        return True

    def confusion(self, path: Path) -> bool:
        confusion = (self.results.get("metrics") or {}).get("val", {}).get("confusion")
        if not confusion:
            return False
        title = f"{self.title}: validation, row-normalised"
        save_png(confusion_figure(np.asarray(confusion), self.class_names, title), path)
        return True

    def samples(self, path: Path, tiles) -> bool:
        if tiles is None:
            return False
        colours = colour_table(self.palette, len(self.class_names))
        figure = prediction_grid_figure(list(tiles.images), tiles.labels, tiles.names,
                                        [("prediction", tiles.predictions)],
                                        self.class_names, colours)
        save_png(figure, path)
        return True


def write_run_plots(folder: Path, results: dict, trainer: L.Trainer, class_names, palette) -> list[Path]:
    """``plots/curves.png``, ``plots/confusion_val.png`` and ``plots/samples_val.png`` of a finished run; returns
    the files written."""
    plots = RunPlots(folder, results, class_names, palette)
    plots.attempt("curves.png", lambda path: plots.curves(path, csv_log(trainer)))
    plots.attempt("confusion_val.png", plots.confusion)
    plots.attempt("samples_val.png", lambda path: plots.samples(path, latest_samples(trainer)))
    return plots.written
