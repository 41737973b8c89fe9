"""Checks that run before the expensive part of a command: before a model is built or a step is taken.

Every check names the key and the file or folder at fault: an output folder that cannot be written (or a
checkpoint folder without room for the checkpoints), a training or validation split that is empty (with the
reason, e.g. scenes smaller than the random split's tiles), an accelerator this machine does not have.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from rsseg.errors import ConfigError, DataError


def check_writable(target: str | Path, key: str) -> None:
    """``target`` (a folder, existing or to be created) can be written: a probe file is created and removed in
    the nearest existing folder on its path (permission bits alone say nothing for root or read-only mounts)."""
    target = Path(str(target)).expanduser()
    existing = target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise DataError(f"{key}={target}: {existing} is a file, not a folder; expected a folder to write into")
    try:
        handle, probe = tempfile.mkstemp(prefix=".rsseg-probe-", dir=existing)
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise DataError(f"{key}={target}: cannot write in {existing} ({error.strerror or error}); expected a "
                        f"folder you can write to") from None


def check_room(folder: str | Path, needed: int, key: str, what: str) -> None:
    """``folder``'s file system has ``needed`` bytes free for ``what``."""
    existing = Path(folder)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    if free < needed:
        raise DataError(f"{key}={folder}: {free / 2**20:,.0f} MiB free but {what} need about "
                        f"{needed / 2**20:,.0f} MiB; expected a folder with room for them")


def check_accelerator(cfg: DictConfig) -> None:
    """A GPU accelerator asked for on a machine without CUDA (Lightning would say so after the model is built)."""
    accelerator = OmegaConf.select(cfg, "trainer.accelerator", default=None)
    if str(accelerator) in ("gpu", "cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"trainer.accelerator={accelerator}: no CUDA device is available here; expected "
                              f"trainer.accelerator=cpu or auto (or trainer=cpu)")


def check_training_data(datamodule) -> None:
    """The training and validation splits hold scenes (their files were checked when listed)."""
    for split, name in (("train", "training"), ("val", "validation")):
        scenes, _ = datamodule.split_scenes(split)
        if not scenes:
            raise DataError(f"the {name} split is empty: {empty_split_reason(datamodule.scenes, split)}")


def empty_split_reason(source, split: str) -> str:
    """Why a scene source lists no scene for ``split``, and what would give it some."""
    explain = getattr(source, "why_empty", None)
    if explain is not None:
        return explain(split)
    return f"the data config lists no scene for {split}; expected at least one"


def check_training_outputs(cfg: DictConfig, model) -> None:
    """Every checkpoint folder the callbacks write into is writable and has room for a few checkpoints
    (weights plus the optimiser's state, about three times the weights for Adam, written twice over)."""
    callbacks = cfg.get("callbacks") or {}
    folders = {}
    for name, callback in callbacks.items():
        if isinstance(callback, DictConfig) and callback.get("dirpath"):
            folders.setdefault(str(callback.dirpath), f"callbacks.{name}.dirpath")
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    for folder, key in folders.items():
        check_writable(folder, key)
        check_room(folder, 6 * weights + 2**20, key, "checkpoints of this model")
