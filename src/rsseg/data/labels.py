"""Label decoding: colour-coded label rasters (ISPRS, GID, Massachusetts) and index-coded ones (LoveDA)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rsseg.errors import ConfigError, DataError

NODATA = 255  # class, confidence and probability rasters: 255 is nodata, so classes are 0..254


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
    """Decodes a single-band index label window into classes.

    Either ``value - offset`` is the class (LoveDA stores 0 for no-data and 1..7 for classes: ``offset=1,
    ignore_values=[0]`` gives classes 0..6), or ``values`` lists the raster's value of each class in class order
    (a 0/255 building mask: ``values=[0, 255]`` gives classes 0 and 1; GID-style codes ``[10, 20, 30]``). A
    listed value is a class even when it equals ``ignore_index``; other values equal to ``ignore_index``, those in
    ``ignore_values`` and NaN are ignored. Any other value is an error naming file, value and pixel count.
    """

    bands_needed = 1

    def __init__(
        self, num_classes: int, offset: int = 0, ignore_values: Sequence[int] = (), ignore_index: int = 255,
        values: Sequence[int] | None = None,
    ) -> None:
        self.num_classes = num_classes
        self.offset = offset
        self.ignore_values = np.asarray(list(ignore_values), dtype=np.int64)
        self.ignore_index = ignore_index
        self.values = None
        if values is not None:
            listed = [int(v) for v in values]
            if len(listed) != num_classes:
                raise ConfigError(f"data.label_values={listed}: {len(listed)} values but data.num_classes={num_classes}; "
                                  f"expected one label value per class, in class order")
            if len(set(listed)) != len(listed):
                raise ConfigError(f"data.label_values={listed}: a value is listed twice; expected distinct values")
            if set(listed) & set(self.ignore_values.tolist()):
                raise ConfigError(f"data.label_values={listed} and data.ignore_values={self.ignore_values.tolist()} "
                                  f"share values; expected a value to be a class or ignored, not both")
            if offset:
                raise ConfigError(f"data.label_values={listed} and data.label_offset={offset} both map values to "
                                  f"classes; expected one of them")
            order = np.argsort(listed)
            self.values = np.asarray(listed, dtype=np.int64)[order]
            self.classes = order.astype(np.int64)

    def expected(self) -> str:
        if self.values is not None:
            return f"one of the data.label_values {sorted(self.values.tolist())}"
        return f"{self.offset}..{self.offset + self.num_classes - 1}"

    def __call__(self, window: np.ndarray, source: str = "label") -> np.ndarray:
        band = window[0]
        missing = ~np.isfinite(band) if band.dtype.kind == "f" else np.zeros(band.shape, dtype=bool)
        raw = np.where(missing, 0, band).astype(np.int64)
        ignored = missing | np.isin(raw, self.ignore_values)
        if self.values is not None:
            position = np.searchsorted(self.values, raw).clip(max=len(self.values) - 1)
            known = self.values[position] == raw
            classes = self.classes[position]
            ignored |= (raw == self.ignore_index) & ~known
        else:
            classes = raw - self.offset
            ignored |= raw == self.ignore_index
            known = (classes >= 0) & (classes < self.num_classes)
        bad = ~ignored & ~known
        if bad.any():
            found, counts = np.unique(raw[bad], return_counts=True)
            worst = int(np.argmax(counts))
            raise DataError(
                f"{source}: label value {int(found[worst])} is not a class ({int(counts[worst])} pixels"
                f"{f'; {len(found) - 1} more unknown values' if len(found) > 1 else ''}); expected {self.expected()}"
                f"{f' or ignored {self.ignore_values.tolist()}' if len(self.ignore_values) else ''}"
                f"{'' if self.values is not None else ' (data.label_values maps other codes to classes)'}"
            )
        return np.where(ignored, self.ignore_index, classes).astype(np.uint8)


def reads_index(decoder) -> bool:
    """Whether ``decoder`` takes a label's first band as stored (index labels, even palette PNGs) rather than its
    colours."""
    return isinstance(decoder, IndexLabels)


def build_decoder(
    label_format: str,
    num_classes: int,
    palette: Sequence[Sequence[int]] | None = None,
    ignore_colours: Sequence[Sequence[int]] = (),
    label_offset: int = 0,
    ignore_values: Sequence[int] = (),
    ignore_index: int = 255,
    label_values: Sequence[int] | None = None,
    reduce_zero_label: bool = False,
) -> ColourLabels | IndexLabels:
    """The label decoder a data config describes (``label_format``: colour or index).

    ``reduce_zero_label`` is mmsegmentation's: value 0 is ignored and every other value is the class one below it
    (``label_offset=1`` with 0 among ``ignore_values``), for index labels whose 0 means no data or a boundary.
    """
    if reduce_zero_label:
        if label_format != "index":
            raise ConfigError(f"data.reduce_zero_label=true shifts index labels, but data.label_format={label_format!r}; "
                              f"expected data.label_format=index")
        if label_offset or label_values is not None:
            other = f"data.label_offset={label_offset}" if label_offset else f"data.label_values={list(label_values)}"
            raise ConfigError(f"data.reduce_zero_label=true and {other} both map label values to classes; "
                              f"expected one of them")
        label_offset, ignore_values = 1, [0, *(v for v in ignore_values if v != 0)]
    if label_format == "colour":
        if palette is None or len(palette) != num_classes:
            raise ConfigError(f"data.palette needs {num_classes} colours for colour-coded labels, got {palette}")
        if label_values is not None:
            raise ConfigError("data.label_values maps the values of index labels; expected data.label_format=index")
        return ColourLabels(palette, ignore_colours, ignore_index)
    if label_format == "index":
        return IndexLabels(num_classes, label_offset, ignore_values, ignore_index, label_values)
    raise ConfigError(f"data.label_format={label_format!r}; expected 'colour' or 'index'")


def decoder_from_config(data, num_classes: int | None = None, palette: Sequence[Sequence[int]] | None = None):
    """The decoder of a data config (a mapping with ``label_format``, ``palette``, ``label_values`` ...); None when
    it names no label format, unless ``palette`` is given (colour labels, e.g. a prediction's colour table)."""
    num_classes = int(num_classes if num_classes is not None else data.get("num_classes"))
    if data is not None and data.get("label_format"):
        return build_decoder(
            data.get("label_format"), num_classes, data.get("palette"), data.get("ignore_colours") or (),
            int(data.get("label_offset") or 0), data.get("ignore_values") or (), int(data.get("ignore_index", 255)),
            data.get("label_values"), bool(data.get("reduce_zero_label", False)),
        )
    return None if palette is None else build_decoder("colour", num_classes, palette)


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
