"""Joint image/mask augmentations.

Built on torchvision.transforms.v2: it transforms an image tensor and a ``tv_tensors.Mask`` together in one
call (same flip, same crop, nearest-neighbour for the mask), works on tensors of any band count, and ships with
torchvision, which rsseg already depends on.

Per-window augmentations take and return ``(image [C,H,W] float, mask [H,W] long)`` and run in the DataLoader
workers. Batch-level ones (``RICAP``, marked ``batch_level = True``) take and return a batch dict
``{"image": [B,C,H,W], "mask": [B,H,W]}``; the datamodule applies them to training batches in
``on_after_batch_transfer``. ``Chain`` composes both kinds; ``split_augment`` separates them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

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


class RandomScaleCrop(torch.nn.Module):
    """Random scale in ``scale`` then a random crop back to the input's size: the seed 003 loader's random scale.

    The image is resampled bilinearly and the mask with nearest neighbour (torchvision v2 picks nearest for a
    ``Mask`` by itself). A window scaled below its size is placed at a random offset on a canvas padded with 0
    in the image (the band mean, after normalisation) and ``ignore_index`` in the mask, so padding never trains.
    """

    def __init__(self, scale: tuple[float, float] = (0.5, 2.0), ignore_index: int = 255) -> None:
        super().__init__()
        low, high = float(scale[0]), float(scale[1])
        if not 0 < low <= high:
            raise ValueError(f"scale must be (low, high) with 0 < low <= high, got {scale}")
        self.scale = (low, high)
        self.ignore_index = ignore_index

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        height, width = image.shape[-2:]
        factor = float(torch.empty(()).uniform_(*self.scale))
        new_h, new_w = max(1, round(height * factor)), max(1, round(width * factor))
        scaled_image = v2.functional.resize(image, [new_h, new_w], interpolation=v2.InterpolationMode.BILINEAR, antialias=True)
        scaled_mask = v2.functional.resize(tv_tensors.Mask(mask), [new_h, new_w], interpolation=v2.InterpolationMode.NEAREST)
        out_image = torch.zeros_like(image)
        out_mask = torch.full_like(mask, self.ignore_index)
        # Source offset (crop) when the scaled window is larger, target offset (pad) when it is smaller.
        src_r = int(torch.randint(0, max(new_h - height, 0) + 1, ()))
        src_c = int(torch.randint(0, max(new_w - width, 0) + 1, ()))
        dst_r = int(torch.randint(0, max(height - new_h, 0) + 1, ()))
        dst_c = int(torch.randint(0, max(width - new_w, 0) + 1, ()))
        h, w = min(height, new_h), min(width, new_w)
        out_image[..., dst_r : dst_r + h, dst_c : dst_c + w] = scaled_image[..., src_r : src_r + h, src_c : src_c + w]
        out_mask[..., dst_r : dst_r + h, dst_c : dst_c + w] = scaled_mask[..., src_r : src_r + h, src_c : src_c + w]
        return tv_tensors.wrap(out_image, like=image) if isinstance(image, tv_tensors.Image) else out_image, tv_tensors.Mask(out_mask)


class ScaleCrop(JointTransform):
    """Random scale (0.5 to 2 by default) and crop back to the tile size (``aug=scale_crop``)."""

    def __init__(self, scale: tuple[float, float] = (0.5, 2.0), ignore_index: int = 255) -> None:
        super().__init__([RandomScaleCrop(tuple(scale), ignore_index)])


class Photometric:
    """Brightness, contrast, saturation and hue jitter (torchvision's ``ColorJitter``) on the first three bands.

    Windows arrive normalised, so the jitter runs on the raw values brought to ``[0, 1]`` (``raw / max_value``:
    255 for 8-bit data; set ``max_value`` for 16-bit) and the result is normalised again with the same ``mean``
    and ``std``; bands after the third (NIR of a 4-band scene) pass unchanged. With fewer than three bands only
    brightness and contrast apply.
    """

    def __init__(
        self,
        brightness: float = 0.25,
        contrast: float = 0.25,
        saturation: float = 0.25,
        hue: float = 0.05,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        max_value: float = 255.0,
        p: float = 1.0,
    ) -> None:
        self.jitter3 = v2.ColorJitter(brightness, contrast, saturation, hue)
        self.jitter1 = v2.ColorJitter(brightness, contrast)
        self.mean = torch.tensor(list(mean), dtype=torch.float32) if mean is not None else None
        self.std = torch.tensor(list(std), dtype=torch.float32) if std is not None else None
        self.max_value = float(max_value)
        self.p = float(p)

    def __call__(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.p < 1 and float(torch.rand(())) >= self.p:
            return image, mask
        bands = min(3, image.shape[-3])
        mean = self.mean[:bands].view(-1, 1, 1) if self.mean is not None else torch.zeros(bands, 1, 1)
        std = self.std[:bands].view(-1, 1, 1) if self.std is not None else torch.ones(bands, 1, 1)
        unit = ((image[:bands] * std + mean) / self.max_value).clamp(0, 1)
        if bands == 3:
            unit = self.jitter3(unit)
        else:
            unit = torch.stack([self.jitter1(b[None])[0] for b in unit])
        out = image.clone()
        out[:bands] = (unit * self.max_value - mean) / std
        return out, mask


class RICAP:
    """Random image cropping and patching (Takahashi et al.), the crop-and-stitch augmentation of seed 001.

    Seed 001 (section 3.2, eq. 5) trains on the original windows and an equal number of stitched ones mixed
    1:1 (D~ = D + Dm: 6,422 + 6,422 = 12,844 images). Here that mix is drawn per training batch: of its ``B``
    windows, exactly ``round(stitched_fraction * B)`` (at least one) at randomly chosen positions are replaced by
    stitched images; the others stay the original windows, untouched. ``stitched_fraction=0.5`` is the paper's
    1:1, ``1.0`` stitches every window.

    Each stitched window: a cut point ``(w, h)`` is drawn from ``Beta(beta, beta)`` times the tile size (one per
    batch); four crops of sizes ``h x w``, ``h x (W-w)``, ``(H-h) x w`` and ``(H-h) x (W-w)``, each from a
    randomly permuted set of the batch's windows at a random offset, are stitched into a window of the same
    size. Masks are cropped and stitched identically (for segmentation no label mixing weights are needed). The
    datamodule applies it to training batches after they reach the device (``on_after_batch_transfer``).
    Random draws use torch's global RNG. ``last`` records the latest batch for inspection: ``cut`` ``(h, w)``,
    ``stitched`` (the batch positions replaced, ascending) and ``sources`` (per quadrant ``(order, y, x)``:
    ``order[i]`` is the source window of stitched position ``stitched[i]``).
    """

    batch_level = True

    def __init__(self, beta: float = 0.3, stitched_fraction: float = 0.5) -> None:
        if beta <= 0:
            raise ValueError(f"beta must be positive, got {beta}")
        stitched_fraction = float(stitched_fraction)
        if not 0 < stitched_fraction <= 1:
            raise ValueError(f"stitched_fraction must be in (0, 1] (the share of each training batch's windows "
                             f"replaced by stitched images), got {stitched_fraction}")
        self.beta = float(beta)
        self.stitched_fraction = stitched_fraction

    def num_stitched(self, batch_size: int) -> int:
        """How many of ``batch_size`` windows are stitched: ``round(stitched_fraction * B)``, at least one."""
        return min(batch_size, max(1, int(round(self.stitched_fraction * batch_size))))

    def __call__(self, batch: dict) -> dict:
        image, mask = batch["image"], batch["mask"]
        size_b, height, width = image.shape[0], image.shape[-2], image.shape[-1]
        count = self.num_stitched(size_b)
        beta = torch.distributions.Beta(torch.tensor(self.beta), torch.tensor(self.beta))
        w, h = int(round(width * float(beta.sample()))), int(round(height * float(beta.sample())))
        if count == size_b:
            stitched = torch.arange(size_b)
        else:
            stitched = torch.randperm(size_b)[:count].sort().values
        widths, heights = (w, width - w, w, width - w), (h, h, height - h, height - h)
        image_crops, mask_crops, sources = [], [], []
        for k in range(4):
            order = torch.randperm(size_b)[:count]
            x = int(torch.randint(0, width - widths[k] + 1, ()))
            y = int(torch.randint(0, height - heights[k] + 1, ()))
            index = order.to(image.device)
            image_crops.append(image[index][..., y : y + heights[k], x : x + widths[k]])
            mask_crops.append(mask[index][..., y : y + heights[k], x : x + widths[k]])
            sources.append((order, y, x))
        new_image = torch.cat([torch.cat(image_crops[:2], dim=-1), torch.cat(image_crops[2:], dim=-1)], dim=-2)
        new_mask = torch.cat([torch.cat(mask_crops[:2], dim=-1), torch.cat(mask_crops[2:], dim=-1)], dim=-2)
        out = dict(batch)
        if count == size_b:
            out["image"], out["mask"] = new_image, new_mask
        else:
            positions = stitched.to(image.device)
            out["image"], out["mask"] = image.clone(), mask.clone()
            out["image"][positions] = new_image
            out["mask"][positions] = new_mask
        self.last = {"cut": (h, w), "stitched": stitched, "sources": sources}  # for inspection and tests
        return out


def is_batch_level(transform) -> bool:
    return bool(getattr(transform, "batch_level", False))


class Chain:
    """Several augmentations in order (``aug=flip_rotate_photometric`` and friends).

    Per-window ones run in the DataLoader workers, in the order given; batch-level ones (RICAP) run afterwards on
    whole training batches, in the order given.
    """

    def __init__(self, transforms: Sequence) -> None:
        self.transforms = [t for t in transforms if t is not None]
        self.sample_transforms = [t for t in self.transforms if not is_batch_level(t)]
        self.batch_transforms = [t for t in self.transforms if is_batch_level(t)]

    def __call__(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for transform in self.sample_transforms:
            image, mask = transform(image, mask)
        return image, mask

    def apply_batch(self, batch: dict) -> dict:
        for transform in self.batch_transforms:
            batch = transform(batch)
        return batch


def split_augment(augment) -> tuple[Callable | None, Callable | None]:
    """``(per-window augmentation, batch-level augmentation)`` of the ``aug`` config, either of which may be None."""
    if augment is None:
        return None, None
    if isinstance(augment, Chain):
        return (augment if augment.sample_transforms else None), (augment.apply_batch if augment.batch_transforms else None)
    if is_batch_level(augment):
        return None, augment
    return augment, None
