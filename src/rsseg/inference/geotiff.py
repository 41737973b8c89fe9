"""Class, confidence and probability GeoTIFFs (and COGs and previews) written strip by strip, under temporary
names renamed when complete, with class names and a colour table."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window

from rsseg.data.labels import NODATA, colour_table
from rsseg.data.raster import create_raster
from rsseg.runtime.files import replaced_when_complete


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
        # Deflate level 1: a class map compresses nearly as well as at the default level 6 (6.9 against 5.8 MiB
        # for benchmarks/predict.py's 10,000 px scene) in about a third of the time, which on a CPU was the
        # largest cost of the pipeline after the model.
        self.base_profile = {
            "driver": "GTiff", "width": self.width, "height": self.height, "crs": src.crs, "transform": transform,
            "dtype": "uint8", "nodata": NODATA, "tiled": True, "blockxsize": self.BLOCK, "blockysize": self.BLOCK,
            "compress": "deflate", "zlevel": 1, "BIGTIFF": "IF_SAFER",
        }
        self.tags = {"RSSEG_OUTPUT": "classes", "CLASS_NAMES": json.dumps(self.class_names),
                     **{f"CLASS_{i}": name for i, name in enumerate(self.class_names)}, **(tags or {})}
        # Each output is written under a temporary name (rsseg.runtime.files.replaced_when_complete); closing the
        # stack renames them all into place, unwinding it after an error removes them.
        self.outputs = ExitStack()
        self.temporaries: dict[Path, Path] = {}
        self.intermediates: dict[Path, Path] = {}  # output -> the plain GeoTIFF its COG is copied from
        self.datasets: dict[str, rasterio.io.DatasetWriter] = {}
        self.pending: dict[str, list[np.ndarray]] = {}
        self.pending_row = 0
        self.rows_done = 0
        self.preview_step = max(1, math.ceil(max(self.height, self.width) / max(1, int(preview_size))))
        self.preview_rows: list[np.ndarray] = []
        try:
            self._open()
        except BaseException:  # an interrupt or a failure while the files are created leaves none of them
            self.discard()
            raise

    def _temporary(self, path: Path) -> Path:
        tmp = self.outputs.enter_context(replaced_when_complete(path))
        self.temporaries[path] = tmp
        return tmp

    def _intermediate(self, path: Path) -> Path:
        """A plain GeoTIFF beside ``path`` that the COG is copied from, removed once it is; named after the
        temporary this process made, so predictions writing the same output at once never share a file."""
        unique = self.temporaries[path]
        tmp = unique.with_name(unique.name.removesuffix(".partial") + ".gtiff.partial")
        self.intermediates[path] = tmp
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
                target = self._intermediate(path)
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
        for path, gtiff in self.intermediates.items():
            to_cog(gtiff, self.temporaries[path], "nearest" if path == self.paths.classes else "average")
            self._remove(gtiff)
        if self.paths.preview is not None:
            self._write_preview(self._temporary(self.paths.preview))
        self.outputs.close()

    def discard(self) -> None:
        """Close and remove every temporary (after an error or an interrupt)."""
        self._close_datasets()
        for gtiff in self.intermediates.values():
            self._remove(gtiff)
        temporaries = list(self.temporaries.values())
        self.outputs.__exit__(RuntimeError, RuntimeError("prediction discarded"), None)
        for tmp in temporaries:
            Path(f"{tmp}.aux.xml").unlink(missing_ok=True)

    @staticmethod
    def _remove(path: Path) -> None:
        path.unlink(missing_ok=True)
        Path(f"{path}.aux.xml").unlink(missing_ok=True)

    def _write_preview(self, path: Path) -> None:
        from PIL import Image

        classes = np.concatenate(self.preview_rows, axis=0) if self.preview_rows else np.zeros((1, 1), np.uint8)
        lookup = np.zeros((256, 4), dtype=np.uint8)
        for index, colour in colour_table(self.palette, self.num_classes).items():
            lookup[index] = colour
        Image.fromarray(lookup[classes], mode="RGBA").save(path, format="PNG")


def to_cog(src_path: Path, dst_path: Path, resampling: str) -> None:
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
