"""Scoring class rasters saved earlier (``rsseg eval pred=... label=...``): no model, the classes and palette
read from the rasters' own tags and colour table when no data config names them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import rsseg.config  # noqa: F401 - registers the resolvers (${rsseg.stats:...}) data configs use
from rsseg.errors import ConfigError
from rsseg.evaluation.confusion import LabelReader, add_to_confusion
from rsseg.evaluation.pairing import pair_files


def scene_result(name: str, image, label, confusion: np.ndarray, class_names, exclude) -> dict:
    from rsseg.metrics import metrics_from_confusion

    m = metrics_from_confusion(confusion, class_names, exclude)
    return {"name": name, "image": str(image) if image else None, "label": str(label),
            "pixels": int(confusion.sum()), "miou": m["miou"], "oa": m["oa"], "mf1": m["mf1"]}


def evaluate_predictions(pred_spec, label_spec, class_names, decoder, exclude, window_pixels: int = 1 << 22):
    """Score saved class rasters against label rasters; returns (confusion, per-scene results)."""
    from rasterio.windows import Window

    from rsseg.data.raster import check_same_grid, open_raster
    from rsseg.inference.predict import list_inputs

    preds, _ = list_inputs(pred_spec)
    labels, _ = list_inputs(label_spec)
    pairs = pair_files(preds, labels)
    k = len(class_names)
    total = np.zeros((k, k), dtype=np.int64)
    scenes = []
    for pred_path, label_path in pairs:
        with open_raster(pred_path) as pred:
            local_decoder = decoder
            if local_decoder is None:
                local_decoder = decoder_from_prediction(pred, label_path, k)
            reader = LabelReader(label_path, local_decoder)
            try:
                check_same_grid(pred, reader.handle, pred_path, label_path, "the prediction")
                confusion = np.zeros((k, k), dtype=np.int64)
                step = max(1, window_pixels // max(1, pred.width))
                read_classes = prediction_rows(pred, pred_path, local_decoder)
                for row in range(0, pred.height, step):
                    count = min(step, pred.height - row)
                    classes = read_classes(Window(0, row, pred.width, count))
                    add_to_confusion(confusion, reader.rows(row, count), classes, str(pred_path))
            finally:
                reader.close()
        total += confusion
        scenes.append(scene_result(pred_path.stem, None, label_path, confusion, class_names, exclude)
                      | {"prediction": str(pred_path)})
    return total, scenes


def prediction_rows(pred, path: Path, decoder):
    """A function reading a window of a saved prediction as class indices: one band of integers as stored, a
    float band whose values are whole numbers (NaN = nodata), or a colour-coded class map (3 bands) decoded
    with the labels' palette. Anything else is refused in one line instead of being scored as class 0."""
    from rsseg.data.labels import NODATA, ColourLabels

    if pred.count >= 3:
        if not isinstance(decoder, ColourLabels):
            raise ConfigError(f"{path}: a colour-coded class map ({pred.count} bands); give data=<name> (or "
                              f"ckpt=) whose palette decodes it, or score the one-band class raster rsseg "
                              f"predict writes")
        return lambda window: decoder(pred.read([1, 2, 3], window=window), str(path))
    if np.dtype(pred.dtypes[0]).kind != "f":
        return lambda window: pred.read(1, window=window)

    def whole_numbers(window):
        values = pred.read(1, window=window)
        missing = np.isnan(values)
        fractional = ~missing & ((values != np.round(values)) | ~np.isfinite(values) | (values < 0))
        if fractional.any():
            rows = f"rows {window.row_off}..{window.row_off + window.height}"
            raise ConfigError(f"{path}: float value {values[fractional][0]:g} is not a class index "
                              f"({int(fractional.sum())} pixels in {rows}); expected a class raster (whole "
                              f"numbers; rsseg predict writes uint8)")
        return np.where(missing, NODATA, values).astype(np.int64)

    return whole_numbers


def decoder_from_prediction(pred, label_path: Path, num_classes: int):
    from rsseg.data.labels import build_decoder as make
    from rsseg.data.raster import is_palette_indexed, open_raster

    with open_raster(label_path) as label:
        colour = label.count >= 3 or is_palette_indexed(label)
    if not colour:
        return make("index", num_classes)
    try:
        table = pred.colormap(1)
    except ValueError:
        table = {}
    palette = [list(table[i][:3]) for i in range(num_classes) if i in table]
    if len(palette) != num_classes:
        raise ConfigError(
            f"{label_path}: colour-coded labels need a palette; give data=<name> (or ckpt=) or predict with "
            f"rsseg so the class rasters carry their colour table"
        )
    return make("colour", num_classes, palette)


def class_names_from_prediction(pred_spec) -> list[str]:
    from rsseg.data.raster import open_raster
    from rsseg.inference.predict import list_inputs

    first = list_inputs(pred_spec)[0][0]
    with open_raster(first) as handle:
        names = handle.tags().get("CLASS_NAMES")
    if not names:
        raise ConfigError(f"{first}: no CLASS_NAMES tag; give data=<name> or ckpt= to name the classes")
    return list(json.loads(names))
