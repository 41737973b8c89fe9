"""Run records: the ``results.json`` every training or evaluation run leaves in its output folder."""

from __future__ import annotations

import json
import math
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from rsseg.runtime.files import replaced_when_complete

RESULTS = "results.json"
ERROR = "error.json"


def in_multirun() -> bool:
    """True inside a job of a Hydra multirun (``python train.py -m ...``)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:
        return False


def job_folder() -> Path | None:
    """The folder of this Hydra multirun job, else None."""
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir) if in_multirun() else None


def jsonable(value: Any) -> Any:
    """``value`` with tensors, numpy scalars and tuples as JSON types and non-finite floats as None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # tensors, numpy arrays and numpy scalars, without importing torch here
        return jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN; an absent class is reported as null
    return value


def write_results(path: str | Path, payload: dict) -> Path:
    """Write ``payload`` as JSON atomically: a temporary file in the same folder, then a rename."""
    return write_together({path: payload})[0]


def write_together(payloads: dict) -> list[Path]:
    """Write several JSON files (``{path: payload}``) so that they appear together: each is written to a
    temporary first, and the renames follow only once every one of them is complete."""
    with ExitStack() as stack:
        for path, payload in payloads.items():
            tmp = stack.enter_context(replaced_when_complete(path))
            with open(tmp, "w") as handle:
                json.dump(jsonable(payload), handle, indent=2, allow_nan=False)
                handle.write("\n")
    return [Path(path) for path in payloads]
