"""The named models of ``conf/model``, composed and built exactly as training builds them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from rsseg.config import CONF_DIR, compose_config, config_folders  # noqa: F401 - CONF_DIR re-exported
from rsseg.errors import ConfigError

# Every named model config of conf/model that follows the rsseg model contract, in report order.
NAMED_MODELS = (
    "mst_deeplab",
    "deeplabv3plus",
    "deeplabv3plus_mobilenetv2",
    "deeplab_subpixel",
    "deeplab_subpixel_skip",
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
    config_dirs: Iterable[str | Path] = (),
) -> DictConfig:
    """Compose ``model=<name>`` with a minimal ``data`` node (num_classes, in_channels) and extra overrides.

    ``name`` is one of rsseg's model configs or one in a user folder (``config_dirs``, ``$RSSEG_CONFIG_PATH``).
    Works outside and inside a running Hydra application (the global Hydra state is restored afterwards).
    """
    folders = config_folders(config_dirs)
    if not any((folder / "model" / f"{name}.yaml").is_file() for folder in folders):
        options = sorted({p.stem for folder in folders for p in (folder / "model").glob("*.yaml")})
        raise ConfigError(f"model={name!r}: no such model config in {', '.join(map(str, folders))}; "
                          f"expected one of {', '.join(options)}")
    return compose_config(
        None,
        [f"+model={name}", f"+data.num_classes={int(num_classes)}", f"+data.in_channels={int(in_channels)}",
         *overrides],
        config_dirs,
    )


def build_model(
    name: str,
    num_classes: int = 6,
    in_channels: int = 3,
    pretrained: str | None = None,
    overrides: Sequence[str] = (),
    config_dirs: Iterable[str | Path] = (),
) -> nn.Module:
    """Build a named model from its config; ``pretrained`` replaces the config's (``None``: nothing loads,
    ``"imagenet"``: torchvision/timm weights, downloaded once; a path: a local state dict).

    Errors raised by the model (a missing weights file, a shape mismatch) are re-raised as they are, not
    wrapped in Hydra's ``InstantiationException``.
    """
    cfg = compose_model_config(name, num_classes, in_channels, overrides, config_dirs)
    if "pretrained" in cfg.model:
        cfg.model.pretrained = pretrained
    elif pretrained is not None:
        raise ConfigError(f"model={name} has no pretrained option (no pretrained key in its config)")
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
