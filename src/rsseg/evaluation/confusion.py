"""Confusion matrices counted while streaming: label rasters read strip by strip (``LabelReader``) against the
rows the prediction engine finishes (``ConfusionSink``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import rsseg.config  # noqa: F401 - registers the resolvers (${rsseg.stats:...}) data configs use
from rsseg.errors import DataError


def add_to_confusion(confusion: np.ndarray, labels: np.ndarray, classes: np.ndarray, source: str = "prediction") -> None:
    """Count ``labels`` (true) against ``classes`` (predicted) into ``confusion [K, K]`` in place.

    Labels outside ``0..K-1`` (the ignore index) and predictions equal to 255 (nodata) are left out; any other
    prediction outside ``0..K-1`` is an error naming ``source``.
    """
    from rsseg.data.labels import NODATA

    k = confusion.shape[0]
    classes = classes.reshape(-1)
    labels = labels.reshape(-1)
    bad = (classes >= k) & (classes != NODATA)
    if bad.any():
        values, counts = np.unique(classes[bad], return_counts=True)
        raise DataError(
            f"{source}: class value {int(values[0])} is outside 0..{k - 1} ({int(counts[0])} pixels); "
            f"was it predicted with a model of {k} classes?"
        )
    valid = (labels < k) & (classes < k)
    codes = labels[valid].astype(np.int64) * k + classes[valid]
    confusion += np.bincount(codes, minlength=k * k).reshape(k, k)


class LabelReader:
    """Reads and decodes label rows of a raster (or of a region of it) with a data config's decoder."""

    def __init__(self, path: Path, decoder, region: tuple[int, int, int, int] | None = None) -> None:
        from rsseg.data.labels import IndexLabels
        from rsseg.data.raster import open_raster

        self.path = Path(path)
        self.handle = open_raster(self.path)
        self.decoder = decoder
        self.index = isinstance(decoder, IndexLabels)
        self.row0, self.col0, self.height, self.width = region or (0, 0, self.handle.height, self.handle.width)

    def rows(self, row: int, count: int) -> np.ndarray:
        from rasterio.windows import Window

        from rsseg.data.raster import read_label_window

        window = Window(self.col0, self.row0 + row, self.width, count)
        try:
            raw = self.handle.read([1], window=window) if self.index else read_label_window(self.handle, window)
        except Exception as error:  # noqa: BLE001 - rasterio raises several types for corrupt files
            raise DataError(f"{self.path}: reading rows {self.row0 + row}..{self.row0 + row + count} failed "
                            f"({str(error).splitlines()[0]})") from None
        return self.decoder(raw, str(self.path))

    def close(self) -> None:
        self.handle.close()


class ConfusionSink:
    """An inference sink that scores each final strip against the matching label rows."""

    confidence = False
    probabilities = None

    def __init__(self, labels: LabelReader, num_classes: int, also=None) -> None:
        self.labels = labels
        self.confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
        self.also = also  # another sink (a GeoTiffSink saving the predictions)
        if also is not None:
            self.confidence, self.probabilities = also.confidence, also.probabilities

    def write(self, row, classes, confidence, probabilities) -> None:
        add_to_confusion(self.confusion, self.labels.rows(row, classes.shape[0]), classes)
        if self.also is not None:
            self.also.write(row, classes, confidence, probabilities)
