"""Typed schemas of rsseg's configs: what each key holds, its range, and which keys exist at all.

The primary configs (``conf/train.yaml``, ``predict.yaml``, ``eval.yaml``, ``prepare.yaml``) start their
defaults list with one of the dataclasses below, registered in Hydra's ConfigStore. Hydra then converts and
type-checks every value while it composes (``seed=abc`` or ``nodata=abc`` never reach the code) and refuses a key
the schema does not have, unless it is added with ``+``, which Hydra accepts even on a typed config.
:func:`check_config` closes that gap and checks what types cannot say, before anything else runs:

* ranges and choices (tile and batch sizes positive, bands 1-based, ``split`` among train/val/test, ``device``
  a real one), from each field's metadata;
* unknown keys anywhere, including ``+`` additions: a top-level key against the dataclass, a key of a node with
  a ``_target_`` (``data``, ``data.scenes``, ``trainer``, callbacks, loggers, ...) against the signature of the
  class it builds, so the list of keys is never kept by hand;
* the data and trainer keys people set most (``data.tile_size``, ``trainer.max_epochs`` ...), whose nodes are
  free-form because they come from config groups.

A new top-level key of a primary config is a new field here (Hydra refuses the YAML otherwise).
"""

from __future__ import annotations

import difflib
import inspect
import re
import types
import typing
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, ListConfig, OmegaConf

from rsseg.errors import ConfigError

SPLITS = ("train", "val", "test")
BLENDS = ("uniform", "gaussian", "cosine")
TTAS = ("none", "flip", "d4")
PRECISIONS = ("auto", "32", "bf16", "fp16")
DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
DEVICES = "auto, cpu, cuda, cuda:<index> or mps"


def option(default: Any = None, expect: str = "", *, minimum: float | None = None, maximum: float | None = None,
           choices: tuple | None = None, pattern: re.Pattern | None = None) -> Any:
    """A dataclass field whose metadata says what the key expects (used in error messages) and its range."""
    meta = {"expect": expect, "min": minimum, "max": maximum, "choices": choices, "pattern": pattern}
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


for _name, _node in (("train", TrainConfig), ("predict", PredictConfig), ("eval", EvalConfig),
                     ("prepare", PrepareConfig)):
    ConfigStore.instance().store(name=f"{_name}_schema", node=_node)


# --------------------------------------------------------------------------------------------------------------
# Checking a composed config
# --------------------------------------------------------------------------------------------------------------

_UNRESOLVED = object()


def check_config(cfg: DictConfig) -> None:
    """Refuse, in one :class:`ConfigError`, the first key or value of a composed config that its schema
    does not allow. A config not built on a schema (a bare ``compose``) is left alone."""
    schema = OmegaConf.get_type(cfg)
    if not (is_dataclass(schema) and schema in (TrainConfig, PredictConfig, EvalConfig, PrepareConfig)):
        return
    name = schema.__name__.removesuffix("Config").lower()
    _check_node(cfg, schema, "", f"the {name} config (conf/{name}.yaml)")
    data = cfg.get("data")
    if isinstance(data, DictConfig):
        _check_node(data, DataValues, "data.", None)
        if "_target_" not in data:  # eval's +data.root=...: a patch over the checkpoint's datamodule config
            _check_arguments(data, "data", "rsseg.data.datamodule.SegmentationDataModule")
    if schema is TrainConfig:
        if cfg.get("resume") is not None and cfg.get("ckpt_path") is not None:
            raise ConfigError(f"resume={cfg.resume} and ckpt_path={cfg.ckpt_path}: both name where to continue "
                              f"from; expected one of them")
        trainer = cfg.get("trainer")
        if isinstance(trainer, DictConfig):
            _check_node(trainer, TrainerValues, "trainer.", None)
            _check_trainer_choices(trainer)  # imports Lightning: after the checks that do not
    _check_targets(cfg, "")


def _check_node(node: DictConfig, schema: type, prefix: str, strict_in: str | None) -> None:
    hints = typing.get_type_hints(schema)
    names = [f.name for f in fields(schema)]
    for item in fields(schema):
        if item.name not in node:
            continue
        value = _value(node, item.name)
        if value is _UNRESOLVED:
            continue
        hint = hints[item.name]
        if is_dataclass(hint) and isinstance(value, DictConfig):
            _check_node(value, hint, f"{prefix}{item.name}.", f"{prefix}{item.name}")
            continue
        _check_value(f"{prefix}{item.name}", value, hint, item.metadata)
    if strict_in is not None:
        for key in node.keys():
            if key not in names:
                raise ConfigError(unknown_key(f"{prefix}{key}", strict_in, names))


def unknown_key(path: str, where: str, keys, noun: str = "a key") -> str:
    """The message for a key that is not in a config (a misspelling, often added with ``+``)."""
    keys = sorted(str(k) for k in keys)
    listing = f"one of {', '.join(keys)}" if len(keys) <= 12 else "one of those listed there"
    return f"{path}: not {noun} of {where}{did_you_mean(path.rsplit('.', 1)[-1], keys)}; expected {listing}"


def _value(node: DictConfig, key: str) -> Any:
    try:
        child = node._get_node(key)
        if child is None or child._is_none():
            return None
        value = node[key]
    except Exception:  # noqa: BLE001 - an interpolation that resolves only inside a Hydra run
        return _UNRESOLVED
    if isinstance(value, (DictConfig, ListConfig)) and not is_dataclass(OmegaConf.get_type(value)):
        try:
            return OmegaConf.to_container(value, resolve=True)
        except Exception:  # noqa: BLE001 - as above
            return _UNRESOLVED
    return value


def _kind(hint: Any) -> tuple[Any, bool, Any]:
    """``(base type, optional, item type)`` of a field's annotation."""
    optional = False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional, hint = True, args[0]
    if typing.get_origin(hint) is list:
        return list, optional, (typing.get_args(hint) or (Any,))[0]
    return hint, optional or hint is Any, None


def show_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _check_value(path: str, value: Any, hint: Any, meta: typing.Mapping) -> None:
    base, optional, item = _kind(hint)
    expect = meta.get("expect") or _type_name(base, item)
    if value is None:
        if optional:
            return
        raise ConfigError(f"{path}=null: a value is required; expected {expect}")
    if base is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}={show_value(value)}: not a list; expected {expect}")
        for entry in value:
            _check_scalar(path, value, entry, item, meta, expect)
        return
    _check_scalar(path, value, value, base, meta, expect)


def _check_scalar(path: str, whole: Any, value: Any, base: Any, meta: typing.Mapping, expect: str) -> None:
    shown = f"{path}={show_value(whole)}"
    if base is bool and not isinstance(value, bool):
        raise ConfigError(f"{shown}: not true or false; expected {expect}")
    if base is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{shown}: not an integer; expected {expect}")
    if base is float and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ConfigError(f"{shown}: not a number; expected {expect}")
    if base is str and isinstance(value, (list, dict)):
        raise ConfigError(f"{shown}: not a single value; expected {expect}")
    if meta.get("min") is not None and isinstance(value, (int, float)) and value < meta["min"]:
        what = f"{value} is below" if isinstance(whole, (list, tuple)) else "below"
        raise ConfigError(f"{shown}: {what} the minimum {meta['min']:g}; expected {expect}")
    if meta.get("max") is not None and isinstance(value, (int, float)) and value > meta["max"]:
        raise ConfigError(f"{shown}: above the maximum {meta['max']:g}; expected {expect}")
    choices = meta.get("choices")
    if choices and str(value) not in choices:
        raise ConfigError(f"{shown}: not one of the choices{did_you_mean(str(value), choices)}; expected {expect}")
    if meta.get("pattern") is not None and not meta["pattern"].match(str(value)):
        hint = " (did you mean cuda?)" if str(value).startswith("gpu") else ""
        raise ConfigError(f"{shown}: not a device name{hint}; expected {expect}")


def _type_name(base: Any, item: Any) -> str:
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    return f"a list of {names.get(item, 'values')[2:]}s" if base is list else names.get(base, "a value")


def did_you_mean(word: str, candidates) -> str:
    """`` (did you mean <closest>?)`` when one of ``candidates`` is close to ``word``, else nothing."""
    close = difflib.get_close_matches(word, [str(c) for c in candidates], n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _check_trainer_choices(trainer: DictConfig) -> None:
    from lightning.fabric.plugins.precision.precision import _PRECISION_INPUT

    precision = _value(trainer, "precision") if "precision" in trainer else None
    allowed = list(dict.fromkeys(str(v) for group in typing.get_args(_PRECISION_INPUT) for v in typing.get_args(group)))
    if precision not in (None, _UNRESOLVED) and str(precision) not in allowed:
        raise ConfigError(f"trainer.precision={precision}: not a precision Lightning knows"
                          f"{did_you_mean(str(precision), allowed)}; expected one of {', '.join(allowed)}")


def _check_targets(node: Any, path: str) -> None:
    """Every node with a ``_target_`` may only hold arguments its target accepts (checked recursively)."""
    if isinstance(node, DictConfig):
        if "_target_" in node and isinstance(_value(node, "_target_"), str):
            _check_arguments(node, path.rstrip(".") or "config", str(node._target_))
        for key in node.keys():
            if str(key).startswith("_"):
                continue
            try:
                child = node._get_node(key)
            except Exception:  # noqa: BLE001 - a missing or broken node is reported where it is used
                continue
            if isinstance(child, (DictConfig, ListConfig)) and not child._is_none():
                _check_targets(child, f"{path}{key}.")
    elif isinstance(node, ListConfig) and not node._is_none():
        for index, child in enumerate(node._iter_ex(resolve=False)):
            if isinstance(child, (DictConfig, ListConfig)):
                _check_targets(child, f"{path}{index}.")


def _check_arguments(node: DictConfig, path: str, target: str) -> None:
    from hydra.utils import get_object

    try:
        built = get_object(target)
    except Exception as error:  # noqa: BLE001 - an import failure names the missing module
        raise ConfigError(f"{path}._target_={target}: cannot be imported ({str(error).splitlines()[0]}); "
                          f"expected a class or function of an installed package") from None
    accepted = accepted_arguments(built)
    if accepted is None:
        return
    for key in node.keys():
        key = str(key)
        if not key.startswith("_") and key not in accepted:
            raise ConfigError(unknown_key(f"{path}.{key}", f"{target}", accepted, noun="an argument"))


def accepted_arguments(target: Any) -> set[str] | None:
    """The keyword arguments ``target`` accepts, following ``**kwargs`` into base classes' ``__init__``;
    None when it accepts any keyword (a function with ``**kwargs``)."""
    owners = list(inspect.getmro(target)) if inspect.isclass(target) else [target]
    accepted: set[str] = set()
    for owner in owners:
        function = owner.__init__ if inspect.isclass(target) else owner
        if inspect.isclass(target) and "__init__" not in vars(owner):
            continue
        try:
            parameters = inspect.signature(function).parameters.values()
        except (TypeError, ValueError):
            return None
        accepted |= {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            accepted.discard("self")
            return accepted
        if owner is object:
            break
    return None


def expectation(schema: type | None, key: str) -> str | None:
    """What a key of a schema expects (its field's ``expect``), for messages about values Hydra refused."""
    if schema is None or not is_dataclass(schema):
        return None
    head, _, rest = key.partition(".")
    for item in fields(schema):
        if item.name == head:
            hint = typing.get_type_hints(schema)[head]
            if rest and is_dataclass(hint):
                return expectation(hint, rest)
            if item.default is MISSING and item.default_factory is MISSING:
                return None
            return item.metadata.get("expect") or _type_name(*_kind(hint)[::2])
    return None
