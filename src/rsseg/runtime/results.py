"""Run records: the ``results.json`` every training or evaluation run leaves in its output folder."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from rsseg.runtime.files import replaced_when_complete


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
    path = Path(path)
    with replaced_when_complete(path) as tmp, open(tmp, "w") as handle:
        json.dump(jsonable(payload), handle, indent=2, allow_nan=False)
        handle.write("\n")
    return path
