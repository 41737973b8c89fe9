"""Columns and values: the metrics and sizes a table can show, a spec's ``columns`` expanded into
:class:`Column` objects (``per_class.<m>``, ``<m>@positive``), and reading a value from a run."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rsseg.errors import ConfigError
from rsseg.tables.records import RunRecord, dig

SUMMARY_METRICS = {"miou": "mIoU", "oa": "OA", "mprecision": "mPrecision", "mrecall": "mRecall", "mf1": "mF1",
                   "f1_paper": "F1(mP,mR)"}
SIZE_COLUMNS = {"params": "Params", "mib": "MiB", "gflops": "GFLOPs"}
PER_CLASS_METRICS = {"iou": "IoU", "f1": "F1", "precision": "Precision", "recall": "Recall"}
CLASS_MEAN = {"iou": "miou", "f1": "mf1", "precision": "mprecision", "recall": "mrecall"}


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


@dataclass(frozen=True)
class PaperNumbers:
    """The paper's numbers for one dataset (``table.paper.<data>``: ``note`` and ``rows``; ``any`` for numbers
    that do not depend on the dataset), or why a table of this dataset has none (``missing``)."""

    rows: dict
    note: str | None = None
    missing: str | None = None

    def value(self, row: str, key: str) -> float | None:
        """The paper's number for ``row`` at ``key`` (``miou``, ``per_class.iou.road``, ``f1@positive``)."""
        entry = self.rows.get(row) or {}
        raw = entry.get(key) if key in entry else dig(entry, key)
        return float(raw) if isinstance(raw, (int, float)) else None

    def has(self, key: str, rows: Sequence[str]) -> bool:
        return any(self.value(r, key) is not None for r in rows)


def paper_numbers(spec: dict, data: str) -> PaperNumbers:
    """The paper's numbers of ``spec`` for dataset ``data``; a dataset the paper did not use gets none, and says so."""
    by_data = spec.get("paper") or {}
    entry = by_data.get(data) or by_data.get("any")
    if isinstance(entry, dict) and isinstance(entry.get("rows"), dict):
        return PaperNumbers(dict(entry["rows"]), entry.get("note"))
    if not by_data:
        return PaperNumbers({})
    source = spec.get("source") or "the paper"
    return PaperNumbers({}, missing=f"no paper column: {source} reports no results on {data} (it reports "
                                    f"{', '.join(sorted(by_data))})")


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
