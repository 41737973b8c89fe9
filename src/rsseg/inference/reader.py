"""Reading a scene strip by strip in a thread of its own, with its nodata rule (value, mask, NaN)."""

from __future__ import annotations

import math
import queue
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import MaskFlags
from rasterio.windows import Window

from rsseg.errors import DataError

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


class StripReader(threading.Thread):
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
        self.seconds = 0.0  # time spent reading (this thread's busy time, for the read/model/write breakdown)

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
        started = time.perf_counter()
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
        finally:
            self.seconds += time.perf_counter() - started
        return pixels.astype(self.dtype, copy=False), mask

    def _rows(self, r0: int, r1: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Region rows [r0, r1), padded on the right by reflection when the region is narrower than a tile."""
        pixels, mask = self._read(r0, r1)
        pad = self.padded_width - self.width
        if pad:
            pixels = np.pad(pixels, ((0, 0), (0, 0), (0, pad)), mode="reflect")
            if mask is not None:
                mask = np.pad(mask, ((0, 0), (0, pad)), mode="reflect")  # as the pixels: reflected nodata stays nodata
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
                        mask = np.pad(mask, ((0, T - h), (0, 0)), mode="reflect")
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
        """Stop and join the thread; one that has not begun yet sees ``stop`` before its first read."""
        self.stop.set()
        if self.is_alive():
            self.join()


def open_input(path: str | Path) -> rasterio.DatasetReader:
    """Open an input scene; a missing or unreadable file is one line naming it."""
    from rsseg.data.raster import open_raster

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return open_raster(path)
