"""Loggers of a training job: W&B runs that map one-to-one onto job folders.

Each job of a sweep is its own W&B run: named by its folder, grouped by its sweep folder, tagged with its
experiment, row, scale, data and model, its id derived from its output folder (so resuming a run in the same
folder continues the same W&B run, and a re-launched sweep job continues its own), and finished before the next
job starts (lightning-hydra-template #289: without ``wandb.finish()`` a multirun logs into one run). The
per-class metrics go to a W&B table at the end of the job.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from lightning.pytorch.loggers import Logger, WandbLogger
from omegaconf import DictConfig


def wandb_identity(output_dir: Path, record: dict, sweep_dir: Path | None) -> dict:
    """``name``, ``group``, ``tags`` and ``id`` of the W&B run of a job writing to ``output_dir``."""
    folder = Path(output_dir).resolve()
    if sweep_dir is not None:
        sweep_dir = Path(sweep_dir).resolve()
        name = str(folder.relative_to(sweep_dir)) if folder.is_relative_to(sweep_dir) else folder.name
        group = f"{sweep_dir.parent.name}/{sweep_dir.name}"
    else:
        name, group = f"{folder.parent.name}/{folder.name}", None
    row = (record.get("row") or {}).get("name")
    tags = [str(t) for t in (record.get("experiment"), row, f"scale={record.get('scale')}",
                             f"data={record.get('data')}", f"model={record.get('model')}", f"seed={record.get('seed')}")
            if t is not None]
    return {"name": name, "group": group, "tags": tags, "id": hashlib.sha1(str(folder).encode()).hexdigest()[:16]}


def wandb_arguments(wandb_cfg: DictConfig, identity: dict) -> dict:
    """Keyword arguments that give a W&B logger config the job's identity where the config leaves it unset."""
    extra = {key: identity[key] for key in ("name", "group", "id") if not wandb_cfg.get(key)}
    configured = list(wandb_cfg.get("tags") or [])
    extra["tags"] = configured + [tag for tag in identity["tags"] if tag not in configured]
    if not wandb_cfg.get("resume"):
        extra["resume"] = "allow"
    return extra


def log_per_class_tables(loggers: list[Logger], metrics: dict[str, dict]) -> None:
    """Per-class IoU / precision / recall / F1 / pixels of each evaluated stage as a W&B table."""
    for logger in loggers:
        if not isinstance(logger, WandbLogger):
            continue
        for stage, result in metrics.items():
            rows = [[name, v["iou"], v["precision"], v["recall"], v["f1"], v["support"]]
                    for name, v in result["per_class"].items()]
            logger.log_table(f"{stage}/per_class", columns=["class", "iou", "precision", "recall", "f1", "pixels"],
                             data=rows)


def finish(loggers: list[Logger]) -> None:
    """End the job's W&B run (if any) so that the next job of a sweep starts a run of its own."""
    if any(isinstance(logger, WandbLogger) for logger in loggers):
        import wandb

        if wandb.run is not None:
            wandb.finish()
