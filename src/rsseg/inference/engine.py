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

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import rasterio
import torch

from rsseg.data.labels import NODATA
from rsseg.errors import ConfigError, DataError
from rsseg.inference.predictor import TilePredictor
from rsseg.inference.reader import StripReader, nodata_rule
from rsseg.inference.tiling import blend_line, resolve_overlap, tile_starts

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
        self.seconds = 0.0  # time spent writing (this thread's busy time)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is self._DONE:
                return
            if self.error is not None or self.abort.is_set():
                continue
            started = time.perf_counter()
            try:
                self.sink.write(*item)
            except BaseException as error:  # noqa: BLE001 - re-raised in the main thread
                self.error = error
            self.seconds += time.perf_counter() - started

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
        if not self.thread.is_alive():  # never started (an interrupt came first): nothing is queued
            return
        self.queue.put(self._DONE)
        self.thread.join()
        if ok:
            self._check()


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
    # Busy seconds per stage: reading (the reader thread), the model with blending and arg-max (the main thread,
    # less its waits for the other two) and writing (the sink's thread). The stages overlap: they add up to more
    # than ``seconds`` when the pipeline keeps all three busy.
    stage_seconds: dict = field(default_factory=dict)

    @property
    def tiles_per_second(self) -> float:
        return self.tiles / self.seconds if self.seconds > 0 else float("nan")


def argmax_uint8(scores: torch.Tensor) -> torch.Tensor:
    """``scores.argmax(0)`` of ``[K, H, W]`` scores as uint8 (ties to the lowest class)."""
    # Imported here: torchmetrics is slow to import, and a refused command never needs it.
    from rsseg.metrics.accumulators import argmax_classes

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
    reader = StripReader(handle, bands, (row0, col0, height, width), rows, tile_size, padded_w, nodata_value, use_mask)
    out = _BackgroundSink(sink) if threaded_sink else None
    write = out.write if out is not None else sink.write
    ok = False
    try:  # the threads start inside: an interrupt while one starts still stops and joins both
        reader.start()
        if out is not None:
            out.start()
        base = 0
        read_wait = write_wait = 0.0  # the main thread's time blocked on the reader or the sink: not the model's
        for i, r in enumerate(rows):
            wait_started = time.perf_counter()
            index, start, strip, mask = reader.next()
            read_wait += time.perf_counter() - wait_started
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
                raw = [strip_t[:, :, c : c + tile_size] for c in batch_cols]
                tile_mask = torch.stack([mask_t[:, c : c + tile_size] for c in batch_cols]) if mask_t is not None else None
                probs = predictor.probabilities(raw, tile_mask)
                for j, c in enumerate(batch_cols):
                    acc[:, :, c : c + tile_size].addcmul_(probs[j], window)
                stats.tiles += len(batch_cols)
                if progress is not None:
                    progress(len(batch_cols))
            end = rows[i + 1] if i + 1 < len(rows) else r + tile_size
            n = min(end, height) - r
            if n > 0:
                rows_mask = mask_t[:n, :width] if mask_t is not None else None
                weights = (row_weight_t[r : r + n], col_weight_t)
                classes, confidence, probabilities = _finalise(acc[:, :n, :width], weights, rows_mask, sink)
                wait_started = time.perf_counter()
                write(r, classes, confidence, probabilities)
                write_wait += time.perf_counter() - wait_started
            stats.strips += 1
        ok = True
    finally:
        reader.close()
        if out is not None:
            out.finish(ok)
    stats.seconds = time.perf_counter() - started
    stats.extra["nonfinite_pixels"] = reader.nonfinite
    stats.stage_seconds = {"read": reader.seconds, "model": stats.seconds - read_wait - write_wait,
                           "write": out.seconds if out is not None else write_wait}
    return stats
