"""The Hydra task of ``train.py`` and ``rsseg train``: a single run or one job of a multirun.

The config is checked against its schema before :mod:`rsseg.training.train` (Lightning, torchmetrics, the models)
is imported, so a mistyped key or value is refused in the second Python and Hydra take to start, not after the
several seconds the training stack takes to import.
"""

from __future__ import annotations

import math
import sys

from omegaconf import DictConfig, OmegaConf, open_dict

from rsseg.config.runs import run_dir
from rsseg.training import sweep

TRAIN = "rsseg.training.train:train"


def main(cfg: DictConfig) -> float:
    """Train as configured; returns the validation mIoU for sweepers.

    A single run reports bad input as one ``error:`` line (exit status 2). A job of a multirun skips itself when
    its folder holds results for the same resolved config, and records a failure in its folder instead of
    stopping the sweep (see :mod:`rsseg.training.sweep`); a job that was killed continues from its last checkpoint
    (``resume=auto`` within its own folder, :mod:`rsseg.training.resume`).
    """
    from rsseg.runtime.app import run_guarded

    if not sweep.in_multirun():
        return sweep.sweep_metric(run_guarded(TRAIN, cfg))
    out = run_dir(cfg)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    done = sweep.finished_results(out, resolved)
    if done is not None:
        print(f"skipped: {out} already holds results.json for this config")
        return sweep.sweep_metric(done)
    try:
        from rsseg.config.checks import check_config

        check_config(cfg)
        if cfg.get("resume") is None and cfg.get("ckpt_path") is None:
            # A job killed before it finished continues from its own last checkpoint when the sweep is re-launched.
            with open_dict(cfg):
                cfg.resume = "auto"
        from rsseg.training.train import train

        results = train(cfg)
    except Exception as error:  # noqa: BLE001 - any failure of one job is recorded and the sweep goes on
        if sweep.is_interrupt(error):
            # SIGTERM or Ctrl-C stops the sweep, not only this job: a scheduler's time limit ends the whole
            # launch, and the next launch of the same command continues this job from its last checkpoint.
            print(f"interrupted: sweep job {out}: {str(error).strip().splitlines()[0]}; the other jobs were not "
                  f"started; re-launch the same command to continue", file=sys.stderr)
            sys.exit(130)
        path = sweep.record_failure(out, resolved, error)
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"error: sweep job {out} failed: {first_line}; details in {path}", file=sys.stderr)
        return math.nan
    sweep.clear_failure(out)
    return sweep.sweep_metric(results)
