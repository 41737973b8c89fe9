"""Run records: the ``results.json`` every training or evaluation run leaves in its output folder."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path
from typing import Any

import torch

from rsseg.files import replaced_when_complete


def jsonable(value: Any) -> Any:
    """``value`` with tensors, numpy scalars and tuples as JSON types and non-finite floats as None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN; an absent class is reported as null
    if hasattr(value, "item") and callable(value.item):
        return jsonable(value.item())
    return value


def write_results(path: str | Path, payload: dict) -> Path:
    """Write ``payload`` as JSON atomically: a temporary file in the same folder, then a rename."""
    path = Path(path)
    with replaced_when_complete(path) as tmp, open(tmp, "w") as handle:
        json.dump(jsonable(payload), handle, indent=2, allow_nan=False)
        handle.write("\n")
    return path


def git_commit(cwd: str | Path | None = None) -> str | None:
    """The commit of the rsseg checkout, with ``-dirty`` when it has uncommitted changes; None outside git."""
    where = Path(cwd) if cwd else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where, capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if dirty else commit
