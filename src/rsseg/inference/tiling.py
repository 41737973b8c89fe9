"""The tile grid over a scene and the windows that blend overlapping tiles into one prediction."""

from __future__ import annotations

import numpy as np

from rsseg.config.schema import BLENDS
from rsseg.errors import ConfigError


def resolve_overlap(overlap: float | int, tile_size: int) -> int:
    """Overlap in pixels: a value below 1 is a fraction of the tile (0.25), otherwise a pixel count (128)."""
    overlap = float(overlap)
    if overlap < 0:
        raise ConfigError(f"overlap={overlap} must be >= 0 (a fraction of the tile below 1, or pixels)")
    pixels = int(round(overlap * tile_size)) if overlap < 1 else int(overlap)
    if pixels >= tile_size:
        raise ConfigError(f"overlap={overlap} ({pixels} px) must be smaller than tile_size={tile_size}")
    return pixels


def tile_starts(length: int, tile_size: int, stride: int) -> list[int]:
    """Start offsets of tiles covering ``length`` pixels; the last tile is shifted back to end at ``length``."""
    if length <= tile_size:
        return [0]
    starts = list(range(0, length - tile_size, stride))
    starts.append(length - tile_size)
    return starts


def blend_window(tile_size: int, overlap: int, kind: str = "cosine") -> np.ndarray:
    """The ``[tile_size, tile_size]`` float32 weight each tile's probabilities are multiplied by: the outer
    product of :func:`blend_line` with itself."""
    line = blend_line(tile_size, overlap, kind)
    return np.outer(line, line).astype(np.float32)


def blend_line(tile_size: int, overlap: int, kind: str = "cosine") -> np.ndarray:
    """The 1-D profile (float64) of the blending window across a tile.

    * ``uniform``: ones (plain averaging of overlapping tiles).
    * ``cosine``: one in the middle, a raised-cosine ramp over the ``overlap`` pixels at each side (TerraTorch's
      blend); where two neighbouring tiles overlap by exactly ``overlap`` the weights sum to one.
    * ``gaussian``: a Gaussian of sigma ``tile_size / 8`` centred on the tile (nnU-Net's importance map).

    Every weight is positive, and accumulated weights are divided out, so a pixel covered by one tile only
    (the scene's outer border) keeps that tile's probabilities exactly.
    """
    if kind not in BLENDS:
        raise ConfigError(f"blend={kind!r}; expected one of {', '.join(BLENDS)}")
    x = np.arange(tile_size, dtype=np.float64)
    if kind == "uniform" or (kind == "cosine" and overlap == 0):
        line = np.ones(tile_size)
    elif kind == "cosine":
        ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(overlap) + 0.5) / overlap)
        line = np.ones(tile_size)
        n = min(overlap, tile_size // 2)
        line[:n] = ramp[:n]
        line[tile_size - n :] = ramp[:n][::-1]
    else:
        sigma = tile_size / 8
        line = np.exp(-((x - (tile_size - 1) / 2) ** 2) / (2 * sigma**2))
        line = np.maximum(line / line.max(), 1e-3)
    return line


def count_tiles(height: int, width: int, tile_size: int, overlap: int) -> int:
    stride = tile_size - overlap
    return len(tile_starts(max(height, tile_size), tile_size, stride)) * len(
        tile_starts(max(width, tile_size), tile_size, stride))
