"""Reading runs: the ``results.json`` of a training job (:class:`RunRecord`, checked against the schema the
tables rely on), the ``error.json`` of a failed one (:class:`FailedJob`), finding both under the paths given, and
the one-line error of bad input."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rsseg.errors import DataError
from rsseg.runtime.files import natural_key

LAYOUTS = ("comparison", "ablation", "params")
# Overrides that do not change what a run measures: left out when telling a sweep's configurations apart.
NEUTRAL_OVERRIDES = {"seed", "logger", "data.root", "data.num_workers", "trainer.devices", "trainer.accelerator",
                     "trainer.num_nodes", "trainer.strategy", "ckpt_path", "pretrained_weights"}
NEUTRAL_PREFIXES = ("hydra.", "hydra/", "paths.")
RESULTS_EXPECTED = "expected the results.json a training run writes (python train.py, rsseg train)"
PATH_EXPECTED = "expected a run folder, a sweep folder or a results.json file"


def input_error(where: Any, why: str, expected: str = RESULTS_EXPECTED) -> DataError:
    """The one-line error of bad input: ``<what>: <why>; <expected>``."""
    return DataError(f"{where}: {why}; {expected}")


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

    @property
    def selected_on(self) -> str | None:
        """The split whose metric chose the reported checkpoint (``results.json`` ``selection.split``)."""
        return dig(self.payload, "selection.split")

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
