"""Opening a trained model in any of its formats: an rsseg checkpoint, or an ONNX or TorchScript file that
``rsseg export`` wrote. Whatever the format, prediction, evaluation, export, the figures and the Python API get one
:class:`TrainedModel`: the network and what using it needs (classes, palette, bands, normalisation, tile size).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig, OmegaConf

from rsseg.errors import ConfigError, DataError

if TYPE_CHECKING:  # torch is imported where a network is built, so that refusals stay quick
    from torch import nn

# What an exported file records of its model (besides provenance), in this order.
PREDICTION_FIELDS = ("num_classes", "in_channels", "class_names", "palette", "bands", "mean", "std", "nodata",
                     "tile_size")


@dataclass
class TrainedModel:
    """A trained network and what using it needs: ``model`` maps normalised ``[N, bands, H, W]`` tiles
    (``(raw - mean) / std``) to logits ``[N, classes, H, W]``.

    :func:`load_checkpoint` returns one; build one around a network of your own to predict with it:
    ``TrainedModel(net, class_names=[...], mean=[...], std=[...])``. :func:`open_model` returns one whose network
    is rebuilt from the checkpoint only when :meth:`network` is first called, so that inputs can be checked
    against the model's classes and bands before any weights are read.
    """

    model: nn.Module | None
    class_names: list[str]
    mean: list[float]
    std: list[float]
    palette: list[list[int]] | None = None
    bands: list[int] | None = None
    nodata: float | None = None
    tile_size: int = 512
    config: DictConfig | None = field(default=None, repr=False)
    path: Path | None = None
    num_classes: int | None = None  # default: one per class name
    in_channels: int | None = None  # default: one per band of the normalisation
    _build: Callable[[], nn.Module] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.class_names = [str(name) for name in self.class_names]
        self.mean = [float(v) for v in self.mean]
        self.std = [float(v) for v in self.std]
        self.bands = list(self.bands) if self.bands else None
        self.tile_size = int(self.tile_size)
        self.num_classes = int(self.num_classes if self.num_classes is not None else len(self.class_names))
        self.in_channels = int(self.in_channels if self.in_channels is not None else len(self.mean))

    @classmethod
    def from_config(cls, cfg: DictConfig, where: str = "checkpoint", **known) -> TrainedModel:
        """The model description a training config stores (its ``data`` section); ``known`` sets the network,
        the path and how to build the network (``_build``)."""
        data = cfg.get("data")
        if data is None:
            raise DataError(f"{where}: stored config has no data section")
        missing = [k for k in ("num_classes", "in_channels", "class_names", "mean", "std") if data.get(k) is None]
        if missing:
            raise DataError(f"{where}: stored config lacks data.{', data.'.join(missing)}")
        container = OmegaConf.to_container(data, resolve=True)
        return cls(
            model=known.pop("model", None),
            class_names=container["class_names"],
            mean=container["mean"],
            std=container["std"],
            palette=container.get("palette"),
            bands=container.get("bands"),
            nodata=container.get("nodata"),
            tile_size=container.get("eval_tile_size") or container.get("tile_size") or 512,
            config=cfg,
            num_classes=container["num_classes"],
            in_channels=container["in_channels"],
            **known,
        )

    def network(self) -> nn.Module:
        """The network in eval mode, rebuilt from its checkpoint on first use when it was opened without it."""
        if self.model is None:
            if self._build is None:
                raise ConfigError("this TrainedModel holds no network; give one: TrainedModel(net, ...)")
            self.model = self._build()
        return self.model

    def prediction_fields(self) -> dict:
        """What an exported file records of the model (:data:`PREDICTION_FIELDS`)."""
        return {name: getattr(self, name) for name in PREDICTION_FIELDS}


def _required(path) -> Path:
    if path is None:
        raise ConfigError("ckpt= is required: the .ckpt of a trained rsseg model")
    return Path(str(path)).expanduser()


def _open_exported(path: Path) -> TrainedModel:
    from rsseg.inference.exported import open_exported

    network, metadata = open_exported(path)
    stored = OmegaConf.create({"data": metadata.get("data"), "model": {"_target_": metadata.get("model")}})
    return TrainedModel(network, path=path, config=stored, **{name: metadata[name] for name in PREDICTION_FIELDS})


def open_model(path: str | os.PathLike | None) -> TrainedModel:
    """The model ``ckpt=`` names, for checking inputs against before its network is built: an rsseg checkpoint's
    description is read without building its model (tensors are mapped, not read), and :meth:`TrainedModel.network`
    rebuilds it; a file ``rsseg export`` wrote is read once, its network with its metadata."""
    from rsseg.inference.exported import exported_format
    from rsseg.models.checkpoint import read_checkpoint, stored_config

    path = _required(path)
    if exported_format(path):
        return _open_exported(path)
    stored = OmegaConf.create(stored_config(read_checkpoint(path, mmap=True), f"ckpt={path}"))
    return TrainedModel.from_config(stored, f"ckpt={path}", path=path,
                                    _build=lambda: _rebuild_from_checkpoint(path).model)


def _rebuild_from_checkpoint(path: Path) -> TrainedModel:
    from rsseg.models.checkpoint import load_model_from_checkpoint

    model, stored = load_model_from_checkpoint(path, map_location="cpu")
    return TrainedModel.from_config(stored, str(path), model=model, path=path)


def load_checkpoint(path: str | os.PathLike | None) -> TrainedModel:
    """The network of an rsseg checkpoint (or of a file ``rsseg export`` wrote), in eval mode on the CPU, with
    its classes, palette, normalisation and bands."""
    from rsseg.inference.exported import exported_format

    path = _required(path)
    if exported_format(path):
        return _open_exported(path)
    return _rebuild_from_checkpoint(path)
