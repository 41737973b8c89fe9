"""The named models of ``conf/model``, composed and built exactly as training builds them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from rsseg.config import CONF_DIR

# Every named model config of conf/model that follows the rsseg model contract, in report order.
NAMED_MODELS = (
    "mst_deeplab",
    "deeplabv3plus",
    "deeplabv3plus_mobilenetv2",
    "deeplab_subpixel",
    "unet",
    "pspnet",
    "segnet",
    "deconvnet",
    "deconvnet_skip",
    "fcn32s",
    "fcn8s",
)


def compose_model_config(
    name: str,
    num_classes: int = 6,
    in_channels: int = 3,
    overrides: Sequence[str] = (),
    config_dir: str | Path | None = None,
) -> DictConfig:
    """Compose ``model=<name>`` with a minimal ``data`` node (num_classes, in_channels) and extra overrides.

    Works outside and inside a running Hydra application (the global Hydra state is restored afterwards).
    """
    config_dir = Path(config_dir or CONF_DIR)
    if not (config_dir / "model" / f"{name}.yaml").is_file():
        raise ValueError(f"no model config {name!r} in {config_dir / 'model'}")
    global_hydra = GlobalHydra.instance()
    saved = global_hydra.hydra if global_hydra.is_initialized() else None
    global_hydra.clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            return compose(
                config_name=None,
                overrides=[
                    f"+model={name}",
                    f"+data.num_classes={int(num_classes)}",
                    f"+data.in_channels={int(in_channels)}",
                    *overrides,
                ],
            )
    finally:
        # initialize_config_dir swaps the singleton on exit: fetch the current instance again.
        GlobalHydra.instance().clear()
        if saved is not None:
            GlobalHydra.instance().initialize(saved)


def build_model(
    name: str,
    num_classes: int = 6,
    in_channels: int = 3,
    pretrained: str | None = None,
    overrides: Sequence[str] = (),
) -> nn.Module:
    """Build a named model from its config; ``pretrained`` replaces the config's (``None``: nothing loads).

    Errors raised by the model (a missing weights file, a shape mismatch) are re-raised as they are, not
    wrapped in Hydra's ``InstantiationException``.
    """
    cfg = compose_model_config(name, num_classes, in_channels, overrides)
    cfg.model.pretrained = pretrained
    return instantiate_model(cfg.model)


def instantiate_model(model_cfg: DictConfig | dict, offline: bool = False) -> nn.Module:
    """Instantiate a model config; ``offline`` turns pretrained loading off (weights come from a checkpoint).

    Errors raised by the model (a missing weights file, a shape mismatch) are re-raised as they are, not
    wrapped in Hydra's ``InstantiationException``, so entry points can report them in one line.
    """
    if isinstance(model_cfg, DictConfig):  # resolve against the whole run config (${data.num_classes} ...)
        model_cfg = OmegaConf.to_container(model_cfg, resolve=True)
    model_cfg = OmegaConf.create(model_cfg)
    if offline:
        for key in ("pretrained", "encoder_weights"):
            if key in model_cfg:
                model_cfg[key] = None
    try:
        return instantiate(model_cfg, _convert_="all")
    except InstantiationException as exc:
        if exc.__cause__ is not None:
            raise exc.__cause__ from None
        raise
