"""Channel / spatial attention blocks and the factory the ``model/attention`` config group builds.

The blocks are written here rather than taken from torchvision (``torchvision.ops.SqueezeExcitation`` always
has biases and 1x1 convs) because the MST-DeepLabv3+ parameter figure needs a bias-free SE with linear layers.
"""

from __future__ import annotations

import math

import torch
from torch import nn

POSITIONS = ("high", "aspp_concat", "aspp_out", "low", "decoder")


class SqueezeExcitation(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018): global mean -> FC C/r -> ReLU -> FC C -> sigmoid -> scale.

    ``bias=False`` with ``reduction=16`` on the 1280-channel ASPP concatenation is the SE of MST-DeepLabv3+
    (Wang et al. 2024): +204,800 parameters, 22.18 -> 22.96 MiB (the moskomule ``SELayer`` layout, ``fc.0`` /
    ``fc.2``).
    """

    def __init__(self, channels: int, reduction: int = 16, bias: bool = False) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.fc = nn.Sequential(
            nn.Linear(channels, hidden, bias=bias),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, channels, bias=bias),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.fc(x.mean(dim=(2, 3)))
        return x * weights[:, :, None, None]


class CBAM(nn.Module):
    """Convolutional block attention module (Woo et al. 2018): channel then spatial attention.

    Channel: a shared bias-free MLP (1x1 convs, C -> C/r -> C) over the average- and max-pooled maps, summed,
    sigmoid. Spatial: a ``kernel_size`` conv over the channel-wise mean and max, sigmoid.
    """

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1, bias=False),
        )
        self.spatial = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = self.mlp(x.mean(dim=(2, 3), keepdim=True))
        mx = self.mlp(x.amax(dim=(2, 3), keepdim=True))
        x = x * torch.sigmoid(avg + mx)
        maps = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial(maps))


class SCSE(nn.Module):
    """Concurrent spatial and channel squeeze-excitation (Roy et al. 2018): ``x * cSE(x) + x * sSE(x)``."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.cse = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
            nn.Sigmoid(),
        )
        self.sse = nn.Sequential(nn.Conv2d(channels, 1, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.cse(x) + x * self.sse(x)


class ECA(nn.Module):
    """Efficient channel attention (Wang et al. 2020): global mean -> 1-D conv across channels -> sigmoid.

    The kernel size adapts to the channel count, ``k = |log2(C) + b| / gamma`` rounded up to odd, unless
    given.
    """

    def __init__(self, channels: int, kernel_size: int | None = None, gamma: int = 2, b: int = 1) -> None:
        super().__init__()
        if kernel_size is None:
            t = int(abs((math.log2(channels) + b) / gamma))
            kernel_size = t if t % 2 else t + 1
        self.conv = nn.Conv1d(1, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x.mean(dim=(2, 3))[:, None, :])
        return x * torch.sigmoid(y)[:, 0, :, None, None]


KINDS: dict[str, type[nn.Module]] = {"se": SqueezeExcitation, "cbam": CBAM, "scse": SCSE, "eca": ECA}


class AttentionFactory:
    """What the ``model/attention`` group builds: a kind, a position in DeepLabv3+, and the block's options.

    Calling it with a channel count returns the block (or ``None`` for kind ``none``). Positions:
    ``high`` (encoder output, before ASPP), ``aspp_concat`` (the ASPP concatenation before its 1x1 projection:
    MST-DeepLabv3+), ``aspp_out`` (after the projection), ``low`` (the low-level skip, before its projection),
    ``decoder`` (the decoder output, before the up-sampler).
    """

    def __init__(self, kind: str = "none", position: str = "aspp_concat", **options) -> None:
        if kind != "none" and kind not in KINDS:
            raise ValueError(f"attention kind must be none or one of {sorted(KINDS)}, got {kind!r}")
        if position not in POSITIONS:
            raise ValueError(f"attention position must be one of {POSITIONS}, got {position!r}")
        self.kind = kind
        self.position = position
        self.options = dict(options)

    def __call__(self, channels: int) -> nn.Module | None:
        if self.kind == "none":
            return None
        return KINDS[self.kind](channels, **self.options)

    def __repr__(self) -> str:
        return f"AttentionFactory(kind={self.kind!r}, position={self.position!r}, options={self.options})"
