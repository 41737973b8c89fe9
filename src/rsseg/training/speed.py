"""Speed settings of a training run on its device: the model's memory layout, graph compilation, mixed precision.

* ``channels_last`` (on by default) stores activations as NHWC, the layout cuDNN's tensor-core convolutions and
  oneDNN on CPU prefer: a training step of MobileNetV2 DeepLabv3+ or UNet takes about 10 % less on 2 CPU cores
  (benchmarks/train_step.py); ``auto`` turns it on only where the trainer runs on a GPU.
* ``compile: true`` compiles the network's forward with ``torch.compile`` (``nn.Module.compile``, in place, so
  checkpoints keep the same keys and load without it).
* ``trainer=gpu`` asks for ``bf16-mixed``; a GPU without bfloat16 (before Ampere) gets ``16-mixed`` instead.

Each changes how fast a run computes, not what: tests/test_speed.py bounds the differences.
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig, OmegaConf

from rsseg.errors import ConfigError
from rsseg.runtime.console import note_once

CHANNELS_LAST = ("auto", True, False)


def on_gpu(cfg: DictConfig) -> bool:
    """Whether the configured trainer runs on a CUDA device."""
    accelerator = str(OmegaConf.select(cfg, "trainer.accelerator", default="auto"))
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def use_channels_last(cfg: DictConfig) -> bool:
    setting = cfg.get("channels_last", True)
    if setting not in CHANNELS_LAST:
        raise ConfigError(f"channels_last={setting}: expected true, false or auto (on where a GPU trains)")
    return on_gpu(cfg) if setting == "auto" else bool(setting)


def trainer_precision(cfg: DictConfig) -> str | None:
    """The precision the Trainer gets: the configured one, with bf16 falling back to fp16 on GPUs without it, and
    fp32 for a ``trainer=gpu_per_job`` job that runs on the CPU because there is no GPU."""
    precision = OmegaConf.select(cfg, "trainer.precision", default=None)
    if not torch.cuda.is_available():
        job_on_cpu = str(OmegaConf.select(cfg, "trainer.devices", default=None)) == "job"
        return "32-true" if job_on_cpu and precision is not None and "mixed" in str(precision) else precision
    if precision is None or not str(precision).startswith("bf16") or not on_gpu(cfg):
        return precision
    if torch.cuda.is_bf16_supported():
        return precision
    fallback = str(precision).replace("bf16", "16")
    note_once("bf16-fallback", f"trainer.precision={precision}: this GPU has no bfloat16; training with {fallback}")
    return fallback


def apply_to_model(model: torch.nn.Module, channels_last: bool, compile_model: bool) -> None:
    """Put ``model`` in the layout and compiled form asked for (idempotent: Lightning configures the model again
    for every stage it runs)."""
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if compile_model and not getattr(model, "_rsseg_compiled", False):
        model.compile()
        model._rsseg_compiled = True


def input_layout(image: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return image.contiguous(memory_format=torch.channels_last) if channels_last and image.dim() == 4 else image
