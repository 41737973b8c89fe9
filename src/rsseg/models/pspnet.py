"""PSPNet (Zhao et al. 2017) with a deep-stem dilated ResNet-101 and an auxiliary head."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from rsseg.models.aspp import resize
from rsseg.models.base import SegmentationModel
from rsseg.models.encoders import Encoder, TimmEncoder
from rsseg.models.layers import AdaptiveAvgPool2d, PooledBatchNorm2d
from rsseg.models.pretrained import load_pretrained


class PyramidPooling(nn.Module):
    """Pyramid pooling module: per bin, adaptive average pooling + 1x1 conv (in/len(bins), no bias) + BN +
    ReLU, up-sampled and concatenated with the input (hszhao/semseg and bubbliiiing layout)."""

    def __init__(self, in_channels: int, bins: Sequence[int] = (1, 2, 3, 6)) -> None:
        super().__init__()
        reduction = in_channels // len(bins)
        self.stages = nn.ModuleList(
            nn.Sequential(
                AdaptiveAvgPool2d(bin_size),
                nn.Conv2d(in_channels, reduction, 1, bias=False),
                # a 1x1 bin holds one value per channel: see PooledBatchNorm2d.
                PooledBatchNorm2d(reduction) if bin_size == 1 else nn.BatchNorm2d(reduction),
                nn.ReLU(inplace=True),
            )
            for bin_size in bins
        )
        self.out_channels = in_channels + reduction * len(bins)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        return torch.cat([x] + [resize(stage(x), size) for stage in self.stages], dim=1)


def _head(in_channels: int, channels: int, num_classes: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(channels),
        nn.ReLU(inplace=True),
        nn.Dropout2d(dropout),
        nn.Conv2d(channels, num_classes, 1),
    )


class PSPNet(SegmentationModel):
    """PSPNet, the paper's PSPNet baseline: 68,062,156 parameters (259.64 MiB) at 6 classes with aux head.

    Encoder: ResNet-101 with the deep stem (three 3x3 convs 64, 64, 128; timm ``resnet101s``, ImageNet weights
    ``resnet101s.gluon_in1k``) dilated to output stride 8. Pyramid bins 1/2/3/6 at 512 channels, 3x3 conv 512
    + BN + ReLU + Dropout2d(0.1), 1x1 classifier. Auxiliary head on ``layer3`` (1024 channels): 3x3 conv 256 +
    BN + ReLU + Dropout2d(0.1) + 1x1 classifier, weighted ``aux_weight`` (0.4) in the loss. In training the
    model returns ``{"out": logits, "aux": aux_logits}``, both at the input size.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        pretrained: str | None = None,
        encoder: Encoder | None = None,
        bins: Sequence[int] = (1, 2, 3, 6),
        aux: bool = True,
        aux_weight: float = 0.4,
        dropout: float = 0.1,
    ) -> None:
        super().__init__(num_classes, in_channels)
        self.encoder = encoder or TimmEncoder("resnet101s", in_channels, output_stride=8, out_indices=[3, 4])
        load_pretrained(self.encoder, pretrained)
        channels = self.encoder.channels[-1]
        self.ppm = PyramidPooling(channels, bins)
        self.head = _head(self.ppm.out_channels, channels // 4, num_classes, dropout)
        self.aux_head = _head(self.encoder.channels[-2], 256, num_classes, dropout) if aux else None
        self.aux_weight = float(aux_weight)
        self.size_multiple = max(self.encoder.reductions)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        features = self.encoder(x)
        out = resize(self.head(self.ppm(features[-1])), x.shape[-2:])
        if self.training and self.aux_head is not None:
            return {"out": out, "aux": resize(self.aux_head(features[-2]), x.shape[-2:])}
        return out
