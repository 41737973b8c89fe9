"""Encoders (backbones) that keep the torchvision / timm parameter layouts, so ImageNet weights load by name.

Every encoder returns a list of feature maps, shallow to deep, and describes them with ``channels`` and
``reductions`` (the stride of each map relative to the input). Any number of input bands is accepted: the
first RGB convolution is adapted in place (:func:`rsseg.models.pretrained.adapt_input_conv`), and a pretrained
RGB kernel is adapted the same way when weights are loaded.
"""

from __future__ import annotations

import torch
from torch import nn

from rsseg.errors import PretrainedWeightsError

OUTPUT_STRIDES = (8, 16, 32)


def _check_output_stride(output_stride: int, allowed=OUTPUT_STRIDES) -> int:
    if int(output_stride) not in allowed:
        raise ValueError(f"output_stride must be one of {allowed}, got {output_stride}")
    return int(output_stride)


class Encoder(nn.Module):
    """Base class of rsseg encoders: feature list out, plus what a decoder and a weight loader need.

    ``channels`` / ``reductions`` describe the returned maps; ``first_conv_key`` names the input convolution's
    weight (the one tensor whose shape may differ from an RGB checkpoint); ``head_prefixes`` are checkpoint
    key prefixes of the classification head, skipped silently when weights are loaded.
    """

    channels: list[int]
    reductions: list[int]
    first_conv_key: str
    head_prefixes: tuple[str, ...] = ()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        raise NotImplementedError

    def map_source_key(self, key: str) -> str | None:
        """Our state-dict key for a checkpoint key (``None`` for classification-head keys)."""
        if key.startswith(self.head_prefixes):
            return None
        return key

    def imagenet_state_dict(self) -> dict[str, torch.Tensor]:
        raise PretrainedWeightsError(
            f"no ImageNet weights are published for {self.describe()}; "
            "pass a local state dict with model.pretrained=/path/file.pth"
        )

    def describe(self) -> str:
        return type(self).__name__

    @property
    def output_stride(self) -> int:
        return self.reductions[-1]


def _torchvision_state_dict(weights) -> dict[str, torch.Tensor]:
    return weights.get_state_dict(progress=True)
