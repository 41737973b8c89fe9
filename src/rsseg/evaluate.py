"""Full-tile evaluation, the ISPRS way: everything ``eval.py`` (and ``rsseg eval``) does.

Three ways in, one confusion matrix out (rows = true class, columns = predicted), accumulated while streaming
over row strips so no 6000 x 6000 tile is ever held whole:

* ``ckpt=<file>``: predict every scene of a dataset split with the same sliding-window engine as ``predict.py``
  (:mod:`rsseg.inference`) and score it against its labels. The dataset is the checkpoint's own (its stored
  ``data`` config) or ``data=<name>`` (plus ``protocol=...``); ``+data.root=/path`` moves the stored one.
* ``ckpt=<file> input=<images> label=<labels>``: the same on scenes of your own (files, folders or globs,
  paired by name).
* ``pred=<class rasters> label=<labels>``: score saved predictions (e.g. from ``predict.py``), paired by name.

Labels are decoded with the data config's palette (colour-coded, unknown colour = an error naming the file,
the colour and its pixel count; ``ignore_colours`` such as the black boundaries of eroded ISPRS labels are
ignored) or as class indices. Pixels whose prediction is nodata (255) are ignored, as training ignores labels
under image nodata. Metrics come from :func:`rsseg.metrics.metrics_from_confusion` with the data config's
``exclude_from_mean`` (or ``exclude_from_mean=[clutter]``), and ``results.json`` lands in the run folder.
"""

from __future__ import annotations

import json
import re
import sys
import time
import types
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

import rsseg.data.stats  # noqa: F401 - registers the ${rsseg.stats:...} resolver data configs use
from rsseg.errors import ConfigError, DataError, warn

NAME_SUFFIXES = {
    "classes", "class", "pred", "preds", "prediction", "predictions", "label", "labels", "gt", "mask",
    "noboundary", "rgb", "irrg", "rgbir",
}


# --------------------------------------------------------------------------------------------------------------
# Confusion matrices
# --------------------------------------------------------------------------------------------------------------


def add_to_confusion(confusion: np.ndarray, labels: np.ndarray, classes: np.ndarray, source: str = "prediction") -> None:
    """Count ``labels`` (true) against ``classes`` (predicted) into ``confusion [K, K]`` in place.

    Labels outside ``0..K-1`` (the ignore index) and predictions equal to 255 (nodata) are left out; any other
    prediction outside ``0..K-1`` is an error naming ``source``.
    """
    from rsseg.inference import NODATA

    k = confusion.shape[0]
    classes = classes.reshape(-1)
    labels = labels.reshape(-1)
    bad = (classes >= k) & (classes != NODATA)
    if bad.any():
        values, counts = np.unique(classes[bad], return_counts=True)
        raise DataError(
            f"{source}: class value {int(values[0])} is outside 0..{k - 1} ({int(counts[0])} pixels); "
            f"was it predicted with a model of {k} classes?"
        )
    valid = (labels < k) & (classes < k)
    codes = labels[valid].astype(np.int64) * k + classes[valid]
    confusion += np.bincount(codes, minlength=k * k).reshape(k, k)


class LabelReader:
    """Reads and decodes label rows of a raster (or of a region of it) with a data config's decoder."""

    def __init__(self, path: Path, decoder, region: tuple[int, int, int, int] | None = None) -> None:
        from rsseg.data.labels import IndexLabels
        from rsseg.data.raster import open_raster

        self.path = Path(path)
        self.handle = open_raster(self.path)
        self.decoder = decoder
        self.index = isinstance(decoder, IndexLabels)
        self.row0, self.col0, self.height, self.width = region or (0, 0, self.handle.height, self.handle.width)

    def rows(self, row: int, count: int) -> np.ndarray:
        from rasterio.windows import Window

        from rsseg.data.raster import read_label_window

        window = Window(self.col0, self.row0 + row, self.width, count)
        try:
            raw = self.handle.read([1], window=window) if self.index else read_label_window(self.handle, window)
        except Exception as error:  # noqa: BLE001 - rasterio raises several types for corrupt files
            raise DataError(f"{self.path}: reading rows {self.row0 + row}..{self.row0 + row + count} failed "
                            f"({str(error).splitlines()[0]})") from None
        return self.decoder(raw, str(self.path))

    def close(self) -> None:
        self.handle.close()


class ConfusionSink:
    """An inference sink that scores each final strip against the matching label rows."""

    confidence = False
    probabilities = None

    def __init__(self, labels: LabelReader, num_classes: int, also=None) -> None:
        self.labels = labels
        self.confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
        self.also = also  # another sink (a GeoTiffSink saving the predictions)
        if also is not None:
            self.confidence, self.probabilities = also.confidence, also.probabilities

    def write(self, row, classes, confidence, probabilities) -> None:
        add_to_confusion(self.confusion, self.labels.rows(row, classes.shape[0]), classes)
        if self.also is not None:
            self.also.write(row, classes, confidence, probabilities)


# --------------------------------------------------------------------------------------------------------------
# Pairing files
# --------------------------------------------------------------------------------------------------------------


def match_key(path: Path) -> str:
    """A file's name for pairing: lower case, without known trailing parts (``_classes``, ``_label``,
    ``_noBoundary``, ``_RGB`` ...), so ``area1_classes.tif`` pairs with ``area1_noBoundary.tif``."""
    parts = path.stem.lower().split("_")
    while len(parts) > 1 and parts[-1] in NAME_SUFFIXES:
        parts.pop()
    return re.sub(r"[^a-z0-9]+", "_", "_".join(parts))


def pair_files(first: list[Path], second: list[Path], what: tuple[str, str] = ("pred", "label")) -> list[tuple[Path, Path]]:
    """Pair two lists of files by :func:`match_key`; one file each pairs whatever the names."""
    if len(first) == 1 and len(second) == 1:
        return [(first[0], second[0])]
    by_key: dict[str, Path] = {}
    for path in second:
        key = match_key(path)
        if key in by_key:
            raise DataError(f"{path} and {by_key[key]}: two {what[1]} files for the name {key!r}")
        by_key[key] = path
    pairs, unmatched, used = [], [], {}
    for path in first:
        match = by_key.get(match_key(path))
        if match is None:
            unmatched.append(path)
        elif match in used:
            raise DataError(f"{path} and {used[match]}: both pair with the {what[1]} file {match}")
        else:
            used[match] = path
            pairs.append((path, match))
    if unmatched:
        raise DataError(
            f"{unmatched[0]}: no {what[1]} file with a matching name ({match_key(unmatched[0])!r})"
            f"{f' and {len(unmatched) - 1} more {what[0]} files unmatched' if len(unmatched) > 1 else ''}"
        )
    return pairs


# --------------------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------------------


def resolve_data_config(cfg: DictConfig, stored: DictConfig | None) -> DictConfig | None:
    """The data config to evaluate on: ``data=<name>`` (a whole composed config), the checkpoint's own, or the
    checkpoint's with a partial override (``+data.root=/mnt/potsdam`` also moves ``data.scenes.root``)."""
    override = cfg.get("data")
    stored_data = stored.get("data") if stored is not None else None
    if override is not None and "_target_" in override:
        return override
    if stored_data is None:
        return override
    data = OmegaConf.create(OmegaConf.to_container(stored_data, resolve=True))
    if override:
        patch = OmegaConf.to_container(override, resolve=True)
        if "root" in patch and OmegaConf.select(data, "scenes.root") == data.get("root") and "scenes" in data:
            patch.setdefault("scenes", {})
            if isinstance(patch["scenes"], dict):
                patch["scenes"].setdefault("root", patch["root"])
        data = OmegaConf.merge(data, patch)
    return data


def build_decoder(data: DictConfig | None, num_classes: int, palette=None):
    """The label decoder a data config describes; without one, colour labels use ``palette`` (e.g. the
    prediction raster's colour table) and one-band labels are class indices."""
    from rsseg.data.labels import decoder_from_config

    return decoder_from_config(data, num_classes, palette)


def _exclude(cfg: DictConfig, data: DictConfig | None) -> list:
    if cfg.get("exclude_from_mean") is not None:
        return list(cfg.exclude_from_mean)
    if data is not None and data.get("exclude_from_mean"):
        return list(data.exclude_from_mean)
    return []


def _output_dir(cfg: DictConfig) -> Path:
    from rsseg.predict import run_dir

    return Path(cfg.out_dir) if cfg.get("out_dir") else run_dir(cfg)


def _container(cfg: DictConfig) -> dict:
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # noqa: BLE001 - an interpolation that only resolves inside a Hydra run
        return OmegaConf.to_container(cfg, resolve=False)


# --------------------------------------------------------------------------------------------------------------
# Modes
# --------------------------------------------------------------------------------------------------------------


def _scene_result(name: str, image, label, confusion: np.ndarray, class_names, exclude) -> dict:
    from rsseg.metrics import metrics_from_confusion

    m = metrics_from_confusion(confusion, class_names, exclude)
    return {"name": name, "image": str(image) if image else None, "label": str(label),
            "pixels": int(confusion.sum()), "miou": m["miou"], "oa": m["oa"], "mf1": m["mf1"]}


def evaluate_predictions(pred_spec, label_spec, class_names, decoder, exclude, window_pixels: int = 1 << 22):
    """Score saved class rasters against label rasters; returns (confusion, per-scene results)."""
    from rasterio.windows import Window

    from rsseg.data.raster import check_same_grid, open_raster
    from rsseg.predict import list_inputs

    preds, _ = list_inputs(pred_spec)
    labels, _ = list_inputs(label_spec)
    pairs = pair_files(preds, labels)
    k = len(class_names)
    total = np.zeros((k, k), dtype=np.int64)
    scenes = []
    for pred_path, label_path in pairs:
        with open_raster(pred_path) as pred:
            local_decoder = decoder
            if local_decoder is None:
                local_decoder = _decoder_from_prediction(pred, label_path, k)
            reader = LabelReader(label_path, local_decoder)
            try:
                check_same_grid(pred, reader.handle, pred_path, label_path, "the prediction")
                confusion = np.zeros((k, k), dtype=np.int64)
                step = max(1, window_pixels // max(1, pred.width))
                for row in range(0, pred.height, step):
                    count = min(step, pred.height - row)
                    classes = pred.read(1, window=Window(0, row, pred.width, count))
                    add_to_confusion(confusion, reader.rows(row, count), classes, str(pred_path))
            finally:
                reader.close()
        total += confusion
        scenes.append(_scene_result(pred_path.stem, None, label_path, confusion, class_names, exclude)
                      | {"prediction": str(pred_path)})
    return total, scenes


def _decoder_from_prediction(pred, label_path: Path, num_classes: int):
    from rsseg.data.labels import build_decoder as make
    from rsseg.data.raster import is_palette_indexed, open_raster

    with open_raster(label_path) as label:
        colour = label.count >= 3 or is_palette_indexed(label)
    if not colour:
        return make("index", num_classes)
    try:
        table = pred.colormap(1)
    except ValueError:
        table = {}
    palette = [list(table[i][:3]) for i in range(num_classes) if i in table]
    if len(palette) != num_classes:
        raise ConfigError(
            f"{label_path}: colour-coded labels need a palette; give data=<name> (or ckpt=) or predict with "
            f"rsseg so the class rasters carry their colour table"
        )
    return make("colour", num_classes, palette)


def _class_names_from_prediction(pred_spec) -> list[str]:
    from rsseg.data.raster import open_raster
    from rsseg.predict import list_inputs

    first = list_inputs(pred_spec)[0][0]
    with open_raster(first) as handle:
        names = handle.tags().get("CLASS_NAMES")
    if not names:
        raise ConfigError(f"{first}: no CLASS_NAMES tag; give data=<name> or ckpt= to name the classes")
    return list(json.loads(names))


def _scenes_for_model(cfg: DictConfig, data: DictConfig | None, spec, dm_mean_std):
    """``(scenes, split name, decoder, bands, nodata)`` to predict: input/label globs, or a dataset split."""
    from rsseg.data.raster import Scene, check_pair
    from rsseg.predict import list_inputs

    if data is None:
        raise ConfigError("no data config: the checkpoint stores none; give data=<name>")
    if cfg.get("input") is not None:
        if cfg.get("label") is None:
            raise ConfigError("input= needs label= (the label rasters to score against)")
        labels, _ = list_inputs(cfg.label)
        label_set = {p.resolve() for p in labels}  # a folder holding images and labels: labels are not inputs
        images = [p for p in list_inputs(cfg.input)[0] if p.resolve() not in label_set]
        if not images:
            raise DataError(f"{cfg.input}: no image rasters besides the label files")
        pairs = pair_files(images, labels, ("input", "label"))
        decoder = build_decoder(data, spec.num_classes)
        if decoder is None:
            raise ConfigError("data.label_format is not set; expected 'colour' or 'index'")
        scenes = [Scene(image, label) for image, label in pairs]
        bands = list(cfg.bands) if cfg.get("bands") else spec.bands
        for scene in scenes:  # size, CRS and transform of every pair, before the model is built
            check_pair(scene, spec.in_channels, bands, decoder.bands_needed)
        return scenes, "input", decoder, spec.bands, data.get("nodata")
    if "_target_" not in data:
        raise ConfigError("the data config has no _target_ (datamodule); give data=<name> or input= with label=")
    from hydra.utils import instantiate

    container = OmegaConf.to_container(data, resolve=True)
    container.update(dm_mean_std)
    dm = instantiate(OmegaConf.create(container), augment=None, _recursive_=True)
    split = cfg.get("split")
    if split is None:  # the test split, or validation when the dataset has no test split (synthetic)
        split = "test" if dm.split_scenes("test")[0] else "val"
    scenes, _ = dm.split_scenes(split)
    if not scenes:
        from rsseg.preflight import empty_split_reason

        raise DataError(f"split={split}: the split is empty: {empty_split_reason(dm.scenes, split)}")
    return scenes, split, dm.decode_labels, dm.bands, data.get("nodata")


def evaluate_model(cfg: DictConfig, stored_cfg_holder: dict, loaded: tuple | None = None) -> tuple:
    """Predict each scene of the chosen split with the checkpoint (or ``loaded``, what ``load_checkpoint``
    returns) and score it; returns
    (confusion, scenes, split, class names, exclude, data config, inference info)."""
    import rasterio
    import torch
    from tqdm import tqdm

    from rsseg.data.dataset import scene_bounds
    from rsseg.data.raster import open_raster
    from rsseg.inference import (
        GeoTiffSink,
        OutputPaths,
        TilePredictor,
        count_tiles,
        predict_raster,
        resolve_device,
        resolve_overlap,
    )
    from rsseg.predict import open_model
    from rsseg.preflight import check_writable

    stored, spec, build_model = open_model(cfg.ckpt, loaded)
    stored_cfg_holder["stored"] = stored
    data = resolve_data_config(cfg, stored)
    if data is not None and data.get("num_classes") is not None and int(data.num_classes) != spec.num_classes:
        raise ConfigError(f"data.num_classes={data.num_classes} but the checkpoint's model predicts "
                          f"{spec.num_classes} classes ({spec.class_names})")
    if data is not None and data.get("class_names") and list(data.class_names) != spec.class_names:
        print(f"note: data class names {list(data.class_names)} differ from the checkpoint's {spec.class_names}; "
              f"reporting the checkpoint's", file=sys.stderr)
    mean_std = {"mean": spec.mean, "std": spec.std, "in_channels": spec.in_channels}
    scenes, split, decoder, bands, nodata = _scenes_for_model(cfg, data, spec, mean_std)
    bands = list(cfg.bands) if cfg.get("bands") else (bands or spec.bands)
    if cfg.get("nodata") is not None:
        nodata = cfg.nodata
    tile_size = int(cfg.get("tile_size") or spec.tile_size)
    overlap = cfg.get("overlap", 0.25)
    overlap_px = resolve_overlap(overlap, tile_size)
    exclude = _exclude(cfg, data)
    save_dir = _output_dir(cfg) / "predictions" if cfg.get("save_predictions") else None
    if save_dir is not None:
        check_writable(save_dir, "out_dir")
    device = resolve_device(cfg.get("device", "auto"))
    if cfg.get("num_threads"):
        torch.set_num_threads(int(cfg.num_threads))
    model = build_model()
    predictor = TilePredictor(model, spec.mean, spec.std, spec.num_classes, device, cfg.get("precision", "auto"),
                              cfg.get("tta", "none"), int(cfg.get("batch_size", 8)))

    k = spec.num_classes
    total = np.zeros((k, k), dtype=np.int64)
    results, tiles, seconds = [], 0, 0.0
    regions = []
    for scene in scenes:
        with open_raster(scene.image) as handle:
            r0, c0, r1, c1 = scene_bounds(scene, handle.height, handle.width)
        regions.append((r0, c0, r1 - r0, c1 - c0))
    total_tiles = sum(count_tiles(h, w, tile_size, overlap_px) for _, _, h, w in regions)
    bar = tqdm(total=total_tiles, unit="tile", desc=f"eval {split}", disable=not cfg.get("progress", True),
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
            results.append(_scene_result(scene.name, scene.image, scene.label, sink.confusion, spec.class_names,
                                         exclude) | ({"window": list(scene.window)} if scene.window else {}))
    info = {"tile_size": tile_size, "overlap": overlap, "overlap_px": overlap_px, "blend": cfg.get("blend", "cosine"),
            "tta": cfg.get("tta", "none"), "precision": str(cfg.get("precision", "auto")), "device": str(device),
            "batch_size": int(cfg.get("batch_size", 8)), "tiles": tiles, "predict_seconds": round(seconds, 2),
            "tiles_per_s": round(tiles / seconds, 2) if seconds else None}
    return total, results, split, spec.class_names, exclude, data, info


def run_eval(cfg: DictConfig, loaded: tuple | None = None) -> dict:
    """Evaluate (see the module docstring); prints the per-class table, writes ``results.json``, returns it.
    ``loaded``: the model, as ``load_checkpoint`` returns it, instead of loading ``cfg.ckpt``."""
    import rsseg
    from rsseg.metrics import format_table, metrics_from_confusion
    from rsseg.predict import peak_memory
    from rsseg.preflight import check_writable
    from rsseg.results import git_commit, write_results
    from rsseg.train import hydra_choice

    started = time.perf_counter()
    check_writable(_output_dir(cfg), "out_dir")
    holder: dict = {}
    if cfg.get("pred") is not None:
        if cfg.get("label") is None:
            raise ConfigError("pred= needs label= (the label rasters to score against)")
        stored = None
        if cfg.get("ckpt") is not None:
            from rsseg.predict import open_model

            stored = open_model(cfg.ckpt, loaded)[0]
        data = resolve_data_config(cfg, stored)
        if data is not None and data.get("class_names"):
            class_names = [str(n) for n in data.class_names]
        else:
            class_names = _class_names_from_prediction(cfg.pred)
        decoder = build_decoder(data, len(class_names))
        exclude = _exclude(cfg, data)
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
        "rsseg_version": rsseg.__version__,
        "git_commit": git_commit(),
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
    path = write_results(_output_dir(cfg) / "results.json", payload)
    title = f"{split} metrics ({len(scenes)} scene{'s' * (len(scenes) != 1)}, {int(confusion.sum()):,} pixels)"
    print(format_table(metrics, title=title))
    if info.get("tiles"):
        print(f"{info['tiles']} tiles in {info['predict_seconds']} s ({info['tiles_per_s']} tiles/s) on {info['device']}")
    print(f"results: {path}")
    return payload


def main(cfg: DictConfig) -> dict | None:
    """The Hydra app's body: one-line errors (exit 2); SIGTERM or Ctrl-C leave no partial output (exit 130)."""
    from rsseg.app import run_guarded, terminate_as_interrupt

    terminate_as_interrupt()
    return run_guarded(run_eval, cfg)


class _CallableModule(types.ModuleType):
    """``rsseg.evaluate`` names this module and the Python API's function at once: calling the module runs
    :func:`rsseg.api.evaluate` (a package attribute cannot be both a submodule and a function)."""

    def __call__(self, *args, **kwargs) -> dict:
        from rsseg.api import evaluate

        return evaluate(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
