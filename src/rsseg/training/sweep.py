"""Sweeps that finish: a re-launched sweep skips the jobs it already did, a failing job does not stop the others.

lightning-hydra-template cannot resume a multirun and one failing job ends the whole sweep. rsseg's training
jobs (see :func:`rsseg.training.command.main`) instead

* skip themselves when their folder already holds a ``results.json`` written for the same resolved config (so
  running the same sweep command again re-runs only the failed, killed or changed jobs);
* record a failure as ``error.json`` in the job folder (the one-line error, the traceback and the resolved
  config) and return NaN, so the launcher goes on with the next job and an Optuna sweeper counts a failed trial;
* and :class:`SweepSummary`, a Hydra callback, prints one line per job of the launch when the sweep ends and exits
  with status 1 when any of them failed.

A named experiment's sweep folder is fixed (``multirun/<experiment>/<scale>``, conf/hydra/experiment.yaml), so the
same command finds its earlier jobs; any other sweep is resumed by giving its folder: ``hydra.sweep.dir=<folder>``.
"""

from __future__ import annotations

import json
import math
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from rsseg.runtime.results import ERROR, RESULTS, in_multirun, jsonable, write_results  # noqa: F401 - re-exported


def same_config(stored: Any, resolved: dict) -> bool:
    """Whether a stored (JSON) config is the resolved config, compared as JSON would store it and without the
    keys that do not change what a run computes (where it writes, how it resumes, what it logs:
    :data:`rsseg.training.resume.VOLATILE`)."""
    from rsseg.training.resume import comparable

    if not isinstance(stored, dict):
        return False
    return comparable(stored) == comparable(json.loads(json.dumps(jsonable(resolved))))


def finished_results(folder: Path, resolved: dict) -> dict | None:
    """The results a job folder already holds for exactly this resolved config, else None."""
    path = Path(folder) / RESULTS
    if not path.is_file():
        return None
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(results, dict) or results.get("status", "done") != "done":
        return None
    return results if same_config(results.get("config"), resolved) else None


def is_interrupt(error: BaseException) -> bool:
    """Whether a job stopped because the sweep was told to stop (SIGTERM or Ctrl-C), not because it failed:
    rsseg's ``Interrupted``, Lightning's SIGTERM stop, or a DataLoader worker killed by the same SIGTERM (a
    signal to the whole process group reaches the workers first)."""
    from rsseg.errors import Interrupted

    if isinstance(error, Interrupted) or type(error).__name__ == "SIGTERMException":
        return True
    return isinstance(error, RuntimeError) and "DataLoader worker" in str(error) and "signal: Terminated" in str(error)


def record_failure(folder: Path, resolved: dict, error: BaseException) -> Path:
    """Write ``error.json`` (one-line error, traceback, resolved config) into a failed job's folder."""
    message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    payload = {
        "status": "failed",
        "error": f"{type(error).__name__}: {message}",
        "traceback": "".join(traceback.format_exception(type(error), error, error.__traceback__)),
        "config": resolved,
    }
    return write_results(Path(folder) / ERROR, payload)


def clear_failure(folder: Path) -> None:
    (Path(folder) / ERROR).unlink(missing_ok=True)


def sweep_metric(results: dict | None) -> float:
    """What a sweeper optimises: the validation mIoU, NaN for a failed job."""
    if not results:
        return math.nan
    value = results.get("metrics", {}).get("val", {}).get("miou")
    return math.nan if value is None else float(value)


class SweepSummary(Callback):
    """At the end of a multirun, one line per job of this launch (done, skipped, failed) and exit status 1 when
    any job failed. Jobs are recognised by the ``.hydra`` folder Hydra writes into each job folder at its start."""

    def __init__(self) -> None:
        self.started = time.time()

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.started = time.time() - 1.0  # file times have coarse resolution on some file systems

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        jobs = self.jobs(sweep_dir)
        if not jobs:
            return
        failed = [job for job in jobs if job["status"] == "failed"]
        lines = [f"sweep {sweep_dir}: {len(jobs)} jobs, {sum(j['status'] == 'done' for j in jobs)} done, "
                 f"{sum(j['status'] == 'skipped' for j in jobs)} skipped (finished before), {len(failed)} failed"]
        for job in jobs:
            lines.append(f"  {job['status']:<8} {job['folder']}  {job['detail']}")
        print("\n".join(lines))
        if failed:
            for job in failed:
                print(f"error: sweep job {job['folder']} failed: {job['detail']}; see {job['folder']}/{ERROR}",
                      file=sys.stderr)
            sys.exit(1)

    def jobs(self, sweep_dir: Path) -> list[dict]:
        jobs = []
        for marker in sorted(sweep_dir.rglob(".hydra/overrides.yaml")):
            folder = marker.parent.parent
            if marker.stat().st_mtime < self.started:
                continue  # a job of an earlier launch into the same sweep folder
            error, results = folder / ERROR, folder / RESULTS
            if error.is_file() and error.stat().st_mtime >= self.started:
                detail = _read(error).get("error", "")
                jobs.append({"folder": folder, "status": "failed", "detail": detail})
            elif results.is_file():
                status = "done" if results.stat().st_mtime >= self.started else "skipped"
                miou = sweep_metric(_read(results))
                jobs.append({"folder": folder, "status": status,
                             "detail": f"val mIoU {100 * miou:.2f}" if math.isfinite(miou) else ""})
            else:
                jobs.append({"folder": folder, "status": "failed", "detail": "no results.json (interrupted?)"})
        return jobs


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
