"""Training: everything ``train.py`` does, built from the composed Hydra config."""

from __future__ import annotations

import time
from pathlib import Path

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor
from omegaconf import DictConfig, OmegaConf

import rsseg
import rsseg.data.stats  # noqa: F401 - registers the ${rsseg.stats:...} resolver the data configs use
from rsseg.callbacks.throughput import TrainThroughput
from rsseg.metrics import format_table
from rsseg.models.hub import instantiate_model
from rsseg.models.profile import count_gflops, model_size
from rsseg.preflight import check_accelerator, check_training_data, check_training_outputs
from rsseg.results import git_commit, write_results
from rsseg.resume import prepare_resume
from rsseg.task import SegmentationTask, check_class_count


def output_dir(cfg: DictConfig) -> Path:
    if cfg.get("paths", {}).get("output_dir"):
        return Path(cfg.paths.output_dir)
    return Path(HydraConfig.get().runtime.output_dir)


def hydra_choice(group: str) -> str | None:
    """The option chosen for a config group in this run (``model`` -> ``mst_deeplab``), when run by Hydra."""
    try:
        return HydraConfig.get().runtime.choices.get(group)
    except ValueError:
        return None


def build_datamodule(cfg: DictConfig) -> L.LightningDataModule:
    augment = instantiate(cfg.aug) if cfg.get("aug") else None
    return instantiate(cfg.data, augment=augment, _recursive_=True)


def _instantiate_group(group: DictConfig | None) -> list:
    if not group:
        return []
    return [instantiate(item) for item in group.values() if item is not None and "_target_" in item]


def train(cfg: DictConfig) -> dict:
    """Fit the configured model on the configured data, evaluate it, write ``results.json``; returns it."""
    started = time.perf_counter()
    L.seed_everything(cfg.seed, workers=True)
    resume = prepare_resume(cfg)  # may move paths.output_dir to the run being continued
    check_accelerator(cfg)
    out = output_dir(cfg)
    datamodule = build_datamodule(cfg)
    check_training_data(datamodule)
    model = instantiate_model(cfg.model)
    check_class_count(model, cfg.data.num_classes, cfg.data.in_channels, hydra_choice("model") or "model")
    check_training_outputs(cfg, model)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    task = SegmentationTask(
        model=model,
        loss=instantiate(cfg.loss),
        optimizer=instantiate(cfg.optimizer),
        scheduler=instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
        num_classes=cfg.data.num_classes,
        class_names=cfg.data.class_names,
        ignore_index=cfg.data.ignore_index,
        exclude_from_mean=cfg.data.get("exclude_from_mean", []),
        cfg=resolved,
    )
    throughput = TrainThroughput()
    loggers = _instantiate_group(cfg.get("logger"))
    callbacks = _instantiate_group(cfg.get("callbacks")) + [throughput]
    if not loggers:  # logger=none: there is nowhere to send learning rates
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    resume.continue_loggers(loggers)
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    trainer.fit(task, datamodule=datamodule, ckpt_path=resume.checkpoint)

    # Report the checkpoint a user would keep: the best by val mIoU when one was saved.
    best = getattr(trainer.checkpoint_callback, "best_model_path", "") if trainer.checkpoint_callback else ""
    ckpt = best if best and Path(best).exists() else None
    if cfg.get("validate_best", True) and ckpt:
        trainer.validate(task, datamodule=datamodule, ckpt_path=ckpt, verbose=False)
    if cfg.get("test") and datamodule.split_scenes("test")[0]:
        trainer.test(task, datamodule=datamodule, ckpt_path=ckpt, verbose=False)

    params, mib = model_size(model)
    results = {
        "rsseg_version": rsseg.__version__,
        "git_commit": git_commit(),
        "model": hydra_choice("model"),
        "data": hydra_choice("data"),
        "seed": cfg.seed,
        "checkpoint": ckpt,
        "params": params,
        "mib": round(mib, 2),
        "gflops": round(count_gflops(model, int(cfg.data.tile_size), cfg.data.in_channels), 2),
        "wall_time_s": round(time.perf_counter() - started, 1),
        "train_images": throughput.images,
        "train_images_per_s": round(throughput.images_per_second, 2),
        "epochs": trainer.current_epoch,
        "steps": trainer.global_step,
        "metrics": {stage: task.stage_results[stage] for stage in ("val", "test") if stage in task.stage_results},
        "config": resolved,
    }
    if trainer.is_global_zero:
        path = write_results(out / "results.json", results)
        for stage, metrics in results["metrics"].items():
            print(format_table(metrics, title=f"{stage} metrics ({results['model']} on {results['data']})"))
        print(
            f"params {params:,} ({mib:.2f} MiB), {results['train_images_per_s']} train images/s, "
            f"{results['wall_time_s']} s; results: {path}"
        )
    return results
