"""Full-tile evaluation, the ISPRS way: everything ``eval.py`` (and ``rsseg eval``) does.

Three ways in, one confusion matrix out (rows = true class, columns = predicted), accumulated while streaming
over row strips so no 6000 x 6000 tile is ever held whole:

* ``ckpt=<file>``: predict every scene of a dataset split with the same sliding-window engine as ``predict.py``
  (:mod:`rsseg.inference.engine`) and score it against its labels. The dataset is the checkpoint's own (its stored
  ``data`` config) or ``data=<name>`` (plus ``protocol=...``); ``+data.root=/path`` moves the stored one.
* ``ckpt=<file> input=<images> label=<labels>``: the same on scenes of your own (files, folders or globs,
  paired by name).
* ``pred=<class rasters> label=<labels>``: score saved predictions (e.g. from ``predict.py``), paired by name.

Labels are decoded with the data config's palette (colour-coded, unknown colour = an error naming the file,
the colour and its pixel count; ``ignore_colours`` such as the black boundaries of eroded ISPRS labels are
ignored) or as class indices. Pixels whose prediction is nodata (255) are ignored, as training ignores labels
under image nodata. Metrics come from :func:`rsseg.metrics.metrics_from_confusion` with the data config's
``exclude_from_mean`` (or ``exclude_from_mean=[clutter]``), and ``results.json`` lands in the run folder, with the
confusion matrix and per-class IoU bars as PNG beside it (:mod:`rsseg.evaluation.plots`; ``plots=false``: none).
"""

from __future__ import annotations

import sys
import time

import numpy as np
from omegaconf import DictConfig, OmegaConf

import rsseg.config  # noqa: F401 - registers the resolvers (${rsseg.stats:...}) data configs use
from rsseg.config.runs import run_dir
from rsseg.errors import ConfigError, DataError
from rsseg.evaluation.confusion import ConfusionSink, LabelReader
from rsseg.evaluation.saved import class_names_from_prediction, evaluate_predictions, scene_result
from rsseg.evaluation.scenes import build_decoder, resolve_data_config, scenes_for_model
from rsseg.inference.model import TrainedModel, open_model
from rsseg.runtime.console import is_terminal, say, warn


def _exclude(cfg: DictConfig, data: DictConfig | None, class_names: list[str]) -> list:
    """The classes left out of the means, each checked against the classes before any scene is read."""
    from rsseg.metrics import class_index

    if cfg.get("exclude_from_mean") is not None:
        exclude, key = list(cfg.exclude_from_mean), "exclude_from_mean"
    elif data is not None and data.get("exclude_from_mean"):
        exclude, key = list(data.exclude_from_mean), "data.exclude_from_mean"
    else:
        return []
    for item in exclude:
        try:
            class_index(item, class_names)
        except ValueError:
            shown = ",".join(str(i) for i in exclude)
            raise ConfigError(f"{key}=[{shown}]: {item} is not one of the {len(class_names)} classes; expected "
                              f"names or 0-based indices of {', '.join(class_names)}") from None
    return exclude


def _container(cfg: DictConfig) -> dict:
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # noqa: BLE001 - an interpolation that only resolves inside a Hydra run
        return OmegaConf.to_container(cfg, resolve=False)


# --------------------------------------------------------------------------------------------------------------

def evaluate_model(cfg: DictConfig, stored_cfg_holder: dict, loaded: TrainedModel | None = None) -> tuple:
    """Predict each scene of the chosen split with the checkpoint (or ``loaded``, a model already open) and
    score it; returns
    (confusion, scenes, split, class names, exclude, data config, inference info)."""
    import rasterio
    from tqdm import tqdm

    from rsseg.data.dataset import scene_bounds
    from rsseg.data.raster import open_raster
    from rsseg.inference.engine import predict_raster
    from rsseg.inference.geotiff import GeoTiffSink, OutputPaths
    from rsseg.inference.predictor import build_predictor
    from rsseg.inference.tiling import count_tiles, resolve_overlap
    from rsseg.runtime.preflight import check_writable

    spec = loaded if loaded is not None else open_model(cfg.ckpt)
    stored = spec.config
    stored_cfg_holder["stored"] = stored
    data = resolve_data_config(cfg, stored)
    if data is not None and data.get("num_classes") is not None and int(data.num_classes) != spec.num_classes:
        raise ConfigError(f"data.num_classes={data.num_classes} but the checkpoint's model predicts "
                          f"{spec.num_classes} classes ({spec.class_names})")
    if data is not None and data.get("class_names") and list(data.class_names) != spec.class_names:
        print(f"note: data class names {list(data.class_names)} differ from the checkpoint's {spec.class_names}; "
              f"reporting the checkpoint's", file=sys.stderr)
    mean_std = {"mean": spec.mean, "std": spec.std, "in_channels": spec.in_channels}
    scenes, split, decoder, bands, nodata = scenes_for_model(cfg, data, spec, mean_std)
    bands = list(cfg.bands) if cfg.get("bands") else (bands or spec.bands)
    if cfg.get("nodata") is not None:
        nodata = cfg.nodata
    tile_size = int(cfg.get("tile_size") or spec.tile_size)
    overlap = cfg.get("overlap", 0.25)
    overlap_px = resolve_overlap(overlap, tile_size)
    exclude = _exclude(cfg, data, spec.class_names)
    save_dir = run_dir(cfg, "out_dir") / "predictions" if cfg.get("save_predictions") else None
    if save_dir is not None:
        check_writable(save_dir, "out_dir")
    predictor = build_predictor(spec, cfg)
    device = predictor.device

    k = spec.num_classes
    total = np.zeros((k, k), dtype=np.int64)
    results, tiles, seconds = [], 0, 0.0
    regions = []
    for scene in scenes:
        with open_raster(scene.image) as handle:
            r0, c0, r1, c1 = scene_bounds(scene, handle.height, handle.width)
        regions.append((r0, c0, r1 - r0, c1 - c0))
    total_tiles = sum(count_tiles(h, w, tile_size, overlap_px) for _, _, h, w in regions)
    bar = tqdm(total=total_tiles, unit="tile", desc=f"eval {split}", disable=not cfg.get("progress", True)
               or not is_terminal(sys.stderr),
               file=sys.stderr, dynamic_ncols=True, leave=False)
    with rasterio.Env(GDAL_CACHEMAX=int(cfg.get("gdal_cache_mb") or 64) * 2**20), bar:  # closed on errors too
        for scene, region in zip(scenes, regions):
            if scene.label is None:
                raise DataError(f"{scene.image}: scene {scene.name} has no label raster to evaluate against")
            labels = LabelReader(scene.label, decoder, region)
            saver = None
            try:
                with open_raster(scene.image) as handle:
                    if save_dir is not None:
                        target = save_dir / f"{scene.name}_classes.tif"
                        saver = GeoTiffSink(OutputPaths(target), handle, spec.class_names, spec.palette, region=region)
                    sink = ConfusionSink(labels, k, also=saver)
                    stats = predict_raster(handle, predictor, sink, tile_size=tile_size, overlap=overlap,
                                           blend=cfg.get("blend", "cosine"), bands=bands, nodata=nodata,
                                           region=region, progress=bar.update)
                if saver is not None:
                    saver.commit()
            except BaseException:
                if saver is not None:
                    saver.discard()
                raise
            finally:
                labels.close()
            if stats.extra.get("nonfinite_pixels"):
                warn(f"{scene.image}: {stats.extra['nonfinite_pixels']:,} pixels are NaN or infinite; treated as "
                     f"nodata (left out of the scores)")
            tiles += stats.tiles
            seconds += stats.seconds
            total += sink.confusion
            results.append(scene_result(scene.name, scene.image, scene.label, sink.confusion, spec.class_names,
                                         exclude) | ({"window": list(scene.window)} if scene.window else {}))
    info = {"tile_size": tile_size, "overlap": overlap, "overlap_px": overlap_px, "blend": cfg.get("blend", "cosine"),
            "tta": cfg.get("tta", "none"), "precision": str(cfg.get("precision", "auto")), "device": str(device),
            "batch_size": int(cfg.get("batch_size", 8)), "tiles": tiles, "predict_seconds": round(seconds, 2),
            "tiles_per_s": round(tiles / seconds, 2) if seconds else None}
    return total, results, split, spec.class_names, exclude, data, info


def run_eval(cfg: DictConfig, loaded: TrainedModel | None = None) -> dict:
    """Evaluate (see the module docstring); prints the per-class table, writes ``results.json``, returns it.
    ``loaded``: a model already open (:class:`~rsseg.inference.model.TrainedModel`) instead of ``cfg.ckpt``."""
    from rsseg._version import version_stamp
    from rsseg.config.runs import hydra_choice
    from rsseg.inference.predict import peak_memory
    from rsseg.metrics import format_table, metrics_from_confusion
    from rsseg.runtime.preflight import check_writable
    from rsseg.runtime.results import write_results

    started = time.perf_counter()
    check_writable(run_dir(cfg, "out_dir"), "out_dir")
    holder: dict = {}
    if cfg.get("pred") is not None:
        if cfg.get("label") is None:
            raise ConfigError("pred= needs label= (the label rasters to score against)")
        stored = None
        if cfg.get("ckpt") is not None:
            stored = (loaded if loaded is not None else open_model(cfg.ckpt)).config
        data = resolve_data_config(cfg, stored)
        if data is not None and data.get("class_names"):
            class_names = [str(n) for n in data.class_names]
        else:
            class_names = class_names_from_prediction(cfg.pred)
        decoder = build_decoder(data, len(class_names))
        exclude = _exclude(cfg, data, class_names)
        confusion, scenes = evaluate_predictions(cfg.pred, cfg.label, class_names, decoder, exclude)
        split, mode, info = cfg.get("split") or "predictions", "predictions", {}
    elif cfg.get("ckpt") is not None:
        confusion, scenes, split, class_names, exclude, data, info = evaluate_model(cfg, holder, loaded)
        mode = "checkpoint"
    else:
        raise ConfigError("give ckpt=<file.ckpt> (evaluate a model on a dataset split, or on input= with label=), "
                          "or pred=<class rasters> with label=<label rasters>")

    metrics = metrics_from_confusion(confusion, class_names, exclude)
    metrics["confusion"] = confusion.tolist()
    data_name = hydra_choice("data")
    if data_name is None and data is not None and OmegaConf.select(data, "scenes._target_", default=None):
        data_name = str(OmegaConf.select(data, "scenes._target_")).rsplit(".", 1)[-1]
    payload = {
        "task": "eval",
        "mode": mode,
        **version_stamp(),
        "checkpoint": str(cfg.ckpt) if cfg.get("ckpt") else None,
        "data": data_name,
        "split": split,
        "protocol": {
            "evaluation": "full scenes (sliding window)" if mode == "checkpoint" else "saved predictions",
            "eval_labels": OmegaConf.select(data, "scenes.eval_labels", default=None) if data is not None else None,
            "exclude_from_mean": exclude,
            "ignore_index": int(data.get("ignore_index", 255)) if data is not None else 255,
        },
        "inference": info,
        "metrics": {split: metrics},
        "scenes": scenes,
        "wall_time_s": round(time.perf_counter() - started, 2),
        **{k: round(v, 1) for k, v in peak_memory().items()},
        "config": _container(cfg),
    }
    path = write_results(run_dir(cfg, "out_dir") / "results.json", payload)
    extent = f"{len(scenes)} scene{'s' * (len(scenes) != 1)}, {int(confusion.sum()):,} pixels"
    title = f"{split} metrics ({extent})"
    say(format_table(metrics, title=title))
    if info.get("tiles"):
        say(f"{info['tiles']} tiles in {info['predict_seconds']} s ({info['tiles_per_s']} tiles/s) on {info['device']}")
    say(f"results: {path}")
    if cfg.get("plots", True):
        from rsseg.evaluation.plots import write_eval_plots

        described = f"{data_name + ', ' if data_name else ''}{split} split ({extent})"
        write_eval_plots(path.parent, metrics, class_names, split, described)
    return payload


def main(cfg: DictConfig) -> dict | None:
    """The Hydra app's body: one-line errors (exit 2); SIGTERM or Ctrl-C leave no partial output (exit 130)."""
    from rsseg.runtime.app import run_guarded, terminate_as_interrupt

    terminate_as_interrupt()
    return run_guarded(run_eval, cfg)
