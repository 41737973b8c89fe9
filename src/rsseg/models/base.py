"""The behaviour every rsseg model shares: any input size in, same size out."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def pad_to_multiple(
    x: torch.Tensor, multiple: int, min_size: int = 0, mode: str = "reflect"
) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad ``x`` on the bottom and right so H and W are multiples of ``multiple`` and at least ``min_size``.

    Reflection is used where the input is large enough for it (it adds no artificial edges); where the pad is
    larger than the input, zeros are used instead. Returns the padded tensor and the original (H, W).
    """
    h, w = int(x.shape[-2]), int(x.shape[-1])
    target_h = max(-(-h // multiple) * multiple, -(-min_size // multiple) * multiple)
    target_w = max(-(-w // multiple) * multiple, -(-min_size // multiple) * multiple)
    pad_h, pad_w = target_h - h, target_w - w
    if pad_h == 0 and pad_w == 0:
        return x, (h, w)
    use = mode if mode != "reflect" or (pad_h < h and pad_w < w) else "constant"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=use), (h, w)


def _crop(y: torch.Tensor, size: tuple[int, int], padded: tuple[int, int]) -> torch.Tensor:
    if tuple(y.shape[-2:]) == padded:
        return y[..., : size[0], : size[1]]
    # An output at a lower resolution keeps the share of it that covers the unpadded input.
    h = -(-size[0] * y.shape[-2] // padded[0])
    w = -(-size[1] * y.shape[-1] // padded[1])
    return y[..., :h, :w]


class SegmentationModel(nn.Module):
    """Base class: pads the input to the network's stride, runs :meth:`forward_padded`, crops back.

    Subclasses set ``size_multiple`` (the stride their skips and pooling indices need), optionally
    ``min_size`` (for valid convolutions such as DeconvNet's 7x7 fc6) and implement ``forward_padded``.
    They return logits, or in training a dict ``{"out": logits, "aux": aux_logits}``.
    Every model carries ``num_classes``, ``in_channels`` and ``encoder`` (see the rsseg model contract).
    """

    size_multiple: int = 32
    min_size: int = 0
    pad_mode: str = "reflect"

    def __init__(self, num_classes: int, in_channels: int) -> None:
        super().__init__()
        self.num_classes = int(num_classes)
        self.in_channels = int(in_channels)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        padded, size = pad_to_multiple(x, self.size_multiple, self.min_size, self.pad_mode)
        out = self.forward_padded(padded)
        if padded is x:
            return out
        shape = (int(padded.shape[-2]), int(padded.shape[-1]))
        if isinstance(out, dict):
            return {key: _crop(value, size, shape) for key, value in out.items()}
        return _crop(out, size, shape)
