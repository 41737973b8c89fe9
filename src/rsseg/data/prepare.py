"""``rsseg prepare data=<name>``: check a dataset folder, compute its statistics, write its split manifest and
(optionally) cut it into tiles on disk the way the papers did.

1. Every missing or malformed file is listed, one line each, not just the first: missing files of every split,
   image/label pairs that disagree in size, CRS or transform, wrong band counts, unreadable or truncated rasters,
   label colours (or values) outside the palette.
2. Band statistics (mean and standard deviation per band, over the valid pixels of the training split, streamed
   window by window) and class pixel counts per split, written to ``stats.json``; ``data.stats_file=<it>`` then
   makes training normalise with them.
3. The split manifest ``splits.json`` (every scene of every split under the chosen protocol, paths relative to
   ``data.root``), which ``protocol=manifest protocol.split_file=<it>`` reads back.
4. With ``tiles.write=true``: ``tiles.size`` tiles without overlap (remainders dropped; a 6800 x 7200 GID scene
   gives 13 x 14 = 182) as GeoTIFFs under ``tiles/<split>/{images,labels}`` with their own ``splits.json``.
5. The read cache (``data.cache``, :mod:`rsseg.data.cache`): every image and label that is slow to read in windows
   decoded into its tiled copy, so that the first training run starts at full speed; its size goes to the report.

Every file is written atomically: a temporary name in the target folder, then a rename; the tiles go into a
temporary folder renamed to ``tiles/`` once all are written, so an interrupted run leaves no partial tile set.
NaN or infinite pixels of float rasters count as nodata (listed in ``stats.json`` and in a warning).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from rasterio.errors import RasterioError
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

import rsseg.config  # noqa: F401 - registers the resolvers (${rsseg.stats:...}) data configs use
from rsseg.config.runs import run_dir
from rsseg.data.datasets import SPLITS, all_scenes
from rsseg.data.labels import build_decoder, decoder_from_config, reads_index
from rsseg.data.raster import (
    Scene,
    check_pair,
    create_raster,
    nodata_mask,
    open_raster,
    read_label_window,
    read_window,
)
from rsseg.data.stats import RunningStats
from rsseg.errors import DataError, RssegError
from rsseg.runtime.console import progress, say, warn
from rsseg.runtime.files import folder_replaced_when_complete, replaced_when_complete
from rsseg.runtime.preflight import check_writable, empty_split_reason
from rsseg.runtime.results import write_results, write_together

log = logging.getLogger(__name__)


def _windows(bounds: tuple[int, int, int, int], size: int) -> Iterator[Window]:
    row0, col0, row1, col1 = bounds
    for row in range(row0, row1, size):
        for col in range(col0, col1, size):
            yield Window(col, row, min(size, col1 - col), min(size, row1 - row))


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "scene"


def _bounds(scene: Scene, image) -> tuple[int, int, int, int]:
    # Imported here: rsseg.data.dataset pulls torch, which a refused prepare never needs.
    from rsseg.data.dataset import scene_bounds

    return scene_bounds(scene, image.height, image.width)


def _key(scene: Scene) -> tuple:
    return (str(scene.image), str(scene.label) if scene.label else None, scene.window)


class DatasetPass:
    """One streaming pass over the scenes: per-scene class counts, band statistics, problems found."""

    def __init__(self, data: DictConfig, window: int) -> None:
        self.decode = decoder_from_config(data) if data.get("label_format") else build_decoder(
            "colour", int(data.num_classes), data.get("palette"), data.get("ignore_colours") or [])
        self.num_classes = int(data.num_classes)
        self.ignore_index = int(data.get("ignore_index", 255))
        self.bands = list(data.bands) if data.get("bands") else None
        self.nodata = data.get("nodata")
        self.in_channels = int(data.in_channels)
        self.window = int(window)
        self.problems: dict[str, str] = {}  # file -> first problem found in it
        self.counts: dict[tuple, np.ndarray] = {}
        self.nonfinite: dict[str, int] = {}  # file -> NaN or infinite pixels (treated as nodata)
        self.ignored: dict[tuple, int] = {}
        self.checked: dict[tuple, tuple[int, int] | None] = {}

    def _problem(self, path, message: str) -> None:
        self.problems.setdefault(str(path), message)

    def check(self, scene: Scene) -> bool:
        """Header checks of the scene's image/label pair (once per pair); False if the pair is unusable."""
        pair = (str(scene.image), str(scene.label) if scene.label else None)
        if pair not in self.checked:
            try:
                self.checked[pair] = check_pair(
                    Scene(scene.image, scene.label, scene.name), self.in_channels, self.bands,
                    getattr(self.decode, "bands_needed", None),
                )
            except RssegError as error:
                self.checked[pair] = None
                self._problem(scene.image if str(scene.image) in str(error) else scene.label, str(error))
        if self.checked[pair] is None:
            return False
        if scene.window is not None:
            try:
                from rsseg.data.raster import scene_size

                scene_size(scene, self.checked[pair])
            except DataError as error:
                self._problem(scene.image, str(error))
                return False
        return True

    def scan(self, scene: Scene, stats: RunningStats | None) -> None:
        """Stream the scene window by window: class counts, band statistics into ``stats``, decode errors."""
        key = _key(scene)
        if key in self.counts and stats is None:
            return
        counts = np.zeros(self.num_classes, dtype=np.int64)
        ignored = 0
        try:
            with open_raster(scene.image) as image:
                label = open_raster(scene.label) if scene.label is not None else None
                try:
                    bounds = _bounds(scene, image)
                    for window in _windows(bounds, self.window):
                        try:
                            pixels = read_window(image, window, self.bands, bounds=bounds)
                        except RasterioError as error:
                            self._problem(scene.image, f"{scene.image}: unreadable at window (row {window.row_off}, "
                                                       f"col {window.col_off}): corrupt or truncated file "
                                                       f"({str(error).splitlines()[0]})")
                            return
                        if pixels.dtype.kind == "f":
                            bad = int((~np.isfinite(pixels).all(0)).sum())
                            if bad:
                                self.nonfinite[str(scene.image)] = self.nonfinite.get(str(scene.image), 0) + bad
                        missing = nodata_mask(image, pixels, self.nodata)
                        valid = ~missing if missing is not None else np.ones(pixels.shape[1:], bool)
                        if stats is not None:
                            stats.update(pixels[:, valid])
                        if label is not None:
                            try:
                                raw = read_label_window(label, window, bounds, index=reads_index(self.decode))
                            except RasterioError as error:
                                self._problem(scene.label, f"{scene.label}: unreadable at window (row "
                                                           f"{window.row_off}, col {window.col_off}): corrupt or "
                                                           f"truncated file ({str(error).splitlines()[0]})")
                                return
                            classes = self.decode(raw, str(scene.label))
                            classes = np.where(valid, classes, self.ignore_index)
                            known = classes[classes < self.num_classes]
                            counts += np.bincount(known.ravel(), minlength=self.num_classes)[: self.num_classes]
                            ignored += int(classes.size - known.size)
                finally:
                    if label is not None:
                        label.close()
        except DataError as error:  # unknown colour or value, unreadable file: names the file already
            message = str(error)
            path = scene.label if scene.label and str(scene.label) in message else scene.image
            self._problem(path, message)
            return
        self.counts[key] = counts
        self.ignored[key] = ignored


def _atomic_raster(path: Path, pixels: np.ndarray, profile: dict, source: Path) -> None:
    with replaced_when_complete(path) as tmp, create_raster(tmp, source, **profile) as dst:
        dst.write(pixels)


def build_read_cache(scenes: dict[str, list[Scene]], cache_dir: str | None) -> dict:
    """The read cache entries of every image and label of every split, built now; where they are and their size."""
    from rsseg.data.cache import ReadCache

    cache = ReadCache(cache_dir)
    sources = (path for split in scenes.values() for scene in split for path in (scene.image, scene.label))
    entries = cache.ensure_all(sources, progress=True)
    cached = {entry for entry in entries.values() if entry is not None}
    return {"folder": str(cache.folder), "rasters": len(cached),
            "mb": round(sum(entry.stat().st_size for entry in cached) / 1e6, 1),
            "read_directly": sum(entry is None for entry in entries.values())}


def problem_report(problems: list[str], root) -> str:
    """One problem as the error line itself; several as a count followed by one indented line each."""
    if len(problems) == 1:
        return problems[0]
    return f"{len(problems)} problem(s) in {root}:\n" + "\n".join(f"  {p}" for p in problems)


def write_tiles(
    splits: dict[str, list[Scene]], out: Path, size: int, stride: int | None, parts, root: Path | None,
    index: bool = False,
) -> dict:
    """Cut every scene of ``parts`` into ``size`` tiles every ``stride`` px (remainders dropped); returns the
    tiles' manifest (paths relative to ``out``). ``index``: labels are index labels, copied as stored."""
    stride = int(stride or size)
    manifest: dict[str, list[dict]] = {name: [] for name in SPLITS}
    done: dict[tuple, list[dict]] = {}
    for name in parts:
        for scene in progress(splits.get(name, []), f"{name} tiles", "scene"):
            key = _key(scene)
            if key in done:  # val and test may share scenes: write once, list in both
                manifest[name].extend(done[key])
                continue
            entries = []
            with open_raster(scene.image) as image:
                label = open_raster(scene.label) if scene.label is not None else None
                try:
                    row0, col0, row1, col1 = _bounds(scene, image)
                    for row in range(row0, row1 - size + 1, stride):
                        for col in range(col0, col1 - size + 1, stride):
                            window = Window(col, row, size, size)
                            stem = f"{_safe(scene.name)}_{row}_{col}"
                            common = {
                                "driver": "GTiff", "height": size, "width": size, "compress": "deflate",
                                **({"tiled": True, "blockxsize": min(256, size), "blockysize": min(256, size)}
                                   if size % 16 == 0 else {}),
                                "crs": image.crs, "transform": window_transform(window, image.transform),
                            }
                            pixels = image.read(window=window)
                            image_path = out / name / "images" / f"{stem}.tif"
                            _atomic_raster(image_path, pixels, {**common, "count": image.count,
                                                                "dtype": image.dtypes[0], "nodata": image.nodata},
                                           scene.image)
                            entry = {"name": stem, "image": str(image_path.relative_to(out)), "label": None,
                                     "window": None, "source": scene.name}
                            if label is not None:
                                raw = read_label_window(label, window, index=index)
                                label_path = out / name / "labels" / f"{stem}.tif"
                                _atomic_raster(label_path, raw, {**common, "count": raw.shape[0], "dtype": raw.dtype.name},
                                               scene.image)
                                entry["label"] = str(label_path.relative_to(out))
                            entries.append(entry)
                finally:
                    if label is not None:
                        label.close()
            done[key] = entries
            manifest[name].extend(entries)
    return manifest


def run_prepare(cfg: DictConfig) -> dict:
    """Check, measure and (optionally) tile the configured dataset; returns the report written to stats.json."""
    started = time.perf_counter()
    data = cfg.data
    out = run_dir(cfg, "out_dir")
    check_writable(out, "out_dir")
    source = instantiate(data.scenes)
    problems: list[str] = []
    if hasattr(source, "problems"):
        try:
            problems.extend(source.problems())
        except RssegError as error:
            problems.append(str(error))
    try:
        splits = all_scenes(source)
    except RssegError as error:
        lines = problems if str(error) in problems else [*problems, str(error)]
        raise DataError(problem_report(lines, getattr(source, "root", "the dataset"))) from None
    for name in ("train", "val"):
        if not splits[name] and not any("not found" in p for p in problems):
            problems.append(f"the {name} split is empty: {empty_split_reason(source, name)}")

    scan = DatasetPass(data, cfg.get("window", 1024))
    scenes = {name: [s for s in splits[name] if scan.check(s)] for name in SPLITS}
    stats = RunningStats(len(data.bands) if data.get("bands") else int(data.in_channels))
    stats_split = cfg.get("stats_split", "train")
    if cfg.get("check_pixels", True):
        order = [(name, scene) for name in SPLITS for scene in scenes[name]]
        for done, (name, scene) in enumerate(progress(order, "reading scenes", "scene"), start=1):
            scan.scan(scene, stats if name == stats_split else None)
            if done % 50 == 0:
                log.info("prepare: %d / %d scenes read (%.0f s)", done, len(order), time.perf_counter() - started)
    problems.extend(scan.problems.values())
    for path, count in scan.nonfinite.items():
        warn(f"{path}: {count:,} pixels are NaN or infinite; treated as nodata (left out of the statistics and of "
             f"training)")
    if problems:
        raise DataError(problem_report(problems, getattr(source, "root", "the dataset")))
    read_cache = build_read_cache(scenes, data.get("cache_dir")) if data.get("cache", True) else None

    names = list(data.class_names)
    report: dict = {
        "dataset": getattr(source, "dataset", type(source).__name__),
        "root": str(getattr(source, "root", "")),
        "protocol": OmegaConf.to_container(cfg.protocol, resolve=True) if cfg.get("protocol") else None,
        "bands": list(data.bands) if data.get("bands") else None,
        "stats_split": stats_split,
        "splits": {name: len(splits[name]) for name in SPLITS},
        "nonfinite_pixels": scan.nonfinite,
    }
    if read_cache is not None:
        report["read_cache"] = read_cache
    if cfg.get("check_pixels", True):
        if stats.count == 0:
            raise DataError(f"no valid pixel in the {stats_split} split: cannot compute band statistics")
        report["mean"] = [round(float(v), 4) for v in stats.mean]
        report["std"] = [round(float(max(v, 1e-6)), 4) for v in stats.std]
        report["pixels"] = int(stats.count)
        class_counts = {}
        for name in SPLITS:
            counts = np.zeros(len(names), dtype=np.int64)
            for scene in scenes[name]:
                counts += scan.counts.get(_key(scene), 0)
            class_counts[name] = dict(zip(names, counts.tolist()))
        report["class_counts"] = class_counts
        train = np.array(list(class_counts["train"].values()), dtype=np.float64)
        report["class_frequencies"] = dict(zip(names, (train / max(train.sum(), 1)).round(6).tolist()))
    out.mkdir(parents=True, exist_ok=True)
    manifest = source.manifest() if hasattr(source, "manifest") else {
        "dataset": report["dataset"],
        "splits": {name: [{"name": s.name, "image": str(s.image), "label": str(s.label) if s.label else None,
                           "window": list(s.window) if s.window else None} for s in splits[name]] for name in SPLITS},
    }
    if cfg.get("tiles", {}).get("write", False):
        tiles = cfg.tiles
        tile_dir = out / "tiles"
        with folder_replaced_when_complete(tile_dir) as partial:  # tiles/ appears whole or not at all
            tile_manifest = write_tiles(splits, partial, int(tiles.size), tiles.get("stride"),
                                        list(tiles.get("splits", SPLITS)), getattr(source, "root", None),
                                        reads_index(scan.decode))
            write_results(partial / "splits.json", {"dataset": report["dataset"], "tile_size": int(tiles.size),
                                                    "splits": tile_manifest})
        report["tiles"] = {name: len(v) for name, v in tile_manifest.items()}
    report["wall_time_s"] = round(time.perf_counter() - started, 1)
    # splits.json and stats.json appear together, after the tiles, or (interrupted, failed) not at all
    path, _ = write_together({out / "stats.json": report, out / "splits.json": manifest})
    _print_report(report, out, path)
    return report


def _print_report(report: dict, out: Path, path: Path) -> None:
    lines = [f"{report['dataset']} under {report['root']}: splits " +
             ", ".join(f"{k} {v}" for k, v in report["splits"].items()) + " scenes; no problem found"]
    if "mean" in report:
        lines.append(f"band mean {report['mean']}  std {report['std']}  ({report['pixels']:,} {report['stats_split']} pixels)")
        lines.append("class frequencies (train): " + ", ".join(f"{k} {v:.4f}" for k, v in report["class_frequencies"].items()))
    if "read_cache" in report:
        cache = report["read_cache"]
        direct = f"; {cache['read_directly']} read directly (uncompressed tiled GeoTIFFs)" if cache["read_directly"] else ""
        lines.append(f"read cache: {cache['rasters']} rasters, {cache['mb']:,.1f} MB under {cache['folder']}{direct}")
    if "tiles" in report:
        lines.append("tiles written: " + ", ".join(f"{k} {v}" for k, v in report["tiles"].items()) + f" under {out / 'tiles'}")
    if "mean" in report:
        lines.append(f"wrote {path} and {out / 'splits.json'}; train with data.stats_file={path}")
    else:  # no band statistics to train with: say so instead of suggesting a file training would refuse
        lines.append(f"wrote {path} and {out / 'splits.json'} without band statistics (check_pixels=false); "
                     f"run without check_pixels=false for a stats.json that data.stats_file= takes")
    say("\n".join(lines))


def main(cfg: DictConfig) -> dict | None:
    """The Hydra app's body: one-line errors (exit 2); SIGTERM or Ctrl-C leave no partial output (exit 130)."""
    from rsseg.runtime.app import run_guarded, terminate_as_interrupt

    terminate_as_interrupt()
    return run_guarded(run_prepare, cfg)
