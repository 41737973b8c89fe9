"""Per-band statistics streamed over windows: what ``rsseg prepare`` writes into a dataset's stats file.

The data configs read that file back through the ``${rsseg.stats:...}`` resolver (:mod:`rsseg.config.resolvers`).
"""

from __future__ import annotations

import numpy as np


class RunningStats:
    """Mean and standard deviation per band over any number of pixel batches (Chan et al.'s parallel update,
    in float64), so that statistics over a whole dataset never need more than one window in memory."""

    def __init__(self, bands: int) -> None:
        self.count = 0
        self.mean = np.zeros(bands, dtype=np.float64)
        self.m2 = np.zeros(bands, dtype=np.float64)

    def update(self, pixels: np.ndarray) -> None:
        """``pixels``: ``[bands, n]`` valid pixel values."""
        n = pixels.shape[1]
        if n == 0:
            return
        values = pixels.astype(np.float64, copy=False)
        batch_mean = values.mean(1)
        batch_m2 = ((values - batch_mean[:, None]) ** 2).sum(1)
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean = self.mean + delta * n / total
        self.m2 = self.m2 + batch_m2 + delta**2 * self.count * n / total
        self.count = total

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.m2 / max(self.count, 1))
