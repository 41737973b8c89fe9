"""Building tables: :class:`GroupTables` turns one group's runs into the main table of its spec's layout
(comparison, ablation, params) and its per-class tables, as :class:`Table` objects of :class:`Field` columns
ready to render; :func:`build_tables` does it for every group under the paths given, with each group's provenance."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rsseg.errors import ConfigError
from rsseg.runtime.console import progress
from rsseg.tables.bootstrap import Delta, Estimate, SeedSceneBootstrap, summarise
from rsseg.tables.columns import (
    CLASS_MEAN,
    PER_CLASS_METRICS,
    SIZE_COLUMNS,
    Column,
    expand_columns,
    paper_numbers,
    positive_class,
)
from rsseg.tables.groups import GENERIC_COLUMNS, Row, RunGroup, group_runs
from rsseg.tables.marks import mark_cell, switched_off_notes
from rsseg.tables.records import FailedJob, RunRecord, dig, find_records


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
    """The command line's choices: the split to report (None: the spec's), bootstrap resamples (0: none), seed,
    and the interval method (percentile or bca)."""

    split: str | None = None
    bootstrap: int = 1000
    seed: int = 0
    interval: str = "percentile"


class GroupTables:
    """Builds every table of one group: the main table of the spec's layout and the per-class tables."""

    def __init__(self, group: RunGroup, options: TableOptions, provenance: list[str]) -> None:
        self.group, self.options, self.provenance = group, options, provenance
        self.spec = group.spec
        self.paper = paper_numbers(self.spec, group.data)
        self.class_names = group.class_names
        self.rows, self.notes = group.rows()
        self.split = options.split or self.spec.get("split") or "test"
        self.row_splits = {row.name: self._row_split(row) for row in self.rows}
        self.bootstrap = None
        if options.bootstrap > 0 and self.class_names:
            self.bootstrap = SeedSceneBootstrap(options.bootstrap, options.seed, self.class_names,
                                                group.exclude_from_mean, options.interval)

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

    def _cells_note(self, cells: Sequence[Estimate | Delta]) -> str:
        """What the metric cells hold, read from the cells themselves: no ± or interval that no cell shows."""
        estimates = [c for c in cells if isinstance(c, Estimate)]
        if any(e.std is not None for e in estimates):
            note = "cells: mean ± sample standard deviation over the row's seeds (n)"
            note += "; a row of one seed shows its value alone" if any(e.n == 1 for e in estimates) else ""
        else:
            note = "cells: the value of each row's one run (n = 1 seed)" if all(e.n == 1 for e in estimates) \
                else "cells: mean over the row's seeds (n)"
        note += ", metrics in %"
        if self.bootstrap is not None and any(e.low is not None for e in estimates):
            note += f"; [low, high]: {self.bootstrap.describe()}"
        if any(c.scenes_only and (not isinstance(c, Estimate) or c.low is not None) for c in cells):
            note += "; § = one seed, the interval resamples the scenes only"
        return note

    def _common_notes(self, with_paper: bool, cells: Sequence[Estimate | Delta]) -> list[str]:
        notes = []
        fallback = [r.name for r in self.rows if r.runs and self.row_splits[r.name] != self.split]
        if fallback:
            notes.append(f"split: {self.split}, or val for rows whose runs have no {self.split} split "
                         f"({', '.join(fallback)})")
        counts = [len(r.scenes(self.row_splits[row.name]) or []) for row in self.rows for r in row.runs]
        notes.append(self._cells_note(cells))
        if self.bootstrap is not None and counts and max(counts) == 0:
            notes.append("no intervals: the runs' results.json hold no per-scene confusion matrices (scenes)")
        elif self.bootstrap is not None and counts and max(counts) == 1:
            notes.append("no intervals: one evaluation scene (resampling scenes needs two or more)")
        if with_paper and self.paper.rows:
            notes.append(f"(paper): the paper's reported numbers, {self.paper.note or self.spec.get('source')}")
        elif with_paper and self.paper.missing:
            notes.append(self.paper.missing)
        on_test = [r.name for r in self.rows if r.selected_on == "test"]
        if on_test:
            notes.append(f"‡: the checkpoint was chosen on the test split (protocol.select_on=test), as the papers "
                         f"did: optimistic, not comparable with rows chosen on validation ({', '.join(on_test)})")
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
        if row.missing:
            return f"{row.label} (missing)"
        return f"{row.label} ‡" if row.selected_on == "test" else row.label

    def _estimate(self, row: Row, column: Column) -> Estimate | None:
        split = self.row_splits[row.name]
        estimate = summarise([column.value(run, split) for run in row.runs])
        if estimate is not None and not column.from_confusion:  # a size is the same for every seed
            return Estimate(estimate.mean, None, estimate.n)
        if estimate is None or self.bootstrap is None:
            return estimate
        replicates = self.bootstrap.row_replicates(row, split, column)
        if replicates is None:
            return estimate
        interval = self.bootstrap.interval(replicates, estimate.mean, self._jackknife(row, split, column))
        if interval is None:
            return estimate
        return Estimate(estimate.mean, estimate.std, estimate.n, *interval, scenes_only=len(row.runs) == 1)

    def _jackknife(self, row: Row, split: str, column: Column):
        return self.bootstrap.row_jackknife(row, split, column) if self.bootstrap.method == "bca" else None

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
                mean_ours = summarise([column.value(r, split) for r in row.runs])
                mean_theirs = summarise([column.value(r, split) for r in above.runs])
                if ours is not None and theirs is not None and mean_ours and mean_theirs:
                    observed = mean_ours.mean - mean_theirs.mean
                    jackknife = None
                    if self.bootstrap.method == "bca":
                        jackknife = self._jackknife(row, split, column) - self._jackknife(above, split, column)
                    interval = self.bootstrap.interval(ours - theirs, observed, jackknife)
                    if interval:
                        one_seed = len(row.runs) == 1 or len(above.runs) == 1
                        deltas[row.name] = Delta(observed, *interval, scenes_only=one_seed)
            above = row
        return deltas

    # -- the layouts -------------------------------------------------------------------------------------------

    def main_table(self, layout: str) -> Table:
        positive = positive_class(self.spec, self.class_names)
        columns = expand_columns(self.spec.get("columns") or GENERIC_COLUMNS, self.class_names, positive)
        names = [r.name for r in self.rows]
        marks = [str(m) for m in self.spec.get("marks") or []] if layout == "ablation" else []
        fields = [Field("row", "row", "text", csv_only=True), Field("label", "Model", "text")]
        fields += [Field(f"mark:{m}", m, "mark") for m in marks]
        for column in columns:
            unit = " (%)" if column.from_confusion else ""
            fields.append(Field(column.key, f"{column.label}{unit}", "estimate", column.unit))
            if self.paper.has(column.paper_key, names):
                fields.append(Field(f"{column.key}:paper", f"{column.label} (paper)", "paper", column.unit))
        fields.append(Field("seeds", "n", "count"))
        primary = next((c for c in columns if c.from_confusion and not c.key.startswith("per_class.")), None)
        primary = primary or next((c for c in columns if c.from_confusion), None)
        deltas = self._deltas(primary) if self.bootstrap is not None and primary is not None else None
        deltas = deltas or None  # no pair of rows scored on the same scenes: no column
        if deltas is not None:
            fields.append(Field(f"delta:{primary.key}", f"Δ {primary.label} vs above", "delta"))
        steps, steps_from = self._paper_steps(layout, primary)
        if steps:
            fields.append(Field(f"delta:{primary.key}:paper", f"Δ {primary.label} (paper, {steps_from})", "paper",
                                "signed"))
        fields += [Field("split", "split", "text", csv_only=True), Field("selected_on", "selected on", "text", csv_only=True)]

        rows = []
        for row in self.rows:
            cells: list[Any] = [row.name, self._row_label(row)]
            cells += [mark_cell(row, m, self.spec) for m in marks]
            for column in columns:
                cells.append(None if row.missing else self._estimate(row, column))
                if any(f.name == f"{column.key}:paper" for f in fields):
                    cells.append(self.paper.value(row.name, column.paper_key))
            cells.append(len(row.runs))
            if deltas is not None:
                cells.append(deltas.get(row.name))
            if steps:
                cells.append(steps.get(row.name))
            cells += [self.row_splits[row.name] if row.runs else "", row.selected_on]
            rows.append(cells)

        metric_cells = [c for cells in rows for f, c in zip(fields, cells)
                        if (f.kind == "estimate" and f.unit == "percent") or f.kind == "delta"]
        notes = self._common_notes(with_paper=True, cells=[c for c in metric_cells if c is not None])
        notes += switched_off_notes(self.rows, self.spec, self.group.scale) if marks else []
        if positive is None and any("@" in str(c) for c in self.spec.get("columns") or []):
            notes.append(f"no positive class: none of {self.spec.get('positive_class')} is a class of "
                         f"{self.group.data} ({', '.join(self.class_names)})")
        if deltas is not None:
            notes.append(f"Δ {primary.label} vs above: difference of the means to the nearest row above with runs, "
                         f"[paired 95 % bootstrap interval]; * = the interval excludes 0 (significant at 95 %); "
                         f"a difference with a row of one seed (§) gets no *: that row's seed variance is not in it")
        if steps:
            notes.append(f"Δ {primary.label} (paper, {steps_from}): each step of the paper's ablation on {steps_from} "
                         f"(its row minus the row above), beside ours for its direction")
        title = str(self.spec.get("title") or "Comparison")
        return Table(self.group.slug, title, self._subtitle(), fields, rows, notes, self.provenance)

    def _paper_steps(self, layout: str, primary: Column | None) -> tuple[dict[str, float], str | None]:
        """An ablation's steps in the paper (``table.direction_from``: the dataset whose paper rows give them)."""
        source = self.spec.get("direction_from")
        if layout != "ablation" or not source or primary is None:
            return {}, None
        paper = paper_numbers(self.spec, str(source))
        steps, above = {}, None
        for row in self.rows:
            value = paper.value(row.name, primary.paper_key)
            if value is not None and above is not None:
                steps[row.name] = value - above
            above = value if value is not None else above
        return steps, str(source)

    def per_class_table(self, metric: str) -> Table:
        if metric not in PER_CLASS_METRICS:
            raise ConfigError(f"table.per_class: unknown metric {metric!r}; expected one of "
                              f"{', '.join(PER_CLASS_METRICS)}")
        excluded = {str(c) if isinstance(c, str) else self.class_names[c] for c in self.group.exclude_from_mean}
        columns = [Column(f"per_class.{metric}.{c}", f"per_class.{metric}.{c}", c, "percent") for c in self.class_names]
        columns.append(Column(CLASS_MEAN[metric], CLASS_MEAN[metric], "mean", "percent"))
        fields = [Field("row", "row", "text", csv_only=True), Field("label", "Model", "text")]
        names = [r.name for r in self.rows]
        with_paper = {c.key for c in columns if self.paper.has(c.key, names)}
        for c in columns:
            fields.append(Field(c.key, f"{c.label}†" if c.label in excluded else c.label, "estimate"))
            if c.key in with_paper:
                fields.append(Field(f"{c.key}:paper", f"{c.label} (paper)", "paper"))
        fields += [Field("seeds", "n", "count"), Field("split", "split", "text", csv_only=True),
                   Field("selected_on", "selected on", "text", csv_only=True)]
        rows = []
        for row in self.rows:
            cells: list[Any] = [row.name, self._row_label(row)]
            for c in columns:
                cells.append(None if row.missing else self._estimate(row, c))
                if c.key in with_paper:
                    cells.append(self.paper.value(row.name, c.key))
            cells += [len(row.runs), self.row_splits[row.name] if row.runs else "", row.selected_on]
            rows.append(cells)
        notes = self._common_notes(with_paper=True, cells=[c for cells in rows for c in cells if isinstance(c, Estimate)])
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
        fields = [Field("row", "row", "text", csv_only=True), Field("label", "Model", "text"),
                  Field("model", "model", "text")]
        for column in wanted:
            fields.append(Field(column, SIZE_COLUMNS[column], "estimate", column))
            if self.paper.has(column, names):
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
                    cells.append(self.paper.value(name, column))
            rows.append(cells)
            if entry is None:
                notes.append(f"missing row: {name}: no size in {latest.path if latest else 'any results.json'}")
        notes.append("MiB = params x 4 / 2^20 (the papers' MB); GFLOPs at the training tile size")
        if self.paper.rows:
            notes.append(f"(paper): the paper's reported sizes, {self.paper.note or self.spec.get('source')}")
        notes += [f"failed: {f.error} ({f.path})" for f in self.group.failures]
        title = str(self.spec.get("title") or "Parameter sizes")
        subtitle = "; ".join(p for p in (self.spec.get("source"), f"data {self.group.data}") if p)
        return Table(self.group.slug, title, subtitle, fields, rows, notes, self.provenance)


def provenance_lines(group: RunGroup, argv: Sequence[str]) -> list[str]:
    """Where a group's tables come from: this command, the training commands and commits, the scale. Nothing of
    the moment the tables are written (the output folder, today's commit): the same runs give the same files."""
    runs = group.all_runs
    commands = list(dict.fromkeys(str(r.payload["command"]) for r in runs if r.payload.get("command")))
    commits = list(dict.fromkeys(str(r.payload["git_commit"]) for r in runs if r.payload.get("git_commit")))
    versions = list(dict.fromkeys(str(r.payload["rsseg_version"]) for r in runs if r.payload.get("rsseg_version")))
    lines = [f"written by: rsseg tables {shlex.join(argv)}"]
    lines += [f"trained by: {c}" for c in commands] or ["trained by: (the runs do not record their command)"]
    lines.append(f"runs at commit: {', '.join(commits) if commits else 'unknown'}"
                 + (f" (rsseg {', '.join(versions)})" if versions else ""))
    if group.scale == "full":
        lines.append("scale: full (the experiment's recipe as configured)")
    else:
        lines.append(f"scale: {group.scale} -- REDUCED BUDGET: these numbers come from a shortened training run "
                     f"(scale={group.scale}) and are not comparable with the paper's")
    return lines


def build_tables(paths: Sequence[str], options: TableOptions, argv: Sequence[str]) -> list[GroupTables]:
    """Read every run under ``paths`` and build each group's tables in memory (nothing is written)."""
    result_files, error_files = find_records(paths)
    runs = [RunRecord.read(p) for p in progress(result_files, "reading runs", "run")]
    failures = [FailedJob.read(p) for p in error_files]
    groups = sorted(group_runs(runs, failures), key=lambda g: g.slug)
    return [GroupTables(group, options, provenance_lines(group, argv)) for group in groups]
