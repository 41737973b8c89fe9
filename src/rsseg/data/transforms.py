"""Per-band normalisation shared by training, evaluation and whole-scene prediction."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


class Normalize:
    """``(raw - mean) / std`` per band, with statistics in the raster's own units (DN, reflectance...)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        if len(mean) != len(std):
            raise ValueError(f"mean has {len(mean)} values but std has {len(std)}")
        self.mean = torch.tensor(list(mean), dtype=torch.float32)
        self.std = torch.tensor(list(std), dtype=torch.float32)
        if (self.std <= 0).any():
            raise ValueError(f"std must be positive, got {list(std)}")

    def __call__(self, pixels: torch.Tensor | np.ndarray) -> torch.Tensor:
        pixels = torch.as_tensor(np.asarray(pixels) if not torch.is_tensor(pixels) else pixels).float()
        shape = (-1, 1, 1) if pixels.dim() == 3 else (1, -1, 1, 1)
        if pixels.shape[-3] != len(self.mean):
            raise ValueError(f"{pixels.shape[-3]} bands given, normalisation has statistics for {len(self.mean)}")
        return (pixels - self.mean.to(pixels.device).view(shape)) / self.std.to(pixels.device).view(shape)
