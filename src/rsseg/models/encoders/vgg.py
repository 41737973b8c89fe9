"""torchvision VGG16 / VGG16-BN encoder, one output per pooling stage."""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from rsseg.models.encoders.base import Encoder, _torchvision_state_dict
from rsseg.models.pretrained import adapt_input_conv


class VGGEncoder(Encoder):
    """torchvision VGG16 / VGG16-BN convolutional body (``features``), one output per pooling stage.

    Used by U-Net (bubbliiiing layout: VGG16 without BN), SegNet and DeconvNet (VGG16-BN with pooling indices)
    and FCN (VGG16). ``forward`` returns the five stage outputs before pooling (strides 1, 2, 4, 8, 16);
    :meth:`forward_pooled` also returns the pooled maps and the max-pooling indices.
    """

    head_prefixes = ("classifier.",)
    first_conv_key = "features.0.weight"

    def __init__(self, batch_norm: bool = False, in_channels: int = 3) -> None:
        super().__init__()
        self.batch_norm = batch_norm
        net = torchvision.models.vgg16_bn() if batch_norm else torchvision.models.vgg16()
        self.features = net.features
        self.first_conv_key = adapt_input_conv(self, in_channels)
        self.channels = [64, 128, 256, 512, 512]
        self.reductions = [1, 2, 4, 8, 16]
        self.stages: list[tuple[int, int]] = []
        start = 0
        for i, layer in enumerate(self.features):
            if isinstance(layer, nn.MaxPool2d):
                self.stages.append((start, i))
                start = i + 1

    def _stage(self, x: torch.Tensor, index: int) -> torch.Tensor:
        start, end = self.stages[index]
        for i in range(start, end):
            x = self.features[i](x)
        return x

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for index in range(len(self.stages)):
            if index:
                x = nn.functional.max_pool2d(x, 2, 2)
            x = self._stage(x, index)
            outs.append(x)
        return outs

    def forward_pooled(
        self, x: torch.Tensor
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """Stage outputs before pooling, pooled outputs (strides 2..32) and their max-pooling indices."""
        stages, pooled, indices = [], [], []
        for index in range(len(self.stages)):
            x = self._stage(x, index)
            stages.append(x)
            x, idx = nn.functional.max_pool2d(x, 2, 2, return_indices=True)
            pooled.append(x)
            indices.append(idx)
        return stages, pooled, indices

    def imagenet_state_dict(self) -> dict[str, torch.Tensor]:
        weights = torchvision.models.VGG16_BN_Weights if self.batch_norm else torchvision.models.VGG16_Weights
        return _torchvision_state_dict(weights.IMAGENET1K_V1)

    def describe(self) -> str:
        return f"VGG16{'-BN' if self.batch_norm else ''} (torchvision IMAGENET1K_V1)"
