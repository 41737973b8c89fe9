"""rsseg model zoo: composable DeepLabv3+ and the baselines of the reproduced papers, at parameter parity.

Models are built from ``conf/model/<name>.yaml`` with ``hydra.utils.instantiate(cfg.model)``, or from Python
with ``rsseg.models.build("mst_deeplab", num_classes=6, in_channels=4, pretrained=None)``. Every model maps
``[B, in_channels, H, W]`` to logits ``[B, num_classes, H, W]`` for any H, W, exposes ``.encoder``,
``.num_classes`` and ``.in_channels``, and models with an auxiliary head (PSPNet) return ``{"out", "aux"}`` in
training with their ``aux_weight``.

Lives here: blocks, encoders (encoders/), the models, pretrained weights, the hub of named models, sizes, ONNX and
TorchScript tracing, and reading checkpoints (checkpoint.py). May import errors, config and runtime; never data,
training or inference.
"""

from rsseg.models.base import SegmentationModel
from rsseg.models.deeplab import DeepLabV3Plus
from rsseg.models.encoder_decoder import DeconvNet, DeconvNetSkip, SegNet
from rsseg.models.fcn import FCN8s, FCN32s
from rsseg.models.hub import build_model as build
from rsseg.models.profile import count_gflops, model_size
from rsseg.models.pspnet import PSPNet
from rsseg.models.unet import UNet

__all__ = [
    "DeconvNet",
    "DeconvNetSkip",
    "DeepLabV3Plus",
    "FCN8s",
    "FCN32s",
    "PSPNet",
    "SegNet",
    "SegmentationModel",
    "UNet",
    "build",
    "count_gflops",
    "model_size",
]
