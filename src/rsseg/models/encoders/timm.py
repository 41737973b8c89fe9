"""Any timm model as an encoder (``features_only``), with checkpoint keys mapped from the full model.

``import timm`` below is an absolute import: it gets the timm library, not this module.
"""

from __future__ import annotations

import torch
from torch import nn

from rsseg.models.encoders.base import Encoder, _check_output_stride
from rsseg.models.pretrained import adapt_input_conv


def _normalise_timm_key(key: str) -> str:
    while key.startswith("model."):
        key = key[len("model.") :]
    return key.replace("_", ".")


class TimmEncoder(Encoder):
    """Any timm model as an encoder, through ``timm.create_model(name, features_only=True)``.

    ``output_stride`` is passed to timm when given (CNNs that support dilation); ``out_indices`` selects the
    feature levels; other keyword arguments go to timm unchanged (e.g. ``dynamic_img_size: true`` for a ViT).
    Checkpoints in the full timm model's layout are mapped to the feature extractor's names, whose only
    differences are a ``model.`` prefix and flattened module names (``blocks.0`` -> ``blocks_0``).
    """

    def __init__(
        self,
        name: str,
        in_channels: int = 3,
        output_stride: int | None = None,
        out_indices: list[int] | None = None,
        **kwargs,
    ) -> None:
        super().__init__()
        import timm

        self.name = name
        self.timm_kwargs = dict(kwargs)
        if output_stride is not None:
            self.timm_kwargs["output_stride"] = _check_output_stride(output_stride)
        create = dict(self.timm_kwargs, features_only=True, pretrained=False, in_chans=3)
        if out_indices is not None:
            create["out_indices"] = tuple(out_indices)
        self.model = timm.create_model(name, **create)
        self.first_conv_key = adapt_input_conv(self, in_channels)
        self.channels = list(self.model.feature_info.channels())
        self.reductions = list(self.model.feature_info.reduction())
        fmt = getattr(self.model, "output_fmt", "NCHW")
        # Some transformers (Swin) give channels-last features; decoders expect NCHW.
        self.channels_last = str(getattr(fmt, "value", fmt)) == "NHWC"
        self._key_map: dict[str, str] | None = None
        self._full_keys: set[str] = set()
        self._own_normalised: dict[str, str] = {}

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = list(self.model(x))
        if self.channels_last:
            features = [f.permute(0, 3, 1, 2).contiguous() for f in features]
        return features

    def _full_model(self, pretrained: bool) -> nn.Module:
        import timm

        return timm.create_model(self.name, pretrained=pretrained, in_chans=3, **self.timm_kwargs)

    def _build_key_map(self, full_keys) -> None:
        self._own_normalised = {}
        for key in self.state_dict():
            self._own_normalised.setdefault(_normalise_timm_key(key), key)
        self._key_map = {}
        for key in full_keys:
            target = self._own_normalised.get(_normalise_timm_key(key))
            if target is not None:
                self._key_map[key] = target
        self._full_keys = set(full_keys)

    def map_source_key(self, key: str) -> str | None:
        if self._key_map is None:
            self._build_key_map(self._full_model(pretrained=False).state_dict().keys())
        if key in self._key_map:
            return self._key_map[key]
        if key in self._full_keys:
            return None  # a tensor of the full model the feature extractor does not use (the head)
        # a file saved from a feature extractor (ours or timm's features_only model)
        return self._own_normalised.get(_normalise_timm_key(key), key)

    def imagenet_state_dict(self) -> dict[str, torch.Tensor]:
        state_dict = self._full_model(pretrained=True).state_dict()
        self._build_key_map(state_dict.keys())
        return state_dict

    def describe(self) -> str:
        return f"timm {self.name}"
