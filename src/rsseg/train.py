"""Training: everything ``train.py`` does, built from the composed Hydra config."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

import rsseg
from rsseg.callbacks.throughput import TrainThroughput
from rsseg.metrics import format_table
from rsseg.results import git_commit, write_results
from rsseg.task import SegmentationTask, build_model, check_class_count

log = logging.getLogger(__name__)


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


def model_size(model: torch.nn.Module) -> tuple[int, float]:
    """Parameter count and size in MiB (params x 4 bytes / 2^20), the convention of the papers' tables."""
    params = sum(p.numel() for p in model.parameters())
    return params, params * 4 / 2**20


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
    out = output_dir(cfg)
    datamodule = build_datamodule(cfg)
    model = build_model(cfg.model)
    check_class_count(model, cfg.data.num_classes, cfg.data.in_channels, hydra_choice("model") or "model")
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
    callbacks = _instantiate_group(cfg.get("callbacks")) + [throughput]
    loggers = _instantiate_group(cfg.get("logger"))
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    trainer.fit(task, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))

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
        "gflops": _gflops(model, cfg),
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


def _gflops(model: torch.nn.Module, cfg: DictConfig) -> float | None:
    """GFLOPs of one forward pass at the training tile size (counted by torch's FLOP counter)."""
    try:
        from torch.utils.flop_counter import FlopCounterMode

        size = int(cfg.data.get("tile_size", 256))
        was_training = model.training
        model.eval()
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model(torch.zeros(1, cfg.data.in_channels, size, size, device=next(model.parameters()).device))
        model.train(was_training)
        return round(counter.get_total_flops() / 1e9, 2)
    except Exception:  # noqa: BLE001 - a model the counter cannot trace still trains; the figure is optional
        log.warning("could not count FLOPs for this model")
        return None
