"""A record beside each output of a region's prediction: what it was made from, what it holds, how it ended.

``<stem>_record.json`` sits beside ``<stem>_classes.tif``. It is written as ``running`` before the scene starts and
as ``done`` (class counts, tiles, stage times) or ``failed`` (the one-line error) when it ends, each time
atomically. A re-launched prediction reads it to decide per scene:

* **skip** the scene when the record is ``done``, for the same model and settings (:func:`fingerprint`), the
  same input (size and modification time) and every planned output is there;
* **redo** it otherwise: a record that is ``running`` (the run was killed mid-scene), ``failed``, for other
  settings or an input changed since; the outputs it replaces are rsseg's own, as the record shows. An output with
  no record beside it is someone else's file and is replaced only with ``overwrite=true``.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from rsseg.runtime.results import write_results

STATUSES = ("running", "done", "failed")
# Settings that change what a scene's outputs hold; device, batch size, threads and compile change only speed.
SETTINGS = ("tile_size", "overlap", "blend", "tta", "bands", "nodata", "precision", "confidence", "probabilities",
            "cog", "preview", "preview_size")


def record_path(classes: Path) -> Path:
    stem = classes.stem.removesuffix("_classes")
    return classes.with_name(f"{stem}_record.json")


def fingerprint(ckpt: str, settings: dict) -> dict:
    """The model (checkpoint path, size and modification time: hashing a large checkpoint on every shard would
    cost more than it saves) and the settings that shape the outputs, with a short hash of both."""
    path = Path(str(ckpt)).expanduser()
    stat = path.stat() if path.exists() else None
    model = {"ckpt": str(path.resolve()), "size": stat.st_size if stat else None,
             "mtime": stat.st_mtime if stat else None}
    shaped = {key: settings.get(key) for key in SETTINGS}
    digest = hashlib.sha256(json.dumps([model, shaped], sort_keys=True, default=str).encode()).hexdigest()[:16]
    return {"hash": digest, "model": model, "settings": shaped}


def input_stamp(path: Path) -> dict:
    stat = Path(path).stat()
    return {"path": str(path), "size": stat.st_size, "mtime": stat.st_mtime}


def read_record(classes: Path) -> dict | None:
    path = record_path(classes)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("status") in STATUSES else None


def is_complete(record: dict | None, plan: dict[str, Path], source: Path, print_: dict) -> bool:
    """Whether a scene's outputs are complete for this model, these settings and this input."""
    if not record or record.get("status") != "done":
        return False
    if record.get("fingerprint", {}).get("hash") != print_["hash"]:
        return False
    try:
        stamp = input_stamp(source)
    except OSError:
        return False
    if {k: record.get("input", {}).get(k) for k in ("size", "mtime")} != {"size": stamp["size"], "mtime": stamp["mtime"]}:
        return False
    return all(out.is_file() for out in plan.values())


def write_record(plan: dict[str, Path], source: Path, print_: dict, status: str, **details) -> dict:
    """Write a scene's record (atomically) and return it."""
    try:
        stamp = input_stamp(source)
    except OSError:
        stamp = {"path": str(source), "size": None, "mtime": None}
    record = {"status": status, "input": stamp, "outputs": {k: str(v) for k, v in plan.items()},
              "fingerprint": print_, "time": time.time(), **details}
    write_results(record_path(plan["classes"]), record)
    return record
