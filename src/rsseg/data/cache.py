"""The read cache: decoded copies of the rasters that are slow to read in windows.

A random 512 x 512 training window from a JPEG or PNG scene decodes every row above it and the whole width of the
rows it covers (about 57 windows/s per core on the Dubai JPEGs); from a striped or compressed GeoTIFF it decodes
whole strips or blocks. The same window from an uncompressed GeoTIFF tiled in 256 x 256 blocks is a few reads
from disk (thousands per second). :class:`ReadCache` decodes such a raster once into an uncompressed, tiled
GeoTIFF under ``<cache_dir>/rasters/`` and has training and evaluation read that copy instead.

rsseg writes this itself because no library does what it needs: GDAL caches blocks per process in memory, not
decoded files on disk; general-purpose caches (joblib.Memory, diskcache) pickle Python values rather than write a
raster that GDAL reads in windows, and none of them guarantees one build per entry across DataLoader workers and
DDP ranks. Here:

* **Format**: a GeoTIFF of the source's size, band count, dtype, CRS, transform, nodata, colour interpretation and
  colour table (a palette-mode PNG label stays palette-indexed), uncompressed, tiled in 256 x 256 blocks,
  band-interleaved (``INTERLEAVE=BAND``: a ``data.bands`` subset reads only its bands' blocks, and each block copies
  straight into rasterio's ``[bands, h, w]`` arrays), BigTIFF when it could pass 4 GiB. It is written 256 rows at a
  time, so memory stays flat however tall the scene.
* **Key**: the source's absolute path, size and modification time (ns). An entry is named
  ``<stem>.<path hash>.<version hash>.tif``; a source that changes gets a new entry, and building it removes the
  entries of the same path's earlier versions.
* **Atomic and race-free**: an entry is written under a temporary name in the cache folder and renamed into place
  when complete (:func:`rsseg.runtime.files.replaced_when_complete`), so a reader never sees a partial file. An
  ``fcntl`` lock file per entry makes concurrent processes (DataLoader workers, DDP ranks, a ``rsseg prepare``
  beside a training run) wait for one builder instead of building twice; the lock dies with its holder, so a
  killed build blocks nobody, and the next builder removes what it left.
* **Policy**: :func:`needs_cache`.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import warnings
from collections.abc import Iterable
from pathlib import Path

import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.windows import Window

from rsseg.data.raster import is_palette_indexed, open_raster
from rsseg.errors import DataError
from rsseg.runtime.console import note_once
from rsseg.runtime.console import progress as progress_of
from rsseg.runtime.files import replaced_when_complete

# Part of every entry's key: a change to how entries are written (block size, layout) gives new entries.
CACHE_FORMAT = 1
BLOCK = 256
# Blocks larger than this hold mostly pixels a 512 px window does not need.
LARGEST_CHEAP_BLOCK = 1024


def default_cache_dir() -> Path:
    """``$RSSEG_CACHE``, else ``~/.cache/rsseg``: what ``paths.cache_dir`` (conf/paths/default.yaml) resolves to."""
    return Path(os.environ.get("RSSEG_CACHE") or Path.home() / ".cache" / "rsseg").expanduser()


def needs_cache(handle: rasterio.DatasetReader) -> bool:
    """Whether a window of this raster costs far more to read than its pixels, so that rsseg reads a decoded copy.

    A window costs what decoding the blocks it touches costs. Every driver but GeoTIFF is cached: JPEG and PNG
    have no blocks to speak of, and a VRT costs what its sources (and any warping) cost. A GeoTIFF is cached when
    it is striped (its rows span the whole width), compressed (every block touched is inflated), or tiled in
    blocks larger than 1024 px. An uncompressed GeoTIFF tiled in blocks up to 1024 px is already read straight
    from disk at thousands of windows per second: it is read directly.
    """
    if handle.driver != "GTiff" or handle.compression is not None:
        return True
    block_height, block_width = handle.block_shapes[0]
    striped = block_width == handle.width and block_height < handle.height
    return striped or max(block_height, block_width) > LARGEST_CHEAP_BLOCK


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class ReadCache:
    """Decoded, tiled copies of slow-to-read rasters under ``<cache_dir>/rasters/``, one per source version.

    :meth:`open` is what :class:`rsseg.data.raster.RasterPool` calls: the cached copy when the source needs one
    (built first if missing), else the source itself. :meth:`ensure_all` builds the entries of many sources ahead
    of time (the datamodule for each split, ``rsseg prepare`` for the whole dataset).
    """

    def __init__(self, cache_dir: str | os.PathLike | None = None) -> None:
        self.folder = Path(cache_dir).expanduser() / "rasters" if cache_dir else default_cache_dir() / "rasters"
        self._direct: set[str] = set()  # entry names of source versions read directly (the policy said no)

    def entry_path(self, source: str | os.PathLike) -> Path:
        """Where the entry of the source's current version lives (whether or not it exists, or is needed)."""
        path = Path(source).expanduser().resolve()
        try:
            info = path.stat()
        except FileNotFoundError:
            raise DataError(f"{source}: file not found") from None
        except OSError as error:
            raise DataError(f"{source}: cannot be read ({error.strerror or error})") from None
        version = _digest(f"{path}\0{info.st_size}\0{info.st_mtime_ns}\0{CACHE_FORMAT}")
        stem = re.sub(r"[^A-Za-z0-9_-]+", "_", path.stem)[:48] or "raster"
        return self.folder / f"{stem}.{_digest(str(path))}.{version}.tif"

    def ensure(self, source: str | os.PathLike) -> Path | None:
        """The source's entry, built if missing; None when the source is fast to read as it is."""
        entry = self.entry_path(source)
        if entry.exists():
            return entry
        if entry.name in self._direct:
            return None
        with open_raster(source) as handle:
            if not needs_cache(handle):
                self._direct.add(entry.name)
                return None
            return self._build_once(Path(source), handle, entry)

    def open(self, source: str | os.PathLike) -> rasterio.DatasetReader:
        """The raster to read the source's windows from: its cached copy, or the source when it needs none."""
        entry = self.ensure(source)
        return open_raster(entry if entry is not None else source)

    def ensure_all(self, sources: Iterable, progress: bool = False) -> dict[Path, Path | None]:
        """:meth:`ensure` for every distinct source (None entries skipped): source -> entry, or None if read
        directly. ``progress`` draws a bar (``rsseg prepare``)."""
        unique = list(dict.fromkeys(Path(s) for s in sources if s is not None))
        items = progress_of(unique, "read cache", "raster") if progress else unique
        return {source: self.ensure(source) for source in items}

    def _build_once(self, source: Path, handle: rasterio.DatasetReader, entry: Path) -> Path:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with open(entry.with_name(entry.name + ".lock"), "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or when its holder dies
                if not entry.exists():  # else another process built it while this one waited
                    for leftover in self.folder.glob(f".{entry.name}.*.partial"):
                        leftover.unlink(missing_ok=True)  # a killed builder's: no live one, the lock is held here
                    note_once("read-cache", f"decoding rasters that are slow to read in windows once, into "
                                            f"{self.folder} (rsseg prepare builds them ahead of time; "
                                            f"data.cache=false reads every file directly)")
                    write_tiled_copy(source, handle, entry)
                    self._remove_earlier_versions(entry)
        except (OSError, RasterioError) as error:  # a failed read is a DataError already
            raise DataError(f"{source}: cannot write its read cache entry under {self.folder} "
                            f"({getattr(error, 'strerror', None) or str(error).splitlines()[0]}); set data.cache_dir to a writable folder with room, or "
                            f"data.cache=false") from None
        return entry

    def _remove_earlier_versions(self, entry: Path) -> None:
        stem, where = entry.name.split(".")[:2]
        for old in self.folder.glob(f"{stem}.{where}.*.tif"):
            if old != entry:
                self._remove_unless_building(old)

    def _remove_unless_building(self, old: Path) -> None:
        lock_path = old.with_name(old.name + ".lock")
        with open(lock_path, "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # a process that still sees that version is building it: leave it
                return
            old.unlink(missing_ok=True)
            for leftover in self.folder.glob(f".{old.name}.*.partial"):
                leftover.unlink(missing_ok=True)
            lock_path.unlink(missing_ok=True)


def write_tiled_copy(source: Path, handle: rasterio.DatasetReader, path: Path) -> None:
    """Write ``handle``'s pixels and georeferencing to ``path`` as an uncompressed GeoTIFF in 256 x 256 blocks,
    256 rows at a time, atomically. A read that fails (a truncated file) is one line naming ``source``."""
    if len(set(handle.dtypes)) > 1:
        raise DataError(f"{source}: bands of different data types ({', '.join(handle.dtypes)}) do not fit one "
                        f"GeoTIFF of the read cache; set data.cache=false to read it directly")
    profile = {
        "driver": "GTiff", "width": handle.width, "height": handle.height, "count": handle.count,
        "dtype": handle.dtypes[0], "crs": handle.crs, "transform": handle.transform, "nodata": handle.nodata,
        "tiled": True, "blockxsize": BLOCK, "blockysize": BLOCK, "interleave": "band", "compress": "none",
        "BIGTIFF": "IF_SAFER",
    }
    with replaced_when_complete(path) as partial:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)  # a JPEG's copy has no georeferencing either
            with rasterio.open(partial, "w", **profile) as copy:
                copy.colorinterp = handle.colorinterp
                if is_palette_indexed(handle):
                    copy.write_colormap(1, handle.colormap(1))
                for row in range(0, handle.height, BLOCK):
                    strip = Window(0, row, handle.width, min(BLOCK, handle.height - row))
                    copy.write(_read_strip(source, handle, strip), window=strip)
        _flush_to_disk(partial)  # the entry's name says it is complete: make that true after a crash too


def _read_strip(source: Path, handle: rasterio.DatasetReader, strip: Window):
    try:
        return handle.read(window=strip)
    except RasterioError as error:
        rows = f"{int(strip.row_off)}..{int(strip.row_off + strip.height)}"
        raise DataError(f"{source}: reading rows {rows} failed while caching it, the file looks corrupt or "
                        f"truncated ({str(error).splitlines()[0]})") from None


def _flush_to_disk(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
