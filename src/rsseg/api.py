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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from torch import nn

from rsseg.errors import ConfigError

_UNSET = object()


@dataclass
class TrainedModel:
    """A trained network and what using it needs: ``model`` maps normalised ``[N, bands, H, W]`` tiles
    (``(raw - mean) / std``) to logits ``[N, classes, H, W]``.

    :func:`load_checkpoint` returns one; build one around a network of your own to predict with it:
    ``TrainedModel(net, class_names=[...], mean=[...], std=[...])``.
    """

    model: nn.Module
    class_names: list[str]
    mean: list[float]
    std: list[float]
    palette: list[list[int]] | None = None
    bands: list[int] | None = None
    nodata: float | None = None
    tile_size: int = 512
    config: DictConfig | None = field(default=None, repr=False)
    path: Path | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def in_channels(self) -> int:
        return len(self.mean)

    def loaded(self) -> tuple:
        """``(model, stored config, ModelSpec)``, what the prediction and evaluation code takes."""
        from rsseg.predict import ModelSpec

        spec = ModelSpec(self.num_classes, self.in_channels, list(self.class_names), self.palette,
                         list(self.bands) if self.bands else None, list(self.mean), list(self.std), self.nodata,
                         int(self.tile_size))
        return self.model, self.config, spec


def load_checkpoint(path: str | os.PathLike) -> TrainedModel:
    """The network of an rsseg checkpoint (or of a file ``rsseg export`` wrote), in eval mode on the CPU, with
    its classes, palette, normalisation and bands."""
    from rsseg.predict import load_checkpoint as load

    model, stored, spec = load(path)
    return TrainedModel(model, spec.class_names, spec.mean, spec.std, spec.palette, spec.bands, spec.nodata,
                        spec.tile_size, stored, Path(path))


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
    from rsseg.predict import run_predict

    model = _model(checkpoint_or_model)
    cfg = command_config("predict", {"ckpt": str(model.path or "<in memory>"), "input": str(src),
                                     "output": None if dst is None else str(dst), **options})
    return run_predict(cfg, loaded=model.loaded())


def evaluate(checkpoint_or_model=None, **options) -> dict:
    """Score a model as ``rsseg eval`` does and return its results (also written to ``results.json`` in
    ``out_dir``, default: the current folder). ``options`` are its keys: ``input`` and ``label`` (your own
    scenes), ``data="potsdam"`` with ``protocol=...`` and ``split=...`` (a dataset split; without them the
    checkpoint's own dataset), or ``pred`` and ``label`` without a model (saved class rasters)."""
    from rsseg.evaluate import run_eval

    model = _model(checkpoint_or_model) if checkpoint_or_model is not None else None
    if model is not None:
        options = {"ckpt": str(model.path or "<in memory>"), **options}
    cfg = command_config("eval", options)
    return run_eval(cfg, loaded=model.loaded() if model is not None else None)


def export_model(checkpoint: str | os.PathLike, output: str | os.PathLike, format: str = "onnx", **options) -> dict:
    """Write the network of ``checkpoint`` as ONNX or TorchScript with its classes, palette, bands and
    normalisation, as ``rsseg export`` does (``tile_size``, ``opset``, ``check``, ``overwrite``)."""
    from rsseg.export import export_checkpoint

    return export_checkpoint(checkpoint, output, format, **options)
