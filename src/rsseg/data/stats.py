"""Per-band statistics streamed over windows, and the stats file that ``rsseg prepare`` writes.

The data configs read their normalisation through the ``rsseg.stats`` resolver::

    stats_file: null
    mean: ${rsseg.stats:${.stats_file},mean,[123.675, 116.28, 103.53]}

When ``stats_file`` names a file that exists, the resolver returns the file's ``mean`` (or ``std``); otherwise the
default given in the config. Because the numbers are resolved into the config, the resolved config that every run
stores (results.json, checkpoints) holds the statistics the model was really trained with, and prediction from a
checkpoint normalises the same way.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from rsseg.errors import ConfigError

log = logging.getLogger(__name__)

RESOLVER = "rsseg.stats"


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


def load_stats(path: str | Path) -> dict:
    path = Path(path)
    try:
        stats = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigError(f"{path}: not a readable stats file ({error})") from None
    for key in ("mean", "std"):
        if not isinstance(stats.get(key), list) or not stats[key]:
            raise ConfigError(f"{path}: stats file has no '{key}' list; write it with `rsseg prepare`")
    return stats


def stats_or_default(stats_file: str | None, key: str, default: Sequence[float]) -> list[float]:
    """The ``key`` (mean or std) of ``stats_file`` when it is set and exists, else ``default``."""
    if key not in ("mean", "std"):
        raise ConfigError(f"${{{RESOLVER}:...}} reads 'mean' or 'std', not {key!r}")
    default = list(default) if default is not None else None
    if not stats_file:
        return default
    path = Path(str(stats_file)).expanduser()
    if not path.exists():
        log.warning("data.stats_file %s does not exist (yet): using the mean/std of the data config", path)
        return default
    # The datamodule checks the band count against in_channels, naming data.mean / data.std.
    return [float(v) for v in load_stats(path)[key]]


def register_resolvers() -> None:
    if not OmegaConf.has_resolver(RESOLVER):
        OmegaConf.register_new_resolver(
            RESOLVER, lambda path, key, default=None: stats_or_default(path, key, default), use_cache=False
        )


register_resolvers()
