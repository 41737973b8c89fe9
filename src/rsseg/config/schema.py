"""Typed schemas of rsseg's configs: what each key holds, its range, and which keys exist at all.

The primary configs (``conf/train.yaml``, ``predict.yaml``, ``eval.yaml``, ``prepare.yaml``) start their
defaults list with one of the dataclasses below, registered in Hydra's ConfigStore. Hydra then converts and
type-checks every value while it composes (``seed=abc`` or ``nodata=abc`` never reach the code) and refuses a key
the schema does not have, unless it is added with ``+``, which Hydra accepts even on a typed config.
:func:`rsseg.config.checks.check_config` closes that gap.

A new top-level key of a primary config is a new field here (Hydra refuses the YAML otherwise).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

SPLITS = ("train", "val", "test")
BLENDS = ("uniform", "gaussian", "cosine")
TTAS = ("none", "flip", "d4")
PRECISIONS = ("auto", "32", "bf16", "fp16")
MOSAICS = ("none", "vrt", "cog")
DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
DEVICES = "auto, cpu, cuda, cuda:<index> or mps"


def option(default: Any = None, expect: str = "", *, minimum: float | None = None, maximum: float | None = None,
           below: float | None = None, choices: tuple | None = None, pattern: re.Pattern | None = None) -> Any:
    """A dataclass field whose metadata says what the key expects (used in error messages) and its range
    (``maximum`` inclusive, ``below`` exclusive)."""
    meta = {"expect": expect, "min": minimum, "max": maximum, "below": below, "choices": choices, "pattern": pattern}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


# --------------------------------------------------------------------------------------------------------------
# Primary configs
# --------------------------------------------------------------------------------------------------------------


@dataclass
class SlidingWindowConfig:
    """Sliding-window inference, shared by predict and eval (see conf/predict.yaml)."""

    tile_size: int | None = option(None, "a tile side in pixels, an integer >= 1 (null: the checkpoint's)",
                                      minimum=1)
    overlap: float = option(0.25, "a fraction of the tile in [0, 1) or a pixel count smaller than tile_size",
                            minimum=0)
    blend: str = option("cosine", f"one of {', '.join(BLENDS)}", choices=BLENDS)
    batch_size: int = option(8, "tiles per forward pass, an integer >= 1", minimum=1)
    device: str = option("auto", DEVICES, pattern=DEVICE)
    precision: str = option("auto", f"one of {', '.join(PRECISIONS)}", choices=PRECISIONS)
    tta: str = option("none", f"one of {', '.join(TTAS)}", choices=TTAS)
    bands: list[int] | None = option(None, "a list of 1-based band numbers (the first band is 1), "
                                              "e.g. bands=[4,3,2]", minimum=1)
    nodata: float | None = option(None, "a number (the pixel value that marks no data, e.g. nodata=0 or "
                                           "nodata=nan) or null")
    num_threads: int | None = option(None, "a number of CPU threads >= 1 or null", minimum=1)
    channels_last: bool = option(True, "true or false")
    compile: bool = option(False, "true or false")
    gdal_cache_mb: int | None = option(64, "a GDAL block cache size in MiB >= 1", minimum=1)
    progress: bool = option(True, "true or false")


@dataclass
class PredictConfig(SlidingWindowConfig):
    """``predict.py`` / ``rsseg predict`` (conf/predict.yaml)."""

    task_name: str = "predict"
    ckpt: str | None = option(None, "the .ckpt file of a trained rsseg model")
    input: str | None = option(None, "a GeoTIFF, a folder of rasters or a quoted glob")
    output: str | None = option(None, "a class raster path or a folder")
    overwrite: bool = option(False, "true or false")
    confidence: bool = option(False, "true or false")
    probabilities: bool = option(False, "true or false")
    cog: bool = option(False, "true or false")
    preview: bool = option(False, "true or false")
    preview_size: int = option(1024, "the preview's longer side in pixels, an integer >= 1", minimum=1)
    input_field: str | None = option(None, "the attribute (or STAC asset) of a vector input that holds each "
                                           "scene's path, or null")
    region: bool = option(False, "true or false")
    shards: int = option(1, "a shard count, an integer >= 1", minimum=1)
    shard: int = option(0, "this job's shard, an integer in 0..shards-1", minimum=0)
    mosaic: str = option("vrt", f"one of {', '.join(MOSAICS)}", choices=MOSAICS)
    paths: Any = None


@dataclass
class EvalConfig(SlidingWindowConfig):
    """``eval.py`` / ``rsseg eval`` (conf/eval.yaml)."""

    task_name: str = "eval"
    seed: int = option(0, "an integer")
    ckpt: str | None = option(None, "the .ckpt file of a trained rsseg model")
    split: str | None = option(None, f"one of {', '.join(SPLITS)} or null", choices=SPLITS)
    input: str | None = option(None, "image rasters: a file, a folder or a quoted glob")
    pred: str | None = option(None, "class rasters: a file, a folder or a quoted glob")
    label: str | None = option(None, "label rasters: a file, a folder or a quoted glob")
    exclude_from_mean: list[Any] | None = option(None, "a list of class names or indices, e.g. [clutter]")
    save_predictions: bool = option(False, "true or false")
    plots: bool = option(True, "true or false")
    out_dir: str | None = option(None, "a folder for results.json")
    data: Any = None
    protocol: Any = None
    paths: Any = None


@dataclass
class TilesConfig:
    """``rsseg prepare``'s tiles on disk."""

    write: bool = option(False, "true or false")
    size: int = option(512, "a tile side in pixels, an integer >= 1", minimum=1)
    stride: int | None = option(None, "a step between tiles in pixels >= 1, or null (no overlap)", minimum=1)
    splits: list[str] = option(list(SPLITS), f"a list of splits among {', '.join(SPLITS)}", choices=SPLITS)


@dataclass
class PrepareConfig:
    """``rsseg prepare`` (conf/prepare.yaml)."""

    task_name: str = "prepare"
    seed: int = option(0, "an integer")
    out_dir: str | None = option(None, "a folder for stats.json, splits.json and tiles/")
    check_pixels: bool = option(True, "true or false")
    window: int = option(1024, "a window side in pixels, an integer >= 1", minimum=1)
    stats_split: str = option("train", f"one of {', '.join(SPLITS)}", choices=SPLITS)
    tiles: TilesConfig = field(default_factory=TilesConfig)
    data: Any = None
    protocol: Any = None
    paths: Any = None


@dataclass
class TrainConfig:
    """``train.py`` / ``rsseg train`` (conf/train.yaml). Groups are free-form here; their keys are checked
    against the classes they build (:func:`check_config`)."""

    task_name: str = "train"
    seed: int = option(0, "an integer (the random seed)")
    fit: bool = option(True, "true or false")
    ckpt_path: str | None = option(None, "a checkpoint .ckpt file to continue from, or null")
    resume: str | None = option(None, "auto (the latest run of this config), a checkpoint .ckpt path, or null")
    validate_best: bool = option(True, "true or false")
    test: bool = option(True, "true or false")
    plots: bool = option(True, "true or false")
    channels_last: Any = option(True, "true, false or auto (on where a GPU trains)", choices=("auto", "True", "False"))
    compile: bool = option(False, "true or false")
    data: Any = None
    protocol: Any = None
    model: Any = None
    aug: Any = None
    loss: Any = None
    optimizer: Any = None
    scheduler: Any = None
    trainer: Any = None
    callbacks: Any = None
    logger: Any = None
    paths: Any = None
    scale: Any = None
    row: Any = None
    table: Any = None
    pretrained_weights: Any = None


# --------------------------------------------------------------------------------------------------------------
# The keys of free-form group nodes that people set most
# --------------------------------------------------------------------------------------------------------------


@dataclass
class DataValues:
    """Ranges of the data config keys people override (every key is also checked against the datamodule)."""

    num_classes: int | None = option(None, "a class count in 1..255 (class rasters are uint8, 255 = nodata)",
                                        minimum=1, maximum=255)
    in_channels: int | None = option(None, "a band count >= 1", minimum=1)
    tile_size: int | None = option(None, "a training window side in pixels, an integer >= 1", minimum=1)
    eval_tile_size: int | None = option(None, "an evaluation window side in pixels >= 1, or null", minimum=1)
    eval_stride: int | None = option(None, "an evaluation grid step in pixels >= 1, or null", minimum=1)
    batch_size: int | None = option(None, "windows per training batch, an integer >= 1", minimum=1)
    eval_batch_size: int | None = option(None, "windows per evaluation batch >= 1, or null", minimum=1)
    train_samples_per_epoch: int | None = option(None, "windows per epoch >= 1, or null (tile the split once)",
                                                    minimum=1)
    num_workers: int | None = option(None, "a number of DataLoader worker processes >= 0", minimum=0)
    bands: list[int] | None = option(None, "a list of 1-based band numbers (the first band is 1), "
                                              "e.g. data.bands=[4,3,2]", minimum=1)
    nodata: float | None = option(None, "a number (the pixel value that marks no data) or null")
    ignore_index: int | None = option(None, "a label value in 0..255", minimum=0, maximum=255)
    label_values: list[int] | None = option(None, "a list of the label raster's values in class order, "
                                                     "e.g. data.label_values=[0,255]")
    reduce_zero_label: bool | None = option(None, "true or false (true: label 0 is ignored, every other value is "
                                                     "the class one below it, as in mmsegmentation)")
    cache: bool | None = option(None, "true or false (false reads every raster directly, no read cache)")
    cache_dir: str | None = option(None, "a folder for the read cache (its rasters/ subfolder), or null")


@dataclass
class TrainerValues:
    """Ranges of the Trainer arguments people override (every key is also checked against lightning.Trainer)."""

    max_epochs: int | None = option(None, "an epoch count >= 1, or -1 for no limit", minimum=-1)
    min_epochs: int | None = option(None, "an epoch count >= 0", minimum=0)
    max_steps: int | None = option(None, "a step count >= 1, or -1 for no limit", minimum=-1)
    num_nodes: int | None = option(None, "a node count >= 1", minimum=1)
    accumulate_grad_batches: int | None = option(None, "a batch count >= 1", minimum=1)
    check_val_every_n_epoch: int | None = option(None, "an epoch count >= 1, or null", minimum=1)
    log_every_n_steps: int | None = option(None, "a step count >= 1", minimum=1)
    gradient_clip_val: float | None = option(None, "a norm >= 0, or null", minimum=0)


@dataclass
class OptimizerValues:
    """Ranges torch.optim enforces on the optimiser arguments people override, checked before anything is built
    (torch would refuse them with a traceback after the data and the model were set up)."""

    lr: float | None = option(None, "a learning rate >= 0", minimum=0)
    weight_decay: float | None = option(None, "a weight decay >= 0", minimum=0)
    momentum: float | None = option(None, "a momentum >= 0", minimum=0)
    eps: float | None = option(None, "an epsilon >= 0", minimum=0)
    betas: list[float] | None = option(None, "two coefficients in [0, 1), e.g. optimizer.betas=[0.9,0.999]",
                                         minimum=0, below=1)


@dataclass
class SchedulerValues:
    """Ranges of the learning-rate schedules' arguments (rsseg.training.optim)."""

    warmup_steps: int | None = option(None, "a step count >= 0", minimum=0)
    warmup_fraction: float | None = option(None, "a fraction of the run in [0, 1], or null", minimum=0, maximum=1)
    min_factor: float | None = option(None, "a fraction of the peak learning rate in [0, 1]", minimum=0, maximum=1)
    power: float | None = option(None, "a polynomial power > 0, e.g. 0.9", minimum=1e-9)
    gamma: float | None = option(None, "a decay factor in (0, 1]", minimum=1e-9, maximum=1)
    milestones: list[float] | None = option(None, "fractions of the run in (0, 1], e.g. [0.5,0.75]", minimum=1e-9,
                                               maximum=1)


for _name, _node in (("train", TrainConfig), ("predict", PredictConfig), ("eval", EvalConfig),
                     ("prepare", PrepareConfig)):
    ConfigStore.instance().store(name=f"{_name}_schema", node=_node)
