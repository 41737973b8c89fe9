"""Small building blocks shared by the rsseg models.

Only what torchvision/timm do not provide in the exact form the paper-parity layouts need lives here.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class PooledBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm for a branch that sees one value per channel per image (global pooling, a 1x1 pyramid bin).

    With a batch of one image in training mode, batch statistics over a single value are undefined and
    ``nn.BatchNorm2d`` raises. This subclass then normalises with its running statistics (without updating
    them) and behaves exactly like ``nn.BatchNorm2d`` otherwise, so the parameter layout and count are those
    of the DeepLabv3+ image-pooling branch (bubbliiiing layout) and of the PSPNet 1x1 bin.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.numel() // x.shape[1] <= 1:
            return F.batch_norm(
                x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps
            )
        return super().forward(x)


def conv_bn_relu(
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    dilation: int = 1,
    bias: bool = False,
    norm: type[nn.BatchNorm2d] = nn.BatchNorm2d,
) -> nn.Sequential:
    """``Conv2d`` (same padding) + ``BatchNorm2d`` + ``ReLU``; ``bias`` is kept for layouts that count it."""
    padding = dilation * (kernel_size // 2)
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, dilation=dilation, bias=bias),
        norm(out_channels),
        nn.ReLU(inplace=True),
    )


def _average_matrix(in_size: int, out_size: int, like: torch.Tensor) -> torch.Tensor:
    """Rows that average the input cells adaptive average pooling assigns to each output cell."""
    matrix = torch.zeros(out_size, in_size, dtype=like.dtype, device=like.device)
    for i in range(out_size):
        start = (i * in_size) // out_size
        end = math.ceil((i + 1) * in_size / out_size)
        matrix[i, start:end] = 1.0 / (end - start)
    return matrix


def adaptive_avg_pool2d(x: torch.Tensor, output_size: int) -> torch.Tensor:
    """``F.adaptive_avg_pool2d`` that also exports to ONNX for any input size.

    The ONNX exporter only handles adaptive pooling when the output size divides the input size; during
    export the same bins are computed as two small averaging matrices, which is numerically identical.
    """
    if not torch.onnx.is_in_onnx_export():
        return F.adaptive_avg_pool2d(x, output_size)
    h, w = int(x.shape[-2]), int(x.shape[-1])
    rows = _average_matrix(h, output_size, x)
    cols = _average_matrix(w, output_size, x)
    return torch.matmul(torch.matmul(rows, x), cols.t())


class AdaptiveAvgPool2d(nn.Module):
    """``nn.AdaptiveAvgPool2d`` that exports to ONNX at any input size (see :func:`adaptive_avg_pool2d`)."""

    def __init__(self, output_size: int) -> None:
        super().__init__()
        self.output_size = int(output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return adaptive_avg_pool2d(x, self.output_size)


def max_unpool2d(x: torch.Tensor, indices: torch.Tensor, output_size: tuple[int, int]) -> torch.Tensor:
    """Place pooled values back at their recorded positions (``nn.MaxUnpool2d``), written as a scatter.

    ``max_unpool2d`` has no ONNX export; a scatter over the flattened plane gives the same result and exports
    as ``ScatterElements``. ``indices`` are the flat per-plane indices ``max_pool2d(return_indices=True)``
    gives.
    """
    b, c = x.shape[:2]
    h, w = output_size
    out = x.new_zeros(b, c, h * w)
    out = out.scatter(2, indices.flatten(2), x.flatten(2))
    return out.view(b, c, h, w)


def bilinear_kernel(channels: int, kernel_size: int) -> torch.Tensor:
    """Per-channel bilinear up-sampling weights for a ``ConvTranspose2d`` (FCN, Long et al. 2015)."""
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    og = torch.arange(kernel_size, dtype=torch.float32)
    filt1d = 1 - (og - center).abs() / factor
    filt = filt1d[:, None] * filt1d[None, :]
    weight = torch.zeros(channels, channels, kernel_size, kernel_size)
    weight[range(channels), range(channels)] = filt
    return weight
