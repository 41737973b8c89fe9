"""Encoders (backbones) that keep the torchvision / timm parameter layouts, so ImageNet weights load by name.

Every encoder returns a list of feature maps, shallow to deep, and describes them with ``channels`` and
``reductions`` (the stride of each map relative to the input). Any number of input bands is accepted: the
first RGB convolution is adapted in place (:func:`rsseg.models.pretrained.adapt_input_conv`), and a pretrained
RGB kernel is adapted the same way when weights are loaded.
"""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from rsseg.models.pretrained import PretrainedWeightsError, adapt_input_conv

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


def _separable_parts(in_channels, out_channels, dilation, stride, momentum):
    depthwise = nn.Conv2d(
        in_channels, in_channels, 3, stride, dilation, dilation, groups=in_channels, bias=False
    )
    pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)
    return (
        depthwise,
        nn.BatchNorm2d(in_channels, momentum=momentum),
        pointwise,
        nn.BatchNorm2d(out_channels, momentum=momentum),
    )


class SeparableConv2d(nn.Module):
    """Depthwise 3x3 + BN + pointwise 1x1 + BN, with ReLU first (``relu_first``) or after each BN.

    The aligned-Xception unit of DeepLabv3+ (Chen et al. 2018), in the bubbliiiing parameter layout
    (``depthwise``, ``bn1``, ``pointwise``, ``bn2``); torchvision/timm have no such unit with these names.
    """

    def __init__(
        self, in_channels, out_channels, stride=1, dilation=1, relu_first=True, momentum=0.0003
    ) -> None:
        super().__init__()
        self.depthwise, self.bn1, self.pointwise, self.bn2 = _separable_parts(
            in_channels, out_channels, dilation, stride, momentum
        )
        self.relu_first = relu_first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        relu = nn.functional.relu
        if self.relu_first:
            return self.bn2(self.pointwise(self.bn1(self.depthwise(relu(x)))))
        return relu(self.bn2(self.pointwise(relu(self.bn1(self.depthwise(x))))))


class XceptionBlock(nn.Module):
    """Aligned-Xception residual block: three separable convs (the third strided) + 1x1 projection skip.

    Returns the block output and the output of the second separable conv, which for ``block2`` is
    DeepLabv3+'s low-level feature (256 channels, stride 4). The residual is the block input (the aligned
    Xception of Chen et al.); bubbliiiing's in-place ReLU, which also rectifies the residual, is not copied.
    """

    def __init__(self, in_channels, out_channels, stride=1, dilation=1, grow_first=True, momentum=0.0003):
        super().__init__()
        if out_channels != in_channels or stride != 1:
            self.skip = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)
            self.skipbn = nn.BatchNorm2d(out_channels, momentum=momentum)
        else:
            self.skip = None
            self.skipbn = None
        mid = out_channels if grow_first else in_channels
        self.sepconv1 = SeparableConv2d(in_channels, mid, 1, dilation, momentum=momentum)
        self.sepconv2 = SeparableConv2d(mid, out_channels, 1, dilation, momentum=momentum)
        self.sepconv3 = SeparableConv2d(out_channels, out_channels, stride, dilation, momentum=momentum)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skip = self.skipbn(self.skip(x)) if self.skip is not None else x
        y = self.sepconv2(self.sepconv1(x))
        return self.sepconv3(y) + skip, y


class XceptionEncoder(Encoder):
    """Aligned Xception-65 encoder of DeepLabv3+ (Chen et al. 2018) in the bubbliiiing parameter layout.

    Entry flow conv1 (32, s2), conv2 (64), block1 (128, s2), block2 (256, s2 at OS16 / s2 at OS8), block3
    (728, s2 at OS16 / s1 at OS8); middle flow block4..block19 (728); exit flow block20 (728 -> 1024) and
    separable convs 1536, 1536, 2048. Dilation follows bubbliiiing: rate ``16 // output_stride`` in the middle
    and exit flows (1 at OS16, 2 at OS8). BN momentum 0.0003. The low-level map is ``block2``'s second
    separable conv (256 channels, stride 4). This module is written here because torchvision has no Xception
    and timm's ``xception65`` has a different layout; with it DeepLabv3+ has 54,709,702 parameters at 6
    classes (208.70 MiB, the MST-DeepLabv3+ paper's Table 8/9 figure).
    """

    first_conv_key = "conv1.weight"
    head_prefixes = ("fc.", "last_linear.")

    def __init__(self, in_channels: int = 3, output_stride: int = 16, momentum: float = 0.0003) -> None:
        super().__init__()
        output_stride = _check_output_stride(output_stride, (8, 16))
        strides = [2, 2, 1] if output_stride == 16 else [2, 1, 1]
        rate = 16 // output_stride
        self.conv1 = nn.Conv2d(3, 32, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(32, momentum=momentum)
        self.conv2 = nn.Conv2d(32, 64, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(64, momentum=momentum)
        self.block1 = XceptionBlock(64, 128, 2, momentum=momentum)
        self.block2 = XceptionBlock(128, 256, strides[0], momentum=momentum)
        self.block3 = XceptionBlock(256, 728, strides[1], momentum=momentum)
        for i in range(4, 20):
            setattr(self, f"block{i}", XceptionBlock(728, 728, 1, rate, momentum=momentum))
        self.block20 = XceptionBlock(728, 1024, strides[2], rate, grow_first=False, momentum=momentum)
        self.conv3 = SeparableConv2d(1024, 1536, 1, rate, relu_first=False, momentum=momentum)
        self.conv4 = SeparableConv2d(1536, 1536, 1, rate, relu_first=False, momentum=momentum)
        self.conv5 = SeparableConv2d(1536, 2048, 1, rate, relu_first=False, momentum=momentum)
        self.first_conv_key = adapt_input_conv(self, in_channels)
        self.channels = [256, 2048]
        self.reductions = [4, output_stride]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        relu = nn.functional.relu
        x = relu(self.bn1(self.conv1(x)))
        x = relu(self.bn2(self.conv2(x)))
        x, _ = self.block1(x)
        x, low = self.block2(x)
        for i in range(3, 21):
            x, _ = getattr(self, f"block{i}")(x)
        x = self.conv5(self.conv4(self.conv3(x)))
        return [low, x]

    def describe(self) -> str:
        return "aligned Xception-65 (DeepLabv3+ layout)"
