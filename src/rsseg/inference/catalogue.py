"""The scenes an ``input=`` names, the outputs each gets, and how a region's scenes are dealt to shards.

``input=`` is a raster, a folder of rasters, a quoted glob, a text file with one path per line, or a vector file
whose features carry a path: GeoJSON (a STAC ItemCollection saved as JSON is one, its items' assets give the
paths) or a GeoPackage (read with the standard library's sqlite3, as the GeoPackage format is SQLite: no GDAL
vector stack is needed just to read a column of paths). Relative paths in a list or a vector file are relative to
that file's folder.

A region is split into shards by :func:`deal`: scenes, largest first, go to the shard with the fewest pixels so
far, so that shards finish together; every shard computes the same deal from the same catalogue, so no shard
needs to hear from another.
"""

from __future__ import annotations

import glob
import json
import math
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from rsseg.errors import ConfigError, DataError

RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".jp2", ".img")
LIST_SUFFIXES = (".txt", ".lst", ".list")
VECTOR_SUFFIXES = (".geojson", ".json", ".gpkg")
# The attribute that holds a scene's path in a vector file, tried in this order: rsseg's own, gdaltindex's
# "location", then common names; a STAC item's asset of these keys, else its only GeoTIFF asset.
PATH_FIELDS = ("path", "location", "filename", "file", "href", "url")
STAC_ASSETS = ("image", "visual", "data", "analytic")


# --------------------------------------------------------------------------------------------------------------
# Listing the scenes
# --------------------------------------------------------------------------------------------------------------


def list_inputs(spec: str | os.PathLike, field: str | None = None) -> tuple[list[Path], bool]:
    """The scenes an ``input=`` names and whether it names a collection: a raster file, a folder (its rasters,
    not recursive, hidden files skipped), a glob pattern (``'scenes/**/*.tif'``), a text list (.txt, .lst) or a
    vector file (.geojson, .json, .gpkg) whose features name the scenes (``field``: the attribute or STAC asset
    that holds the path; default: the first of :data:`PATH_FIELDS`)."""
    text = str(spec)
    path = Path(text).expanduser()
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in LIST_SUFFIXES:
            return _existing(path, read_list(path)), True
        if suffix in (".geojson", ".json"):
            return _existing(path, read_geojson(path, field)), True
        if suffix == ".gpkg":
            return _existing(path, read_geopackage(path, field)), True
        return [path], False
    if path.is_dir():
        found = sorted(p for p in path.iterdir()
                       if p.is_file() and p.suffix.lower() in RASTER_SUFFIXES and not p.name.startswith("."))
        if not found:
            raise DataError(f"{path}: folder holds no raster ({', '.join(RASTER_SUFFIXES)})")
        return found, True
    if glob.has_magic(text):
        found = sorted(Path(p) for p in glob.glob(os.path.expanduser(text), recursive=True)
                       if Path(p).is_file() and not Path(p).name.startswith("."))
        if not found:
            raise DataError(f"{text}: pattern matches no file")
        return found, True
    raise DataError(f"{path}: file not found")


def _existing(source: Path, names: list[str]) -> list[Path]:
    """Paths of a list or vector file, relative to its folder, each an existing file."""
    if not names:
        raise DataError(f"{source}: names no scene; expected one raster path per line or feature")
    paths = []
    for name in names:
        path = Path(os.path.expanduser(name))
        path = path if path.is_absolute() else source.parent / path
        if not path.is_file():
            raise DataError(f"{source}: scene {name} not found (looked for {path}); expected an existing raster")
        paths.append(path)
    return paths


def read_list(path: Path) -> list[str]:
    """One path per line; blank lines and lines starting with # are skipped."""
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def read_geojson(path: Path, field: str | None = None) -> list[str]:
    """The scene paths of a GeoJSON FeatureCollection (or a STAC ItemCollection): each feature's path attribute,
    or for a STAC item the href of its image asset."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: not a readable GeoJSON file ({str(error).splitlines()[0]})") from None
    features = data.get("features") if isinstance(data, dict) else None
    if not isinstance(features, list):
        raise DataError(f"{path}: no 'features' list; expected a GeoJSON FeatureCollection or STAC ItemCollection")
    names = []
    for number, feature in enumerate(features):
        name = _feature_path(feature if isinstance(feature, dict) else {}, field)
        if name is None:
            wanted = field or " or ".join(PATH_FIELDS)
            raise DataError(f"{path}: feature {number} has no {wanted} attribute and no raster asset; expected "
                            f"each feature to name its scene (input_field= names the attribute)")
        names.append(name)
    return names


def _feature_path(feature: dict, field: str | None) -> str | None:
    properties = feature.get("properties") or {}
    assets = feature.get("assets") or {}
    for key in (field,) if field else PATH_FIELDS:
        if isinstance(properties.get(key), str):
            return properties[key]
    for key in (field,) if field else STAC_ASSETS:
        if isinstance(assets.get(key), dict) and "href" in assets[key]:
            return str(assets[key]["href"])
    if not field:
        rasters = [a for a in assets.values() if isinstance(a, dict) and "tiff" in str(a.get("type", "")).lower()]
        if len(rasters) == 1:
            return str(rasters[0].get("href"))
    return None


def read_geopackage(path: Path, field: str | None = None) -> list[str]:
    """The scene paths of a GeoPackage's first feature table (in ``gpkg_contents`` order), from its path column."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            tables = [row[0] for row in db.execute(
                "SELECT table_name FROM gpkg_contents WHERE data_type = 'features' ORDER BY rowid")]
            if not tables:
                raise DataError(f"{path}: GeoPackage has no feature table; expected one whose features name scenes")
            table = tables[0]
            columns = [row[1] for row in db.execute(f'PRAGMA table_info("{table}")')]
            lower = {c.lower(): c for c in columns}
            column = next((lower[k.lower()] for k in ((field,) if field else PATH_FIELDS) if k.lower() in lower), None)
            if column is None:
                raise DataError(f"{path}: table {table} has no column {field or ' or '.join(PATH_FIELDS)} "
                                f"(columns: {', '.join(columns)}); input_field= names the one with the paths")
            rows = db.execute(f'SELECT "{column}" FROM "{table}" ORDER BY rowid').fetchall()
    except sqlite3.DatabaseError as error:
        raise DataError(f"{path}: not a readable GeoPackage ({error})") from None
    return [str(row[0]) for row in rows if row[0] is not None]


# --------------------------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------------------------


def output_names(folder: Path, stem: str) -> dict[str, Path]:
    return {
        "classes": folder / f"{stem}_classes.tif",
        "confidence": folder / f"{stem}_confidence.tif",
        "probabilities": folder / f"{stem}_probabilities.tif",
        "preview": folder / f"{stem}_preview.png",
    }


def plan_outputs(inputs: list[Path], collection: bool, output: str | None, default_dir: Path,
                 wanted: set[str]) -> list[dict[str, Path]]:
    """Output paths per input. One input and ``output=<file>``: that file, companions beside it
    (``<stem>_confidence.tif`` ... with a trailing ``_classes`` dropped); otherwise ``output`` is a folder of
    ``<input stem>_classes.tif`` (+ ``_confidence``, ``_probabilities``, ``_preview.png``)."""
    text = None if output is None else str(output)
    as_folder = collection or text is None or text.endswith(("/", os.sep)) or Path(text).is_dir()
    plans = []
    for path in inputs:
        if as_folder:
            names = output_names(Path(text).expanduser() if text else default_dir, path.stem)
        else:
            target = Path(text).expanduser()
            stem = target.stem[: -len("_classes")] if target.stem.endswith("_classes") else target.stem
            names = output_names(target.parent, stem)
            names["classes"] = target
        plans.append({kind: p for kind, p in names.items() if kind in wanted})
    seen: dict[Path, Path] = {}
    for path, plan in zip(inputs, plans):
        for out in plan.values():
            key = out.resolve()
            if key in seen:
                raise ConfigError(f"{path} and {seen[key]} would both write {out}: give scenes distinct names")
            seen[key] = path
    return plans


# --------------------------------------------------------------------------------------------------------------
# Scene sizes and shards
# --------------------------------------------------------------------------------------------------------------


@dataclass
class SceneInfo:
    """One scene of a region as its header tells: size, CRS, bounds and ground area (None without a CRS or a
    metric/degree unit). ``error`` is the one-line reason a scene could not be opened (its size is then 0)."""

    path: Path
    height: int = 0
    width: int = 0
    crs: str | None = None
    bounds: tuple[float, float, float, float] | None = None
    km2: float | None = None
    error: str | None = None

    @property
    def pixels(self) -> int:
        return self.height * self.width


def scene_info(path: Path) -> SceneInfo:
    """The header of one scene (no pixel is read); an unreadable scene gives its error instead of raising."""
    from rsseg.data.raster import open_raster

    try:
        with open_raster(path) as handle:
            crs = handle.crs.to_string() if handle.crs else None
            return SceneInfo(path, handle.height, handle.width, crs, tuple(handle.bounds), _km2(handle))
    except DataError as error:
        return SceneInfo(path, error=str(error))


def _km2(handle) -> float | None:
    """Ground area of a raster's pixels in km²: from the transform in a projected CRS (its linear unit), or at
    the scene's central latitude in a geographic one."""
    if not handle.crs:
        return None
    transform = handle.transform
    area = abs(transform.a * transform.e - transform.b * transform.d) * handle.width * handle.height
    if handle.crs.is_geographic:
        left, bottom, right, top = handle.bounds
        metres = 111_320.0 ** 2 * math.cos(math.radians((bottom + top) / 2))
        return area * metres / 1e6
    factor = handle.crs.linear_units_factor[1] if handle.crs.linear_units_factor else 1.0
    return area * factor ** 2 / 1e6


def deal(sizes: list[int], shards: int) -> list[list[int]]:
    """Indices of ``sizes`` per shard: largest first to the least-loaded shard (ties: the lower index), each
    shard's indices in catalogue order. Deterministic, so every shard deals the same."""
    if shards < 1:
        raise ConfigError(f"shards={shards}: expected a shard count >= 1")
    loads = [0] * shards
    owner = [0] * len(sizes)
    for index in sorted(range(len(sizes)), key=lambda i: (-sizes[i], i)):
        shard = min(range(shards), key=lambda s: (loads[s], s))
        owner[index] = shard
        loads[shard] += max(sizes[index], 1)  # an unreadable scene (size 0) still takes a turn
    return [[i for i in range(len(sizes)) if owner[i] == s] for s in range(shards)]


def describe(scenes: list[SceneInfo]) -> str:
    """``6 scenes, 46,080 px (0.18 km²)``: what a region or a shard will predict."""
    km2 = [s.km2 for s in scenes if s.km2 is not None]
    area = f" ({sum(km2):,.2f} km²)" if km2 else ""
    return f"{len(scenes)} scene{'s' * (len(scenes) != 1)}, {sum(s.pixels for s in scenes):,} px{area}"
