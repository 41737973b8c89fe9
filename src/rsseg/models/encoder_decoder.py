"""Unpooling encoder-decoders on VGG16-BN: SegNet, DeconvNet and the improved DeconvNet with skips.

All three record the max-pooling indices in the encoder and place values back at those positions in the
decoder (:func:`rsseg.models.layers.max_unpool2d`, an ONNX-exportable ``MaxUnpool2d``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from rsseg.models.base import SegmentationModel
from rsseg.models.encoders import VGGEncoder
from rsseg.models.layers import PooledBatchNorm2d, max_unpool2d
from rsseg.models.pretrained import load_pretrained

# Decoder stage outputs, deepest first: the VGG16 body mirrored (Badrinarayanan et al. 2017; Noh et al. 2015).
MIRRORED_VGG16 = ((512, 512, 512), (512, 512, 256), (256, 256, 128), (128, 64), (64, 64))


def _conv_bn_relu(
    in_channels: int,
    out_channels: int,
    transposed: bool,
    kernel_size: int = 3,
    padding: int = 1,
    norm: type[nn.BatchNorm2d] = nn.BatchNorm2d,
):
    conv_cls = nn.ConvTranspose2d if transposed else nn.Conv2d
    return [
        conv_cls(in_channels, out_channels, kernel_size, padding=padding),
        norm(out_channels),
        nn.ReLU(inplace=True),
    ]


def _stage(in_channels: int, outs: Sequence[int], transposed: bool) -> nn.Sequential:
    layers = []
    for out in outs:
        layers += _conv_bn_relu(in_channels, out, transposed)
        in_channels = out
    return nn.Sequential(*layers)


class SegNet(SegmentationModel):
    """SegNet (Badrinarayanan et al. 2017): VGG16-BN encoder, mirrored decoder (13 conv + BN), max-unpooling
    with the encoder's indices, last 3x3 conv to the classes without BN: 29,449,355 parameters at 11 classes
    (CamVid), the published 29.5M."""

    size_multiple = 32

    def __init__(self, num_classes: int, in_channels: int = 3, pretrained: str | None = None) -> None:
        super().__init__(num_classes, in_channels)
        self.encoder = VGGEncoder(batch_norm=True, in_channels=in_channels)
        load_pretrained(self.encoder, pretrained)
        stages = [list(outs) for outs in MIRRORED_VGG16]
        stages[-1] = stages[-1][:-1]  # the last conv is the classifier
        in_channels_list = [512, 512, 256, 128, 64]
        self.decoder = nn.ModuleList(
            _stage(c, outs, transposed=False) for c, outs in zip(in_channels_list, stages)
        )
        self.classifier = nn.Conv2d(64, num_classes, 3, padding=1)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        stages, pooled, indices = self.encoder.forward_pooled(x)
        y = pooled[-1]
        for level, block in zip(range(4, -1, -1), self.decoder):
            y = block(max_unpool2d(y, indices[level], stages[level].shape[-2:]))
        return self.classifier(y)


class _Fc67(nn.Module):
    """DeconvNet's fully-convolutional middle: fc6 (7x7 valid conv), fc7 (1x1), deconv-fc6 (7x7 transposed),
    each with BN + ReLU.

    At a 224 x 224 input fc6/fc7 are 1 x 1 maps, so their BatchNorm is :class:`PooledBatchNorm2d` (running
    statistics for a single-image training batch instead of an error).
    """

    def __init__(self, channels: int, hidden: int, out_channels: int = 512, kernel_size: int = 7) -> None:
        super().__init__()
        self.fc6 = nn.Sequential(*_conv_bn_relu(channels, hidden, False, kernel_size, 0, PooledBatchNorm2d))
        self.fc7 = nn.Sequential(*_conv_bn_relu(hidden, hidden, False, 1, 0, PooledBatchNorm2d))
        self.deconv_fc6 = nn.Sequential(*_conv_bn_relu(hidden, out_channels, True, kernel_size, 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.deconv_fc6(self.fc7(self.fc6(x)))


class DeconvNet(SegmentationModel):
    """DeconvNet (Noh et al. 2015): VGG16-BN conv1-5, fc6 7x7 (valid) 512 -> 4096, fc7 1x1 4096,
    deconv-fc6 7x7 4096 -> 512, then unpooling with the recorded indices and the mirrored 3x3 deconvolution
    layers (BN + ReLU), 1x1 score layer: 251,805,653 parameters at 21 classes.

    fc6 is a valid 7x7 convolution on the stride-32 map, so inputs are padded to at least 224 x 224.
    """

    size_multiple = 32
    min_size = 224

    def __init__(
        self, num_classes: int, in_channels: int = 3, pretrained: str | None = None, fc_channels: int = 4096
    ) -> None:
        super().__init__(num_classes, in_channels)
        self.encoder = VGGEncoder(batch_norm=True, in_channels=in_channels)
        load_pretrained(self.encoder, pretrained)
        self.fc = _Fc67(512, fc_channels)
        in_channels_list = [512, 512, 256, 128, 64]
        self.decoder = nn.ModuleList(
            _stage(c, outs, transposed=True) for c, outs in zip(in_channels_list, MIRRORED_VGG16)
        )
        self.score = nn.Conv2d(64, num_classes, 1)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        stages, pooled, indices = self.encoder.forward_pooled(x)
        y = self.fc(pooled[-1])
        for level, block in zip(range(4, -1, -1), self.decoder):
            y = block(max_unpool2d(y, indices[level], stages[level].shape[-2:]))
        return self.score(y)


class DeconvNetSkip(SegmentationModel):
    """Improved DeconvNet for building extraction (seed paper 003, Massachusetts Buildings).

    Encoder: five conv + BN + pool groups (VGG16-BN), pooling indices recorded. Middle: a 7x7 conv to 1024
    maps (valid: 16 x 16 -> 10 x 10 at 512 input), a 1x1 conv to 1024, a 7x7 deconvolution back to 512 maps at
    16 x 16. Decoder: five groups of unpooling with the recorded indices, concatenation with the matching
    encoder group's last conv output (e.g. 512 + 512 = 1024 maps at 32 x 32) and 3x3 deconvolutions + BN +
    ReLU (group outputs 512, 256, 128, 64, 64 as the paper's Table 2); a last 3x3 deconvolution gives the
    classes (2: building / background). Inputs are padded to at least 224 x 224 for the valid 7x7 conv.
    """

    size_multiple = 32
    min_size = 224

    def __init__(
        self,
        num_classes: int = 2,
        in_channels: int = 3,
        pretrained: str | None = None,
        fc_channels: int = 1024,
    ) -> None:
        super().__init__(num_classes, in_channels)
        self.encoder = VGGEncoder(batch_norm=True, in_channels=in_channels)
        load_pretrained(self.encoder, pretrained)
        self.fc = _Fc67(512, fc_channels)
        skips = [512, 512, 256, 128, 64]
        in_channels_list = [512, 512, 256, 128, 64]
        self.decoder = nn.ModuleList(
            _stage(c + s, outs, transposed=True)
            for c, s, outs in zip(in_channels_list, skips, MIRRORED_VGG16)
        )
        self.score = nn.ConvTranspose2d(64, num_classes, 3, padding=1)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        stages, pooled, indices = self.encoder.forward_pooled(x)
        y = self.fc(pooled[-1])
        for level, block in zip(range(4, -1, -1), self.decoder):
            skip = stages[level]
            y = max_unpool2d(y, indices[level], skip.shape[-2:])
            y = block(torch.cat([y, skip], dim=1))
        return self.score(y)
