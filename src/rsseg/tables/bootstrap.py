"""Statistics of a cell: the mean and standard deviation over seeds (:class:`Estimate`), a row's difference to
the row above (:class:`Delta`), and the two-level bootstrap over seeds and evaluation scenes
(:class:`SeedSceneBootstrap`) with percentile or BCa intervals."""

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
    scenes_only: bool = False  # one seed: the interval resamples the scenes alone


@dataclass(frozen=True)
class Delta:
    """A row's difference to the row above, with the paired bootstrap interval of that difference."""

    diff: float
    low: float
    high: float
    scenes_only: bool = False  # one of the two rows has one seed: its seed variance is not in the interval

    @property
    def significant(self) -> bool:
        """The interval excludes 0 and holds both rows' seed variance: scene noise alone never earns a star."""
        return not self.scenes_only and (self.low > 0 or self.high < 0)


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


def bca_interval(replicates: np.ndarray, observed: float, jackknife: np.ndarray) -> tuple[float, float] | None:
    """Efron's bias-corrected and accelerated interval: the percentiles of the replicates moved by the bias
    ``z0`` (the share of replicates below the observed value) and the acceleration ``a`` (the skew of the
    leave-one-scene-out values ``jackknife``). Falls back to the percentile interval where either is undefined."""
    from scipy.stats import norm

    finite = replicates[np.isfinite(replicates)]
    jack = jackknife[np.isfinite(jackknife)]
    if finite.size == 0 or not math.isfinite(observed):
        return None
    share = (np.sum(finite < observed) + 0.5 * np.sum(finite == observed)) / finite.size
    spread = jack.mean() - jack if jack.size >= 2 else np.zeros(1)
    denominator = 6 * np.sum(spread**2) ** 1.5
    if not 0 < share < 1 or denominator == 0:
        return percentile_interval(finite)
    z0, a = norm.ppf(share), float(np.sum(spread**3) / denominator)
    bounds = []
    for alpha in (CONFIDENCE[0] / 100, CONFIDENCE[1] / 100):
        z = z0 + norm.ppf(alpha)
        bounds.append(100 * float(norm.cdf(z0 + z / (1 - a * z))))
    low, high = np.percentile(finite, bounds)
    return float(low), float(high)


class SeedSceneBootstrap:
    """95 % intervals from a two-level bootstrap over a row's seeds and the evaluation scenes of the reported split.

    A number from three seeds on seven test scenes varies with both: another seed trains another model, another
    draw of scenes from the same area scores it differently. Each resample first draws the row's seeds with
    replacement, then the split's scenes with replacement (:func:`resample_weights`), sums each drawn seed's
    drawn scenes' confusion matrices (``results.json`` ``scenes.<split>``), computes the metric from the sum
    with :func:`rsseg.metrics.metrics_from_confusion` (the function training reports with) and averages it
    over the drawn seeds. Every row uses the same scene draws, and rows with the same number of seeds the same
    seed draws, so the difference of a row to the row above is paired; it is significant at 95 % when its
    interval excludes 0. A row with one seed gets a scene-only interval (``scenes_only``), and a difference
    with such a row is never called significant: half of its seed variance is missing.

    ``method="percentile"``: the 2.5th to 97.5th percentile of the resampled values; ``"bca"``: Efron's BCa
    interval (:func:`bca_interval`, acceleration from leaving one scene out), which corrects the skew that a
    handful of scenes gives a percentile interval. Our own code: torchmetrics' ``BootStrapper`` resamples the
    samples of one metric update, not seeds and whole scenes shared by several models. Only metrics derived
    from the confusion matrix get intervals (not sizes).
    """

    METHODS = ("percentile", "bca")

    def __init__(self, resamples: int, seed: int, class_names: Sequence[str], exclude_from_mean: Sequence,
                 method: str = "percentile") -> None:
        if method not in self.METHODS:
            raise ValueError(f"interval method {method!r}; expected one of {', '.join(self.METHODS)}")
        self.resamples, self.seed, self.method = int(resamples), int(seed), method
        self.class_names, self.exclude = list(class_names), list(exclude_from_mean)
        self._weights: dict[tuple[str, ...], np.ndarray] = {}
        self._seed_weights: dict[int, np.ndarray] = {}
        self._replicates: dict[tuple[Path, str], dict[str, np.ndarray]] = {}
        self._jackknife: dict[tuple[Path, str], dict[str, np.ndarray]] = {}

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

    def seed_weights(self, n_seeds: int) -> np.ndarray:
        """How often each of ``n_seeds`` seeds is drawn in each resample (a stream of its own, from seed + 1)."""
        if n_seeds not in self._seed_weights:
            self._seed_weights[n_seeds] = resample_weights(n_seeds, self.resamples, self.seed + 1)
        return self._seed_weights[n_seeds]

    def _metrics(self, totals: np.ndarray) -> dict[str, np.ndarray]:
        from rsseg.metrics import metrics_from_confusion

        computed = [metrics_from_confusion(total, self.class_names, self.exclude) for total in totals]
        keys = [*SUMMARY_METRICS, *(f"per_class.{m}.{c}" for m in PER_CLASS_METRICS for c in self.class_names)]
        return {k: np.array([metric_value(m, k) for m in computed]) for k in keys}

    def _confusions(self, run: RunRecord, split: str) -> np.ndarray:
        return np.asarray([s["confusion"] for s in run.scenes(split)], dtype=np.float64)

    def run_replicates(self, run: RunRecord, split: str) -> dict[str, np.ndarray]:
        """Every metric (``miou``, ``per_class.iou.road`` ...) of each resample's summed confusion, as arrays of
        fractions over the resamples (computed once per run and split)."""
        key = (run.path, split)
        if key not in self._replicates:
            totals = np.einsum("bs,skl->bkl", self.weights(self.scene_names(run, split)), self._confusions(run, split))
            self._replicates[key] = self._metrics(totals)
        return self._replicates[key]

    def run_jackknife(self, run: RunRecord, split: str) -> dict[str, np.ndarray]:
        """Every metric with each scene left out in turn (for BCa's acceleration)."""
        key = (run.path, split)
        if key not in self._jackknife:
            confusions = self._confusions(run, split)
            self._jackknife[key] = self._metrics(confusions.sum(0)[None] - confusions)
        return self._jackknife[key]

    def _per_seed(self, row: Row, split: str, column: Column, values) -> np.ndarray:
        missing = np.full(self.resamples, np.nan)  # a column of no class (no positive class in the data)
        return np.array([values(run, split).get(column.key, missing) for run in row.runs])

    def usable(self, row: Row, split: str, column: Column) -> bool:
        """Whether the row's runs were all scored on the same two or more scenes of ``split``."""
        if not column.from_confusion or not row.runs:
            return False
        names = {self.scene_names(run, split) for run in row.runs}
        return len(names) == 1 and None not in names

    def row_replicates(self, row: Row, split: str, column: Column) -> np.ndarray | None:
        """The column's value (in %) in each resample: drawn seeds' values on the drawn scenes, averaged."""
        if not self.usable(row, split, column):
            return None
        per_seed = self._per_seed(row, split, column, self.run_replicates)  # [seeds, resamples]
        draws = self.seed_weights(len(row.runs)).T  # [seeds, resamples], each column sums to the seed count
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a class absent from every drawn seed of a resample
            present = np.isfinite(per_seed)
            total = np.where(present, per_seed, 0) * draws
            return 100 * total.sum(0) / (draws * present).sum(0)

    def row_jackknife(self, row: Row, split: str, column: Column) -> np.ndarray:
        """The row's seed-mean value (in %) with each scene left out."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return 100 * np.nanmean(self._per_seed(row, split, column, self.run_jackknife), axis=0)

    def interval(self, replicates: np.ndarray, observed: float,
                 jackknife: np.ndarray | None) -> tuple[float, float] | None:
        if self.method == "bca" and jackknife is not None:
            return bca_interval(replicates, observed, jackknife)
        return percentile_interval(replicates)

    def comparable(self, first: Row, second: Row, split: str) -> bool:
        """Whether two rows were scored on the same scenes (so their resamples pair up)."""
        names = {self.scene_names(run, split) for run in first.runs + second.runs}
        return len(names) == 1 and None not in names

    def describe(self) -> str:
        kind = "BCa" if self.method == "bca" else "percentile"
        return (f"95 % {kind} interval of a two-level bootstrap: the row's seeds with replacement, then the "
                f"evaluation scenes with replacement, the same draws for every row ({self.resamples} resamples, "
                f"seed {self.seed})")
