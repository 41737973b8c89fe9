"""rsseg from Python, for people who do not use the command line.

    import rsseg

    net = rsseg.models.build("mst_deeplab", num_classes=6, in_channels=3, pretrained=None)
    model = rsseg.load_checkpoint("best.ckpt")            # or a file from rsseg export (.onnx, .pt)
    rsseg.predict_scene(model, "scene.tif", "scene_classes.tif", tta="flip")
    scores = rsseg.evaluate(model, input="scene.tif", label="scene_label.tif")

Each function is a thin layer over what the matching command runs: the same config (``conf/predict.yaml``,
``conf/eval.yaml``, ``conf/export.yaml``) with keyword arguments for its keys (``tile_size=256``,
``data="potsdam"`` for a config group), and the same code.
"""

from __future__ import annotations

import os
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rsseg.errors import ConfigError
from rsseg.inference.model import TrainedModel, load_checkpoint

__all__ = ["TrainedModel", "evaluate", "export_model", "load_checkpoint", "predict_scene"]

_UNSET = object()


def _model(checkpoint_or_model) -> TrainedModel:
    if isinstance(checkpoint_or_model, TrainedModel):
        return checkpoint_or_model
    if isinstance(checkpoint_or_model, (str, os.PathLike)):
        return load_checkpoint(checkpoint_or_model)
    raise ConfigError(f"expected a checkpoint path or a TrainedModel, got {type(checkpoint_or_model).__name__}; "
                      f"wrap a network of your own as rsseg.TrainedModel(net, class_names=..., mean=..., std=...)")


def command_config(command: str, options: dict[str, Any]) -> DictConfig:
    """The config of ``rsseg <command>`` with ``options`` set: a config group's name (``data``, ``protocol``)
    chooses its option, any other key must exist in the command's config."""
    from hydra.errors import HydraException

    from rsseg.config import compose_config, config_groups

    groups = {name for name in config_groups() if "/" not in name}
    choices = [f"{key}={value}" for key, value in options.items() if key in groups and isinstance(value, str)]
    try:
        cfg = compose_config(command, choices)
    except HydraException as error:
        raise ConfigError(f"rsseg {command} {' '.join(choices)}: {str(error).splitlines()[0]}") from None
    for key, value in options.items():
        if key in groups and isinstance(value, str):
            continue
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if OmegaConf.select(cfg, key, default=_UNSET, throw_on_resolution_failure=False) is _UNSET:
            known = ", ".join(k for k in cfg if k not in ("paths", "hydra"))
            raise ConfigError(f"{key}={value!r}: rsseg {command} has no option {key!r}; expected one of {known}")
        OmegaConf.update(cfg, key, value, merge=False)
    return cfg


def predict_scene(checkpoint_or_model, src: str | os.PathLike, dst: str | os.PathLike | None = None,
                  **options) -> dict:
    """Predict ``src`` (a raster, a folder of them or a glob) into ``dst`` (a class raster, or a folder; default:
    ``<stem>_classes.tif`` in the current folder) as ``rsseg predict`` does; ``options`` are its keys
    (``tile_size``, ``overlap``, ``tta``, ``confidence``, ``probabilities``, ``device``, ``overwrite``, ...).
    Returns the summary (scenes, tiles, seconds, peak memory)."""
    from rsseg.inference.predict import run_predict

    model = _model(checkpoint_or_model)
    cfg = command_config("predict", {"ckpt": str(model.path or "<in memory>"), "input": str(src),
                                     "output": None if dst is None else str(dst), **options})
    return run_predict(cfg, loaded=model)


def evaluate(checkpoint_or_model=None, **options) -> dict:
    """Score a model as ``rsseg eval`` does and return its results (also written to ``results.json`` in
    ``out_dir``, default: the current folder). ``options`` are its keys: ``input`` and ``label`` (your own
    scenes), ``data="potsdam"`` with ``protocol=...`` and ``split=...`` (a dataset split; without them the
    checkpoint's own dataset), or ``pred`` and ``label`` without a model (saved class rasters)."""
    from rsseg.evaluation.evaluate import run_eval

    model = _model(checkpoint_or_model) if checkpoint_or_model is not None else None
    if model is not None:
        options = {"ckpt": str(model.path or "<in memory>"), **options}
    cfg = command_config("eval", options)
    return run_eval(cfg, loaded=model)


def export_model(checkpoint: str | os.PathLike, output: str | os.PathLike, format: str = "onnx", **options) -> dict:
    """Write the network of ``checkpoint`` as ONNX or TorchScript with its classes, palette, bands and
    normalisation, as ``rsseg export`` does (``tile_size``, ``opset``, ``check``, ``overwrite``)."""
    from rsseg.inference.export import export_checkpoint

    return export_checkpoint(checkpoint, output, format, **options)
