"""Model size and compute, in the units the MST-DeepLabv3+ paper reports.

* Size: ``params * 4 / 2**20`` MiB, torchsummary's "Params size (MB)", which is what the paper's Table 8/9
  "Parameter amount (MB)" column is (e.g. 6,019,094 params -> 22.96).
* Compute: GFLOPs = 2 x multiply-accumulates / 1e9 of one forward pass at batch 1, counted by
  ``torch.utils.flop_counter.FlopCounterMode`` (convolutions, linear layers and matrix products;
  normalisation, activations, pooling and interpolation are not counted). This is the convention of
  bubbliiiing's ``summary.py`` (thop MACs x 2).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def model_size(model: nn.Module) -> tuple[int, float]:
    """(number of parameters, size in MiB at 4 bytes per parameter)."""
    params = sum(p.numel() for p in model.parameters())
    return params, params * 4 / 2**20


def count_gflops(
    model: nn.Module, size: int | tuple[int, int] = 512, in_channels: int | None = None
) -> float:
    """GFLOPs (2 x MACs / 1e9) of one eval-mode forward of a ``[1, C, H, W]`` input on the model's device.

    A model built under ``torch.device("meta")`` is counted without computing anything.
    """
    h, w = (size, size) if isinstance(size, int) else size
    param = next(model.parameters())
    channels = int(in_channels or getattr(model, "in_channels", 3))
    x = torch.zeros(1, channels, h, w, device=param.device, dtype=param.dtype)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() / 1e9
