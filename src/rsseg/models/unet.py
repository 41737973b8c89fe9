"""U-Net (Ronneberger et al. 2015) on a VGG16 encoder, in the bubbliiiing ``unet-pytorch`` layout."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rsseg.models.base import SegmentationModel
from rsseg.models.encoders import VGGEncoder
from rsseg.models.pretrained import load_pretrained


class UNetUp(nn.Module):
    """Bilinear x2 up-sampling of the deeper map, concatenation with the skip, two 3x3 convs + ReLU (bias,
    no BN), as bubbliiiing's ``unetUp``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)

    def forward(self, skip: torch.Tensor, deep: torch.Tensor) -> torch.Tensor:
        # UpsamplingBilinear2d is interpolation with align_corners=True.
        deep = F.interpolate(deep, size=skip.shape[-2:], mode="bilinear", align_corners=True)
        x = F.relu(self.conv1(torch.cat([skip, deep], dim=1)), inplace=True)
        return F.relu(self.conv2(x), inplace=True)


class UNet(SegmentationModel):
    """U-Net with a torchvision VGG16 encoder (the paper's UNet baseline, 24,891,462 params at 6 classes).

    Skips are the five VGG16 stage outputs before pooling (64, 128, 256, 512, 512 channels; the last max-pool
    is unused); decoder stages take 1024, 768, 384, 192 channels to 512, 256, 128, 64; a 1x1 conv gives the
    classes. ImageNet weights: torchvision ``VGG16_Weights.IMAGENET1K_V1`` (bubbliiiing's
    ``vgg16-397923af.pth``).
    """

    size_multiple = 16

    def __init__(
        self, num_classes: int, in_channels: int = 3, pretrained: str | None = None, batch_norm: bool = False
    ) -> None:
        super().__init__(num_classes, in_channels)
        self.encoder = VGGEncoder(batch_norm=batch_norm, in_channels=in_channels)
        load_pretrained(self.encoder, pretrained)
        self.up4 = UNetUp(512 + 512, 512)
        self.up3 = UNetUp(512 + 256, 256)
        self.up2 = UNetUp(256 + 128, 128)
        self.up1 = UNetUp(128 + 64, 64)
        self.final = nn.Conv2d(64, num_classes, 1)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        f1, f2, f3, f4, f5 = self.encoder(x)
        y = self.up4(f4, f5)
        y = self.up3(f3, y)
        y = self.up2(f2, y)
        y = self.up1(f1, y)
        return self.final(y)
