"""Checking a composed config against its schema (:mod:`rsseg.config.schema`), before anything else runs.

Hydra type-checks while it composes but accepts keys added with ``+``; :func:`check_config` closes that gap and
checks what types cannot say:

* ranges and choices (tile and batch sizes positive, bands 1-based, ``split`` among train/val/test, ``device``
  a real one), from each field's metadata;
* unknown keys anywhere, including ``+`` additions: a top-level key against the dataclass, a key of a node with
  a ``_target_`` (``data``, ``data.scenes``, ``trainer``, callbacks, loggers, ...) against the signature of the
  class it builds, so the list of keys is never kept by hand;
* the data and trainer keys people set most (``data.tile_size``, ``trainer.max_epochs`` ...), whose nodes are
  free-form because they come from config groups.
"""

from __future__ import annotations

import difflib
import inspect
import types
import typing
from dataclasses import MISSING, fields, is_dataclass
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from rsseg.config.schema import (
    DataValues,
    EvalConfig,
    OptimizerValues,
    PredictConfig,
    PrepareConfig,
    SchedulerValues,
    TrainConfig,
    TrainerValues,
)
from rsseg.errors import ConfigError

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
        for group, values in (("optimizer", OptimizerValues), ("scheduler", SchedulerValues)):
            if isinstance(cfg.get(group), DictConfig):
                _check_node(cfg[group], values, f"{group}.", None)
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
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        where = f"{value:g} is " if isinstance(whole, (list, tuple)) else ""
        if meta.get("max") is not None and value > meta["max"]:
            raise ConfigError(f"{shown}: {where}above the maximum {meta['max']:g}; expected {expect}")
        if meta.get("below") is not None and value >= meta["below"]:
            raise ConfigError(f"{shown}: {where}not below {meta['below']:g}; expected {expect}")
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
