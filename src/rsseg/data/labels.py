"""Label decoding: colour-coded label rasters (ISPRS, GID, Massachusetts) and index-coded ones (LoveDA)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rsseg.errors import ConfigError, DataError


def _codes(rgb: np.ndarray) -> np.ndarray:
    """Pack [3, ...] uint8 colours into int32 codes 0xRRGGBB."""
    rgb = rgb.astype(np.int32, copy=False)
    return (rgb[0] << 16) | (rgb[1] << 8) | rgb[2]


class ColourLabels:
    """Decodes an RGB label window into class indices through the dataset's palette.

    ``ignore_colours`` map to ``ignore_index`` (the black eroded boundaries of the ISPRS ``noBoundary`` files).
    A colour that is neither in the palette nor ignored is an error naming the file, the colour and how many
    pixels of the window carry it, since a wrong palette silently trains on garbage otherwise.
    """

    bands_needed = 3

    def __init__(
        self, palette: Sequence[Sequence[int]], ignore_colours: Sequence[Sequence[int]] = (), ignore_index: int = 255
    ) -> None:
        colours = np.asarray(palette, dtype=np.int64).reshape(-1, 3)
        ignored = np.asarray(ignore_colours, dtype=np.int64).reshape(-1, 3)
        if colours.min(initial=0) < 0 or colours.max(initial=0) > 255:
            raise ConfigError(f"palette colours must be 0..255 RGB triples, got {palette}")
        codes = np.concatenate([_codes(colours.T), _codes(ignored.T)])
        values = np.concatenate([np.arange(len(colours)), np.full(len(ignored), ignore_index)])
        if len(np.unique(codes)) != len(codes):
            raise ConfigError(f"palette has repeated colours: {palette} (ignored: {list(ignore_colours)})")
        order = np.argsort(codes)
        self._codes = codes[order]
        self._values = values[order].astype(np.uint8)
        self.ignore_index = ignore_index

    def __call__(self, window: np.ndarray, source: str = "label") -> np.ndarray:
        if window.shape[0] < 3:
            raise DataError(f"{source}: colour-coded labels need 3 bands (RGB), the raster has {window.shape[0]}")
        codes = _codes(window[:3])
        position = np.searchsorted(self._codes, codes).clip(max=len(self._codes) - 1)
        known = self._codes[position] == codes
        if not known.all():
            unknown, counts = np.unique(codes[~known], return_counts=True)
            worst = int(np.argmax(counts))
            code = int(unknown[worst])
            colour = ((code >> 16) & 255, (code >> 8) & 255, code & 255)
            raise DataError(
                f"{source}: label colour {colour} is not in the palette ({int(counts[worst])} pixels"
                f"{f'; {len(unknown) - 1} more unknown colours' if len(unknown) > 1 else ''}); "
                f"expected one of {self.colours()}"
            )
        return self._values[position]

    def colours(self) -> list[tuple[int, int, int]]:
        return [((c >> 16) & 255, (c >> 8) & 255, c & 255) for c in self._codes.tolist()]


class IndexLabels:
    """Decodes a single-band index label window: ``value - offset`` is the class, ``ignore_values`` are ignored.

    LoveDA stores 0 for no-data and 1..7 for classes: ``offset=1, ignore_values=[0]`` gives classes 0..6.
    A value that maps outside ``0..num_classes-1`` and is not ignored is an error naming file, value and count.
    """

    bands_needed = 1

    def __init__(
        self, num_classes: int, offset: int = 0, ignore_values: Sequence[int] = (), ignore_index: int = 255
    ) -> None:
        self.num_classes = num_classes
        self.offset = offset
        self.ignore_values = np.asarray(list(ignore_values), dtype=np.int64)
        self.ignore_index = ignore_index

    def __call__(self, window: np.ndarray, source: str = "label") -> np.ndarray:
        raw = window[0].astype(np.int64)
        classes = raw - self.offset
        ignored = np.isin(raw, self.ignore_values) | (raw == self.ignore_index)
        bad = ~ignored & ((classes < 0) | (classes >= self.num_classes))
        if bad.any():
            values, counts = np.unique(raw[bad], return_counts=True)
            worst = int(np.argmax(counts))
            raise DataError(
                f"{source}: label value {int(values[worst])} is not a class ({int(counts[worst])} pixels); "
                f"expected {self.offset}..{self.offset + self.num_classes - 1}"
                f"{f' or ignored {self.ignore_values.tolist()}' if len(self.ignore_values) else ''}"
            )
        classes[ignored] = self.ignore_index
        return classes.astype(np.uint8)


def build_decoder(
    label_format: str,
    num_classes: int,
    palette: Sequence[Sequence[int]] | None = None,
    ignore_colours: Sequence[Sequence[int]] = (),
    label_offset: int = 0,
    ignore_values: Sequence[int] = (),
    ignore_index: int = 255,
) -> ColourLabels | IndexLabels:
    """The label decoder a data config describes (``label_format``: colour or index)."""
    if label_format == "colour":
        if palette is None or len(palette) != num_classes:
            raise ConfigError(f"data.palette needs {num_classes} colours for colour-coded labels, got {palette}")
        return ColourLabels(palette, ignore_colours, ignore_index)
    if label_format == "index":
        return IndexLabels(num_classes, label_offset, ignore_values, ignore_index)
    raise ConfigError(f"data.label_format={label_format!r}; expected 'colour' or 'index'")
