"""MobileNetV2 encoder (torchvision layout), dilated to output stride 16 or 8."""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from rsseg.models.encoders.base import Encoder, _check_output_stride, _torchvision_state_dict
from rsseg.models.pretrained import adapt_input_conv


def _dilate_(module: nn.Module, dilation: int) -> None:
    """Remove the stride of ``module``'s strided 3x3 convs and dilate its 3x3 convs (bubbliiiing's rule).

    A strided 3x3 conv becomes stride 1 with dilation ``dilation // 2`` (it keeps the previous stage's
    receptive-field spacing); every other 3x3 conv gets dilation ``dilation``; padding follows dilation.
    """
    for conv in module.modules():
        if not isinstance(conv, nn.Conv2d) or conv.kernel_size != (3, 3):
            continue
        if conv.stride == (2, 2):
            conv.stride = (1, 1)
            d = max(dilation // 2, 1)
        else:
            d = dilation
        conv.dilation = (d, d)
        conv.padding = (d, d)


class MobileNetV2Encoder(Encoder):
    """MobileNetV2 encoder at output stride 16 (or 8), as in MST-DeepLabv3+ (Wang et al. 2024).

    torchvision ``mobilenet_v2().features[:-1]`` (the 1x1 conv to 1280 channels is dropped, as in the
    bubbliiiing DeepLabv3+ layout: 1,811,712 parameters). OS16: the stride-2 depthwise conv of
    ``features[14]`` becomes stride 1 and ``features[15:18]`` are dilated by 2; OS8 also removes the stride of
    ``features[7]`` and dilates ``features[8:14]`` by 2 and ``features[14:]`` by 4. Returns the low-level map
    ``features[:4]`` (24 channels, stride 4) and the high-level map (320 channels, stride ``output_stride``).
    """

    head_prefixes = ("classifier.", "features.18.")
    first_conv_key = "features.0.0.weight"

    def __init__(self, in_channels: int = 3, output_stride: int = 16) -> None:
        super().__init__()
        output_stride = _check_output_stride(output_stride)
        self.features = torchvision.models.mobilenet_v2().features[:-1]
        if output_stride == 8:
            _dilate_(self.features[7:14], 2)
            _dilate_(self.features[14:], 4)
        elif output_stride == 16:
            _dilate_(self.features[14:], 2)
        self.first_conv_key = adapt_input_conv(self, in_channels)
        self.channels = [24, 320]
        self.reductions = [4, output_stride]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        for i in range(4):
            x = self.features[i](x)
        low = x
        for i in range(4, len(self.features)):
            x = self.features[i](x)
        return [low, x]

    def imagenet_state_dict(self) -> dict[str, torch.Tensor]:
        return _torchvision_state_dict(torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1)

    def describe(self) -> str:
        return "MobileNetV2 (torchvision IMAGENET1K_V1)"
