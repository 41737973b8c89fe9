"""Up-samplers that turn decoder features into full-resolution class logits (the ``model/upsample`` group).

Each takes ``(in_channels, num_classes, scale)`` and maps ``[B, in_channels, h, w]`` to
``[B, num_classes, h * scale, w * scale]``; ``forward(x, size)`` resizes bilinearly to ``size`` only if the
learned up-sampling does not land on it exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rsseg.models.layers import bilinear_kernel


def _fit(x: torch.Tensor, size) -> torch.Tensor:
    if size is None or tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class BilinearUpsample(nn.Module):
    """1x1 classifier, then bilinear interpolation to the input size (DeepLabv3+; align_corners=True as in
    the bubbliiiing layout)."""

    def __init__(self, in_channels: int, num_classes: int, scale: int, align_corners: bool = True) -> None:
        super().__init__()
        self.classifier = nn.Conv2d(in_channels, num_classes, 1)
        self.scale = int(scale)
        self.align_corners = align_corners

    def forward(self, x: torch.Tensor, size=None) -> torch.Tensor:
        x = self.classifier(x)
        if size is None:
            size = (x.shape[-2] * self.scale, x.shape[-1] * self.scale)
        if tuple(x.shape[-2:]) == tuple(size):
            return x
        return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=self.align_corners)


def icnr_(weight: torch.Tensor, bias: torch.Tensor | None, scale: int) -> None:
    """ICNR initialisation (Aitken et al. 2017) of a conv feeding ``PixelShuffle(scale)``, in place.

    A kernel for ``out / scale**2`` channels is initialised (Kaiming) and repeated so the ``scale**2``
    sub-pixel channels of each output channel are identical: the initial output is a nearest-neighbour
    up-sampling, constant within each ``scale x scale`` block, and free of checkerboard artefacts.
    """
    r2 = scale * scale
    out_channels = weight.shape[0] // r2
    base = torch.empty(out_channels, *weight.shape[1:], dtype=weight.dtype, device=weight.device)
    nn.init.kaiming_normal_(base, nonlinearity="relu")
    with torch.no_grad():
        # PixelShuffle reads channel c * r^2 + i as sub-pixel i of output channel c.
        weight.copy_(base.repeat_interleave(r2, dim=0))
        if bias is not None:
            b = torch.empty(out_channels, dtype=bias.dtype, device=bias.device).uniform_(-0.01, 0.01)
            bias.copy_(b.repeat_interleave(r2))


class SubPixelUpsample(nn.Module):
    """Sub-pixel convolution (Shi et al. 2016): conv to ``num_classes * r^2`` channels + ``PixelShuffle(r)``.

    The up-sampling of Jiang & Li (2020), "Cs = r^2 C": the learned conv replaces the bilinear up-sampler.
    ICNR-initialised (:func:`icnr_`).
    """

    def __init__(
        self, in_channels: int, num_classes: int, scale: int, kernel_size: int = 3, icnr: bool = True
    ) -> None:
        super().__init__()
        self.scale = int(scale)
        self.conv = nn.Conv2d(in_channels, num_classes * self.scale**2, kernel_size, padding=kernel_size // 2)
        self.shuffle = nn.PixelShuffle(self.scale)
        if icnr:
            icnr_(self.conv.weight, self.conv.bias, self.scale)

    def forward(self, x: torch.Tensor, size=None) -> torch.Tensor:
        return _fit(self.shuffle(self.conv(x)), size)


class TransposedUpsample(nn.Module):
    """1x1 classifier, then a learned ``ConvTranspose2d`` (kernel 2r, stride r) initialised to bilinear
    up-sampling, as FCN's deconvolution layers (Long et al. 2015)."""

    def __init__(self, in_channels: int, num_classes: int, scale: int) -> None:
        super().__init__()
        self.scale = int(scale)
        self.classifier = nn.Conv2d(in_channels, num_classes, 1)
        k = 2 * self.scale
        self.deconv = nn.ConvTranspose2d(num_classes, num_classes, k, self.scale, self.scale // 2, bias=False)
        with torch.no_grad():
            self.deconv.weight.copy_(bilinear_kernel(num_classes, k))

    def forward(self, x: torch.Tensor, size=None) -> torch.Tensor:
        return _fit(self.deconv(self.classifier(x)), size)
