"""Whole-scene prediction: everything ``predict.py`` (and ``rsseg predict``) does.

    python predict.py ckpt=run/checkpoints/best.ckpt input=scene.tif output=scene_classes.tif
    python predict.py ckpt=best.ckpt input=/data/scenes/ output=/data/pred/ tta=d4 confidence=true cog=true

The checkpoint alone is enough: bands, normalisation, class names and palette come from the training config it
stores (``hyper_parameters.cfg.data``). See :mod:`rsseg.inference.engine` for how a scene is streamed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from omegaconf import DictConfig

from rsseg.config.runs import run_dir
from rsseg.errors import ConfigError, DataError
from rsseg.inference.catalogue import RASTER_SUFFIXES, list_inputs, output_names, plan_outputs  # noqa: F401 - their old home
from rsseg.inference.model import TrainedModel, open_model
from rsseg.runtime.console import is_terminal, say, warn

OUTPUT_KINDS = ("classes", "confidence", "probabilities", "preview")


# --------------------------------------------------------------------------------------------------------------
# Inputs and outputs
# --------------------------------------------------------------------------------------------------------------


def is_region(cfg: DictConfig) -> bool:
    """Whether a predict config asks for the region workflow (:mod:`rsseg.inference.region`): ``region=true`` or
    more than one shard."""
    return bool(cfg.get("region")) or int(cfg.get("shards") or 1) > 1


def wanted_outputs(cfg: DictConfig) -> set[str]:
    return {"classes"} | {k for k in ("confidence", "probabilities", "preview") if cfg.get(k)}


def check_outputs(inputs: list[Path], plans: list[dict[str, Path]], overwrite: bool) -> None:
    """Refuse, before anything is written, to overwrite an input, or an existing output without overwrite."""
    sources = {p.resolve(): p for p in inputs}
    for plan in plans:
        for out in plan.values():
            if out.resolve() in sources:
                raise DataError(f"{out}: output would overwrite its input {sources[out.resolve()]}; choose another output")
            if out.exists() and not overwrite:
                raise DataError(f"{out}: output exists; pass overwrite=true to replace it")


def check_value_range(handle, spec: TrainedModel, bands: list[int] | None) -> None:
    """Warn when a scene's values cannot be what the checkpoint was trained on: 16-bit or float pixels beyond
    0..255 (or reflectances in 0..1) for a model normalised for 8-bit data. Reads a decimated overview only."""
    import numpy as np

    dtype = handle.dtypes[(bands or [1])[0] - 1]
    eight_bit = max(spec.mean) + max(spec.std) <= 255
    if dtype == "uint8" or not eight_bit:
        return
    side = max(1, min(256, handle.height, handle.width))
    sample = handle.read(bands or None, out_shape=(len(bands) if bands else handle.count, side, side)).astype(np.float64)
    sample = sample[np.isfinite(sample)]
    if not sample.size:
        return
    high = float(np.percentile(sample, 99))
    if high > 255 or (dtype.startswith("float") and high <= 1.0):
        warn(f"{handle.name}: {dtype} pixels (99th percentile {high:g}) but the checkpoint was trained on 8-bit "
             f"data (mean {[round(m, 1) for m in spec.mean]}); its predictions will be wrong unless the values are "
             f"brought to 0..255")


def is_rsseg_output(path: Path) -> bool:
    from rsseg.data.raster import open_raster

    try:
        with open_raster(path) as handle:
            return "RSSEG_OUTPUT" in handle.tags()
    except Exception:  # noqa: BLE001 - unreadable files are reported when checked
        return False


def check_input(handle, spec: TrainedModel, bands: list[int] | None) -> None:
    count = handle.count
    if bands:
        if min(bands) < 1 or max(bands) > count:
            raise DataError(f"{handle.name}: bands {bands} requested but the raster has {count} bands; expected "
                            f"1-based band numbers in 1..{count}")
        count = len(bands)
    if count != spec.in_channels:
        raise DataError(
            f"{handle.name}: {count} bands but the checkpoint's model expects in_channels={spec.in_channels}"
            f"{' (set bands=[...] to choose them)' if count > spec.in_channels else ''}"
        )


def peak_memory() -> dict[str, float]:
    """Peak resident memory of this process (MiB) and, on a GPU, peak allocated CUDA memory (MiB)."""
    out: dict[str, float] = {}
    try:
        import resource

        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out["rss_peak_mib"] = kib / 1024 if sys.platform != "darwin" else kib / 2**20
    except ImportError:  # Windows
        import psutil

        out["rss_peak_mib"] = psutil.Process().memory_info().peak_wset / 2**20
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return out


# --------------------------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------------------------


def predict_scene(handle, predictor, plan: dict[str, Path], spec: TrainedModel, *, tile_size: int, overlap,
                  blend: str, bands, nodata, cog: bool, preview_size: int, progress: bool, tags: dict, wrap=None):
    """Predict one opened scene into its outputs (temporaries first, renamed when complete); ``wrap`` puts a sink
    of the caller's in front of the GeoTIFF writer (the region's class counts)."""
    from tqdm import tqdm

    from rsseg.inference.engine import predict_raster
    from rsseg.inference.geotiff import GeoTiffSink, OutputPaths
    from rsseg.inference.tiling import count_tiles, resolve_overlap

    paths = OutputPaths(plan["classes"], plan.get("confidence"), plan.get("probabilities"), plan.get("preview"))
    total = count_tiles(handle.height, handle.width, tile_size, resolve_overlap(overlap, tile_size))
    bar = tqdm(total=total, unit="tile", desc=Path(handle.name).name, file=sys.stderr, dynamic_ncols=True,
               leave=False, disable=not progress or not is_terminal(sys.stderr))
    sink = None  # created inside the try: an interrupt at any point removes whatever was created
    try:
        sink = GeoTiffSink(paths, handle, spec.class_names, spec.palette, cog=cog, preview_size=preview_size,
                           tags=tags)
        stats = predict_raster(handle, predictor, wrap(sink) if wrap else sink, tile_size=tile_size, overlap=overlap, blend=blend,
                               bands=bands, nodata=nodata, progress=bar.update)
        bar.close()
        sink.commit()
    except BaseException:
        bar.close()
        if sink is not None:
            sink.discard()
        raise
    return stats


def run_predict(cfg: DictConfig, loaded: TrainedModel | None = None) -> dict:
    """Predict every scene ``cfg.input`` names with ``cfg.ckpt`` (or with ``loaded``, a model already open);
    returns a summary (also printed)."""
    import rasterio

    from rsseg.data.raster import open_raster
    from rsseg.runtime.preflight import check_writable

    started = time.perf_counter()
    if cfg.get("input") is None:
        raise ConfigError("input= is required: a GeoTIFF, a folder of them or a glob pattern (quote it)")
    if cfg.get("ckpt") is None:
        raise ConfigError("ckpt= is required: the .ckpt of a trained rsseg model")
    inputs, collection = list_inputs(cfg.input, cfg.get("input_field"))
    if collection:  # a folder that already holds rsseg outputs (a re-run into the input folder): skip them
        inputs = [p for p in inputs if not is_rsseg_output(p)] or inputs
    plans = plan_outputs(inputs, collection, cfg.get("output"), run_dir(cfg), wanted_outputs(cfg))
    check_outputs(inputs, plans, bool(cfg.get("overwrite", False)))
    for folder in sorted({out.parent for plan in plans for out in plan.values()}):
        check_writable(folder, "output")
    for path in inputs:  # every input opens (a fake or empty .tif is refused here)
        open_raster(path).close()

    # Everything is checked against the checkpoint's stored config before its model is built.
    spec = loaded if loaded is not None else open_model(cfg.ckpt)
    bands = list(cfg.bands) if cfg.get("bands") else spec.bands
    nodata = cfg.get("nodata") if cfg.get("nodata") is not None else spec.nodata
    tile_size = int(cfg.get("tile_size") or spec.tile_size)
    overlap = cfg.get("overlap", 0.25)
    for path in inputs:
        with open_raster(path) as handle:
            check_input(handle, spec, bands)
            check_value_range(handle, spec, bands)

    from rsseg.inference.predictor import build_predictor
    from rsseg.inference.reader import open_input
    from rsseg.inference.tiling import resolve_overlap

    resolve_overlap(overlap, tile_size)
    predictor = build_predictor(spec, cfg)
    device = predictor.device
    tags = {"RSSEG_CHECKPOINT": str(cfg.ckpt), "RSSEG_TILE_SIZE": str(tile_size), "RSSEG_OVERLAP": str(overlap),
            "RSSEG_BLEND": str(cfg.get("blend", "cosine")), "RSSEG_TTA": str(cfg.get("tta", "none"))}
    env = {"GDAL_CACHEMAX": int(cfg.get("gdal_cache_mb", 64)) * 2**20} if cfg.get("gdal_cache_mb") else {}
    scenes = []
    with rasterio.Env(**env):
        for path, plan in zip(inputs, plans):
            with open_input(path) as handle:
                stats = predict_scene(
                    handle, predictor, plan, spec, tile_size=tile_size, overlap=overlap,
                    blend=cfg.get("blend", "cosine"), bands=bands, nodata=nodata, cog=bool(cfg.get("cog")),
                    preview_size=int(cfg.get("preview_size", 1024)), progress=bool(cfg.get("progress", True)),
                    tags=tags,
                )
            if stats.extra.get("nonfinite_pixels"):
                warn(f"{path}: {stats.extra['nonfinite_pixels']:,} pixels are NaN or infinite; treated as nodata "
                     f"(255 in the outputs)")
            say(f"{path} -> {plan['classes']}: {stats.height}x{stats.width} px, {stats.tiles} tiles in "
                  f"{stats.seconds:.1f} s ({stats.tiles_per_second:.1f} tiles/s)")
            scenes.append({"input": str(path), "outputs": {k: str(v) for k, v in plan.items()},
                           "tiles": stats.tiles, "seconds": stats.seconds, "height": stats.height,
                           "width": stats.width, "accumulator_shape": list(stats.accumulator_shape)})
    tiles = sum(s["tiles"] for s in scenes)
    predicting = sum(s["seconds"] for s in scenes)
    seconds = time.perf_counter() - started
    memory = peak_memory()
    line = (f"{len(scenes)} scene{'s' * (len(scenes) != 1)}, {tiles} tiles ({tile_size} px, overlap {overlap}, "
            f"{cfg.get('blend', 'cosine')}, tta {cfg.get('tta', 'none')}) in {predicting:.1f} s "
            f"({tiles / predicting if predicting else float('nan'):.1f} tiles/s) on {device}, "
            f"{seconds:.1f} s in all; peak RSS {memory['rss_peak_mib']:.0f} MiB")
    if "cuda_peak_mib" in memory:
        line += f", peak CUDA {memory['cuda_peak_mib']:.0f} MiB"
    say(line)
    return {"scenes": scenes, "tiles": tiles, "seconds": seconds, "predict_seconds": predicting,
            "device": str(device), **memory}


def main(cfg: DictConfig) -> dict | None:
    """The Hydra app's body: one-line errors (exit 2); SIGTERM or Ctrl-C leave no partial output (exit 130).
    ``region=true`` or ``shards`` > 1 runs :func:`rsseg.inference.region.run_region` instead (named, not imported:
    the region builds on this module). A job of a multirun leaves its summary as the job's ``results.json``."""
    from rsseg.runtime.app import run_guarded, terminate_as_interrupt
    from rsseg.runtime.results import RESULTS, job_folder, write_results

    terminate_as_interrupt()
    region = is_region(cfg)
    summary = run_guarded("rsseg.inference.region:run_region" if region else run_predict, cfg)
    folder = job_folder()
    if folder is not None and not region:  # what the sweep's summary reads (rsseg.training.sweep.SweepSummary)
        write_results(folder / RESULTS, {"status": "done", "task": "predict", "summary": summary})
    return summary
