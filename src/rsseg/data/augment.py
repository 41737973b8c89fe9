"""Joint image/mask augmentations, applied to whole batches on the device the model trains on.

DataLoader workers only read windows (raw pixels, see :mod:`rsseg.data.dataset`); augmentation runs after the
batch reaches the device (:class:`rsseg.data.device.DeviceBatch`), as batched tensor operations, so a GPU is not
kept waiting on CPU workers flipping and jittering float32 windows one at a time.

A per-window augmentation separates drawing from applying: ``draw(generator, height, width)`` makes the random
choices of one window from a ``torch.Generator`` seeded by that window's index (the same draws in a resumed or
re-sharded run, on any device), and ``apply(image [B,C,H,W], mask [B,H,W], draws)`` transforms the batch with one
draw per window, image and mask alike. Batch-level augmentations (``RICAP``, ``batch_level = True``) take and
return a batch dict and draw from torch's global RNG, which the datamodule seeds per batch. ``Chain`` runs several
of either kind in the order given.

Any torchvision v2 pipeline (``JointTransform``) can be used too: it runs per window on the device, its own draws
made under a seed drawn from the window's generator. The built-in ones below are batched.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _randint(generator: torch.Generator, high: int) -> int:
    """A uniform integer in ``[0, high)``."""
    return int(torch.randint(0, high, (), generator=generator))


class FlipRotate:
    """Horizontal and vertical flips and 90-degree rotations (the eight-fold expansion MST-DeepLabv3+ used).

    Exact on the pixel grid, so labels stay crisp. A draw is ``(horizontal, vertical, quarter_turns)``; windows
    sharing a draw are transformed together, so a batch costs at most eight indexed copies. Windows must be square
    (rotations would otherwise change their shape).
    """

    def __init__(self, p_flip: float = 0.5) -> None:
        self.p_flip = float(p_flip)

    def draw(self, generator: torch.Generator, height: int, width: int) -> tuple[bool, bool, int]:
        horizontal = float(torch.rand((), generator=generator)) < self.p_flip
        vertical = float(torch.rand((), generator=generator)) < self.p_flip
        return horizontal, vertical, _randint(generator, 4)

    @staticmethod
    def transform(tensor: torch.Tensor, draw: tuple[bool, bool, int]) -> torch.Tensor:
        horizontal, vertical, turns = draw
        if horizontal:
            tensor = tensor.flip(-1)
        if vertical:
            tensor = tensor.flip(-2)
        return torch.rot90(tensor, turns, (-2, -1)) if turns else tensor

    def apply(self, image: torch.Tensor, mask: torch.Tensor, draws: Sequence) -> tuple[torch.Tensor, torch.Tensor]:
        groups: dict[tuple, list[int]] = {}
        for position, draw in enumerate(draws):
            groups.setdefault(tuple(draw), []).append(position)
        if len(groups) == 1:
            draw = next(iter(groups))
            return self.transform(image, draw), self.transform(mask, draw)
        out_image, out_mask = torch.empty_like(image), torch.empty_like(mask)
        for draw, positions in groups.items():
            index = torch.tensor(positions, device=image.device)
            out_image[index] = self.transform(image[index], draw)
            out_mask[index] = self.transform(mask[index], draw)
        return out_image, out_mask


class ScaleCrop:
    """Random scale in ``scale`` (0.5 to 2 by default) and a random crop back to the window's size: the seed 003
    loader's random scale (``aug=scale_crop``).

    The image is resampled bilinearly (antialiased when shrinking) and the mask with nearest neighbour. A window
    scaled below its size is placed at a random offset on a canvas padded with 0 in the image (the band mean: the
    batch is normalised by then) and ``ignore_index`` in the mask, so padding never trains. Each window has its own
    scale, so windows are resized one by one (on the device).
    """

    def __init__(self, scale: tuple[float, float] = (0.5, 2.0), ignore_index: int = 255) -> None:
        low, high = float(scale[0]), float(scale[1])
        if not 0 < low <= high:
            raise ValueError(f"scale must be (low, high) with 0 < low <= high, got {scale}")
        self.scale = (low, high)
        self.ignore_index = ignore_index

    def draw(self, generator: torch.Generator, height: int, width: int) -> tuple[int, int, int, int, int, int]:
        """``(new_h, new_w, src_r, src_c, dst_r, dst_c)``: the scaled size, where the crop starts in the scaled
        window (when it is larger) and where it lands in the output (when it is smaller)."""
        factor = _uniform(generator, *self.scale)
        new_h, new_w = max(1, round(height * factor)), max(1, round(width * factor))
        src_r, src_c = _randint(generator, max(new_h - height, 0) + 1), _randint(generator, max(new_w - width, 0) + 1)
        dst_r, dst_c = _randint(generator, max(height - new_h, 0) + 1), _randint(generator, max(width - new_w, 0) + 1)
        return new_h, new_w, src_r, src_c, dst_r, dst_c

    def apply(self, image: torch.Tensor, mask: torch.Tensor, draws: Sequence) -> tuple[torch.Tensor, torch.Tensor]:
        height, width = image.shape[-2:]
        out_image = torch.zeros_like(image)
        out_mask = torch.full_like(mask, self.ignore_index)
        for position, (new_h, new_w, src_r, src_c, dst_r, dst_c) in enumerate(draws):
            scaled_image = TF.resize(image[position], [new_h, new_w], interpolation=v2.InterpolationMode.BILINEAR,
                                     antialias=True)
            scaled_mask = TF.resize(mask[position][None], [new_h, new_w], interpolation=v2.InterpolationMode.NEAREST)[0]
            h, w = min(height, new_h), min(width, new_w)
            out_image[position, :, dst_r : dst_r + h, dst_c : dst_c + w] = scaled_image[:, src_r : src_r + h, src_c : src_c + w]
            out_mask[position, dst_r : dst_r + h, dst_c : dst_c + w] = scaled_mask[src_r : src_r + h, src_c : src_c + w]
        return out_image, out_mask


class Photometric:
    """Brightness, contrast, saturation and hue jitter on the first three bands, in that order, with the factors of
    torchvision's ``ColorJitter`` (brightness ``b`` draws a factor in ``[1-b, 1+b]``, hue a shift in ``[-h, h]``).

    The batch arrives normalised, so the jitter runs on the raw values brought to ``[0, 1]`` (``raw / max_value``:
    255 for 8-bit data; set ``max_value`` for 16-bit) and the result is normalised again with the same ``mean``
    and ``std``; bands after the third (NIR of a 4-band scene) pass unchanged. With fewer than three bands only
    brightness and contrast apply (to each band). Brightness, contrast and saturation are batched; hue, which
    goes through HSV, uses torchvision's ``adjust_hue`` window by window.
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
        if not 0 <= hue <= 0.5:
            raise ValueError(f"hue must be in [0, 0.5], got {hue}")
        self.ranges = [(max(0.0, 1 - f), 1 + f) for f in (brightness, contrast, saturation)]
        self.hue = float(hue)
        self.mean = torch.tensor(list(mean), dtype=torch.float32) if mean is not None else None
        self.std = torch.tensor(list(std), dtype=torch.float32) if std is not None else None
        self.max_value = float(max_value)
        self.p = float(p)

    def draw(self, generator: torch.Generator, height: int, width: int) -> tuple[float, float, float, float]:
        """``(brightness, contrast, saturation, hue)`` factors; the identity ``(1, 1, 1, 0)`` when not applied."""
        applied = float(torch.rand((), generator=generator)) < self.p
        factors = [_uniform(generator, low, high) for low, high in self.ranges] + [_uniform(generator, -self.hue, self.hue)]
        return tuple(factors) if applied else (1.0, 1.0, 1.0, 0.0)

    def _statistics(self, bands: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = self.mean[:bands] if self.mean is not None else torch.zeros(bands)
        std = self.std[:bands] if self.std is not None else torch.ones(bands)
        return mean.to(like).view(1, -1, 1, 1), std.to(like).view(1, -1, 1, 1)

    def apply(self, image: torch.Tensor, mask: torch.Tensor, draws: Sequence) -> tuple[torch.Tensor, torch.Tensor]:
        bands = min(3, image.shape[1])
        mean, std = self._statistics(bands, image)
        factors = torch.tensor([list(d) for d in draws], dtype=image.dtype, device=image.device)
        brightness, contrast, saturation = (factors[:, k].view(-1, 1, 1, 1) for k in range(3))
        unit = ((image[:, :bands] * std + mean) / self.max_value).clamp(0, 1)
        unit = (unit * brightness).clamp(0, 1)
        level = (TF.rgb_to_grayscale(unit) if bands == 3 else unit).mean((-2, -1), keepdim=True)
        unit = ((unit - level) * contrast + level).clamp(0, 1)
        if bands == 3:
            grey = TF.rgb_to_grayscale(unit)
            unit = ((unit - grey) * saturation + grey).clamp(0, 1)
            for position, draw in enumerate(draws):
                if draw[3] != 0:
                    unit[position] = TF.adjust_hue(unit[position], float(draw[3]))
        out = image.clone()
        out[:, :bands] = (unit * self.max_value - mean) / std
        return out, mask


class JointTransform:
    """Any torchvision v2 pipeline on ``(image, mask)`` pairs, run window by window on the device.

    torchvision draws from torch's global RNG; each window's pipeline runs under a seed taken from that window's
    generator, so its draws stay a function of the window index like the batched augmentations'.
    """

    def __init__(self, transforms: list) -> None:
        self.pipeline = v2.Compose(list(transforms))

    def draw(self, generator: torch.Generator, height: int, width: int) -> int:
        return int(torch.randint(0, 2**62, (), generator=generator))

    def apply(self, image: torch.Tensor, mask: torch.Tensor, draws: Sequence) -> tuple[torch.Tensor, torch.Tensor]:
        images, masks = [], []
        for position, seed in enumerate(draws):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                one_image, one_mask = self.pipeline(tv_tensors.Image(image[position]), tv_tensors.Mask(mask[position]))
            images.append(one_image.as_subclass(torch.Tensor))
            masks.append(one_mask.as_subclass(torch.Tensor))
        return torch.stack(images), torch.stack(masks)


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
    """Several augmentations in order (``aug=flip_rotate_photometric`` and friends), per-window and batch-level
    alike: each runs on the output of the one before."""

    def __init__(self, transforms: Sequence) -> None:
        self.transforms = [t for t in transforms if t is not None]


def steps(augment) -> list:
    """The augmentations of an ``aug`` config in the order they run (a ``Chain`` unrolled; none for None)."""
    if augment is None:
        return []
    if isinstance(augment, Chain):
        return [step for transform in augment.transforms for step in steps(transform)]
    if not (is_batch_level(augment) or (hasattr(augment, "draw") and hasattr(augment, "apply"))):
        raise TypeError(f"{type(augment).__name__} is not an augmentation rsseg can run on batches: expected draw() and "
                        f"apply() (see rsseg.data.augment) or a batch-level transform (batch_level = True)")
    return [augment]


__all__ = ["RICAP", "Chain", "FlipRotate", "JointTransform", "Photometric", "ScaleCrop", "is_batch_level", "steps"]
