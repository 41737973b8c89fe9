"""Sliding-window prediction over whole georeferenced scenes, streamed in strips of tiles.

A scene is covered by a regular grid of square tiles (``tile_size``, overlapping by ``overlap`` pixels; the last
row and column of tiles are shifted back inside the scene, and a scene smaller than one tile is padded by
reflection). The grid is processed one row of tiles (a *strip*) at a time:

* a reader thread reads the next strip with rasterio while the current one is predicted (only the rows not
  already held from the previous strip are read);
* each batch of tiles is normalised, run through the model (optionally with flip / rotation test-time
  augmentation and autocast), turned into probabilities, multiplied by a precomputed blending window and added
  in place into an accumulator ``[num_classes, tile_size, width]`` that covers the current strip only;
* the rows no later strip touches are final: they are arg-maxed (and, when asked, turned into confidence and
  probabilities) and handed to a *sink* (a GeoTIFF writer, a confusion-matrix counter, an in-memory array) that
  runs in its own thread; the overlap band of the accumulator is carried to the next strip.

So memory does not depend on the scene's height, and depends on its width only through one strip
(``num_classes x tile_size x width`` float32, plus a few raw input strips): a 30,000 x 30,000 scene is never read
or held whole, which is where mmsegmentation's slide inference (logits of the whole image on the GPU) fails.

Input nodata (the config's value, else the raster's nodata value, else its mask; a pixel is nodata when all bands
equal it) is fed to the model as zeros after normalisation and comes out as ``NODATA`` (255). So is a pixel with a
NaN or infinite value in any band of a float raster (counted in ``InferenceStats.extra["nonfinite_pixels"]``):
it never reaches the model, where one NaN would spread through every layer and its neighbours' predictions.
"""

from __future__ import annotations

import json
import math
import os
import queue
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import rasterio
import torch
from rasterio.enums import MaskFlags, Resampling
from rasterio.windows import Window
from torch import nn

from rsseg.data.raster import create_raster
from rsseg.errors import ConfigError, DataError
from rsseg.schema import BLENDS, PRECISIONS, TTAS

NODATA = 255  # class, confidence and probability rasters: 255 is nodata, so classes are 0..254


# --------------------------------------------------------------------------------------------------------------
# Grid and blending
# --------------------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------------------
# Running the model on tiles
# --------------------------------------------------------------------------------------------------------------


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(str(device))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={device} but CUDA is not available here; use device=cpu or device=auto")
    return device


def resolve_precision(precision: str | int | None, device: torch.device) -> torch.dtype | None:
    """The autocast dtype (``None``: full float32). ``auto``: bf16 on a GPU that supports it, else float32."""
    precision = "auto" if precision is None else str(precision)
    if precision not in PRECISIONS:
        raise ConfigError(f"precision={precision!r}; expected one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return None
    if precision == "32":
        return None
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("precision=fp16 needs a CUDA device; use precision=bf16 or 32 on CPU")
    return torch.bfloat16 if precision == "bf16" else torch.float16


def _tta_transforms(mode: str) -> list[tuple[Callable, Callable]]:
    """(forward, inverse) pairs on ``[B, C, H, W]`` tensors: identity; flips; or the eight dihedral maps (d4)."""
    if mode not in TTAS:
        raise ConfigError(f"tta={mode!r}; expected one of {', '.join(TTAS)}")
    identity = (lambda t: t, lambda t: t)
    if mode == "none":
        return [identity]
    if mode == "flip":
        return [identity, (lambda t: t.flip(-1), lambda t: t.flip(-1)), (lambda t: t.flip(-2), lambda t: t.flip(-2))]
    pairs = []
    for flip in (False, True):
        for k in range(4):
            def forward(t, k=k, flip=flip):
                return torch.rot90(t.flip(-1) if flip else t, k, (-2, -1))

            def inverse(t, k=k, flip=flip):
                t = torch.rot90(t, -k, (-2, -1))
                return t.flip(-1) if flip else t

            pairs.append((forward, inverse))
    return pairs


class TilePredictor:
    """Turns batches of raw tiles ``[B, bands, T, T]`` (any numeric dtype) into class probabilities.

    Normalisation ``(raw - mean) / std`` happens on the model's device; nodata pixels become 0 after it. The
    model returns logits ``[B, K, T, T]`` (or ``{"out": logits}``); probabilities are the softmax in float32,
    averaged over the test-time augmentations.
    """

    def __init__(
        self,
        model: nn.Module,
        mean: Sequence[float],
        std: Sequence[float],
        num_classes: int,
        device: str | torch.device | None = "cpu",
        precision: str | None = "32",
        tta: str = "none",
        batch_size: int = 8,
    ) -> None:
        if len(mean) != len(std):
            raise ConfigError(f"mean has {len(mean)} values but std has {len(std)}")
        if not 1 <= int(num_classes) <= 255:
            raise ConfigError(f"num_classes={num_classes}: class rasters are uint8 with 255 as nodata (1..255)")
        if int(batch_size) < 1:
            raise ConfigError(f"batch_size={batch_size} must be >= 1")
        self.device = resolve_device(device)
        self.autocast_dtype = resolve_precision(precision, self.device)
        self.model = model.to(self.device).eval()
        self.mean = torch.tensor(list(mean), dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        self.std = torch.tensor(list(std), dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        self.num_classes = int(num_classes)
        self.in_channels = len(mean)
        self.tta = _tta_transforms(tta)
        self.batch_size = int(batch_size)
        self.forward_calls = 0

    def normalise(self, raw: torch.Tensor, nodata: torch.Tensor | None = None) -> torch.Tensor:
        x = (raw.to(self.device, torch.float32) - self.mean) / self.std
        if nodata is not None:
            x.masked_fill_(nodata.to(self.device).unsqueeze(1), 0.0)
        return x

    @torch.inference_mode()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
            out = self.model(x)
        self.forward_calls += 1
        out = out["out"] if isinstance(out, dict) else out
        if out.shape[0] != x.shape[0] or out.shape[1] != self.num_classes or out.shape[-2:] != x.shape[-2:]:
            raise ConfigError(
                f"the model returned {tuple(out.shape)} for input {tuple(x.shape)}; expected logits "
                f"[{x.shape[0]}, {self.num_classes}, {x.shape[-2]}, {x.shape[-1]}] (try a tile_size the model "
                f"accepts, e.g. a multiple of 32)"
            )
        return out

    @torch.inference_mode()
    def probabilities(self, raw: torch.Tensor, nodata: torch.Tensor | None = None) -> torch.Tensor:
        x = self.normalise(raw, nodata)
        total = None
        for forward, inverse in self.tta:
            probs = inverse(self.logits(forward(x)).float().softmax(1))
            total = probs if total is None else total.add_(probs)
        if len(self.tta) > 1:
            total.div_(len(self.tta))
        return total


# --------------------------------------------------------------------------------------------------------------
# Sinks: where final rows go
# --------------------------------------------------------------------------------------------------------------


class Sink(Protocol):
    """Receives final rows of a scene, top to bottom: ``classes [n, w]`` uint8 (255 = nodata), and when asked
    ``confidence [n, w]`` uint8 (max probability x 254, 255 nodata) and ``probabilities [K, n, w]`` (uint8 x 254
    with 255 nodata, or float32 0..1 with NaN nodata). ``row`` is relative to the scene (or its region)."""

    confidence: bool
    probabilities: str | None  # None | "uint8" | "float32"

    def write(self, row: int, classes: np.ndarray, confidence: np.ndarray | None,
              probabilities: np.ndarray | None) -> None: ...


class ArraySink:
    """Collects the whole prediction in memory (tests, notebooks, small images)."""

    def __init__(self, height: int, width: int, num_classes: int, probabilities: bool = True) -> None:
        self.classes = np.full((height, width), NODATA, dtype=np.uint8)
        self.confidence = False
        self.probabilities = "float32" if probabilities else None
        self.probs = np.full((num_classes, height, width), np.nan, dtype=np.float32) if probabilities else None
        self.rows_written = 0

    def write(self, row, classes, confidence, probabilities) -> None:
        n = classes.shape[0]
        self.classes[row : row + n] = classes
        if self.probs is not None:
            self.probs[:, row : row + n] = probabilities
        self.rows_written += n


class _BackgroundSink:
    """Runs a sink's writes in a thread (compression, label decoding) so they overlap the model."""

    _DONE = object()

    def __init__(self, sink: Sink, depth: int = 2) -> None:
        self.sink = sink
        self.queue: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.abort = threading.Event()
        self.thread = threading.Thread(target=self._run, name="rsseg-sink", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is self._DONE:
                return
            if self.error is not None or self.abort.is_set():
                continue
            try:
                self.sink.write(*item)
            except BaseException as error:  # noqa: BLE001 - re-raised in the main thread
                self.error = error

    def _check(self) -> None:
        if self.error is not None:
            raise self.error

    def write(self, *item) -> None:
        self._check()
        while True:
            try:
                self.queue.put(item, timeout=0.1)
                return
            except queue.Full:
                self._check()

    def finish(self, ok: bool) -> None:
        if not ok:
            self.abort.set()
        self.queue.put(self._DONE)
        self.thread.join()
        if ok:
            self._check()


# --------------------------------------------------------------------------------------------------------------
# Reading strips
# --------------------------------------------------------------------------------------------------------------

_TORCH_SAFE = {np.dtype("uint16"): np.int32, np.dtype("uint32"): np.int64, np.dtype("float64"): np.float32,
               np.dtype("int8"): np.int16}


def nodata_rule(handle: rasterio.DatasetReader, nodata: float | None = None) -> tuple[float | None, bool]:
    """How nodata is recognised: a value (the config's, else the raster's), or the raster's mask band."""
    value = nodata if nodata is not None else handle.nodata
    if value is not None:
        return float(value), False
    flags = handle.mask_flag_enums[0] if handle.count else []
    has_mask = MaskFlags.per_dataset in flags or MaskFlags.alpha in flags
    return None, has_mask


def equals_nodata(pixels: np.ndarray, value: float) -> np.ndarray:
    """``[h, w]``: where every band of ``pixels [bands, h, w]`` equals ``value`` (NaN matches NaN)."""
    if math.isnan(value):
        return np.isnan(pixels).all(0) if pixels.dtype.kind == "f" else np.zeros(pixels.shape[1:], dtype=bool)
    if pixels.dtype.kind in "ui":
        info = np.iinfo(pixels.dtype)
        if value != int(value) or not info.min <= value <= info.max:
            return np.zeros(pixels.shape[1:], dtype=bool)  # a value the dtype cannot hold never matches
    return (pixels == np.asarray(value, dtype=pixels.dtype)).all(0)


class _StripReader(threading.Thread):
    """Reads tile-row strips ``[bands, T, Wp]`` of a region ahead of the model, reusing the rows strips share."""

    def __init__(self, handle, bands, region, row_starts, tile_size, padded_width, nodata_value, use_mask,
                 depth: int = 1) -> None:
        super().__init__(name="rsseg-reader", daemon=True)
        self.handle, self.bands = handle, bands
        self.row0, self.col0, self.height, self.width = region
        self.row_starts, self.tile_size, self.padded_width = row_starts, tile_size, padded_width
        self.nodata_value, self.use_mask = nodata_value, use_mask
        self.queue: queue.Queue = queue.Queue(maxsize=depth)
        self.stop = threading.Event()
        dtype = np.dtype(handle.dtypes[bands[0] - 1])
        self.dtype = np.dtype(_TORCH_SAFE.get(dtype, dtype))
        self.floating = dtype.kind == "f"  # float rasters always get a mask: NaN and inf are nodata
        self.nonfinite = 0

    def _put(self, item) -> None:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _read(self, r0: int, r1: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Region rows [r0, r1) (all inside), all region columns; raw values and the nodata mask."""
        window = Window(self.col0, self.row0 + r0, self.width, r1 - r0)
        try:
            pixels = self.handle.read(self.bands, window=window)
            mask = None
            if self.nodata_value is not None:
                mask = equals_nodata(pixels, self.nodata_value)
            elif self.use_mask:
                mask = self.handle.read_masks(1, window=window) == 0
            if self.floating:
                nonfinite = ~np.isfinite(pixels).all(0)
                self.nonfinite += int(nonfinite.sum() - (nonfinite & mask).sum()) if mask is not None else int(nonfinite.sum())
                mask = nonfinite if mask is None else mask | nonfinite
        except rasterio.errors.RasterioError as error:
            raise DataError(
                f"{self.handle.name}: reading rows {self.row0 + r0}..{self.row0 + r1} failed, the file looks "
                f"corrupt or truncated ({str(error).splitlines()[0]})"
            ) from None
        return pixels.astype(self.dtype, copy=False), mask

    def _rows(self, r0: int, r1: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Region rows [r0, r1), padded on the right by reflection when the region is narrower than a tile."""
        pixels, mask = self._read(r0, r1)
        pad = self.padded_width - self.width
        if pad:
            pixels = np.pad(pixels, ((0, 0), (0, 0), (0, pad)), mode="reflect")
            if mask is not None:
                mask = np.pad(mask, ((0, 0), (0, pad)), constant_values=False)
        return pixels, mask

    def run(self) -> None:
        T, h = self.tile_size, self.height
        previous = None
        try:
            for index, r in enumerate(self.row_starts):
                if self.stop.is_set():
                    return
                if h < T:  # shorter than a tile: one strip, padded below by reflection
                    pixels, mask = self._rows(0, h)
                    strip = np.pad(pixels, ((0, 0), (0, T - h), (0, 0)), mode="reflect")
                    if mask is not None:
                        mask = np.pad(mask, ((0, T - h), (0, 0)), constant_values=False)
                else:  # rows shared with the previous strip are copied, only the new ones are read
                    reuse = 0 if previous is None else max(0, previous[0] + T - r)
                    pixels, new_mask = self._rows(r + reuse, r + T)
                    strip = np.empty((len(self.bands), T, self.padded_width), dtype=self.dtype)
                    strip[:, reuse:] = pixels
                    mask = None
                    if new_mask is not None:
                        mask = np.empty((T, self.padded_width), dtype=bool)
                        mask[reuse:] = new_mask
                    if reuse:
                        strip[:, :reuse] = previous[1][:, T - reuse :]
                        if mask is not None:
                            mask[:reuse] = previous[2][T - reuse :]
                    previous = (r, strip, mask)
                self._put((index, r, strip, mask))
        except BaseException as error:  # noqa: BLE001 - handed to the main thread
            self._put(error)

    def next(self):
        while True:
            try:
                item = self.queue.get(timeout=0.1)
            except queue.Empty:
                if not self.is_alive() and self.queue.empty():
                    raise RuntimeError("the strip reader stopped without a result") from None
                continue
            if isinstance(item, BaseException):
                raise item
            return item

    def close(self) -> None:
        self.stop.set()
        self.join()


# --------------------------------------------------------------------------------------------------------------
# The streaming engine
# --------------------------------------------------------------------------------------------------------------


@dataclass
class InferenceStats:
    """What one scene's prediction did; ``accumulator_shape`` is the largest buffer the engine holds."""

    tiles: int = 0
    strips: int = 0
    seconds: float = 0.0
    height: int = 0
    width: int = 0
    tile_size: int = 0
    overlap: int = 0
    accumulator_shape: tuple[int, ...] = ()
    accumulator_bytes: int = 0
    strip_shape: tuple[int, ...] = ()
    extra: dict = field(default_factory=dict)

    @property
    def tiles_per_second(self) -> float:
        return self.tiles / self.seconds if self.seconds > 0 else float("nan")


def count_tiles(height: int, width: int, tile_size: int, overlap: int) -> int:
    stride = tile_size - overlap
    return len(tile_starts(max(height, tile_size), tile_size, stride)) * len(
        tile_starts(max(width, tile_size), tile_size, stride))


def argmax_uint8(scores: torch.Tensor) -> torch.Tensor:
    """``scores.argmax(0)`` of ``[K, H, W]`` scores as uint8 (ties to the lowest class)."""
    # Imported here: torchmetrics is slow to import, and a refused command never needs it.
    from rsseg.metrics import argmax_classes

    return argmax_classes(scores.unsqueeze(0))[0].to(torch.uint8)


def _finalise(acc, weights, mask, sink) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Final rows: classes from the arg-max of the weighted sums (the summed weights, a positive factor per
    pixel, do not change it); confidence/probabilities, divided by ``row_weight x col_weight``, when asked."""
    classes = argmax_uint8(acc)
    if mask is not None:
        classes.masked_fill_(mask, NODATA)
    confidence = probabilities = None
    if sink.confidence or sink.probabilities:
        row_weight, col_weight = weights
        probs = acc / (row_weight[:, None] * col_weight[None, :]).clamp_min(1e-12)
        if sink.confidence:
            confidence = (probs.amax(0) * 254).round_().to(torch.uint8)
            if mask is not None:
                confidence.masked_fill_(mask, NODATA)
            confidence = confidence.cpu().numpy()
        if sink.probabilities == "uint8":
            probabilities = (probs * 254).round_().to(torch.uint8)
            if mask is not None:
                probabilities.masked_fill_(mask.unsqueeze(0), NODATA)
            probabilities = probabilities.cpu().numpy()
        elif sink.probabilities:
            if mask is not None:
                probs = probs.masked_fill(mask.unsqueeze(0), float("nan"))
            probabilities = probs.float().cpu().numpy()
    return classes.cpu().numpy(), confidence, probabilities


@torch.inference_mode()
def predict_raster(
    handle: rasterio.DatasetReader,
    predictor: TilePredictor,
    sink: Sink,
    *,
    tile_size: int = 512,
    overlap: float | int = 0.25,
    blend: str = "cosine",
    bands: Sequence[int] | None = None,
    nodata: float | None = None,
    region: tuple[int, int, int, int] | None = None,
    progress: Callable[[int], None] | None = None,
    threaded_sink: bool = True,
) -> InferenceStats:
    """Predict a raster (or ``region = (row, col, height, width)`` of it) tile by tile into ``sink``.

    ``bands``: 1-based band indices to read (default: all, which must match the model's input channels).
    ``overlap``: pixels, or a fraction of ``tile_size`` when below 1. Returns what was done
    (:class:`InferenceStats`). Raises :class:`~rsseg.errors.DataError` for a band count the model cannot take.
    """
    started = time.perf_counter()
    tile_size = int(tile_size)
    if tile_size < 1:
        raise ConfigError(f"tile_size={tile_size} must be >= 1")
    overlap_px = resolve_overlap(overlap, tile_size)
    stride = tile_size - overlap_px
    bands = list(bands) if bands else list(range(1, handle.count + 1))
    if min(bands) < 1 or max(bands) > handle.count:
        raise DataError(f"{handle.name}: bands {bands} requested but the raster has {handle.count} bands")
    if len(bands) != predictor.in_channels:
        raise DataError(
            f"{handle.name}: {len(bands)} bands read but the model expects in_channels={predictor.in_channels}"
            f"{' (bands ' + str(bands) + ')' if len(bands) != handle.count else ''}"
        )
    row0, col0, height, width = region if region is not None else (0, 0, handle.height, handle.width)
    if height < 1 or width < 1 or row0 < 0 or col0 < 0 or row0 + height > handle.height or col0 + width > handle.width:
        raise DataError(f"{handle.name}: region {region} lies outside the raster ({handle.height}x{handle.width})")
    padded_h, padded_w = max(height, tile_size), max(width, tile_size)
    rows = tile_starts(padded_h, tile_size, stride)
    cols = tile_starts(padded_w, tile_size, stride)
    device = predictor.device
    K = predictor.num_classes

    line = blend_line(tile_size, overlap_px, blend)
    window = torch.from_numpy(np.outer(line, line).astype(np.float32)).to(device)
    # The window is separable and the grid a product of row and column starts, so the summed weight of any
    # pixel is row_weight[row] * col_weight[col]: two vectors instead of a [tile_size, width] plane per strip.
    row_weight, col_weight = np.zeros(padded_h), np.zeros(padded_w)
    for r in rows:
        row_weight[r : r + tile_size] += line
    for c in cols:
        col_weight[c : c + tile_size] += line
    row_weight_t = torch.from_numpy(row_weight.astype(np.float32)).to(device)
    col_weight_t = torch.from_numpy(col_weight[:width].astype(np.float32)).to(device)
    acc = torch.zeros(K, tile_size, padded_w, device=device)
    stats = InferenceStats(
        height=height, width=width, tile_size=tile_size, overlap=overlap_px,
        accumulator_shape=tuple(acc.shape), accumulator_bytes=acc.numel() * acc.element_size(),
        strip_shape=(len(bands), tile_size, padded_w),
    )

    nodata_value, use_mask = nodata_rule(handle, nodata)
    reader = _StripReader(handle, bands, (row0, col0, height, width), rows, tile_size, padded_w, nodata_value, use_mask)
    out = _BackgroundSink(sink) if threaded_sink else None
    write = out.write if out is not None else sink.write
    ok = False
    reader.start()
    try:
        base = 0
        for i, r in enumerate(rows):
            index, start, strip, mask = reader.next()
            assert index == i and start == r
            if i > 0:  # carry the overlap band: rows [r, base + T) move to the top
                shift = r - base
                keep = tile_size - shift
                if keep > 0:  # source and target rows overlap only when the overlap exceeds the stride
                    acc[:, :keep].copy_(acc[:, shift:].clone() if keep > shift else acc[:, shift:])
                acc[:, max(keep, 0) :].zero_()
                base = r
            strip_t = torch.from_numpy(strip).to(device)
            mask_t = torch.from_numpy(mask).to(device) if mask is not None else None
            for b in range(0, len(cols), predictor.batch_size):
                batch_cols = cols[b : b + predictor.batch_size]
                raw = torch.stack([strip_t[:, :, c : c + tile_size] for c in batch_cols])
                tile_mask = torch.stack([mask_t[:, c : c + tile_size] for c in batch_cols]) if mask_t is not None else None
                probs = predictor.probabilities(raw, tile_mask)
                probs.mul_(window)
                for j, c in enumerate(batch_cols):
                    acc[:, :, c : c + tile_size].add_(probs[j])
                stats.tiles += len(batch_cols)
                if progress is not None:
                    progress(len(batch_cols))
            end = rows[i + 1] if i + 1 < len(rows) else r + tile_size
            n = min(end, height) - r
            if n > 0:
                rows_mask = mask_t[:n, :width] if mask_t is not None else None
                weights = (row_weight_t[r : r + n], col_weight_t)
                classes, confidence, probabilities = _finalise(acc[:, :n, :width], weights, rows_mask, sink)
                write(r, classes, confidence, probabilities)
            stats.strips += 1
        ok = True
    finally:
        reader.close()
        if out is not None:
            out.finish(ok)
    stats.seconds = time.perf_counter() - started
    stats.extra["nonfinite_pixels"] = reader.nonfinite
    return stats


# --------------------------------------------------------------------------------------------------------------
# GeoTIFF outputs
# --------------------------------------------------------------------------------------------------------------


def partial_path(path: Path) -> Path:
    """The temporary name a file is written under before it is complete: ``.<name>.partial<suffix>``."""
    return path.with_name(f".{path.stem}.partial{path.suffix}")


def colour_table(palette: Sequence[Sequence[int]] | None, num_classes: int) -> dict[int, tuple[int, int, int, int]]:
    """GDAL colour table: the palette for classes, a fixed spread of colours when there is none, 255 transparent."""
    table = {}
    for index in range(num_classes):
        if palette is not None and index < len(palette):
            r, g, b = (int(v) for v in list(palette[index])[:3])
        else:  # distinct colours from the golden-ratio hue walk
            hue = (index * 0.618033988749895) % 1.0
            r, g, b = (int(255 * v) for v in _hsv_to_rgb(hue, 0.65, 0.95))
        table[index] = (r, g, b, 255)
    table[NODATA] = (0, 0, 0, 0)
    return table


def _hsv_to_rgb(h: float, s: float, v: float) -> tuple[float, float, float]:
    import colorsys

    return colorsys.hsv_to_rgb(h, s, v)


@dataclass
class OutputPaths:
    """The files one scene's prediction produces; only ``classes`` is required."""

    classes: Path
    confidence: Path | None = None
    probabilities: Path | None = None
    preview: Path | None = None

    def all(self) -> list[Path]:
        return [p for p in (self.classes, self.confidence, self.probabilities, self.preview) if p is not None]


class GeoTiffSink:
    """Writes final rows into temporary GeoTIFFs beside the outputs; :meth:`commit` renames them into place.

    The class raster is uint8 with the input's CRS, transform and size, nodata 255, tiled 256 x 256 and deflate
    compressed, with the palette as its colour table and the class names in its tags (``CLASS_NAMES`` as JSON,
    ``CLASS_<i>``). Optional: a confidence raster (max probability x 254, uint8, nodata 255), a probability
    raster (one uint8 band per class, probability x 254, nodata 255, band descriptions = class names), a
    Cloud-Optimised GeoTIFF layout with overviews, and a coloured PNG preview (at most ``preview_size`` pixels
    on its longer side, nodata transparent) sampled from the rows as they pass.

    Rows are written in whole 256-row blocks so that GDAL never re-compresses a partly written block.
    """

    BLOCK = 256

    def __init__(
        self,
        paths: OutputPaths,
        src: rasterio.DatasetReader,
        class_names: Sequence[str],
        palette: Sequence[Sequence[int]] | None = None,
        region: tuple[int, int, int, int] | None = None,
        cog: bool = False,
        preview_size: int = 1024,
        tags: dict | None = None,
    ) -> None:
        self.paths = paths
        self.source = src.name
        self.class_names = list(class_names)
        self.num_classes = len(self.class_names)
        self.palette = palette
        self.cog = cog
        self.confidence = paths.confidence is not None
        self.probabilities = "uint8" if paths.probabilities is not None else None
        row0, col0, self.height, self.width = region if region is not None else (0, 0, src.height, src.width)
        transform = src.window_transform(Window(col0, row0, self.width, self.height))
        self.base_profile = {
            "driver": "GTiff", "width": self.width, "height": self.height, "crs": src.crs, "transform": transform,
            "dtype": "uint8", "nodata": NODATA, "tiled": True, "blockxsize": self.BLOCK, "blockysize": self.BLOCK,
            "compress": "deflate", "BIGTIFF": "IF_SAFER",
        }
        self.tags = {"RSSEG_OUTPUT": "classes", "CLASS_NAMES": json.dumps(self.class_names),
                     **{f"CLASS_{i}": name for i, name in enumerate(self.class_names)}, **(tags or {})}
        self.temporaries: list[Path] = []
        self.datasets: dict[str, rasterio.io.DatasetWriter] = {}
        self.pending: dict[str, list[np.ndarray]] = {}
        self.pending_row = 0
        self.rows_done = 0
        self.preview_step = max(1, math.ceil(max(self.height, self.width) / max(1, int(preview_size))))
        self.preview_rows: list[np.ndarray] = []
        self._open()

    def _temporary(self, path: Path) -> Path:
        tmp = partial_path(path)
        self.temporaries.append(tmp)
        return tmp

    def _open(self) -> None:
        self.paths.classes.parent.mkdir(parents=True, exist_ok=True)
        names = {"classes": self.paths.classes}
        if self.paths.confidence is not None:
            names["confidence"] = self.paths.confidence
        if self.paths.probabilities is not None:
            names["probabilities"] = self.paths.probabilities
        for kind, path in names.items():
            target = self._temporary(path)
            if self.cog:  # the COG is a copy of a plain tiled GeoTIFF written first
                target = self._temporary(_gtiff_name(path))
            count = self.num_classes if kind == "probabilities" else 1
            dst = create_raster(target, self.source, count=count, **self.base_profile)
            if kind == "classes":
                dst.write_colormap(1, colour_table(self.palette, self.num_classes))
                dst.set_band_description(1, "class")
                dst.update_tags(**self.tags)
            elif kind == "confidence":
                dst.set_band_description(1, "confidence")
                dst.update_tags(RSSEG_OUTPUT="confidence", SCALE="value / 254 = max class probability; 255 = nodata")
            else:
                for i, name in enumerate(self.class_names):
                    dst.set_band_description(i + 1, name)
                dst.update_tags(RSSEG_OUTPUT="probabilities", CLASS_NAMES=json.dumps(self.class_names),
                                SCALE="value / 254 = class probability; 255 = nodata")
            self.datasets[kind] = dst
            self.pending[kind] = []

    def write(self, row, classes, confidence, probabilities) -> None:
        if row != self.rows_done:
            raise RuntimeError(f"rows arrive out of order: got {row}, expected {self.rows_done}")
        n = classes.shape[0]
        self.pending["classes"].append(classes[None])
        if "confidence" in self.pending:
            self.pending["confidence"].append(confidence[None])
        if "probabilities" in self.pending:
            self.pending["probabilities"].append(probabilities)
        first = (-row) % self.preview_step
        if self.paths.preview is not None and first < n:  # a copy: a view would keep the whole strip alive
            self.preview_rows.append(classes[first :: self.preview_step, :: self.preview_step].copy())
        self.rows_done += n
        # flush whole block rows (or everything at the end of the scene)
        end = self.rows_done if self.rows_done == self.height else (self.rows_done // self.BLOCK) * self.BLOCK
        if end > self.pending_row:
            self._flush(end)

    def _flush(self, end: int) -> None:
        count = end - self.pending_row
        for kind, parts in self.pending.items():
            data = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
            self.datasets[kind].write(data[:, :count], window=Window(0, self.pending_row, self.width, count))
            rest = data[:, count:]
            self.pending[kind] = [rest.copy()] if rest.shape[1] else []
        self.pending_row = end

    def buffered_bytes(self) -> int:
        """Memory the sink holds between writes (pending block rows and preview samples, counting the whole
        buffer a view keeps alive): bounded by one block row plus one strip, whatever the scene's height."""
        def owned(array: np.ndarray) -> int:
            while isinstance(array.base, np.ndarray):
                array = array.base
            # the root owns its memory, or wraps a foreign buffer (a tensor's storage)
            return array.nbytes if array.base is None else max(array.nbytes, int(getattr(array.base, "nbytes", 0)))

        arrays = [a for parts in self.pending.values() for a in parts] + self.preview_rows
        return sum(owned(a) for a in arrays)

    def _close_datasets(self) -> None:
        for dst in self.datasets.values():
            try:
                dst.close()
            except Exception:  # noqa: BLE001 - closing after a failure must not hide the failure
                pass
        self.datasets = {}

    def commit(self) -> None:
        """Finish the files (overviews, COG, preview) and rename them into place."""
        if self.rows_done != self.height:
            raise RuntimeError(f"{self.rows_done} of {self.height} rows were written")
        self._close_datasets()
        kinds = {"classes": self.paths.classes, "confidence": self.paths.confidence,
                 "probabilities": self.paths.probabilities}
        finals: list[tuple[Path, Path]] = []
        for kind, path in kinds.items():
            if path is None:
                continue
            tmp = partial_path(path)
            if self.cog:
                gtiff = partial_path(_gtiff_name(path))
                _to_cog(gtiff, tmp, "nearest" if kind == "classes" else "average")
                gtiff.unlink(missing_ok=True)
            finals.append((tmp, path))
        if self.paths.preview is not None:
            tmp = self._temporary(self.paths.preview)
            self._write_preview(tmp)
            finals.append((tmp, self.paths.preview))
        for tmp, path in finals:
            os.replace(tmp, path)

    def discard(self) -> None:
        """Close and remove every temporary (after an error or an interrupt)."""
        self._close_datasets()
        for tmp in self.temporaries:
            tmp.unlink(missing_ok=True)
            Path(f"{tmp}.aux.xml").unlink(missing_ok=True)

    def _write_preview(self, path: Path) -> None:
        from PIL import Image

        classes = np.concatenate(self.preview_rows, axis=0) if self.preview_rows else np.zeros((1, 1), np.uint8)
        lookup = np.zeros((256, 4), dtype=np.uint8)
        for index, colour in colour_table(self.palette, self.num_classes).items():
            lookup[index] = colour
        Image.fromarray(lookup[classes], mode="RGBA").save(path, format="PNG")


def _gtiff_name(path: Path) -> Path:
    return path.with_name(f"{path.stem}.gtiff{path.suffix}")


def _to_cog(src_path: Path, dst_path: Path, resampling: str) -> None:
    """Copy a tiled GeoTIFF into a Cloud-Optimised GeoTIFF with overviews (GDAL's COG driver when present)."""
    from rasterio.shutil import copy as raster_copy

    with rasterio.Env() as env:
        have_cog = "COG" in env.drivers()
    if have_cog:
        raster_copy(src_path, dst_path, driver="COG", COMPRESS="DEFLATE", BLOCKSIZE=256, BIGTIFF="IF_SAFER",
                    RESAMPLING=resampling.upper(), OVERVIEW_RESAMPLING=resampling.upper())
        return
    with rasterio.open(src_path, "r+") as dst:  # older GDAL: overviews in place, then a copy that puts them first
        factors = []
        factor = 2
        while max(dst.width, dst.height) / factor >= 256:
            factors.append(factor)
            factor *= 2
        if factors:
            dst.build_overviews(factors, Resampling[resampling])
    raster_copy(src_path, dst_path, driver="GTiff", COPY_SRC_OVERVIEWS="YES", TILED="YES", COMPRESS="DEFLATE",
                BLOCKXSIZE=256, BLOCKYSIZE=256, BIGTIFF="IF_SAFER")


def open_input(path: str | Path) -> rasterio.DatasetReader:
    """Open an input scene; a missing or unreadable file is one line naming it."""
    from rsseg.data.raster import open_raster

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return open_raster(path)

