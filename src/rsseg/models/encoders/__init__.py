"""Encoders (backbones) in the torchvision / timm layouts: the Encoder base class (base) and one module per family.
May import torch, torchvision, timm, rsseg.errors and rsseg.models.pretrained; base imports none of rsseg but errors.
"""

from rsseg.errors import PretrainedWeightsError
from rsseg.models.encoders.base import OUTPUT_STRIDES, Encoder
from rsseg.models.encoders.mobilenet import MobileNetV2Encoder
from rsseg.models.encoders.resnet import ResNetEncoder
from rsseg.models.encoders.timm import TimmEncoder
from rsseg.models.encoders.vgg import VGGEncoder
from rsseg.models.encoders.xception import SeparableConv2d, XceptionBlock, XceptionEncoder

__all__ = [
    "OUTPUT_STRIDES",
    "Encoder",
    "MobileNetV2Encoder",
    "PretrainedWeightsError",
    "ResNetEncoder",
    "SeparableConv2d",
    "TimmEncoder",
    "VGGEncoder",
    "XceptionBlock",
    "XceptionEncoder",
]
