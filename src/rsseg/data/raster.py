"""Windowed raster access with rasterio: nothing here ever reads a scene whole."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from rsseg.errors import DataError


@dataclass(frozen=True)
class Scene:
    """One image raster and its (optional) label raster, with a short name for reports."""

    image: Path
    label: Path | None = None
    name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "image", Path(self.image))
        if self.label is not None:
            object.__setattr__(self, "label", Path(self.label))
        if not self.name:
            object.__setattr__(self, "name", Path(self.image).stem)


class RasterPool:
    """Open rasterio datasets kept per process.

    DataLoader workers are forked from the main process; a GDAL handle must not be shared across processes, so
    the pool notices a new process id and opens its own handles there.
    """

    def __init__(self) -> None:
        self._pid = os.getpid()
        self._open: dict[Path, rasterio.DatasetReader] = {}

    def get(self, path: Path) -> rasterio.DatasetReader:
        if os.getpid() != self._pid:
            self._open = {}
            self._pid = os.getpid()
        handle = self._open.get(path)
        if handle is None:
            handle = open_raster(path)
            self._open[path] = handle
        return handle

    def close(self) -> None:
        if os.getpid() == self._pid:
            for handle in self._open.values():
                handle.close()
        self._open = {}

    def __getstate__(self) -> dict:
        return {"_pid": -1, "_open": {}}  # handles never travel to another process


def open_raster(path: str | Path) -> rasterio.DatasetReader:
    """Open a raster for reading, turning GDAL's errors into one line that names the file."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    try:
        return rasterio.open(path)
    except rasterio.errors.RasterioIOError as error:
        raise DataError(f"{path}: not a readable raster ({str(error).splitlines()[0]})") from None


def read_window(
    handle: rasterio.DatasetReader,
    window: Window,
    bands: list[int] | None = None,
    fill: float = 0,
) -> np.ndarray:
    """Read ``window`` (which may reach past the raster's edges) as ``[bands, h, w]``; outside pixels get ``fill``."""
    indexes = bands or list(range(1, handle.count + 1))
    row, col = int(window.row_off), int(window.col_off)
    height, width = int(window.height), int(window.width)
    r0, c0 = max(row, 0), max(col, 0)
    r1, c1 = min(row + height, handle.height), min(col + width, handle.width)
    if r0 == row and c0 == col and r1 == row + height and c1 == col + width:
        return handle.read(indexes, window=Window(col, row, width, height))
    out = np.full((len(indexes), height, width), fill, dtype=handle.dtypes[indexes[0] - 1])
    if r1 > r0 and c1 > c0:
        out[:, r0 - row : r1 - row, c0 - col : c1 - col] = handle.read(
            indexes, window=Window(c0, r0, c1 - c0, r1 - r0)
        )
    return out


def nodata_mask(handle: rasterio.DatasetReader, pixels: np.ndarray, nodata: float | None) -> np.ndarray | None:
    """Pixels where every band equals the nodata value (the raster's own, unless the config names one)."""
    value = nodata if nodata is not None else handle.nodata
    if value is None:
        return None
    if isinstance(value, float) and np.isnan(value):
        return np.isnan(pixels).all(0)
    return (pixels == value).all(0)


def check_pair(scene: Scene, expected_bands: int | None, bands: list[int] | None) -> tuple[int, int]:
    """Check an image/label pair agrees in size, CRS and transform and has the bands the config asks for."""
    with open_raster(scene.image) as image:
        count = image.count
        if bands:
            if max(bands) > count or min(bands) < 1:
                raise DataError(f"{scene.image}: bands {bands} requested but the raster has {count} bands")
            count = len(bands)
        if expected_bands is not None and count != expected_bands:
            raise DataError(f"{scene.image}: {count} bands read but the data config expects in_channels={expected_bands}")
        size = (image.height, image.width)
        if scene.label is not None:
            with open_raster(scene.label) as label:
                if (label.height, label.width) != size:
                    raise DataError(
                        f"{scene.label}: size {label.height}x{label.width} differs from its image "
                        f"{scene.image.name} ({size[0]}x{size[1]})"
                    )
                if image.crs and label.crs and image.crs != label.crs:
                    raise DataError(f"{scene.label}: CRS {label.crs} differs from its image's {image.crs}")
                if image.crs and label.crs and not image.transform.almost_equals(label.transform):
                    raise DataError(
                        f"{scene.label}: transform {tuple(label.transform)[:6]} differs from its image's "
                        f"{tuple(image.transform)[:6]}"
                    )
    return size
