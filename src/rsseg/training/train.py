"""Training: everything ``train.py`` (and ``rsseg train``) does, built from the composed Hydra config."""

from __future__ import annotations

import math
import time
from pathlib import Path

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor
from omegaconf import DictConfig, OmegaConf

import rsseg.config  # noqa: F401 - registers the resolvers (${rsseg.stats:...}) data configs use
from rsseg._version import version_stamp
from rsseg.config.runs import hydra_choice, run_dir
from rsseg.metrics import format_table
from rsseg.models.hub import build_model, instantiate_model
from rsseg.models.profile import count_gflops, model_size
from rsseg.runtime.cmdline import typed_command
from rsseg.runtime.console import progress, quiet_libraries, say
from rsseg.runtime.preflight import check_accelerator, check_training_data, check_training_outputs
from rsseg.runtime.results import write_results
from rsseg.training import distributed, loggers, speed, sweep
from rsseg.training.callbacks.best import BestCheckpoint
from rsseg.training.callbacks.throughput import TrainThroughput
from rsseg.training.resume import prepare_resume
from rsseg.training.task import SegmentationTask, check_class_count


def run_record(cfg: DictConfig) -> dict:
    """Where a run comes from: rsseg's version and commit, its command and overrides, experiment, row and scale,
    model and data names. Read when the run starts: a checkout edited or moved on while it trains does not change
    what trained it."""
    try:
        overrides = list(HydraConfig.get().overrides.task)
    except ValueError:
        overrides = []
    table = cfg.get("table")
    return {
        **version_stamp(),
        "command": typed_command(),
        "overrides": overrides,
        "experiment": table.get("name") if table else None,
        "row": OmegaConf.to_container(cfg.row, resolve=True) if cfg.get("row") else None,
        "scale": cfg.scale.name if cfg.get("scale") else "full",
        "model": hydra_choice("model"),
        "data": hydra_choice("data"),
        "seed": cfg.seed,
    }


def build_datamodule(cfg: DictConfig) -> L.LightningDataModule:
    augment = instantiate(cfg.aug) if cfg.get("aug") else None
    return instantiate(cfg.data, augment=augment, _recursive_=True)


def _instantiate_group(group: DictConfig | None) -> list:
    if not group:
        return []
    return [instantiate(item) for item in group.values() if item is not None and "_target_" in item]


def _instantiate_loggers(cfg: DictConfig, out: Path, record: dict) -> list:
    """The configured loggers; a W&B logger gets the job's name, group, tags and run id (rsseg.training.loggers)."""
    made = []
    for item in (cfg.get("logger") or {}).values():
        if item is None or "_target_" not in item:
            continue
        extra = {}
        if str(item._target_).endswith("WandbLogger"):
            sweep_dir = Path(HydraConfig.get().sweep.dir) if sweep.in_multirun() else None
            extra = loggers.wandb_arguments(item, loggers.wandb_identity(out, record, sweep_dir))
        made.append(instantiate(item, **extra))
    return made


def measure_sizes(cfg: DictConfig) -> dict:
    """``fit: false``: the size of each model the experiment's table names (params, MiB, GFLOPs at the tile size),
    printed beside the paper's and written to ``results.json``; nothing is trained."""
    started = time.perf_counter()
    table = cfg.get("table") or {}
    models = dict(table.get("models") or {})
    if not models:  # no table: the configured model alone
        models = {hydra_choice("model") or "model": None}
    labels = dict(table.get("labels") or {})
    paper = dict(OmegaConf.select(table, "paper.any.rows", default=None) or {}) if table else {}
    rows = []
    for row, name in progress(models.items(), "model sizes", "model", total=len(models)):
        if name is None:
            model = instantiate_model(cfg.model, offline=True)
        else:
            model = build_model(name, cfg.data.num_classes, cfg.data.in_channels)
        params, mib = model_size(model)
        rows.append({"row": row, "label": labels.get(row, row), "model": name or row, "params": params,
                     "mib": round(mib, 2), "gflops": round(count_gflops(model, int(cfg.data.tile_size)), 2)})
        del model
    lines = [f"{table.get('title', 'Model sizes')} at {cfg.data.num_classes} classes, {cfg.data.in_channels} bands, "
             f"GFLOPs at {cfg.data.tile_size} x {cfg.data.tile_size}",
             f"{'model':<20}{'params':>14}{'MiB':>10}{'paper MiB':>11}{'GFLOPs':>10}"]
    for row in rows:
        reported = paper.get(row["row"], {}).get("mib")
        lines.append(f"{row['label']:<20}{row['params']:>14,}{row['mib']:>10.2f}"
                     f"{'' if reported is None else f'{reported:.2f}':>11}{row['gflops']:>10.2f}")
    say("\n".join(lines))
    results = {
        "task": "train",
        "status": "done",
        **run_record(cfg),
        "sizes": rows,
        "wall_time_s": round(time.perf_counter() - started, 1),
        "table": OmegaConf.to_container(table, resolve=True) if table else None,
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    path = write_results(run_dir(cfg) / "results.json", results)
    say(f"results: {path}")
    return results


def _best_is_last_validation(trainer: L.Trainer, task: SegmentationTask) -> bool:
    """Whether the best checkpoint holds the weights the last validation scored (re-validating it would only
    repeat that validation)."""
    callback = trainer.checkpoint_callback
    score = getattr(callback, "best_model_score", None)
    last = task.stage_results.get("val", {}).get("miou")
    if score is None or last is None or not math.isfinite(last):
        return False
    return abs(float(score) - last) <= 1e-6 * max(1.0, abs(last))


def best_checkpoint(trainer: L.Trainer) -> str | None:
    """``checkpoints/best.ckpt`` when the run saved a best checkpoint (:class:`BestCheckpoint`); Lightning's own
    best file where a config names Lightning's ``ModelCheckpoint``; else None."""
    callback = trainer.checkpoint_callback
    if isinstance(callback, BestCheckpoint):
        path = callback.best_path
        return str(path) if path else None
    best = getattr(callback, "best_model_path", "") if callback else ""
    return best if best and Path(best).exists() else None


def selection_record(trainer: L.Trainer, datamodule, ckpt: str | None) -> dict:
    """Which split chose the reported checkpoint, by which metric, and at which epoch and step: a table marks runs
    whose checkpoint was chosen on the test split."""
    callback = trainer.checkpoint_callback
    record = {"split": getattr(datamodule.scenes, "select_on", "val"), "monitor": getattr(callback, "monitor", None),
              "mode": getattr(callback, "mode", None), "epoch": None, "step": None, "score": None}
    score = getattr(callback, "best_model_score", None)
    if score is not None:
        record["score"] = float(score)
    if ckpt:
        from rsseg.models.checkpoint import read_checkpoint

        state = read_checkpoint(ckpt, mmap=True)
        record["epoch"], record["step"] = state.get("epoch"), state.get("global_step")
    return record


def train(cfg: DictConfig) -> dict:
    """Fit the configured model on the configured data, evaluate it, write ``results.json``; returns it."""
    if not cfg.get("fit", True):
        return measure_sizes(cfg)
    with distributed.job_scope():
        return _fit_and_evaluate(cfg)


def _fit_and_evaluate(cfg: DictConfig) -> dict:
    started = time.perf_counter()
    quiet_libraries()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    resume = prepare_resume(cfg)  # may move paths.output_dir to the run being continued
    check_accelerator(cfg)
    out = run_dir(cfg)
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
        channels_last=speed.use_channels_last(cfg),
        compile_model=bool(cfg.get("compile", False)),
    )
    record = run_record(cfg)
    throughput = TrainThroughput()
    job_loggers = _instantiate_loggers(cfg, out, record)
    try:
        return _run_trainer(cfg, task, datamodule, job_loggers, throughput, record, started, resume)
    finally:
        loggers.finish(job_loggers)


def _run_trainer(cfg, task, datamodule, job_loggers, throughput, record, started, resume) -> dict:
    out = run_dir(cfg)
    resolved = task.hparams["cfg"]
    model = task.model
    callbacks = _instantiate_group(cfg.get("callbacks")) + [throughput]
    if not job_loggers:  # logger=none: there is nowhere to send learning rates
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    resume.continue_loggers(job_loggers)
    distributed.start_workers_from(resolved)
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=job_loggers or False,
                                     precision=speed.trainer_precision(cfg), **distributed.trainer_arguments(cfg.trainer))
    trainer.fit(task, datamodule=datamodule, ckpt_path=resume.checkpoint)

    # Report the checkpoint a user would keep: checkpoints/best.ckpt, the best by val mIoU, when one was saved.
    ckpt = best_checkpoint(trainer)
    if cfg.get("validate_best", True) and ckpt and not _best_is_last_validation(trainer, task):
        trainer.validate(task, datamodule=datamodule, ckpt_path=ckpt, verbose=False)
    if cfg.get("test") and datamodule.split_scenes("test")[0]:
        trainer.test(task, datamodule=datamodule, ckpt_path=ckpt, verbose=False)

    params, mib = model_size(model)
    table = cfg.get("table")
    results = {
        "task": "train",
        "status": "done",
        **record,
        "checkpoint": str(Path(ckpt).resolve()) if ckpt else None,
        "selection": selection_record(trainer, datamodule, ckpt),
        "params": params,
        "mib": round(mib, 2),
        "gflops": round(count_gflops(model, int(cfg.data.tile_size), cfg.data.in_channels), 2),
        "wall_time_s": round(time.perf_counter() - started, 1),
        "train_images": throughput.images,
        "train_images_per_s": round(throughput.images_per_second, 2),
        "epochs": trainer.current_epoch,
        "world_size": trainer.world_size,
        "steps": trainer.global_step,
        "metrics": {stage: task.stage_results[stage] for stage in ("val", "test") if stage in task.stage_results},
        "scenes": {stage: task.stage_scenes[stage] for stage in ("val", "test") if stage in task.stage_scenes},
        "table": OmegaConf.to_container(table, resolve=True) if table else None,
        "config": resolved,
    }
    if trainer.is_global_zero:
        loggers.log_per_class_tables(job_loggers, results["metrics"])
        path = write_results(out / "results.json", results)
        for stage, metrics in results["metrics"].items():
            say(format_table(metrics, title=f"{stage} metrics ({results['model']} on {results['data']})"))
        say(
            f"params {params:,} ({mib:.2f} MiB), {results['train_images_per_s']} train images/s, "
            f"{results['wall_time_s']} s; results: {path}"
        )
        if cfg.get("plots", True):
            from rsseg.training.plots import write_run_plots

            write_run_plots(out, results, trainer, resolved["data"]["class_names"], resolved["data"].get("palette"))
    return results
