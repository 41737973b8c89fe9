"""Atrous spatial pyramid pooling (DeepLabv3, Chen et al. 2017) in the bubbliiiing DeepLabv3+ layout."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from rsseg.models.layers import PooledBatchNorm2d


def _branch(in_channels, out_channels, kernel_size, dilation, separable, bias) -> nn.Sequential:
    padding = dilation * (kernel_size // 2)
    if separable and kernel_size > 1:
        conv = nn.Sequential(
            nn.Conv2d(
                in_channels,
                in_channels,
                kernel_size,
                padding=padding,
                dilation=dilation,
                groups=in_channels,
                bias=False,
            ),
            nn.Conv2d(in_channels, out_channels, 1, bias=bias),
        )
    else:
        conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, padding=padding, dilation=dilation, bias=bias
        )
    return nn.Sequential(conv, nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class ImagePooling(nn.Module):
    """ASPP image-level branch: global mean, 1x1 conv + BN + ReLU, broadcast back to the map size.

    Its BatchNorm sees one value per channel per image; :class:`PooledBatchNorm2d` uses running statistics
    when a training batch holds a single image instead of failing, as ``nn.BatchNorm2d`` would.
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=bias)
        self.bn = PooledBatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.relu(self.bn(self.conv(x.mean(dim=(2, 3), keepdim=True))))
        # A 1x1 map broadcast with align_corners=True (bubbliiiing) is a plain expansion.
        return pooled.expand(-1, -1, x.shape[2], x.shape[3])


class ASPP(nn.Module):
    """Parallel 1x1, dilated 3x3 and image-pooling branches, concatenated, optionally re-weighted, projected.

    ``rates`` are the dilations of the 3x3 branches at output stride 16 (doubled at OS8, as DeepLab and
    bubbliiiing do); ``pointwise`` adds the 1x1 branch; ``separable`` uses depthwise-separable 3x3 convs
    (DeepLabv3+ paper) instead of the standard convs of the bubbliiiing layout. Convolutions carry a bias
    (``bias=True``, bubbliiiing) before their BN. ``concat_attention`` is applied to the concatenation before
    the 1x1 projection: the position of MST-DeepLabv3+'s SE block (1280 channels with four 3x3/1x1 branches
    and pooling at 256 channels each).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int = 256,
        rates: Sequence[int] = (6, 12, 18),
        pointwise: bool = True,
        image_pool: bool = True,
        separable: bool = False,
        bias: bool = True,
        dropout: float = 0.0,
        output_stride: int = 16,
        concat_attention: nn.Module | None = None,
    ) -> None:
        super().__init__()
        scale = max(16 // int(output_stride), 1)
        branches = []
        if pointwise:
            branches.append(_branch(in_channels, out_channels, 1, 1, False, bias))
        for rate in rates:
            branches.append(_branch(in_channels, out_channels, 3, int(rate) * scale, separable, bias))
        self.branches = nn.ModuleList(branches)
        self.pool = ImagePooling(in_channels, out_channels, bias) if image_pool else None
        self.concat_channels = out_channels * (len(branches) + int(image_pool))
        self.attention = concat_attention if concat_attention is not None else nn.Identity()
        self.project = nn.Sequential(
            nn.Conv2d(self.concat_channels, out_channels, 1, bias=bias),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout) if dropout > 0 else nn.Identity(),
        )
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [branch(x) for branch in self.branches]
        if self.pool is not None:
            outs.append(self.pool(x))
        return self.project(self.attention(torch.cat(outs, dim=1)))


def resize(x: torch.Tensor, size, align_corners: bool = True) -> torch.Tensor:
    """Bilinear resize (align_corners=True, as bubbliiiing's DeepLabv3+), skipped when already sized."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=align_corners)
