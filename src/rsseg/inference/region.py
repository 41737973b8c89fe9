"""Prediction over a whole region: one shard of its scenes, resumable and fault-isolated.

    python predict.py ckpt=best.ckpt input=scenes/ output=pred/ region=true           # one process
    python predict.py -m ckpt=best.ckpt input=scenes/ output=pred/ shards=4 'shard=range(4)' \\
           hydra/launcher=slurm                                                        # four SLURM jobs

Nothing here schedules jobs: a shard is one ordinary predict run (``shard=i`` of ``shards=n``), and the N runs
are the jobs of a Hydra multirun on the launchers rsseg already has (joblib locally, submitit on SLURM). Every
shard reads the same catalogue and deals the same scenes (:func:`rsseg.inference.catalogue.deal`), then for each
of its scenes:

* skips it when its record says it is complete for this model, these settings and this input
  (:mod:`rsseg.inference.records`), so re-launching the same command predicts only what is left;
* otherwise predicts it, counting classes and timing the read, model and write stages, and records it as done;
* records a scene that fails (unreadable, wrong bands, corrupt pixels) with its one-line error and goes on.

At the end of the region (the single run, or the launching process once every shard's job has returned:
:class:`RegionSummary`) the totals are printed, the index and the mosaic are written
(:mod:`rsseg.inference.mosaic`), and each failed scene gets one line; the exit status is then 1.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from rsseg.config.runs import run_dir
from rsseg.errors import ConfigError, DataError
from rsseg.inference.catalogue import SceneInfo, deal, describe, list_inputs, plan_outputs, scene_info
from rsseg.inference.mosaic import INDEX, write_index, write_mosaics
from rsseg.inference.predict import (
    check_input,
    check_outputs,
    check_value_range,
    is_region,
    is_rsseg_output,
    peak_memory,
    predict_scene,
    wanted_outputs,
)
from rsseg.inference.records import fingerprint, is_complete, read_record, record_path, write_record
from rsseg.runtime.console import warn
from rsseg.runtime.results import RESULTS, in_multirun, job_folder, write_results

STAGES = ("read", "model", "write")


class ClassCounter:
    """A sink put in front of another (:meth:`wrap`) that counts the pixels of each class on their way to it."""

    def __init__(self) -> None:
        self.sink = None
        self.counts = np.zeros(256, dtype=np.int64)

    def wrap(self, sink) -> ClassCounter:
        self.sink, self.confidence, self.probabilities = sink, sink.confidence, sink.probabilities
        return self

    def write(self, row, classes, confidence, probabilities) -> None:
        self.counts += np.bincount(classes.ravel(), minlength=256)
        self.sink.write(row, classes, confidence, probabilities)

    def by_name(self, names: list[str]) -> dict[str, int]:
        counts = {name: int(self.counts[i]) for i, name in enumerate(names)}
        counts["nodata"] = int(self.counts[255])
        return counts


# --------------------------------------------------------------------------------------------------------------
# The region as every shard and the summary see it
# --------------------------------------------------------------------------------------------------------------


class Region:
    """The scenes a config names, their outputs and the shard each belongs to."""

    def __init__(self, cfg: DictConfig) -> None:
        if cfg.get("input") is None:
            raise ConfigError("input= is required: a folder of GeoTIFFs, a glob pattern (quote it), a list or a "
                              "vector file of scenes")
        self.shards, self.shard = int(cfg.get("shards") or 1), int(cfg.get("shard") or 0)
        if not 0 <= self.shard < self.shards:
            raise ConfigError(f"shard={self.shard}: expected a shard number in 0..{self.shards - 1} "
                              f"(shards={self.shards})")
        if cfg.get("output") is None and (self.shards > 1 or in_multirun()):
            raise ConfigError(f"shards={self.shards}: output= is required, the folder every shard writes into")
        inputs, collection = list_inputs(cfg.input, cfg.get("input_field"))
        if collection:  # a folder that already holds rsseg outputs (a re-run into the input folder): skip them
            inputs = [p for p in inputs if not is_rsseg_output(p)] or inputs
        self.plans = plan_outputs(inputs, True, cfg.get("output"), run_dir(cfg), wanted_outputs(cfg))
        self.folder = self.plans[0]["classes"].parent
        self.scenes: list[SceneInfo] = [scene_info(p) for p in inputs]
        self.dealt = deal([s.pixels for s in self.scenes], self.shards)

    def mine(self) -> list[int]:
        return self.dealt[self.shard]

    def shard_of(self, index: int) -> int:
        return next(s for s, members in enumerate(self.dealt) if index in members)


def settings(cfg: DictConfig, tile_size: int, bands, nodata) -> dict:
    return {"tile_size": tile_size, "overlap": cfg.get("overlap", 0.25), "blend": cfg.get("blend", "cosine"),
            "tta": cfg.get("tta", "none"), "bands": bands, "nodata": nodata,
            "precision": cfg.get("precision", "auto"), **{k: cfg.get(k) for k in
            ("confidence", "probabilities", "cog", "preview", "preview_size")}}


def divide_threads(cfg: DictConfig, shards: int) -> int | None:
    """CPU threads for one shard's job when ``num_threads`` is null: the cores this process may use, divided among
    the jobs that run at once on this machine (``hydra.launcher.n_jobs`` of the local launcher; one per SLURM job,
    whose CPUs are its own)."""
    if cfg.get("num_threads") or not in_multirun():
        return None
    from hydra.core.hydra_config import HydraConfig

    at_once = min(shards, int(HydraConfig.get().launcher.get("n_jobs") or 1))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, at_once))


def job_device(cfg: DictConfig, shard: int) -> str | None:
    """``device=auto`` in a multirun on a machine with several GPUs: shard n predicts on GPU n mod their count, so
    that ``hydra.launcher.n_jobs`` = the GPU count keeps each GPU busy with one shard (a SLURM job sees only the
    GPU it was given, which is then GPU 0)."""
    if cfg.get("device", "auto") != "auto" or not in_multirun():
        return None
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return f"cuda:{shard % count}" if count > 1 else None


# --------------------------------------------------------------------------------------------------------------
# One shard
# --------------------------------------------------------------------------------------------------------------


def run_region(cfg: DictConfig, loaded=None) -> dict:
    """Predict this shard's scenes of the region ``cfg`` names; returns the shard's summary (also printed)."""
    import rasterio
    import torch

    from rsseg.inference.model import open_model
    from rsseg.inference.predictor import build_predictor
    from rsseg.inference.tiling import resolve_overlap
    from rsseg.runtime.preflight import check_writable

    started = time.perf_counter()
    if cfg.get("ckpt") is None and loaded is None:
        raise ConfigError("ckpt= is required: the .ckpt of a trained rsseg model")
    region = Region(cfg)
    mine = region.mine()
    print(f"region: {describe(region.scenes)}; shard {region.shard} of {region.shards}: "
          f"{describe([region.scenes[i] for i in mine])}", flush=True)
    spec = loaded if loaded is not None else open_model(cfg.ckpt)
    bands = list(cfg.bands) if cfg.get("bands") else spec.bands
    nodata = cfg.get("nodata") if cfg.get("nodata") is not None else spec.nodata
    tile_size = int(cfg.get("tile_size") or spec.tile_size)
    resolve_overlap(cfg.get("overlap", 0.25), tile_size)
    stamp = fingerprint(str(cfg.get("ckpt") or getattr(spec, "path", "")), settings(cfg, tile_size, bands, nodata))

    todo, skipped = split_complete(region, stamp, bool(cfg.get("overwrite")))
    check_writable(region.folder, "output")
    threads, device = divide_threads(cfg, region.shards), job_device(cfg, region.shard)
    if threads:
        torch.set_num_threads(threads)
    if device:
        cfg.device = device
    predictor = build_predictor(spec, cfg) if todo else None
    import rsseg.metrics.accumulators  # noqa: F401 - the engine's arg-max; imported here, not in a scene's model time
    print(f"shard {region.shard}: {len(skipped)} scene{'s' * (len(skipped) != 1)} complete from an earlier run, "
          f"{len(todo)} to predict" + (f" on {predictor.device}, {torch.get_num_threads()} threads" if todo else ""),
          flush=True)
    options = {"tile_size": tile_size, "overlap": cfg.get("overlap", 0.25), "blend": cfg.get("blend", "cosine"),
               "bands": bands, "nodata": nodata, "cog": bool(cfg.get("cog")),
               "preview_size": int(cfg.get("preview_size", 1024)), "progress": bool(cfg.get("progress", True)),
               "tags": {"RSSEG_CHECKPOINT": str(cfg.get("ckpt")), "RSSEG_TILE_SIZE": str(tile_size),
                        "RSSEG_OVERLAP": str(cfg.get("overlap", 0.25)), "RSSEG_BLEND": str(cfg.get("blend", "cosine")),
                        "RSSEG_TTA": str(cfg.get("tta", "none"))}}
    env = {"GDAL_CACHEMAX": int(cfg.get("gdal_cache_mb")) * 2**20} if cfg.get("gdal_cache_mb") else {}
    done, failures = [], []
    predicting = time.perf_counter()
    with rasterio.Env(**env):
        for i in todo:
            scene, plan = region.scenes[i], region.plans[i]
            remove_leftovers(plan)
            write_record(plan, scene.path, stamp, "running", shard=region.shard)
            try:
                stats, counts = predict_one(scene, plan, spec, predictor, options)
            except Exception as error:  # noqa: BLE001 - one scene's failure is recorded; the others go on
                line = one_line(error)
                write_record(plan, scene.path, stamp, "failed", shard=region.shard, error=line)
                failures.append((scene.path, line))
                warn(f"{naming(scene.path, line)} (recorded in {record_path(plan['classes'])})")
                continue
            write_record(plan, scene.path, stamp, "done", shard=region.shard, class_counts=counts,
                         tiles=stats.tiles, pixels=scene.pixels, km2=scene.km2, seconds=stats.seconds,
                         stage_seconds=stats.stage_seconds)
            done.append({"tiles": stats.tiles, "km2": scene.km2 or 0.0, "stages": stats.stage_seconds})
            print(f"{scene.path} -> {plan['classes']}: {stats.height}x{stats.width} px, {stats.tiles} tiles in "
                  f"{stats.seconds:.1f} s", flush=True)
    summary = {
        "shard": region.shard, "shards": region.shards, "scenes": len(mine), "done": len(done),
        "skipped": len(skipped), "failed": len(failures), "tiles": sum(d["tiles"] for d in done),
        "km2": sum(d["km2"] for d in done), "seconds": time.perf_counter() - started,
        "predict_seconds": time.perf_counter() - predicting,  # the first scene's start to the last one's end
        "stage_seconds": {k: sum(d["stages"].get(k, 0.0) for d in done) for k in STAGES},
        "failures": [{"input": str(p), "error": e} for p, e in failures], **peak_memory(),
    }
    print(throughput_line(f"shard {region.shard} of {region.shards}", summary), flush=True)
    folder = job_folder()
    if folder is not None:  # the job's record for the sweep's summary; the region's summary comes after
        write_results(folder / RESULTS, {"status": "done", "task": "predict", "summary": summary})
        return summary
    finish_region(cfg, since=time.time() - summary["seconds"], region=region)
    return summary


def split_complete(region: Region, stamp: dict, overwrite: bool) -> tuple[list[int], list[int]]:
    """This shard's scenes to predict and those complete from an earlier run (:func:`is_complete`). An output
    without a record beside it is not this region's: it is replaced only with ``overwrite=true``."""
    todo, skipped = [], []
    for i in region.mine():
        path, plan = region.scenes[i].path, region.plans[i]
        record = read_record(plan["classes"])
        if is_complete(record, plan, path, stamp):
            skipped.append(i)
            continue
        check_outputs([path], [plan], overwrite or record is not None)
        todo.append(i)
    return todo, skipped


def predict_one(scene: SceneInfo, plan: dict[str, Path], spec, predictor, options: dict):
    """One scene's checks and prediction; its stats and class counts (raises what makes it fail)."""
    from rsseg.inference.reader import open_input

    if scene.error:
        raise DataError(scene.error)
    counter = ClassCounter()
    with open_input(scene.path) as handle:
        check_input(handle, spec, options["bands"])
        check_value_range(handle, spec, options["bands"])
        stats = predict_scene(handle, predictor, plan, spec, wrap=counter.wrap, **options)
    if stats.extra.get("nonfinite_pixels"):
        warn(f"{scene.path}: {stats.extra['nonfinite_pixels']:,} pixels are NaN or infinite; treated as nodata "
             f"(255 in the outputs)")
    return stats, counter.by_name(list(spec.class_names))


def remove_leftovers(plan: dict[str, Path]) -> None:
    """Temporaries a killed run left beside a scene's outputs (a clean interrupt removes its own)."""
    for out in plan.values():
        for leftover in out.parent.glob(f".{out.name}.*.partial"):
            leftover.unlink(missing_ok=True)


def one_line(error: BaseException) -> str:
    from rsseg.runtime.app import user_message

    message = user_message(error)
    if message:
        return message
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def naming(path: Path, line: str) -> str:
    """A scene's error line, starting with the scene unless the error names it already."""
    return line if str(path) in line else f"{path}: {line}"


def throughput_line(what: str, s: dict) -> str:
    hours = s["seconds"] / 3600
    stages = ", ".join(f"{k} {s['stage_seconds'].get(k, 0.0):.1f} s" for k in STAGES)
    rate = f" ({s['km2'] / hours:,.2f} km²/h)" if hours > 0 and s["km2"] else ""
    return (f"{what}: {s['scenes']} scenes ({s['done']} predicted, {s['skipped']} complete before, {s['failed']} "
            f"failed), {s['tiles']} tiles, {s['km2']:,.2f} km² in {s['seconds']:.1f} s{rate}; {stages}")


# --------------------------------------------------------------------------------------------------------------
# The end of the region
# --------------------------------------------------------------------------------------------------------------


def finish_region(cfg: DictConfig, since: float, region: Region | None = None) -> dict:
    """Totals of the scenes predicted since ``since`` (a time.time()), the index and the mosaic of every
    complete scene, one line per failed scene; exits with status 1 when any scene failed."""
    region = region or Region(cfg)
    entries, totals = [], {"scenes": len(region.scenes), "done": 0, "skipped": 0, "failed": 0, "tiles": 0,
                           "km2": 0.0, "stage_seconds": dict.fromkeys(STAGES, 0.0)}
    failures = []
    for scene, plan in zip(region.scenes, region.plans):
        record = read_record(plan["classes"])
        status = (record or {}).get("status", "missing")
        status = "interrupted" if status == "running" else status
        if status == "done" and not plan["classes"].is_file():
            status = "missing"
        entries.append({"scene": scene, "classes": plan["classes"], "status": status, "record": record})
        if status == "failed":
            totals["failed"] += 1
            failures.append((scene.path, record.get("error", "")))
        elif status == "done" and record.get("time", 0) >= since:
            totals["done"] += 1
            totals["tiles"] += record.get("tiles") or 0
            totals["km2"] += record.get("km2") or 0.0
            for key in STAGES:
                totals["stage_seconds"][key] += (record.get("stage_seconds") or {}).get(key, 0.0)
        elif status == "done":
            totals["skipped"] += 1
    totals["seconds"] = time.time() - since
    write_index(region.folder / INDEX, entries)
    complete = [e["classes"] for e in entries if e["status"] == "done"]
    mosaics = write_mosaics(region.folder, complete, cog=cfg.get("mosaic") == "cog") if complete and \
        cfg.get("mosaic", "vrt") != "none" else []
    pending = sum(e["status"] in ("missing", "interrupted") for e in entries)
    print(throughput_line("region", totals) + (f"; {pending} not predicted yet" if pending else ""))
    print(f"index: {region.folder / INDEX}" + "".join(f"\nmosaic: {m}" for m in mosaics))
    for path, line in failures:
        print(f"error: {naming(path, line)}", file=sys.stderr)
    if failures:
        print(f"{len(failures)} of {len(region.scenes)} scenes failed (their records say why); the same command "
              f"predicts them again", file=sys.stderr)
        sys.exit(1)
    return totals


class RegionSummary(Callback):
    """The launching process's end of a sharded prediction (``predict.py -m ... shards=N 'shard=range(N)'``):
    once every shard's job has returned, the region's totals, its index and mosaic, and the failed scenes."""

    def __init__(self) -> None:
        self.started = time.time()

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.started = time.time() - 1.0  # file times have coarse resolution on some file systems

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if config.get("task_name") != "predict" or not is_region(config) or not config.get("output"):
            return
        finish_region(config, since=self.started)
