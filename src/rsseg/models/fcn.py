"""Fully convolutional networks FCN-32s and FCN-8s (Long et al. 2015) on a torchvision VGG16 encoder."""

from __future__ import annotations

import torch
from torch import nn

from rsseg.models.base import SegmentationModel
from rsseg.models.encoders import VGGEncoder
from rsseg.models.layers import bilinear_kernel
from rsseg.models.pretrained import load_pretrained


def _upscore(num_classes: int, scale: int) -> nn.ConvTranspose2d:
    layer = nn.ConvTranspose2d(num_classes, num_classes, 2 * scale, scale, scale // 2, bias=False)
    with torch.no_grad():
        layer.weight.copy_(bilinear_kernel(num_classes, 2 * scale))
    return layer


class _FCNBase(SegmentationModel):
    size_multiple = 32

    def __init__(self, num_classes: int, in_channels: int, pretrained: str | None, dropout: float) -> None:
        super().__init__(num_classes, in_channels)
        self.encoder = VGGEncoder(batch_norm=False, in_channels=in_channels)
        load_pretrained(self.encoder, pretrained)
        # fc6 is "same"-padded rather than the original 100-pixel input padding + crop: identical parameters,
        # any input that is a multiple of 32 maps onto an aligned output.
        self.fc6 = nn.Sequential(
            nn.Conv2d(512, 4096, 7, padding=3), nn.ReLU(inplace=True), nn.Dropout2d(dropout)
        )
        self.fc7 = nn.Sequential(nn.Conv2d(4096, 4096, 1), nn.ReLU(inplace=True), nn.Dropout2d(dropout))
        self.score_fr = nn.Conv2d(4096, num_classes, 1)


class FCN32s(_FCNBase):
    """FCN-32s: VGG16 conv body, fc6/fc7 as convolutions, 1x1 score, one 32x learned deconvolution
    (kernel 64, stride 32) initialised to bilinear up-sampling."""

    def __init__(
        self, num_classes: int, in_channels: int = 3, pretrained: str | None = None, dropout: float = 0.5
    ) -> None:
        super().__init__(num_classes, in_channels, pretrained, dropout)
        self.upscore = _upscore(num_classes, 32)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        _, pooled, _ = self.encoder.forward_pooled(x)
        return self.upscore(self.score_fr(self.fc7(self.fc6(pooled[4]))))


class FCN8s(_FCNBase):
    """FCN-8s: FCN-32s scores fused with 1x1 scores of pool4 and pool3 through 2x, 2x and 8x learned
    deconvolutions initialised to bilinear up-sampling."""

    def __init__(
        self, num_classes: int, in_channels: int = 3, pretrained: str | None = None, dropout: float = 0.5
    ) -> None:
        super().__init__(num_classes, in_channels, pretrained, dropout)
        self.score_pool4 = nn.Conv2d(512, num_classes, 1)
        self.score_pool3 = nn.Conv2d(256, num_classes, 1)
        self.upscore2 = _upscore(num_classes, 2)
        self.upscore_pool4 = _upscore(num_classes, 2)
        self.upscore8 = _upscore(num_classes, 8)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        _, pooled, _ = self.encoder.forward_pooled(x)
        y = self.upscore2(self.score_fr(self.fc7(self.fc6(pooled[4]))))
        y = self.upscore_pool4(y + self.score_pool4(pooled[3]))
        return self.upscore8(y + self.score_pool3(pooled[2]))
