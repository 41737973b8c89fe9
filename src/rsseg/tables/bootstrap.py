"""Statistics of a cell: the mean and standard deviation over seeds (:class:`Estimate`), a row's difference to
the row above (:class:`Delta`), and the percentile bootstrap over evaluation scenes (:class:`SceneBootstrap`)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rsseg.tables.columns import PER_CLASS_METRICS, SUMMARY_METRICS, Column, metric_value
from rsseg.tables.groups import Row
from rsseg.tables.records import RunRecord

CONFIDENCE = (2.5, 97.5)


@dataclass(frozen=True)
class Estimate:
    """A cell: mean over seeds, sample std (two seeds or more), seed count, and the bootstrap interval."""

    mean: float
    std: float | None
    n: int
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class Delta:
    """A row's difference to the row above, with the paired bootstrap interval of that difference."""

    diff: float
    low: float
    high: float

    @property
    def significant(self) -> bool:
        return self.low > 0 or self.high < 0


def summarise(values: Sequence[float]) -> Estimate | None:
    """Mean and sample standard deviation (ddof 1) of the finite values; None when there are none."""
    finite = [float(v) for v in values if math.isfinite(v)]
    if not finite:
        return None
    std = float(np.std(finite, ddof=1)) if len(finite) >= 2 else None
    return Estimate(float(np.mean(finite)), std, len(finite))


def resample_weights(n_scenes: int, resamples: int, seed: int) -> np.ndarray:
    """How often each scene is drawn in each resample: ``[resamples, n_scenes]`` counts, each row summing to
    ``n_scenes``, from ``np.random.default_rng(seed).integers(0, n_scenes, (resamples, n_scenes))``."""
    draws = np.random.default_rng(seed).integers(0, n_scenes, size=(resamples, n_scenes))
    offsets = np.arange(resamples)[:, None] * n_scenes
    return np.bincount((draws + offsets).ravel(), minlength=resamples * n_scenes).reshape(resamples, n_scenes)


def percentile_interval(replicates: np.ndarray) -> tuple[float, float] | None:
    """The 2.5th and 97.5th percentiles of the finite replicates (numpy's linear interpolation)."""
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0:
        return None
    low, high = np.percentile(finite, CONFIDENCE)
    return float(low), float(high)


class SceneBootstrap:
    """95 % percentile bootstrap intervals over the evaluation scenes of the reported split.

    A test set of a few scenes gives a number whose uncertainty seeds alone do not show: another draw of scenes
    from the same area would score differently. Each resample draws the split's scenes with replacement
    (:func:`resample_weights`; one draw per resample shared by every seed and every row, so rows are compared on
    the same scenes), sums the drawn scenes' confusion matrices (``results.json`` ``scenes.<split>``) and
    computes the metric from the sum with :func:`rsseg.metrics.metrics_from_confusion`, the function training
    reports with; with several seeds the metric is averaged over the seeds inside each resample. The interval is
    the 2.5th to 97.5th percentile of the resampled values. The difference of a row to the row above is
    bootstrapped the same way (paired: the same resamples on both rows); it is significant at 95 % when its
    interval excludes 0. Our own code, since torchmetrics' ``BootStrapper`` resamples the samples of a metric
    update rather than whole scenes shared by several models. Only metrics derived from the confusion matrix get
    intervals (not sizes).
    """

    def __init__(self, resamples: int, seed: int, class_names: Sequence[str], exclude_from_mean: Sequence) -> None:
        self.resamples, self.seed = int(resamples), int(seed)
        self.class_names, self.exclude = list(class_names), list(exclude_from_mean)
        self._weights: dict[tuple[str, ...], np.ndarray] = {}
        self._replicates: dict[tuple[Path, str], dict[str, np.ndarray]] = {}

    @staticmethod
    def scene_names(run: RunRecord, split: str) -> tuple[str, ...] | None:
        """The run's evaluation scenes of ``split``; None with fewer than two that hold labelled pixels (nothing
        to resample: a scene the evaluation never reached, ``trainer.limit_val_batches``, counts for nothing)."""
        scenes = run.scenes(split) or []
        labelled = sum(1 for scene in scenes if any(any(row) for row in scene["confusion"]))
        return tuple(s["name"] for s in scenes) if labelled >= 2 else None

    def weights(self, names: tuple[str, ...]) -> np.ndarray:
        if names not in self._weights:
            self._weights[names] = resample_weights(len(names), self.resamples, self.seed)
        return self._weights[names]

    def run_replicates(self, run: RunRecord, split: str) -> dict[str, np.ndarray]:
        """Every metric (``miou``, ``per_class.iou.road`` ...) of each resample's summed confusion, as arrays of
        fractions over the resamples (computed once per run and split)."""
        from rsseg.metrics import metrics_from_confusion

        key = (run.path, split)
        if key not in self._replicates:
            confusions = np.asarray([s["confusion"] for s in run.scenes(split)], dtype=np.float64)
            totals = np.einsum("bs,skl->bkl", self.weights(self.scene_names(run, split)), confusions)
            resampled = [metrics_from_confusion(total, self.class_names, self.exclude) for total in totals]
            keys = [*SUMMARY_METRICS, *(f"per_class.{m}.{c}" for m in PER_CLASS_METRICS for c in self.class_names)]
            self._replicates[key] = {k: np.array([metric_value(m, k) for m in resampled]) for k in keys}
        return self._replicates[key]

    def row_replicates(self, row: Row, split: str, column: Column) -> np.ndarray | None:
        """The column's value (in %) in each resample, averaged over the row's seeds; None without scenes."""
        if not column.from_confusion or not row.runs:
            return None
        names = {self.scene_names(run, split) for run in row.runs}
        if len(names) != 1 or None in names:
            return None
        missing = np.full(self.resamples, np.nan)  # a column of no class (no positive class in the data)
        per_seed = np.array([self.run_replicates(run, split).get(column.key, missing) for run in row.runs])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a class absent from every seed of a resample
            return 100 * np.nanmean(per_seed, axis=0)

    def comparable(self, first: Row, second: Row, split: str) -> bool:
        """Whether two rows were scored on the same scenes (so their resamples pair up)."""
        names = {self.scene_names(run, split) for run in first.runs + second.runs}
        return len(names) == 1 and None not in names
