"""Joint image/mask augmentations.

Built on torchvision.transforms.v2: it transforms an image tensor and a ``tv_tensors.Mask`` together in one
call (same flip, same crop, nearest-neighbour for the mask), works on tensors of any band count, and ships with
torchvision, which rsseg already depends on.
"""

from __future__ import annotations

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2


class RandomRotate90(torch.nn.Module):
    """Rotation by a random multiple of 90 degrees: exact on the pixel grid, so labels stay crisp."""

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        turns = int(torch.randint(0, 4, ()))
        return torch.rot90(image, turns, (-2, -1)), tv_tensors.Mask(torch.rot90(mask, turns, (-2, -1)))


class JointTransform:
    """Applies a torchvision v2 pipeline to ``(image [C,H,W] float, mask [H,W] long)`` pairs."""

    def __init__(self, transforms: list) -> None:
        self.pipeline = v2.Compose(list(transforms))

    def __call__(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.pipeline(tv_tensors.Image(image), tv_tensors.Mask(mask))
        return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor)


class FlipRotate(JointTransform):
    """Horizontal and vertical flips and 90-degree rotations: the eight-fold expansion MST-DeepLabv3+ used."""

    def __init__(self, p_flip: float = 0.5) -> None:
        super().__init__([v2.RandomHorizontalFlip(p_flip), v2.RandomVerticalFlip(p_flip), RandomRotate90()])
