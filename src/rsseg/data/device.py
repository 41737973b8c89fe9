"""What a batch goes through once it is on the device: normalisation, then (in training) augmentation.

Workers send raw pixels (uint8 for 8-bit scenes: a quarter of float32's bytes across the host-to-device copy)
and uint8 masks. On the device the image becomes float32, is normalised per band, and NaN or infinite pixels
(already ignored in the mask by the worker) become 0, the band mean. Training batches are then augmented.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rsseg.data.augment import is_batch_level, steps
from rsseg.data.resumable import window_generator_seed
from rsseg.data.transforms import Normalize


def window_generators(seed: int, indices: Sequence[int]) -> list[torch.Generator]:
    """One CPU generator per training window, seeded by the window's index: its augmentation draws are the same
    in a resumed run, under DDP and on any device."""
    return [torch.Generator().manual_seed(window_generator_seed(seed, int(index))) for index in indices]


class DeviceBatch:
    """Normalises every batch and augments training batches on the device they were moved to.

    ``augment`` is the run's ``aug`` config (one augmentation, a ``Chain`` or None). Per-window augmentations draw
    from :func:`window_generators` (so training windows must carry their ``"index"``); batch-level ones (RICAP)
    draw from torch's global RNG, which the caller seeds per batch.
    """

    def __init__(self, normalize: Normalize, augment=None, seed: int = 0) -> None:
        self.normalize = normalize
        self.steps = steps(augment)
        self.seed = int(seed)

    @property
    def augments(self) -> bool:
        return bool(self.steps)

    def prepare(self, batch: dict) -> dict:
        """Raw pixels to normalised float32 and masks to int64, on whatever device the batch is on."""
        out = dict(batch)
        image = self.normalize(batch["image"])
        if batch["image"].dtype.is_floating_point:
            image = torch.nan_to_num(image, nan=0.0, posinf=0.0, neginf=0.0)
        out["image"] = image
        out["mask"] = batch["mask"].long()
        return out

    def augment(self, batch: dict) -> dict:
        """Apply the augmentations in order to a prepared training batch."""
        if not self.steps:
            return batch
        generators = None
        height, width = batch["image"].shape[-2:]
        for step in self.steps:
            if is_batch_level(step):
                batch = step(batch)
                continue
            if generators is None:
                if "index" not in batch:
                    raise ValueError("per-window augmentation needs the training windows' indices (batch['index'])")
                generators = window_generators(self.seed, batch["index"].tolist())
            draws = [step.draw(generator, height, width) for generator in generators]
            batch = dict(batch)
            batch["image"], batch["mask"] = step.apply(batch["image"], batch["mask"], draws)
        return batch
