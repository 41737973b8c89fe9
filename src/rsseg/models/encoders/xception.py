"""Aligned Xception-65 encoder of DeepLabv3+ and its units, in the bubbliiiing parameter layout."""

from __future__ import annotations

import torch
from torch import nn

from rsseg.models.encoders.base import Encoder, _check_output_stride
from rsseg.models.pretrained import adapt_input_conv


def _separable_parts(in_channels, out_channels, dilation, stride, momentum):
    depthwise = nn.Conv2d(
        in_channels, in_channels, 3, stride, dilation, dilation, groups=in_channels, bias=False
    )
    pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)
    return (
        depthwise,
        nn.BatchNorm2d(in_channels, momentum=momentum),
        pointwise,
        nn.BatchNorm2d(out_channels, momentum=momentum),
    )


class SeparableConv2d(nn.Module):
    """Depthwise 3x3 + BN + pointwise 1x1 + BN, with ReLU first (``relu_first``) or after each BN.

    The aligned-Xception unit of DeepLabv3+ (Chen et al. 2018), in the bubbliiiing parameter layout
    (``depthwise``, ``bn1``, ``pointwise``, ``bn2``); torchvision/timm have no such unit with these names.
    """

    def __init__(
        self, in_channels, out_channels, stride=1, dilation=1, relu_first=True, momentum=0.0003
    ) -> None:
        super().__init__()
        self.depthwise, self.bn1, self.pointwise, self.bn2 = _separable_parts(
            in_channels, out_channels, dilation, stride, momentum
        )
        self.relu_first = relu_first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        relu = nn.functional.relu
        if self.relu_first:
            return self.bn2(self.pointwise(self.bn1(self.depthwise(relu(x)))))
        return relu(self.bn2(self.pointwise(relu(self.bn1(self.depthwise(x))))))


class XceptionBlock(nn.Module):
    """Aligned-Xception residual block: three separable convs (the third strided) + 1x1 projection skip.

    Returns the block output and the output of the second separable conv, which for ``block2`` is
    DeepLabv3+'s low-level feature (256 channels, stride 4). The residual is the block input (the aligned
    Xception of Chen et al.); bubbliiiing's in-place ReLU, which also rectifies the residual, is not copied.
    """

    def __init__(self, in_channels, out_channels, stride=1, dilation=1, grow_first=True, momentum=0.0003):
        super().__init__()
        if out_channels != in_channels or stride != 1:
            self.skip = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)
            self.skipbn = nn.BatchNorm2d(out_channels, momentum=momentum)
        else:
            self.skip = None
            self.skipbn = None
        mid = out_channels if grow_first else in_channels
        self.sepconv1 = SeparableConv2d(in_channels, mid, 1, dilation, momentum=momentum)
        self.sepconv2 = SeparableConv2d(mid, out_channels, 1, dilation, momentum=momentum)
        self.sepconv3 = SeparableConv2d(out_channels, out_channels, stride, dilation, momentum=momentum)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skip = self.skipbn(self.skip(x)) if self.skip is not None else x
        y = self.sepconv2(self.sepconv1(x))
        return self.sepconv3(y) + skip, y


class XceptionEncoder(Encoder):
    """Aligned Xception-65 encoder of DeepLabv3+ (Chen et al. 2018) in the bubbliiiing parameter layout.

    Entry flow conv1 (32, s2), conv2 (64), block1 (128, s2), block2 (256, s2 at OS16 / s2 at OS8), block3
    (728, s2 at OS16 / s1 at OS8); middle flow block4..block19 (728); exit flow block20 (728 -> 1024) and
    separable convs 1536, 1536, 2048. Dilation follows bubbliiiing: rate ``16 // output_stride`` in the middle
    and exit flows (1 at OS16, 2 at OS8). BN momentum 0.0003. The low-level map is ``block2``'s second
    separable conv (256 channels, stride 4). This module is written here because torchvision has no Xception
    and timm's ``xception65`` has a different layout; with it DeepLabv3+ has 54,709,702 parameters at 6
    classes (208.70 MiB, the MST-DeepLabv3+ paper's Table 8/9 figure).
    """

    first_conv_key = "conv1.weight"
    head_prefixes = ("fc.", "last_linear.")

    def __init__(self, in_channels: int = 3, output_stride: int = 16, momentum: float = 0.0003) -> None:
        super().__init__()
        output_stride = _check_output_stride(output_stride, (8, 16))
        strides = [2, 2, 1] if output_stride == 16 else [2, 1, 1]
        rate = 16 // output_stride
        self.conv1 = nn.Conv2d(3, 32, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(32, momentum=momentum)
        self.conv2 = nn.Conv2d(32, 64, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(64, momentum=momentum)
        self.block1 = XceptionBlock(64, 128, 2, momentum=momentum)
        self.block2 = XceptionBlock(128, 256, strides[0], momentum=momentum)
        self.block3 = XceptionBlock(256, 728, strides[1], momentum=momentum)
        for i in range(4, 20):
            setattr(self, f"block{i}", XceptionBlock(728, 728, 1, rate, momentum=momentum))
        self.block20 = XceptionBlock(728, 1024, strides[2], rate, grow_first=False, momentum=momentum)
        self.conv3 = SeparableConv2d(1024, 1536, 1, rate, relu_first=False, momentum=momentum)
        self.conv4 = SeparableConv2d(1536, 1536, 1, rate, relu_first=False, momentum=momentum)
        self.conv5 = SeparableConv2d(1536, 2048, 1, rate, relu_first=False, momentum=momentum)
        self.first_conv_key = adapt_input_conv(self, in_channels)
        self.channels = [256, 2048]
        self.reductions = [4, output_stride]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        relu = nn.functional.relu
        x = relu(self.bn1(self.conv1(x)))
        x = relu(self.bn2(self.conv2(x)))
        x, _ = self.block1(x)
        x, low = self.block2(x)
        for i in range(3, 21):
            x, _ = getattr(self, f"block{i}")(x)
        x = self.conv5(self.conv4(self.conv3(x)))
        return [low, x]

    def describe(self) -> str:
        return "aligned Xception-65 (DeepLabv3+ layout)"
