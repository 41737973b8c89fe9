"""Windowed raster access with rasterio: nothing here ever reads a scene whole."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import ColorInterp, Resampling
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

from rsseg.errors import DataError
from rsseg.runtime.console import note_once, warn

# GDAL's block cache defaults to 5 % of the RAM per process (and so per DataLoader worker); random windows over a
# large scene would fill it with blocks that are rarely read twice, and memory would grow with the scene size
# (benchmarks/data.py). Bound it, unless the user has set GDAL_CACHEMAX (in MB) already.
os.environ.setdefault("GDAL_CACHEMAX", "128")

# What GDAL writes for a raster without a geotransform (rasterio warns about both).
_NO_GEOTRANSFORM = (Affine.identity(), Affine(1, 0, 0, 0, -1, 0))


@dataclass(frozen=True)
class Scene:
    """One image raster and its (optional) label raster, with a short name for reports.

    ``window`` (``row_off, col_off, height, width`` in raster pixels) restricts the scene to a part of the
    rasters: the papers' protocol splits 512 x 512 tiles of the same scenes between training and test, and a tile
    is then a ``Scene`` with a window. Windows read from such a scene never see pixels outside it.
    """

    image: Path
    label: Path | None = None
    name: str = ""
    window: tuple[int, int, int, int] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "image", Path(self.image))
        if self.label is not None:
            object.__setattr__(self, "label", Path(self.label))
        if self.window is not None:
            object.__setattr__(self, "window", tuple(int(v) for v in self.window))
        if not self.name:
            object.__setattr__(self, "name", Path(self.image).stem)


class RasterOpener(Protocol):
    """What opens a raster for :class:`RasterPool` instead of :func:`open_raster`: the read cache
    (:class:`rsseg.data.cache.ReadCache`), which hands back a decoded copy of a slow-to-read raster."""

    def open(self, path: Path) -> rasterio.DatasetReader: ...


class RasterPool:
    """Open rasterio datasets kept per process.

    DataLoader workers are forked from the main process; a GDAL handle must not be shared across processes, so
    the pool notices a new process id and opens its own handles there. With a ``cache``, a raster that is slow to
    read in windows is opened through its cached copy: the same pixels, bands, nodata and colour table, so callers
    read it as they would the source (and name the source in their errors).
    """

    def __init__(self, cache: RasterOpener | None = None) -> None:
        self._pid = os.getpid()
        self._open: dict[Path, rasterio.DatasetReader] = {}
        self.cache = cache

    def get(self, path: Path) -> rasterio.DatasetReader:
        if os.getpid() != self._pid:
            self._open = {}
            self._pid = os.getpid()
        handle = self._open.get(path)
        if handle is None:
            handle = self.cache.open(path) if self.cache is not None else open_raster(path)
            self._open[path] = handle
        return handle

    def close(self) -> None:
        if os.getpid() == self._pid:
            for handle in self._open.values():
                handle.close()
        self._open = {}

    def __getstate__(self) -> dict:
        return {"_pid": -1, "_open": {}, "cache": self.cache}  # handles never travel to another process


def open_raster(path: str | Path) -> rasterio.DatasetReader:
    """Open a raster for reading, turning GDAL's errors into one line that names the file."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)  # JPEG/PNG scenes carry no georeferencing
            return rasterio.open(path)
    except (rasterio.errors.RasterioIOError, rasterio.errors.RasterioError) as error:
        raise DataError(f"{path}: not a readable raster ({str(error).splitlines()[0]})") from None


def create_raster(path: str | Path, source: str | Path, **profile) -> rasterio.io.DatasetWriter:
    """Open ``path`` for writing with ``profile``. When ``source`` (the raster it derives from) has no
    georeferencing, a JPEG or PNG scene, that is said once per process in one line instead of rasterio's
    NotGeoreferencedWarning on every file."""
    transform = profile.get("transform")
    if profile.get("crs") is None or transform is None or transform in _NO_GEOTRANSFORM:
        note_once(
            "not-georeferenced",
            f"{source} is not georeferenced (no CRS or no geotransform): what is written from it is in pixel "
            f"coordinates (further rasters like it are not reported)",
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        return rasterio.open(path, "w", **profile)


def read_window(
    handle: rasterio.DatasetReader,
    window: Window,
    bands: list[int] | None = None,
    fill: float = 0,
    bounds: tuple[int, int, int, int] | None = None,
) -> np.ndarray:
    """Read ``window`` (which may reach past the raster's edges) as ``[bands, h, w]``; outside pixels get ``fill``.

    ``bounds`` (``row0, col0, row1, col1``) narrows what counts as inside to a part of the raster (a tile scene).
    """
    indexes = bands or list(range(1, handle.count + 1))
    row, col = int(window.row_off), int(window.col_off)
    height, width = int(window.height), int(window.width)
    b_r0, b_c0, b_r1, b_c1 = bounds if bounds is not None else (0, 0, handle.height, handle.width)
    r0, c0 = max(row, b_r0, 0), max(col, b_c0, 0)
    r1, c1 = min(row + height, b_r1, handle.height), min(col + width, b_c1, handle.width)
    if r0 == row and c0 == col and r1 == row + height and c1 == col + width:
        return handle.read(indexes, window=Window(col, row, width, height))
    out = np.full((len(indexes), height, width), fill, dtype=handle.dtypes[indexes[0] - 1])
    if r1 > r0 and c1 > c0:
        out[:, r0 - row : r1 - row, c0 - col : c1 - col] = handle.read(
            indexes, window=Window(c0, r0, c1 - c0, r1 - r0)
        )
    return out


def is_palette_indexed(handle: rasterio.DatasetReader) -> bool:
    """A one-band raster whose values index a colour table (palette-mode PNG or GeoTIFF)."""
    return handle.count == 1 and handle.colorinterp[0] == ColorInterp.palette


def palette_lookup(handle: rasterio.DatasetReader) -> np.ndarray:
    """The colour table of a palette-indexed raster as a ``[3, 256]`` uint8 lookup (missing entries black)."""
    table = np.zeros((3, 256), dtype=np.uint8)
    for index, colour in handle.colormap(1).items():
        if 0 <= index < 256:
            table[:, index] = colour[:3]
    return table


def read_label_window(
    handle: rasterio.DatasetReader, window: Window, bounds: tuple[int, int, int, int] | None = None,
    fill: float = 0, index: bool = False,
) -> np.ndarray:
    """A label window as stored, ``[1 or 3, h, w]``: palette-indexed rasters come back as RGB through their
    colour table, RGB(A) rasters as their first three bands, one-band index rasters as they are. ``index``: the
    first band's values as they are, colour table or not (index labels saved as palette PNGs for display)."""
    if index:
        return read_window(handle, window, [1], fill, bounds)
    if is_palette_indexed(handle):
        indices = read_window(handle, window, [1], fill, bounds)[0]
        return palette_lookup(handle)[:, indices]
    return read_window(handle, window, list(range(1, min(handle.count, 3) + 1)), fill, bounds)


def read_label_decimated(
    handle: rasterio.DatasetReader, out_shape: tuple[int, int], bounds: tuple[int, int, int, int] | None = None,
    index: bool = False,
) -> np.ndarray:
    """A nearest-neighbour decimated read of a label raster (or a part of it), ``[1 or 3, out_h, out_w]``
    (``index``: the first band as stored, as :func:`read_label_window`).

    GDAL reads only the rows and blocks the decimated grid samples, so this stays cheap on whole scenes.
    """
    r0, c0, r1, c1 = bounds if bounds is not None else (0, 0, handle.height, handle.width)
    window = Window(c0, r0, c1 - c0, r1 - r0)
    palette = is_palette_indexed(handle) and not index
    indexes = [1] if palette or handle.count == 1 else [1, 2, 3][: handle.count]
    raw = handle.read(indexes, window=window, out_shape=(len(indexes), *out_shape), resampling=Resampling.nearest)
    return palette_lookup(handle)[:, raw[0]] if palette else raw


def nodata_mask(handle: rasterio.DatasetReader, pixels: np.ndarray, nodata: float | None) -> np.ndarray | None:
    """Pixels where every band equals the nodata value (the raster's own, unless the config names one), and
    pixels with a NaN or infinite value in any band, which no model can take."""
    value = nodata if nodata is not None else handle.nodata
    missing = None
    if value is not None:
        missing = np.isnan(pixels).all(0) if np.isnan(value) else (pixels == value).all(0)
    if pixels.dtype.kind == "f":
        nonfinite = ~np.isfinite(pixels).all(0)
        if nonfinite.any():
            missing = nonfinite if missing is None else missing | nonfinite
    return missing


def check_pair(
    scene: Scene, expected_bands: int | None, bands: list[int] | None, label_bands_needed: int | None = None
) -> tuple[int, int]:
    """Check an image/label pair agrees in size, CRS and transform and has the bands the config asks for
    (``label_bands_needed``: 3 for colour-coded labels, counting a palette-indexed raster as RGB).

    Returns the scene's size: the raster's, or its window's when the scene is a part of the raster.
    """
    return scene_size(scene, _check_pair(scene, expected_bands, bands, label_bands_needed))


def scene_size(scene: Scene, raster_size: tuple[int, int]) -> tuple[int, int]:
    """The size of a scene on a raster of ``raster_size``: its window's, checked to lie inside, or the raster's."""
    size = raster_size
    if scene.window is not None:
        row, col, height, width = scene.window
        if row < 0 or col < 0 or height < 1 or width < 1 or row + height > size[0] or col + width > size[1]:
            raise DataError(
                f"{scene.image}: window (row {row}, col {col}, {height}x{width}) of scene {scene.name} lies outside "
                f"the raster ({size[0]}x{size[1]})"
            )
        return height, width
    return size


def _check_pair(
    scene: Scene, expected_bands: int | None, bands: list[int] | None, label_bands_needed: int | None
) -> tuple[int, int]:
    with open_raster(scene.image) as image:
        count = image.count
        if bands:
            if max(bands) > count or min(bands) < 1:
                raise DataError(f"{scene.image}: bands {bands} requested but the raster has {count} bands "
                                f"(1-based: 1..{count})")
            count = len(bands)
        if expected_bands is not None and count != expected_bands:
            raise DataError(f"{scene.image}: {count} bands read but the data config expects in_channels={expected_bands}")
        size = (image.height, image.width)
        if scene.label is not None:
            with open_raster(scene.label) as label:
                label_bands = 3 if is_palette_indexed(label) else label.count
                if label_bands_needed and label_bands < label_bands_needed:
                    raise DataError(
                        f"{scene.label}: {label.count}-band label raster, but colour-coded labels need "
                        f"{label_bands_needed} bands (RGB) or a colour table"
                    )
                if label_bands_needed == 1 and label.count > 1:
                    raise DataError(
                        f"{scene.label}: {label.count}-band label raster, but index labels (data.label_format=index) "
                        f"need one band of class values; expected an index PNG or GeoTIFF (a colour-coded label "
                        f"needs data.label_format=colour and data.palette)"
                    )
                check_same_grid(image, label, scene.image, scene.label, "its image")
    return size


def georeferenced(handle: rasterio.DatasetReader) -> bool:
    return handle.crs is not None or not handle.transform.is_identity


def check_same_grid(reference, other, reference_path, other_path, role: str) -> None:
    """``other`` (a label, a prediction) covers the same pixels as ``reference`` (its image): same size, and
    when both are georeferenced the same CRS and transform. One without georeferencing but of the same size
    (a mask rendered from vectors, a JPEG) is taken to line up, with a one-line warning."""
    name = Path(reference_path).name
    if (other.height, other.width) != (reference.height, reference.width):
        raise DataError(f"{other_path}: size {other.height}x{other.width} differs from {role} {name} "
                        f"({reference.height}x{reference.width}); expected the same size")
    if georeferenced(reference) and georeferenced(other):
        if reference.crs != other.crs:
            raise DataError(f"{other_path}: CRS {other.crs or 'none'} differs from {role}'s {reference.crs or 'none'} "
                            f"({name}); expected the same CRS (reproject it onto the image's grid)")
        if not reference.transform.almost_equals(other.transform):
            dx, dy = other.transform.c - reference.transform.c, other.transform.f - reference.transform.f
            raise DataError(f"{other_path}: transform {tuple(other.transform)[:6]} differs from {role}'s "
                            f"{tuple(reference.transform)[:6]} (origin {dx:+,.2f}, {dy:+,.2f} map units away); "
                            f"expected the same pixel grid")
    elif georeferenced(reference) != georeferenced(other):
        missing, present = (other_path, name) if georeferenced(reference) else (reference_path, Path(other_path).name)
        warn(f"{missing}: no georeferencing; taken to line up with {present} (same size "
             f"{reference.height}x{reference.width})")
