"""Grouping runs: one :class:`RunGroup` per (experiment, dataset, scale), whose tables share a spec and a class
list, and its :class:`Row` objects in the paper's order (one run per seed, failed jobs kept)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsseg.runtime.files import natural_key
from rsseg.tables.records import FailedJob, RunRecord, dig, input_error

GENERIC_COLUMNS = ("miou", "oa", "mf1", "f1_paper", "mib")


@dataclass
class Row:
    """One row of a table: the runs (one per seed) of one model or configuration, and its failed jobs."""

    name: str
    label: str
    marks: dict = field(default_factory=dict)
    runs: list[RunRecord] = field(default_factory=list)
    failures: list[FailedJob] = field(default_factory=list)
    in_spec: bool = True
    shared_from: str | None = None  # the experiment whose runs the row shows (trained once for both tables)

    @property
    def missing(self) -> bool:
        return not self.runs

    @property
    def selected_on(self) -> str:
        """``test`` when any run's checkpoint was chosen on the test split, ``val`` when every run records
        validation, ``""`` when the runs do not record it."""
        splits = {run.selected_on for run in self.runs}
        return "test" if "test" in splits else "val" if splits == {"val"} else ""


@dataclass
class RunGroup:
    """The runs of one (experiment, dataset, scale): they make one set of tables."""

    experiment: str | None
    data: str
    scale: str
    runs: list[RunRecord] = field(default_factory=list)
    failures: list[FailedJob] = field(default_factory=list)
    # spec rows without runs of their own, filled from another experiment's identical runs (:func:`share_runs`)
    shared: dict[str, tuple[str, list[RunRecord]]] = field(default_factory=dict)

    @property
    def all_runs(self) -> list[RunRecord]:
        """The group's own runs and those it shares with another experiment's table."""
        return self.runs + [run for _, runs in self.shared.values() for run in runs]

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
        for name, (experiment, runs) in self.shared.items():
            if name in by_name and not by_name[name].runs:
                by_name[name].runs, by_name[name].shared_from = list(runs), experiment
                _describe(by_name[name], runs[0].row)
                notes.append(f"row {name}: the runs of {experiment} (the same configuration and seeds; trained once "
                             f"for both tables)")
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


def share_runs(groups: list[RunGroup]) -> None:
    """Give an experiment's spec rows that have no runs of their own the runs of that row in another experiment on
    the same data and scale, when both experiments train under the same recipe (``mst_compare`` and
    ``mst_ablation`` share their Xception and MST-DeepLabv3+ rows): such a row is trained once, shown in both."""
    for group in groups:
        own = {str(r.row.get("name")) for r in group.runs} | {str(f.row.get("name")) for f in group.failures}
        reference = next(iter(group.runs), None)
        for name in [str(n) for n in group.spec.get("rows") or [] if str(n) not in own]:
            for other in groups:
                if other is group or other.experiment is None or (other.data, other.scale) != (group.data, group.scale):
                    continue
                runs = [r for r in other.runs if str(r.row.get("name")) == name]
                if runs and (reference is None or _recipe(reference) == _recipe(runs[0])):
                    group.shared[name] = (str(other.experiment), runs)
                    break


RECIPE_KEYS = ("optimizer", "scheduler", "data", "protocol", "trainer", "loss", "aug")


def _recipe(run: RunRecord) -> dict:
    """What a run's experiment decides, whatever the row and seed: optimiser, schedule, data, protocol, budget,
    loss and augmentation (paths written back as a resumed run compares them)."""
    from rsseg.training.resume import comparable

    config = comparable(run.payload.get("config") or {})
    recipe = {key: config.get(key) for key in RECIPE_KEYS}
    if isinstance(recipe["data"], dict):
        recipe["data"] = {k: v for k, v in recipe["data"].items() if k != "seed"}
    return recipe


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
    result = list(groups.values())
    share_runs(result)
    return result
