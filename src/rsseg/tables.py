"""Paper tables from training runs: ``rsseg tables PATH...`` (also ``python -m rsseg.tables``).

    rsseg tables multirun/mst_ablation/smoke                  # Table 8 of MST-DeepLabv3+: the four-row ablation
    rsseg tables multirun/2025-06-01/12-00-00 --format md,csv  # any sweep: one row per configuration
    rsseg tables runs/ --bootstrap 0 --no-figures               # no intervals, no figures

Reads the ``results.json`` every training job writes (folders are searched recursively; the ``error.json`` of a
failed job is listed under its table), groups the runs by (experiment, dataset, scale) and writes each group's
tables as the experiment's ``table:`` spec lays them out, rows in the paper's order:

* ``comparison``: one row per model, the spec's columns (``per_class.<m>`` expands to one column per class,
  ``<m>@positive`` is per-class metric ``m`` of the dataset's positive class);
* ``ablation``: the same with one check-mark column per design choice (``row.marks``);
* ``params``: parameter count, size in MiB (params x 4 / 2^20) and GFLOPs per model (a ``fit: false`` run);
* one per-class table for each metric of ``table.per_class``: rows x classes and the mean over the classes in it.

Runs outside an experiment (``python train.py -m model=a,b seed=0,1``) get a generic comparison: one row per
distinct configuration, seeds pooled. Rows of a spec without runs, and failed jobs, are shown, never dropped.

Each cell is the mean ± sample standard deviation over the row's seeds (metrics in %); the paper's numbers sit in
a "(paper)" column beside ours. Cells of metrics that come from the confusion matrix also carry a 95 % bootstrap
interval over the evaluation scenes, and each row a paired difference to the row above (see
:class:`SceneBootstrap`), which neither the papers nor mmsegmentation, GeoSeg or torchgeo report.

Every file starts with its provenance: this command, the training command(s), the git commits of the runs and of
rsseg, and the scale (a reduced budget says so). Figures (:mod:`rsseg.figures`) go to ``<out>/figures``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import math
import os
import re
import shlex
import sys
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rsseg.errors import ConfigError, DataError, RssegError

LAYOUTS = ("comparison", "ablation", "params")
SPLITS = ("val", "test")
FORMATS = {"md": ".md", "csv": ".csv", "tex": ".tex"}
SUMMARY_METRICS = {"miou": "mIoU", "oa": "OA", "mprecision": "mPrecision", "mrecall": "mRecall", "mf1": "mF1",
                   "f1_paper": "F1(mP,mR)"}
SIZE_COLUMNS = {"params": "Params", "mib": "MiB", "gflops": "GFLOPs"}
PER_CLASS_METRICS = {"iou": "IoU", "f1": "F1", "precision": "Precision", "recall": "Recall"}
CLASS_MEAN = {"iou": "miou", "f1": "mf1", "precision": "mprecision", "recall": "mrecall"}
GENERIC_COLUMNS = ("miou", "oa", "mf1", "f1_paper", "mib")
# Overrides that do not change what a run measures: left out when telling a sweep's configurations apart.
NEUTRAL_OVERRIDES = {"seed", "logger", "data.root", "data.num_workers", "trainer.devices", "trainer.accelerator",
                     "trainer.num_nodes", "trainer.strategy", "ckpt_path", "pretrained_weights"}
NEUTRAL_PREFIXES = ("hydra.", "hydra/", "paths.")
CONFIDENCE = (2.5, 97.5)
RESULTS_EXPECTED = "expected the results.json a training run writes (python train.py, rsseg train)"
PATH_EXPECTED = "expected a run folder, a sweep folder or a results.json file"


def input_error(where: Any, why: str, expected: str = RESULTS_EXPECTED) -> DataError:
    """The one-line error of bad input: ``<what>: <why>; <expected>``."""
    return DataError(f"{where}: {why}; {expected}")


def natural_key(path: Path) -> list:
    """Sort key under which ``job/10`` follows ``job/9`` (Hydra numbers sweep jobs 0, 1, ... 10)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]


# --------------------------------------------------------------------------------------------------------------
# Reading runs
# --------------------------------------------------------------------------------------------------------------


def read_json_object(path: Path) -> dict:
    try:
        payload = json.loads(path.read_text())
    except OSError as error:
        raise input_error(path, f"cannot be read ({error.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        reason = f"{error.msg} at line {error.lineno}" if isinstance(error, json.JSONDecodeError) else "not text"
        raise input_error(path, f"not valid JSON ({reason})") from None
    if not isinstance(payload, dict):
        raise input_error(path, f"holds a JSON {type(payload).__name__}, not an object")
    return payload


def dig(mapping: Any, dotted: str, default: Any = None) -> Any:
    """``mapping["a"]["b"]`` for ``"a.b"``, or ``default`` where a level is missing or not a mapping."""
    for key in dotted.split("."):
        if not isinstance(mapping, dict) or key not in mapping:
            return default
        mapping = mapping[key]
    return mapping


@dataclass
class RunRecord:
    """One training job's ``results.json``, checked against the schema the tables rely on."""

    path: Path
    payload: dict
    class_names: list[str]
    exclude_from_mean: list

    @classmethod
    def read(cls, path: Path) -> RunRecord:
        payload = read_json_object(path)
        task = payload.get("task")
        if task is not None and task != "train":
            raise input_error(path, f'"task" is {task!r}, not a training run')
        has_metrics, has_sizes = isinstance(payload.get("metrics"), dict), isinstance(payload.get("sizes"), list)
        if not has_metrics and not has_sizes:
            raise input_error(path, 'has neither "metrics" nor "sizes"')
        class_names = dig(payload, "config.data.class_names")
        if has_metrics:
            class_names = cls._check_metrics(path, payload["metrics"], class_names)
        exclude = dig(payload, "config.data.exclude_from_mean") or []
        record = cls(path, payload, [str(n) for n in class_names or []], list(exclude))
        record._check_scenes()
        record._check_table()
        if has_sizes:
            record._check_sizes()
        return record

    @staticmethod
    def _check_metrics(path: Path, metrics: dict, class_names: list | None) -> list:
        if "val" not in metrics and "test" not in metrics:
            raise input_error(path, '"metrics" has neither "val" nor "test"')
        for split, values in metrics.items():
            per_class = dig(values, "per_class")
            if not isinstance(per_class, dict) or "miou" not in values:
                raise input_error(path, f'"metrics.{split}" lacks "miou" or "per_class"')
            if class_names is None:
                class_names = list(per_class)
            if list(per_class) != list(class_names):
                raise input_error(path, f"metrics.{split}.per_class names {list(per_class)} differ from "
                                        f"config.data.class_names {list(class_names)}")
        return class_names

    def _check_scenes(self) -> None:
        scenes = self.payload.get("scenes")
        if scenes is None:
            return
        if not isinstance(scenes, dict):
            raise input_error(self.path, '"scenes" is not an object of splits')
        k = len(self.class_names)
        for split, items in scenes.items():
            if not isinstance(items, list):
                raise input_error(self.path, f'"scenes.{split}" is not a list of scenes')
            for index, item in enumerate(items):
                try:
                    confusion = np.asarray(dig(item, "confusion", []), dtype=np.float64)
                except (TypeError, ValueError):
                    confusion = np.full((0,), np.nan)
                if not isinstance(dig(item, "name"), str) or confusion.shape != (k, k) or \
                        not (np.isfinite(confusion).all() and (confusion >= 0).all()):
                    raise input_error(self.path, f"scenes.{split}[{index}] needs a name and a {k}x{k} confusion "
                                                 f"of pixel counts (one row per class)")

    def _check_table(self) -> None:
        table = self.payload.get("table")
        if table is None:
            return
        if not isinstance(table, dict) or table.get("layout") not in LAYOUTS:
            raise input_error(self.path, f'"table.layout" is {dig(table, "layout")!r}',
                              f"expected one of {', '.join(LAYOUTS)}")
        if not isinstance(table.get("rows"), list):
            raise input_error(self.path, '"table.rows" is not a list of row names')

    def _check_sizes(self) -> None:
        for index, entry in enumerate(self.payload["sizes"]):
            if not isinstance(entry, dict) or not isinstance(entry.get("row"), str):
                raise input_error(self.path, f'"sizes[{index}]" has no "row" name')

    # What the tables group and label by.
    @property
    def experiment(self) -> str | None:
        return self.payload.get("experiment") or dig(self.payload, "table.name")

    @property
    def data(self) -> str:
        return str(self.payload.get("data") or "unknown")

    @property
    def scale(self) -> str:
        return str(self.payload.get("scale") or dig(self.payload, "config.scale.name") or "full")

    @property
    def row(self) -> dict:
        return self.payload.get("row") or dig(self.payload, "config.row") or {}

    @property
    def seed(self) -> int | None:
        seed = self.payload.get("seed", dig(self.payload, "config.seed"))
        return int(seed) if isinstance(seed, (int, float)) else None

    @property
    def model(self) -> str | None:
        return self.payload.get("model")

    @property
    def table(self) -> dict | None:
        return self.payload.get("table")

    def has_split(self, split: str) -> bool:
        return isinstance(dig(self.payload, f"metrics.{split}"), dict)

    def metrics(self, split: str) -> dict:
        return self.payload["metrics"][split]

    def scenes(self, split: str) -> list[dict] | None:
        return dig(self.payload, f"scenes.{split}")

    def configuration(self) -> tuple[str, ...]:
        """The overrides that make this run's configuration (seed and bookkeeping keys left out)."""
        chosen = []
        for override in self.payload.get("overrides") or []:
            key = str(override).split("=", 1)[0].lstrip("+~")
            if key not in NEUTRAL_OVERRIDES and not key.startswith(NEUTRAL_PREFIXES):
                chosen.append(str(override))
        return tuple(sorted(chosen))


@dataclass
class FailedJob:
    """A job that left ``error.json`` instead of ``results.json``; its stored config says which row it was."""

    path: Path
    error: str
    config: dict

    @classmethod
    def read(cls, path: Path) -> FailedJob:
        payload = read_json_object(path)
        message = str(payload.get("error") or "no error message").strip().splitlines() or ["no error message"]
        config = payload.get("config") if isinstance(payload.get("config"), dict) else {}
        return cls(path, message[0], config)

    @property
    def experiment(self) -> str | None:
        return dig(self.config, "table.name")

    @property
    def scale(self) -> str | None:
        return dig(self.config, "scale.name")

    @property
    def row(self) -> dict:
        return dig(self.config, "row") or {}

    @property
    def seed(self) -> Any:
        return dig(self.config, "seed")


def find_records(paths: Sequence[str]) -> tuple[list[Path], list[Path]]:
    """``results.json`` and ``error.json`` files under each path (a file, or a folder searched recursively)."""
    results: dict[Path, None] = {}
    failures: dict[Path, None] = {}
    for text in paths:
        path = Path(text).expanduser()
        if path.is_file():
            (failures if path.name == "error.json" else results)[path.resolve()] = None
            continue
        if not path.is_dir():
            raise input_error(path, "no such file or folder", PATH_EXPECTED)
        found = sorted(path.rglob("results.json"), key=natural_key)
        # A job re-run after a failure leaves both files; its results.json is the one that counts.
        failed = [p for p in sorted(path.rglob("error.json"), key=natural_key)
                  if not (p.parent / "results.json").is_file()]
        if not found and not failed:
            raise input_error(path, "no results.json under this folder", PATH_EXPECTED)
        results.update((p.resolve(), None) for p in found)
        failures.update((p.resolve(), None) for p in failed)
    return list(results), list(failures)


# --------------------------------------------------------------------------------------------------------------
# Groups and rows
# --------------------------------------------------------------------------------------------------------------


@dataclass
class Row:
    """One row of a table: the runs (one per seed) of one model or configuration, and its failed jobs."""

    name: str
    label: str
    marks: dict = field(default_factory=dict)
    runs: list[RunRecord] = field(default_factory=list)
    failures: list[FailedJob] = field(default_factory=list)
    in_spec: bool = True

    @property
    def missing(self) -> bool:
        return not self.runs


@dataclass
class RunGroup:
    """The runs of one (experiment, dataset, scale): they make one set of tables."""

    experiment: str | None
    data: str
    scale: str
    runs: list[RunRecord] = field(default_factory=list)
    failures: list[FailedJob] = field(default_factory=list)

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{self.experiment or 'comparison'}-{self.data}-{self.scale}")

    @property
    def spec(self) -> dict:
        for source in [r.table for r in self.runs] + [dig(f.config, "table") for f in self.failures]:
            if isinstance(source, dict):
                return source
        return {"title": "Comparison", "layout": "comparison", "split": "test", "rows": [],
                "columns": list(GENERIC_COLUMNS), "per_class": ["iou"]}

    @property
    def class_names(self) -> list[str]:
        """The group's classes; runs that disagree are an error (their numbers cannot share columns)."""
        first = None
        for run in self.runs:
            if not run.class_names or "metrics" not in run.payload:
                continue
            if first is None:
                first = run
            elif run.class_names != first.class_names:
                raise input_error(run.path, f"classes {run.class_names} differ from {first.class_names} in "
                                            f"{first.path}", "expected one class list per experiment, data and scale")
        return first.class_names if first else []

    @property
    def exclude_from_mean(self) -> list:
        return next((r.exclude_from_mean for r in self.runs if r.class_names), [])

    def rows(self) -> tuple[list[Row], list[str]]:
        """The rows in the spec's order (then rows the spec does not name), and notes about duplicates."""
        by_name: dict[str, Row] = {}
        for name in self.spec.get("rows") or []:
            label = dig(self.spec, f"labels.{name}") or name
            by_name[str(name)] = Row(str(name), str(label))
        names = self._row_names()
        in_spec = not self.spec.get("rows")  # a generic table has no spec rows: every row is its own
        for run in self.runs:
            row = by_name.setdefault(names[id(run)], Row(names[id(run)], names[id(run)], in_spec=in_spec))
            row.runs.append(run)
            _describe(row, run.row if self.experiment else {})
        for failure in self.failures:
            name = str(failure.row.get("name") or failure.path.parent.name)
            row = by_name.setdefault(name, Row(name, name, in_spec=in_spec))
            row.failures.append(failure)
            _describe(row, failure.row)
        notes = []
        for row in by_name.values():
            row.runs, dropped = _one_run_per_seed(row.runs)
            notes += [f"row {row.name}: seed {run.seed} appears twice; kept the newer {kept.path}" for run, kept in dropped]
        return list(by_name.values()), notes

    def _row_names(self) -> dict[int, str]:
        """Each run's row: its ``row.name`` in an experiment; otherwise its configuration, named by the model
        when every configuration has its own model, else by the overrides in which configurations differ."""
        if self.experiment:
            return {id(r): str(r.row.get("name") or r.model or "run") for r in self.runs}
        configs = {id(r): (r.row.get("name"),) if r.row.get("name") else r.configuration() for r in self.runs}
        distinct = list(dict.fromkeys(configs.values()))
        models = {c: {r.model for r in self.runs if configs[id(r)] == c} for c in distinct}
        model_names = [next(iter(m)) if len(m) == 1 else None for m in models.values()]
        if None not in model_names and len(set(model_names)) == len(distinct):
            names = dict(zip(distinct, (str(m) for m in model_names)))
        else:
            common = set.intersection(*(set(c) for c in distinct)) if distinct else set()
            names = {c: ", ".join(o for o in c if o not in common) or str(next(iter(models[c])) or "run")
                     for c in distinct}
        return {key: names[config] for key, config in configs.items()}


def _describe(row: Row, info: dict) -> None:
    """Take a row's label and check marks from a run's (or failed job's) ``row`` config where it has them."""
    if info.get("label") and row.label == row.name:
        row.label = str(info["label"])
    if info.get("marks") and not row.marks:
        row.marks = dict(info["marks"])


def _one_run_per_seed(runs: list[RunRecord]) -> tuple[list[RunRecord], list[tuple[RunRecord, RunRecord]]]:
    """Runs sorted by seed, one per seed (the newest results.json), and the (dropped, kept) pairs."""
    kept: dict[Any, RunRecord] = {}
    dropped = []
    for run in sorted(runs, key=lambda r: r.path.stat().st_mtime):
        key = run.seed if run.seed is not None else run.path
        if key in kept:
            dropped.append((kept[key], run))
        kept[key] = run
    ordered = sorted(kept.values(), key=lambda r: (r.seed is None, r.seed or 0, natural_key(r.path)))
    return ordered, dropped


def group_runs(runs: list[RunRecord], failures: list[FailedJob]) -> list[RunGroup]:
    """Runs grouped by (experiment, data, scale); a failed job joins the group of its experiment and scale
    whose runs share the longest folder prefix with it (its sweep), or a group of its own."""
    groups: dict[tuple, RunGroup] = {}
    for run in runs:
        key = (run.experiment, run.data, run.scale)
        groups.setdefault(key, RunGroup(*key)).runs.append(run)
    for failure in failures:
        candidates = [g for g in groups.values() if g.experiment == failure.experiment
                      and (failure.scale is None or g.scale == failure.scale)]
        if not candidates:
            key = (failure.experiment, "unknown", failure.scale or "full")
            candidates = [groups.setdefault(key, RunGroup(*key))]

        def shared(group: RunGroup, where: Path = failure.path) -> int:
            return max((len(os.path.commonpath([where, r.path])) for r in group.runs), default=0)

        max(candidates, key=shared).failures.append(failure)
    return list(groups.values())


# --------------------------------------------------------------------------------------------------------------
# Columns and values
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """A value a table shows: where it is read (``key``), the key of the paper's number in ``table.paper``
    (``paper_key``), its header and unit."""

    key: str  # "miou", "per_class.f1.road", "per_class.f1.building", "mib"
    paper_key: str  # "miou", "per_class.f1.road", "f1@positive", "mib"
    label: str
    unit: str  # percent | params | mib | gflops

    @property
    def from_confusion(self) -> bool:
        return self.unit == "percent"

    def value(self, run: RunRecord, split: str) -> float:
        """The run's value in display units (metrics in %)."""
        if not self.from_confusion:
            raw = run.payload.get(self.key)
            return float(raw) if isinstance(raw, (int, float)) else math.nan
        return 100 * metric_value(run.metrics(split), self.key)


def metric_value(metrics: dict, key: str) -> float:
    """A metric of a ``metrics_from_confusion`` dict as a fraction: ``miou`` or ``per_class.<m>.<class>``."""
    if key.startswith("per_class."):
        _, metric, name = key.split(".", 2)
        raw = dig(metrics.get("per_class", {}).get(name), metric)
    else:
        raw = metrics.get(key)
    return float(raw) if isinstance(raw, (int, float)) else math.nan


def positive_class(spec: dict, class_names: Sequence[str]) -> str | None:
    """The first of ``table.positive_class`` that the dataset has."""
    return next((str(n) for n in spec.get("positive_class") or [] if n in class_names), None)


def expand_columns(spec_columns: Sequence[str], class_names: Sequence[str], positive: str | None) -> list[Column]:
    """The spec's ``columns`` as table columns: ``per_class.<m>`` becomes one column per class."""
    columns = []
    for name in spec_columns:
        name = str(name)
        if name in SUMMARY_METRICS:
            columns.append(Column(name, name, SUMMARY_METRICS[name], "percent"))
        elif name in SIZE_COLUMNS:
            columns.append(Column(name, name, SIZE_COLUMNS[name], name))
        elif name.startswith("per_class.") and name.split(".", 1)[1] in PER_CLASS_METRICS:
            metric = name.split(".", 1)[1]
            columns += [Column(f"per_class.{metric}.{c}", f"per_class.{metric}.{c}",
                               f"{c} {PER_CLASS_METRICS[metric]}", "percent") for c in class_names]
        elif "@" in name and name.split("@", 1)[0] in PER_CLASS_METRICS:
            metric = name.split("@", 1)[0]
            target = positive if positive is not None else "(no positive class)"
            columns.append(Column(f"per_class.{metric}.{target}", name, f"{PER_CLASS_METRICS[metric]} ({target})",
                                  "percent"))
        else:
            known = [*SUMMARY_METRICS, *SIZE_COLUMNS, *(f"per_class.{m}" for m in PER_CLASS_METRICS),
                     *(f"{m}@positive" for m in PER_CLASS_METRICS)]
            raise ConfigError(f"table.columns: unknown column {name!r}; expected one of {', '.join(known)}")
    return columns


# --------------------------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """One column of a rendered table. ``kind``: text, mark, estimate, paper, count or delta."""

    name: str  # the CSV header
    header: str  # the markdown / LaTeX header
    kind: str
    unit: str = "percent"
    csv_only: bool = False


@dataclass
class Table:
    """A table ready to render: fields, one list of cells per row, notes below and provenance above."""

    slug: str
    title: str
    subtitle: str
    fields: list[Field]
    rows: list[list[Any]]
    notes: list[str] = field(default_factory=list)
    provenance: list[str] = field(default_factory=list)


@dataclass
class TableOptions:
    """The command line's choices: the split to report (None: the spec's), bootstrap resamples (0: none), seed."""

    split: str | None = None
    bootstrap: int = 1000
    seed: int = 0


class GroupTables:
    """Builds every table of one group: the main table of the spec's layout and the per-class tables."""

    def __init__(self, group: RunGroup, options: TableOptions, provenance: list[str]) -> None:
        self.group, self.options, self.provenance = group, options, provenance
        self.spec = group.spec
        self.class_names = group.class_names
        self.rows, self.notes = group.rows()
        self.split = options.split or self.spec.get("split") or "test"
        self.row_splits = {row.name: self._row_split(row) for row in self.rows}
        self.bootstrap = None
        if options.bootstrap > 0 and self.class_names:
            self.bootstrap = SceneBootstrap(options.bootstrap, options.seed, self.class_names,
                                            group.exclude_from_mean)

    def _row_split(self, row: Row) -> str:
        """The requested split, or val for a row whose runs lack it (a dataset without a test split)."""
        if all(run.has_split(self.split) for run in row.runs):
            return self.split
        return "val"

    def tables(self) -> list[Table]:
        layout = self.spec.get("layout", "comparison")
        if layout == "params":
            return [self.params_table()]
        tables = [self.main_table(layout)]
        for metric in self.spec.get("per_class") or []:
            tables.append(self.per_class_table(str(metric)))
        return tables

    # -- the parts every table shares ----------------------------------------------------------------------------

    def _subtitle(self) -> str:
        splits = sorted({self.row_splits[r.name] for r in self.rows if r.runs}) or [self.split]
        source = self.spec.get("source")
        parts = [str(source)] if source else []
        parts += [f"data {self.group.data}", f"scale {self.group.scale}", f"split {'/'.join(splits)}"]
        return "; ".join(parts)

    def _common_notes(self, with_paper: bool) -> list[str]:
        notes = []
        fallback = [r.name for r in self.rows if r.runs and self.row_splits[r.name] != self.split]
        if fallback:
            notes.append(f"split: {self.split}, or val for rows whose runs have no {self.split} split "
                         f"({', '.join(fallback)})")
        stats = "cells: mean ± sample standard deviation over the row's seeds (n), metrics in %"
        counts = [len(r.scenes(self.row_splits[row.name]) or []) for row in self.rows for r in row.runs]
        if self.bootstrap is not None and max(counts, default=0) >= 2:
            stats += (f"; [low, high]: 95 % bootstrap percentile interval over the evaluation scenes "
                      f"({self.options.bootstrap} resamples, seed {self.options.seed})")
        notes.append(stats)
        if self.bootstrap is not None and counts and max(counts) == 0:
            notes.append("no intervals: the runs' results.json hold no per-scene confusion matrices (scenes)")
        elif self.bootstrap is not None and counts and max(counts) == 1:
            notes.append("no intervals: one evaluation scene (resampling scenes needs two or more)")
        if with_paper and self.spec.get("paper"):
            notes.append(f"(paper): the paper's reported numbers, {self.spec.get('paper_note') or self.spec.get('source')}")
        for row in self.rows:
            if not row.in_spec and row.runs and self.spec.get("rows"):
                notes.append(f"row {row.name} is not in the paper's table; shown after its rows")
            if row.missing and not row.failures:
                notes.append(f"missing row: {row.name} ({row.label}): no run")
            for failure in row.failures:
                seed = f" seed {failure.seed}" if failure.seed is not None else ""
                notes.append(f"failed row: {row.name}{seed}: {failure.error} ({failure.path})")
        return notes + self.notes

    def _row_label(self, row: Row) -> str:
        return f"{row.label} (missing)" if row.missing else row.label

    def _estimate(self, row: Row, column: Column) -> Estimate | None:
        split = self.row_splits[row.name]
        estimate = summarise([column.value(run, split) for run in row.runs])
        if estimate is not None and not column.from_confusion:  # a size is the same for every seed
            return Estimate(estimate.mean, None, estimate.n)
        if estimate is None or self.bootstrap is None:
            return estimate
        replicates = self.bootstrap.row_replicates(row, split, column)
        interval = percentile_interval(replicates) if replicates is not None else None
        if interval is None:
            return estimate
        return Estimate(estimate.mean, estimate.std, estimate.n, *interval)

    def _deltas(self, column: Column) -> dict[str, Delta]:
        """Each row's paired-bootstrap difference to the nearest row above it that has runs."""
        deltas: dict[str, Delta] = {}
        above = None
        for row in self.rows:
            if row.missing:
                continue
            split = self.row_splits[row.name]
            if above is not None and self.row_splits[above.name] == split and \
                    self.bootstrap.comparable(above, row, split):
                ours = self.bootstrap.row_replicates(row, split, column)
                theirs = self.bootstrap.row_replicates(above, split, column)
                interval = percentile_interval(ours - theirs)
                mean_ours = summarise([column.value(r, split) for r in row.runs])
                mean_theirs = summarise([column.value(r, split) for r in above.runs])
                if interval and mean_ours and mean_theirs:
                    deltas[row.name] = Delta(mean_ours.mean - mean_theirs.mean, *interval)
            above = row
        return deltas

    # -- the layouts -------------------------------------------------------------------------------------------

    def main_table(self, layout: str) -> Table:
        positive = positive_class(self.spec, self.class_names)
        columns = expand_columns(self.spec.get("columns") or GENERIC_COLUMNS, self.class_names, positive)
        paper = self.spec.get("paper") or {}
        marks = [str(m) for m in self.spec.get("marks") or []] if layout == "ablation" else []
        fields = [Field("row", "row", "text", csv_only=True), Field("label", "Model", "text")]
        fields += [Field(f"mark:{m}", m, "mark") for m in marks]
        for column in columns:
            unit = " (%)" if column.from_confusion else ""
            fields.append(Field(column.key, f"{column.label}{unit}", "estimate", column.unit))
            if any(column.paper_key in (paper.get(r.name) or {}) for r in self.rows):
                fields.append(Field(f"{column.key}:paper", f"{column.label} (paper)", "paper", column.unit))
        fields.append(Field("seeds", "n", "count"))
        primary = next((c for c in columns if c.from_confusion and not c.key.startswith("per_class.")), None)
        primary = primary or next((c for c in columns if c.from_confusion), None)
        deltas = self._deltas(primary) if self.bootstrap is not None and primary is not None else None
        deltas = deltas or None  # no pair of rows scored on the same scenes: no column
        if deltas is not None:
            fields.append(Field(f"delta:{primary.key}", f"Δ {primary.label} vs above", "delta"))
        fields.append(Field("split", "split", "text", csv_only=True))

        rows = []
        for row in self.rows:
            cells: list[Any] = [row.name, self._row_label(row)]
            cells += [row.marks.get(m) if row.marks else None for m in marks]
            for column in columns:
                cells.append(None if row.missing else self._estimate(row, column))
                if any(f.name == f"{column.key}:paper" for f in fields):
                    cells.append((paper.get(row.name) or {}).get(column.paper_key))
            cells.append(len(row.runs))
            if deltas is not None:
                cells.append(deltas.get(row.name))
            cells.append(self.row_splits[row.name] if row.runs else "")
            rows.append(cells)

        notes = self._common_notes(with_paper=True)
        if positive is None and any("@" in str(c) for c in self.spec.get("columns") or []):
            notes.append(f"no positive class: none of {self.spec.get('positive_class')} is a class of "
                         f"{self.group.data} ({', '.join(self.class_names)})")
        if deltas is not None:
            notes.append(f"Δ {primary.label} vs above: difference of the means to the nearest row above with runs, "
                         f"[paired 95 % bootstrap interval]; * = the interval excludes 0 (significant at 95 %)")
        title = str(self.spec.get("title") or "Comparison")
        return Table(self.group.slug, title, self._subtitle(), fields, rows, notes, self.provenance)

    def per_class_table(self, metric: str) -> Table:
        if metric not in PER_CLASS_METRICS:
            raise ConfigError(f"table.per_class: unknown metric {metric!r}; expected one of "
                              f"{', '.join(PER_CLASS_METRICS)}")
        excluded = {str(c) if isinstance(c, str) else self.class_names[c] for c in self.group.exclude_from_mean}
        columns = [Column(f"per_class.{metric}.{c}", f"per_class.{metric}.{c}", c, "percent") for c in self.class_names]
        columns.append(Column(CLASS_MEAN[metric], CLASS_MEAN[metric], "mean", "percent"))
        fields = [Field("row", "row", "text", csv_only=True), Field("label", "Model", "text")]
        fields += [Field(c.key, f"{c.label}†" if c.label in excluded else c.label, "estimate") for c in columns]
        fields += [Field("seeds", "n", "count"), Field("split", "split", "text", csv_only=True)]
        rows = []
        for row in self.rows:
            cells: list[Any] = [row.name, self._row_label(row)]
            cells += [None if row.missing else self._estimate(row, c) for c in columns]
            cells += [len(row.runs), self.row_splits[row.name] if row.runs else ""]
            rows.append(cells)
        notes = self._common_notes(with_paper=False)
        if excluded:
            notes.append(f"†: not in the mean ({', '.join(sorted(excluded))}, data.exclude_from_mean)")
        title = f"{self.spec.get('title') or 'Comparison'}: per-class {PER_CLASS_METRICS[metric]} (%)"
        return Table(f"{self.group.slug}-per_class_{metric}", title, self._subtitle(), fields, rows, notes,
                     self.provenance)

    def params_table(self) -> Table:
        """Sizes per row from the newest ``fit: false`` run's ``sizes`` (one entry per row)."""
        sized = [r for r in self.group.runs if isinstance(r.payload.get("sizes"), list)]
        latest = max(sized, key=lambda r: r.path.stat().st_mtime) if sized else None
        entries = {e["row"]: e for e in (latest.payload["sizes"] if latest else [])}
        names = [str(n) for n in self.spec.get("rows") or []]
        names += [n for n in entries if n not in names]
        wanted = [str(c) for c in self.spec.get("columns") or SIZE_COLUMNS]
        unknown = [c for c in wanted if c not in SIZE_COLUMNS]
        if unknown:
            raise ConfigError(f"table.columns: {unknown[0]!r} in a params table; expected {', '.join(SIZE_COLUMNS)}")
        paper = self.spec.get("paper") or {}
        fields = [Field("row", "row", "text", csv_only=True), Field("label", "Model", "text"),
                  Field("model", "model", "text")]
        for column in wanted:
            fields.append(Field(column, SIZE_COLUMNS[column], "estimate", column))
            if any(column in (paper.get(n) or {}) for n in names):
                fields.append(Field(f"{column}:paper", f"{SIZE_COLUMNS[column]} (paper)", "paper", column))
        rows, notes = [], []
        for name in names:
            entry = entries.get(name)
            label = (entry or {}).get("label") or dig(self.spec, f"labels.{name}") or name
            model = (entry or {}).get("model") or dig(self.spec, f"models.{name}") or ""
            cells: list[Any] = [name, label if entry else f"{label} (missing)", model]
            for column in wanted:
                value = (entry or {}).get(column)
                cells.append(Estimate(float(value), None, 1) if isinstance(value, (int, float)) else None)
                if any(f.name == f"{column}:paper" for f in fields):
                    cells.append((paper.get(name) or {}).get(column))
            rows.append(cells)
            if entry is None:
                notes.append(f"missing row: {name}: no size in {latest.path if latest else 'any results.json'}")
        notes.append("MiB = params x 4 / 2^20 (the papers' MB); GFLOPs at the training tile size")
        if paper:
            notes.append(f"(paper): the paper's reported sizes, {self.spec.get('paper_note') or self.spec.get('source')}")
        notes += [f"failed: {f.error} ({f.path})" for f in self.group.failures]
        title = str(self.spec.get("title") or "Parameter sizes")
        subtitle = "; ".join(p for p in (self.spec.get("source"), f"data {self.group.data}") if p)
        return Table(self.group.slug, title, subtitle, fields, rows, notes, self.provenance)


# --------------------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------------------


def format_number(value: float | None, unit: str) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:,.0f}" if unit == "params" else f"{value:.2f}"


def format_estimate(estimate: Estimate | None, unit: str) -> str:
    """``68.62 ± 0.41 [66.10, 70.30]``: mean, ± std with two seeds or more, [95 % interval] when bootstrapped."""
    if estimate is None:
        return "—"
    text = format_number(estimate.mean, unit)
    if estimate.std is not None:
        text += f" ± {format_number(estimate.std, unit)}"
    if estimate.low is not None and estimate.high is not None:
        text += f" [{format_number(estimate.low, unit)}, {format_number(estimate.high, unit)}]"
    return text


def format_delta(delta: Delta | None, star: str = " *") -> str:
    """``+5.35 [+2.10, +8.40] *``: the difference, its paired interval, and a star when that excludes 0."""
    if delta is None:
        return ""
    return f"{delta.diff:+.2f} [{delta.low:+.2f}, {delta.high:+.2f}]" + (star if delta.significant else "")


def format_cell(value: Any, kind: str, unit: str) -> str:
    if kind == "mark":
        return "✓" if value else ""
    if kind == "estimate":
        return format_estimate(value, unit)
    if kind == "paper":
        return format_number(value, unit) if isinstance(value, (int, float)) else ""
    if kind == "delta":
        return format_delta(value)
    return "" if value is None else str(value)


def markdown_provenance(lines: Sequence[str]) -> list[str]:
    """Provenance as a block quote, one line each (two trailing spaces break the line in markdown)."""
    return [f"> {line}  " for line in lines]


def to_markdown(table: Table, provenance: bool = True) -> str:
    shown = [i for i, f in enumerate(table.fields) if not f.csv_only]
    lines = [f"### {table.title}", "", table.subtitle, ""]
    if provenance and table.provenance:
        lines += markdown_provenance(table.provenance) + [""]
    lines.append("| " + " | ".join(table.fields[i].header for i in shown) + " |")
    lines.append("|" + "|".join(":-:" if table.fields[i].kind == "mark" else "---" for i in shown) + "|")
    for cells in table.rows:
        texts = [format_cell(cells[i], table.fields[i].kind, table.fields[i].unit) for i in shown]
        lines.append("| " + " | ".join(t.replace("|", "\\|") for t in texts) + " |")
    if table.notes:
        lines += [""] + [f"- {note}" for note in table.notes]
    return "\n".join(lines) + "\n"


def to_csv(table: Table) -> str:
    """Numbers as numbers: a metric's mean, std and interval in their own columns (``miou``, ``miou:std``,
    ``miou:low``, ``miou:high``), sizes in one; provenance and notes as leading '#' lines."""
    out = io.StringIO()
    for line in table.provenance + [f"note: {n}" for n in table.notes]:
        out.write(f"# {line}\n")
    writer = csv.writer(out, lineterminator="\n")
    header = []
    for f in table.fields:
        if f.kind == "estimate" and f.unit == "percent":
            header += [f.name, f"{f.name}:std", f"{f.name}:low", f"{f.name}:high"]
        elif f.kind == "delta":
            header += [f.name, f"{f.name}:low", f"{f.name}:high", f"{f.name}:significant"]
        else:
            header.append(f.name)
    writer.writerow(header)

    def number(value: float | None) -> str:
        return "" if value is None or not math.isfinite(value) else f"{value:.4f}".rstrip("0").rstrip(".")

    for cells in table.rows:
        row = []
        for f, value in zip(table.fields, cells):
            if f.kind == "estimate":
                e = value or Estimate(math.nan, None, 0)
                row += [number(e.mean), number(e.std), number(e.low), number(e.high)] if f.unit == "percent" \
                    else [number(e.mean)]
            elif f.kind == "delta":
                row += ["", "", "", ""] if value is None else \
                    [number(value.diff), number(value.low), number(value.high), str(value.significant).lower()]
            elif f.kind == "mark":
                row.append("" if value is None else str(bool(value)).lower())
            elif f.kind == "paper":
                row.append(number(value) if isinstance(value, (int, float)) else "")
            else:
                row.append("" if value is None else str(value))
        writer.writerow(row)
    return out.getvalue()


LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
LATEX_SYMBOLS = {"±": r"$\pm$", "Δ": r"$\Delta$", "†": r"$^\dagger$", "✓": r"\checkmark", "—": "--", "–": "--",
                 "≥": r"$\geq$"}


def latex_text(text: str) -> str:
    escaped = "".join(LATEX_SPECIALS.get(ch, ch) for ch in text)
    return "".join(LATEX_SYMBOLS.get(ch, ch) for ch in escaped)


def to_latex(table: Table) -> str:
    """A booktabs ``table`` (needs ``\\usepackage{booktabs,amssymb}``); check marks are ``\\checkmark``."""
    shown = [i for i, f in enumerate(table.fields) if not f.csv_only]
    align = "".join("l" if table.fields[i].kind == "text" else "c" if table.fields[i].kind == "mark" else "r"
                    for i in shown)
    lines = [f"% {line}" for line in table.provenance]
    lines += ["% needs \\usepackage{booktabs} and \\usepackage{amssymb} (for \\checkmark)",
              "\\begin{table}[htbp]", "\\centering",
              f"\\caption{{{latex_text(table.title)}. {latex_text(table.subtitle)}.}}",
              f"\\label{{tab:{table.slug}}}", f"\\begin{{tabular}}{{{align}}}", "\\toprule",
              " & ".join(latex_text(table.fields[i].header) for i in shown) + " \\\\", "\\midrule"]
    for cells in table.rows:
        texts = [latex_text(format_delta(cells[i], star="")) + ("$^{*}$" if cells[i] and cells[i].significant else "")
                 if table.fields[i].kind == "delta" else
                 latex_text(format_cell(cells[i], table.fields[i].kind, table.fields[i].unit)) for i in shown]
        lines.append(" & ".join(texts) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    if table.notes:
        lines.append("\\par\\footnotesize " + " \\\\\n".join(latex_text(n) for n in table.notes))
    lines.append("\\end{table}")
    return "\n".join(lines) + "\n"


RENDERERS = {"md": to_markdown, "csv": to_csv, "tex": to_latex}


# --------------------------------------------------------------------------------------------------------------
# Provenance and output
# --------------------------------------------------------------------------------------------------------------


def provenance_lines(group: RunGroup, argv: Sequence[str]) -> list[str]:
    """Where a group's tables come from: this command, the training commands and commits, the scale."""
    import rsseg
    from rsseg.results import git_commit

    commands = list(dict.fromkeys(str(r.payload["command"]) for r in group.runs if r.payload.get("command")))
    commits = list(dict.fromkeys(str(r.payload["git_commit"]) for r in group.runs if r.payload.get("git_commit")))
    lines = [f"written by: rsseg tables {shlex.join(argv)}",
             f"rsseg {rsseg.__version__} at commit {git_commit() or 'unknown (not a git checkout)'}"]
    lines += [f"trained by: {c}" for c in commands] or ["trained by: (the runs do not record their command)"]
    lines.append(f"runs at commit: {', '.join(commits) if commits else 'unknown'}")
    if group.scale == "full":
        lines.append("scale: full (the experiment's recipe as configured)")
    else:
        lines.append(f"scale: {group.scale} -- REDUCED BUDGET: these numbers come from a shortened training run "
                     f"(scale={group.scale}) and are not comparable with the paper's")
    return lines


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary name in ``path``'s folder to write to; renamed to ``path`` only when the block succeeds, so
    no reader ever sees a half-written table or figure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def build_tables(paths: Sequence[str], options: TableOptions, argv: Sequence[str]) -> list[GroupTables]:
    """Read every run under ``paths`` and build each group's tables in memory (nothing is written)."""
    result_files, error_files = find_records(paths)
    runs = [RunRecord.read(p) for p in result_files]
    failures = [FailedJob.read(p) for p in error_files]
    groups = sorted(group_runs(runs, failures), key=lambda g: g.slug)
    return [GroupTables(group, options, provenance_lines(group, argv)) for group in groups]


def markdown_for_results(path: str | Path) -> str:
    """The markdown tables of one run's ``results.json`` without provenance or intervals: what a training run
    prints (``python train.py experiment=mst_params`` prints the sizes table this way)."""
    group = group_runs([RunRecord.read(Path(path))], [])[0]
    return "\n".join(to_markdown(t, provenance=False) for t in GroupTables(group, TableOptions(bootstrap=0), []).tables())


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, as every rsseg command reports bad input
        raise ConfigError(f"rsseg tables: {message}; see rsseg tables --help")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = _Parser(prog="rsseg tables", description="Paper tables (markdown, CSV, LaTeX) and figures from the "
                                                      "results.json of training runs and sweeps.")
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="run folders, sweep folders or results.json files (folders are searched recursively)")
    parser.add_argument("--out", help="output folder (default: <first PATH>/tables)")
    parser.add_argument("--format", default="md,csv,tex", help="comma-separated: md, csv, tex (default: all)")
    parser.add_argument("--split", choices=SPLITS, help="the split to report (default: the table spec's, "
                                                        "falling back to val for runs without it)")
    parser.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                        help="bootstrap resamples over evaluation scenes for 95 %% intervals (0: none)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resamples")
    parser.add_argument("--no-figures", action="store_true", help="write the tables only")
    parser.add_argument("--figure-tiles", type=int, default=4, metavar="N",
                        help="validation tiles in the prediction grid (default 4; 0: no grid)")
    args = parser.parse_args(list(argv))
    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if not formats or unknown:
        raise ConfigError(f"--format {args.format}: unknown format {unknown[0] if unknown else '(none)'!r}; "
                          f"expected a comma-separated list of {', '.join(FORMATS)}")
    if args.bootstrap < 0 or args.figure_tiles < 0:
        raise ConfigError("--bootstrap and --figure-tiles: negative count; expected 0 or more")
    args.formats = formats
    return args


def default_out(first: str) -> Path:
    path = Path(first).expanduser()
    return (path.parent if path.is_file() else path) / "tables"


def main(argv: list[str] | None = None) -> int:
    """``rsseg tables PATH... [--out DIR] [--format md,csv,tex] [--split val|test] [--bootstrap N] ...``"""
    argv = list(sys.argv[1:] if argv is None else argv)
    out = Path(".")
    try:
        args = parse_args(argv)
        out = Path(args.out).expanduser() if args.out else default_out(args.paths[0])
        built = build_tables(args.paths, TableOptions(args.split, args.bootstrap, args.seed), argv)
        rendered = [(builder, builder.tables()) for builder in built]
        files = {out / f"{table.slug}{FORMATS[fmt]}": RENDERERS[fmt](table)
                 for _, tables in rendered for table in tables for fmt in args.formats}
        for path, text in files.items():
            write_text_atomic(path, text)
    except RssegError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: {error.filename or out}: cannot write ({error.strerror}); expected a writable --out folder",
              file=sys.stderr)
        return 2
    for _, tables in rendered:
        print("\n".join(markdown_provenance(tables[0].provenance)) + "\n")
        for table in tables:
            print(to_markdown(table, provenance=False))
    figures: list[Path] = []
    if not args.no_figures:
        from rsseg.figures import write_group_figures

        for builder, _ in rendered:
            written, notes = write_group_figures(builder, out / "figures", args.figure_tiles)
            figures += written
            for note in notes:
                print(f"note: {note}", file=sys.stderr)
    print(f"wrote {len(files)} table files and {len(figures)} figure files under {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
