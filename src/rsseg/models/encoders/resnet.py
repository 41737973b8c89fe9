"""torchvision ResNet encoder, dilated with ``replace_stride_with_dilation``."""

from __future__ import annotations

import torch
import torchvision

from rsseg.models.encoders.base import Encoder, _check_output_stride, _torchvision_state_dict
from rsseg.models.pretrained import adapt_input_conv


class ResNetEncoder(Encoder):
    """torchvision ResNet-50/101 encoder, dilated with ``replace_stride_with_dilation`` for OS 8 or 16.

    As in DeepLabv3/v3+ (Chen et al. 2017, 2018) and the ResNet-101 + dilated SPP model of Jiang & Li (2020).
    Returns ``layer1`` .. ``layer4`` (256, 512, 1024, 2048 channels); ``layer1`` (stride 4) is the low-level
    map.
    """

    head_prefixes = ("fc.",)
    first_conv_key = "conv1.weight"
    WEIGHTS = {
        18: "ResNet18_Weights",
        34: "ResNet34_Weights",
        50: "ResNet50_Weights",
        101: "ResNet101_Weights",
        152: "ResNet152_Weights",
    }

    def __init__(self, depth: int = 101, in_channels: int = 3, output_stride: int = 16) -> None:
        super().__init__()
        if depth not in self.WEIGHTS:
            raise ValueError(f"ResNet depth must be one of {sorted(self.WEIGHTS)}, got {depth}")
        output_stride = _check_output_stride(output_stride)
        self.depth = depth
        dilate = {8: [False, True, True], 16: [False, False, True], 32: [False, False, False]}[output_stride]
        kwargs = {"replace_stride_with_dilation": dilate} if depth >= 50 else {}
        if depth < 50 and output_stride != 32:
            raise ValueError("torchvision ResNet-18/34 cannot be dilated; use output_stride 32 or ResNet-50+")
        net = getattr(torchvision.models, f"resnet{depth}")(**kwargs)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.first_conv_key = adapt_input_conv(self, in_channels)
        expansion = 4 if depth >= 50 else 1
        self.channels = [64 * expansion, 128 * expansion, 256 * expansion, 512 * expansion]
        self.reductions = [4, 8, min(16, output_stride), output_stride]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c1 = self.layer1(x)
        c2 = self.layer2(c1)
        c3 = self.layer3(c2)
        c4 = self.layer4(c3)
        return [c1, c2, c3, c4]

    def imagenet_state_dict(self) -> dict[str, torch.Tensor]:
        return _torchvision_state_dict(getattr(torchvision.models, self.WEIGHTS[self.depth]).IMAGENET1K_V1)

    def describe(self) -> str:
        return f"ResNet-{self.depth} (torchvision IMAGENET1K_V1)"
