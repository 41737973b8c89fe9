"""DeepLabv3+ (Chen et al. 2018) assembled from interchangeable parts.

encoder -> [attention: high] -> ASPP (with [attention: aspp_concat] before its 1x1 projection)
-> [attention: aspp_out] -> decoder (low-level skip, [attention: low]) -> [attention: decoder] -> up-sampler.

The named configs in ``conf/model`` choose the parts: MST-DeepLabv3+ (MobileNetV2 + SE on the ASPP
concatenation), DeepLabv3+ with Xception or MobileNetV2, and the ResNet-101 + dilated SPP + sub-pixel model of
Jiang & Li (2020).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from rsseg.models.aspp import ASPP, resize
from rsseg.models.attention import AttentionFactory
from rsseg.models.base import SegmentationModel
from rsseg.models.encoders import Encoder
from rsseg.models.pretrained import load_pretrained
from rsseg.models.upsample import BilinearUpsample


class DeepLabV3PlusDecoder(nn.Module):
    """DeepLabv3+ decoder in the bubbliiiing layout: low-level 1x1 projection (48 ch, bias + BN + ReLU),
    concatenation with the up-sampled ASPP output, two 3x3 convs (256 ch, bias + BN + ReLU) followed by
    Dropout 0.5 and 0.1."""

    def __init__(
        self,
        low_channels: int,
        aspp_channels: int = 256,
        low_projection: int = 48,
        channels: int = 256,
        dropouts: Sequence[float] = (0.5, 0.1),
        low_attention: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.low_attention = low_attention if low_attention is not None else nn.Identity()
        self.shortcut = nn.Sequential(
            nn.Conv2d(low_channels, low_projection, 1), nn.BatchNorm2d(low_projection), nn.ReLU(inplace=True)
        )
        layers: list[nn.Module] = []
        in_channels = aspp_channels + low_projection
        for p in dropouts:
            layers += [
                nn.Conv2d(in_channels, channels, 3, padding=1),
                nn.BatchNorm2d(channels),
                nn.ReLU(inplace=True),
                nn.Dropout(p),
            ]
            in_channels = channels
        self.fuse = nn.Sequential(*layers)
        self.out_channels = channels

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        low = self.shortcut(self.low_attention(low))
        high = resize(high, low.shape[-2:])
        return self.fuse(torch.cat([high, low], dim=1))


class DeepLabV3Plus(SegmentationModel):
    """Composable DeepLabv3+: any :class:`Encoder`, ASPP options, attention kind and position, up-sampler.

    Args:
        encoder: a built encoder (``model/encoder`` group); the last map feeds ASPP, the map at
            ``low_level_reduction`` feeds the decoder.
        num_classes, in_channels: from the data config.
        pretrained: ``null`` | ``imagenet`` | path of a state dict for the encoder (see
            :mod:`rsseg.models.pretrained`).
        aspp: keyword arguments of :class:`ASPP` (``rates``, ``pointwise``, ``image_pool``, ``separable``...).
        attention: an :class:`AttentionFactory` (``model/attention`` group) or ``None``.
        upsample: a callable ``(in_channels, num_classes, scale) -> nn.Module`` (``model/upsample`` group).
        decoder: keyword arguments of :class:`DeepLabV3PlusDecoder`, or ``None`` for no low-level skip (the
            ASPP output is then up-sampled by the output stride, DeepLabv3 style).
    """

    def __init__(
        self,
        encoder: Encoder,
        num_classes: int,
        in_channels: int = 3,
        pretrained: str | None = None,
        aspp: dict | None = None,
        attention: AttentionFactory | None = None,
        upsample: Callable[..., nn.Module] | None = None,
        decoder: dict | None = None,
        low_level_reduction: int = 4,
    ) -> None:
        super().__init__(num_classes, in_channels)
        self.encoder = encoder
        load_pretrained(encoder, pretrained)
        attention = attention or AttentionFactory("none")
        self.attention_position = attention.position if attention.kind != "none" else None

        def block_at(position: str, channels: int) -> nn.Module:
            block = attention(channels) if attention.position == position else None
            return block if block is not None else nn.Identity()

        high_channels = encoder.channels[-1]
        self.high_index = len(encoder.channels) - 1
        self.high_attention = block_at("high", high_channels)

        aspp_kwargs = dict(aspp or {})
        aspp_kwargs.setdefault("output_stride", encoder.output_stride)
        self.aspp = ASPP(high_channels, **aspp_kwargs)
        self.aspp.attention = block_at("aspp_concat", self.aspp.concat_channels)
        self.aspp_attention = block_at("aspp_out", self.aspp.out_channels)

        if decoder is not None:
            reductions = encoder.reductions
            self.low_index = reductions.index(low_level_reduction) if low_level_reduction in reductions else 0
            low_attention = block_at("low", encoder.channels[self.low_index])
            self.decoder = DeepLabV3PlusDecoder(
                encoder.channels[self.low_index],
                self.aspp.out_channels,
                low_attention=low_attention,
                **dict(decoder),
            )
            head_channels, scale = self.decoder.out_channels, reductions[self.low_index]
        else:
            self.low_index = None
            self.decoder = None
            head_channels, scale = self.aspp.out_channels, encoder.output_stride
        self.decoder_attention = block_at("decoder", head_channels)
        upsample = upsample or BilinearUpsample
        self.upsample = upsample(in_channels=head_channels, num_classes=num_classes, scale=scale)
        self.size_multiple = max(encoder.reductions)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoder(x)
        y = self.aspp(self.high_attention(features[self.high_index]))
        y = self.aspp_attention(y)
        if self.decoder is not None:
            y = self.decoder(features[self.low_index], y)
        return self.upsample(self.decoder_attention(y), size=x.shape[-2:])
