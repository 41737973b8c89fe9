"""Scene sources for the real datasets, read exactly as their official archives extract.

Each source lists the scenes of a split (``split("train" | "val" | "test") -> list[Scene]``) under a *protocol*
(``conf/protocol/``): which split table (``standard``: mmsegmentation/torchgeo and the datasets' own splits;
``geoseg``: the UNetFormer/GeoSeg split of ISPRS; ``random``: the papers' random split of 512 x 512 tiles from a
seed), which labels train and evaluate (``full`` or ``eroded``: the ISPRS ``noBoundary`` files), and where a
``split_file`` (a JSON manifest, as ``rsseg prepare`` writes) replaces the built-in tables.

Missing files are reported all at once, one line each, naming the file and the dataset layout that expects it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rsseg.data.raster import Scene, open_raster
from rsseg.errors import ConfigError, DataError

SPLITS = ("train", "val", "test")
LABEL_CHOICES = ("full", "eroded")


@dataclass(frozen=True)
class Record:
    """One scene of a dataset as it lies on disk: its image, its full label and (ISPRS) its eroded label."""

    id: str
    image: Path
    label: Path | None = None
    eroded: Path | None = None


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


class SceneSet:
    """The common part of every dataset source: protocols, split files, random tile splits, missing-file reports.

    Subclasses say which scenes exist (:meth:`records`) and which ids the built-in split tables put in train,
    val and test (:meth:`split_ids`).
    """

    dataset = "dataset"
    has_eroded = False
    split_tables: tuple[str, ...] = ("standard",)

    def __init__(
        self,
        root: str | Path,
        split: str = "standard",
        train_labels: str = "full",
        eval_labels: str = "eroded",
        split_file: str | Path | None = None,
        split_seed: int = 0,
        split_tile_size: int = 512,
        train_fraction: float = 0.8,
        val_fraction: float = 0.0,
    ) -> None:
        if root is None or str(root) in ("", "???"):
            raise ConfigError(f"{self.dataset}: data.root is not set; pass data.root=/path/to/{self.dataset}")
        self.root = Path(str(root)).expanduser()
        known = (*self.split_tables, "random", "manifest")
        if split == "manifest" and not split_file:
            raise ConfigError("protocol=manifest needs protocol.split_file=<a JSON manifest, e.g. rsseg prepare's splits.json>")
        if split not in known:
            raise ConfigError(
                f"protocol split {split!r} is not defined for {self.dataset}; expected one of {', '.join(known)}"
            )
        for key, value in (("train_labels", train_labels), ("eval_labels", eval_labels)):
            if value not in LABEL_CHOICES:
                raise ConfigError(f"{self.dataset}: {key}={value!r}; expected 'full' or 'eroded'")
        if not 0 < train_fraction <= 1 or not 0 <= val_fraction < 1 or train_fraction + val_fraction > 1:
            raise ConfigError(
                f"{self.dataset}: train_fraction={train_fraction} and val_fraction={val_fraction} must be fractions "
                f"with train_fraction + val_fraction <= 1"
            )
        self.split_name = split
        self.train_labels, self.eval_labels = train_labels, eval_labels
        self.split_file = Path(str(split_file)).expanduser() if split_file else None
        self.split_seed = int(split_seed)
        self.split_tile_size = int(split_tile_size)
        self.train_fraction, self.val_fraction = float(train_fraction), float(val_fraction)
        self._assignments: dict[str, list[Scene]] | None = None

    # -- what subclasses provide -------------------------------------------------------------------------------
    def records(self) -> list[Record]:
        """Every scene of the dataset (expected by its layout, whether or not the files are there)."""
        raise NotImplementedError

    def split_ids(self, table: str) -> dict[str, list[str]]:
        """The record ids of train, val and test under the built-in split table ``table``."""
        raise NotImplementedError

    def discovery_problems(self) -> list[str]:
        """Problems found while listing the folder (a missing folder, no image at all)."""
        return []

    # -- splits ------------------------------------------------------------------------------------------------
    def split(self, name: str, strict: bool = True) -> list[Scene]:
        """The scenes of split ``name``; with ``strict``, any missing file of the split is an error listing all."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected train, val or test")
        if not self.root.is_dir():
            raise DataError(f"{self.root}: {self.dataset} folder not found (set data.root=/path/to/{self.dataset})")
        scenes = self._assign()[name]
        missing = sorted({str(p) for s in scenes for p in (s.image, s.label) if p is not None and not p.exists()})
        if strict:
            problems = [*self._listing_problems(), *(f"{p}: file not found" for p in missing)]
            if problems:
                raise DataError(self._report(problems, f"the {name} split"))
            return scenes
        return [s for s in scenes if s.image.exists() and (s.label is None or s.label.exists())]

    def why_empty(self, split: str) -> str:
        """Why ``split`` holds no scene, and what would give it some (for the one-line error)."""
        self._assign()
        if self.split_file is not None:
            return f"the split file {self.split_file} lists no scene under {split!r}; expected scenes there"
        tiles = getattr(self, "_tile_count", None)
        if tiles is not None:
            size, (scenes, largest) = self.split_tile_size, self._tile_sources
            if tiles == 0:
                fits = f"the largest is {largest[0]} x {largest[1]}" if scenes else "no scene was found"
                return (f"no {size} x {size} tile fits in any of the {scenes} scenes under {self.root} ({fits}); "
                        f"expected protocol.split_tile_size at most the scenes' size")
            return (f"the {tiles} tiles of {size} x {size} px cut from {scenes} scenes leave none for {split} with "
                    f"train_fraction={self.train_fraction} and val_fraction={self.val_fraction}; expected more "
                    f"scenes or other fractions")
        listed = self.discovery_problems()
        if listed:
            return f"{'; '.join(listed[:3])}; expected the dataset's files under {self.root}"
        return (f"the {self.split_name} split table of {self.dataset} puts no scene found under {self.root} in "
                f"{split}; expected scenes of that split there")

    def problems(self) -> list[str]:
        """Every missing file of every split, one line each (``rsseg prepare`` lists them all)."""
        if not self.root.is_dir():
            return [f"{self.root}: {self.dataset} folder not found (set data.root=/path/to/{self.dataset})"]
        missing = sorted(
            {str(p) for name in SPLITS for s in self._assign()[name] for p in (s.image, s.label)
             if p is not None and not p.exists()}
        )
        return [*self._listing_problems(), *(f"{p}: file not found" for p in missing)]

    def _listing_problems(self) -> list[str]:
        # A split file that names its files directly does not depend on listing the dataset folder.
        return self.discovery_problems() if getattr(self, "_listed", True) else []

    def _report(self, problems: list[str], what: str) -> str:
        head = f"{self.dataset} under {self.root}: {len(problems)} problem(s) in {what}"
        shown = problems[:50]
        more = [f"  ... and {len(problems) - len(shown)} more (run `rsseg prepare` for the full list)"] if len(problems) > 50 else []
        return "\n".join([head, *(f"  {p}" for p in shown), *more])

    def manifest(self) -> dict:
        """The splits as JSON-ready data, paths relative to the root where they lie inside it."""

        def rel(path: Path | None) -> str | None:
            if path is None:
                return None
            try:
                return str(path.relative_to(self.root))
            except ValueError:
                return str(path)

        return {
            "dataset": self.dataset,
            "root": str(self.root),
            "protocol": {
                "split": self.split_name, "train_labels": self.train_labels, "eval_labels": self.eval_labels,
                "split_file": str(self.split_file) if self.split_file else None, "split_seed": self.split_seed,
                "split_tile_size": self.split_tile_size, "train_fraction": self.train_fraction,
                "val_fraction": self.val_fraction,
            },
            "splits": {
                name: [
                    {"name": s.name, "image": rel(s.image), "label": rel(s.label),
                     "window": list(s.window) if s.window else None}
                    for s in self._assign()[name]
                ]
                for name in SPLITS
            },
        }

    def _label_for(self, record: Record, role: str) -> Path | None:
        choice = self.train_labels if role == "train" else self.eval_labels
        if choice == "eroded" and self.has_eroded and record.eroded is not None:
            return record.eroded
        return record.label

    def _assign(self) -> dict[str, list[Scene]]:
        if self._assignments is None:
            if self.split_file is not None:
                self._listed = False
                self._assignments = self._from_split_file()
            elif self.split_name == "random":
                self._assignments = self._random_tiles()
            else:
                self._assignments = self._from_table(self.split_ids(self.split_name))
        return self._assignments

    def _by_id(self) -> dict[str, Record]:
        return {r.id: r for r in self.records()}

    def resolve_id(self, entry: str, records: dict[str, Record]) -> str | None:
        """The scene id a split list's entry names (exactly, or by its last path part when that is unique)."""
        if entry in records:
            return entry
        entry = str(Path(entry).with_suffix("")) if Path(entry).suffix.lower() in (".tif", ".tiff", ".png", ".jpg") else entry
        if entry in records:
            return entry
        matches = [i for i in records if Path(i).name == entry]
        return matches[0] if len(matches) == 1 else None

    def _from_table(self, ids: dict[str, list[str]]) -> dict[str, list[Scene]]:
        records = self._by_id()
        out: dict[str, list[Scene]] = {}
        for name in SPLITS:
            unknown = [i for i in ids.get(name, []) if i not in records]
            if unknown:
                raise ConfigError(f"{self.dataset}: split {name} names unknown scenes {unknown[:5]}")
            role = "train" if name == "train" else "eval"
            out[name] = [Scene(records[i].image, self._label_for(records[i], role), i) for i in ids.get(name, [])]
        return out

    def _from_split_file(self) -> dict[str, list[Scene]]:
        """A JSON manifest ``{"splits": {"train": [...], ...}}`` or ``{"train": [...], ...}``; entries are scene
        ids of this dataset or ``{"image", "label", "name", "window"}`` objects with paths relative to the root."""
        path = self.split_file
        if not path.exists():
            raise DataError(f"{path}: split file not found")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise DataError(f"{path}: not valid JSON ({error})") from None
        splits = data.get("splits", data) if isinstance(data, dict) else None
        if not isinstance(splits, dict) or not any(name in splits for name in SPLITS):
            raise DataError(f"{path}: expected {{'train': [...], 'val': [...], 'test': [...]}} (or under 'splits')")
        base = self.root  # relative paths are relative to data.root; absolute ones stay as they are
        records = None
        out: dict[str, list[Scene]] = {}
        for name in SPLITS:
            role = "train" if name == "train" else "eval"
            scenes = []
            for entry in splits.get(name, []):
                if isinstance(entry, str):
                    records = records if records is not None else self._by_id()
                    scene_id = self.resolve_id(entry, records)
                    if scene_id is None:
                        raise DataError(f"{path}: split {name} names {entry!r}, not a scene of {self.dataset}")
                    scenes.append(Scene(records[scene_id].image, self._label_for(records[scene_id], role), scene_id))
                elif isinstance(entry, dict) and "image" in entry:
                    label = entry.get("label")
                    scenes.append(
                        Scene(
                            base / entry["image"],
                            base / label if label else None,
                            entry.get("name") or Path(entry["image"]).stem,
                            tuple(entry["window"]) if entry.get("window") else None,
                        )
                    )
                else:
                    raise DataError(f"{path}: split {name} entry {entry!r} is neither a scene id nor an object with 'image'")
            out[name] = scenes
        return out

    def _random_tiles(self) -> dict[str, list[Scene]]:
        """The papers' protocol: every scene cut into ``split_tile_size`` tiles without overlap (remainders dropped:
        13 x 14 = 182 tiles per 6800 x 7200 GID scene), the tiles shuffled with ``split_seed`` and split by
        fraction. With ``val_fraction`` 0 (the papers had no validation set) validation uses the test tiles."""
        size = self.split_tile_size
        tiles: list[tuple[Record, tuple[int, int, int, int]]] = []
        scenes, largest = 0, (0, 0)
        for record in sorted(self.records(), key=lambda r: r.id):
            if not record.image.exists():
                continue  # reported as missing by problems()/split()
            with open_raster(record.image) as handle:
                height, width = handle.height, handle.width
            scenes, largest = scenes + 1, max(largest, (height, width), key=lambda s: s[0] * s[1])
            for row in range(0, height - size + 1, size):
                for col in range(0, width - size + 1, size):
                    tiles.append((record, (row, col, size, size)))
        self._tile_count, self._tile_sources = len(tiles), (scenes, largest)
        order = np.random.default_rng(self.split_seed).permutation(len(tiles))
        n_train = int(round(self.train_fraction * len(tiles)))
        n_val = int(round(self.val_fraction * len(tiles)))
        parts = {
            "train": order[:n_train],
            "val": order[n_train : n_train + n_val],
            "test": order[n_train + n_val :],
        }
        if n_val == 0:
            parts["val"] = parts["test"]

        def scene(index: int, role: str) -> Scene:
            record, window = tiles[index]
            return Scene(record.image, self._label_for(record, role), f"{record.id}@{window[0]},{window[1]}", window)

        # Sorted by position so that reading order follows the files, whatever the shuffle.
        return {
            name: [scene(i, "train" if name == "train" else "eval") for i in sorted(parts[name].tolist())]
            for name in SPLITS
        }


# ---------------------------------------------------------------------------------------------------------------
# ISPRS Vaihingen and Potsdam


class Vaihingen(SceneSet):
    """ISPRS Vaihingen 2D semantic labelling: 33 IRRG true-orthophoto tiles at 9 cm.

    Default layout, each official archive unzipped into a folder named after it::

        ISPRS_semantic_labeling_Vaihingen/top/top_mosaic_09cm_area{N}.tif                   (3-band IRRG)
        ISPRS_semantic_labeling_Vaihingen_ground_truth_COMPLETE/top_mosaic_09cm_area{N}.tif    (colour labels)
        ISPRS_semantic_labeling_Vaihingen_ground_truth_eroded_COMPLETE/top_mosaic_09cm_area{N}_noBoundary.tif

    Split tables: ``standard`` (mmsegmentation = torchgeo: 16 train areas; the 17 others validate and test) and
    ``geoseg`` (UNetFormer: the same 17 test areas, area 30 validates, the 15 other train).
    """

    dataset = "vaihingen"
    has_eroded = True
    split_tables = ("standard", "geoseg")
    AREAS = (1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15, 16, 17, 20, 21, 22, 23, 24, 26, 27, 28, 29, 30, 31, 32,
             33, 34, 35, 37, 38)
    TRAIN = (1, 3, 5, 7, 11, 13, 15, 17, 21, 23, 26, 28, 30, 32, 34, 37)
    TEST = (2, 4, 6, 8, 10, 12, 14, 16, 20, 22, 24, 27, 29, 31, 33, 35, 38)
    GEOSEG_VAL = (30,)

    def __init__(
        self,
        root: str | Path,
        image_dir: str = "ISPRS_semantic_labeling_Vaihingen/top",
        label_dir: str = "ISPRS_semantic_labeling_Vaihingen_ground_truth_COMPLETE",
        eroded_dir: str = "ISPRS_semantic_labeling_Vaihingen_ground_truth_eroded_COMPLETE",
        **protocol,
    ) -> None:
        super().__init__(root, **protocol)
        self.image_dir, self.label_dir, self.eroded_dir = image_dir, label_dir, eroded_dir

    def records(self) -> list[Record]:
        return [
            Record(
                f"area{n}",
                self.root / self.image_dir / f"top_mosaic_09cm_area{n}.tif",
                self.root / self.label_dir / f"top_mosaic_09cm_area{n}.tif",
                self.root / self.eroded_dir / f"top_mosaic_09cm_area{n}_noBoundary.tif",
            )
            for n in self.AREAS
        ]

    def split_ids(self, table: str) -> dict[str, list[str]]:
        test = [f"area{n}" for n in self.TEST]
        if table == "geoseg":
            val = [f"area{n}" for n in self.GEOSEG_VAL]
            return {"train": [f"area{n}" for n in self.TRAIN if n not in self.GEOSEG_VAL], "val": val, "test": test}
        return {"train": [f"area{n}" for n in self.TRAIN], "val": test, "test": test}


class Potsdam(SceneSet):
    """ISPRS Potsdam 2D semantic labelling: 38 tiles of 6000 x 6000 px at 5 cm.

    Default layout, each official archive unzipped into a folder named after it::

        2_Ortho_RGB/top_potsdam_{i}_{j}_RGB.tif          variant rgb   (R, G, B)
        3_Ortho_IRRG/top_potsdam_{i}_{j}_IRRG.tif        variant irrg  (IR, R, G)
        4_Ortho_RGBIR/top_potsdam_{i}_{j}_RGBIR.tif      variant rgbir (R, G, B, IR)
        5_Labels_all/top_potsdam_{i}_{j}_label.tif
        5_Labels_all_noBoundary/top_potsdam_{i}_{j}_label_noBoundary.tif

    Split tables: ``standard`` (mmsegmentation = torchgeo: 24 train tiles, 14 validate and test) and ``geoseg``
    (UNetFormer: the same 14 test tiles, 2_10 validates, the other 22 train, without 7_10 and its faulty labels).
    """

    dataset = "potsdam"
    has_eroded = True
    split_tables = ("standard", "geoseg")
    TRAIN = ("2_10", "2_11", "2_12", "3_10", "3_11", "3_12", "4_10", "4_11", "4_12", "5_10", "5_11", "5_12", "6_7",
             "6_8", "6_9", "6_10", "6_11", "6_12", "7_7", "7_8", "7_9", "7_10", "7_11", "7_12")
    TEST = ("2_13", "2_14", "3_13", "3_14", "4_13", "4_14", "4_15", "5_13", "5_14", "5_15", "6_13", "6_14", "6_15",
            "7_13")
    GEOSEG_VAL = ("2_10",)
    GEOSEG_EXCLUDED = ("7_10",)  # "image 7_10 with error annotations" (UNetFormer protocol)
    VARIANTS = {"rgb": ("2_Ortho_RGB", "RGB"), "irrg": ("3_Ortho_IRRG", "IRRG"), "rgbir": ("4_Ortho_RGBIR", "RGBIR")}

    def __init__(
        self,
        root: str | Path,
        variant: str = "rgb",
        image_dir: str | None = None,
        label_dir: str = "5_Labels_all",
        eroded_dir: str = "5_Labels_all_noBoundary",
        **protocol,
    ) -> None:
        super().__init__(root, **protocol)
        if variant not in self.VARIANTS:
            raise ConfigError(f"potsdam: variant={variant!r}; expected one of {', '.join(self.VARIANTS)}")
        self.variant = variant
        self.image_dir = image_dir or self.VARIANTS[variant][0]
        self.label_dir, self.eroded_dir = label_dir, eroded_dir

    def records(self) -> list[Record]:
        suffix = self.VARIANTS[self.variant][1]
        return [
            Record(
                tile,
                self.root / self.image_dir / f"top_potsdam_{tile}_{suffix}.tif",
                self.root / self.label_dir / f"top_potsdam_{tile}_label.tif",
                self.root / self.eroded_dir / f"top_potsdam_{tile}_label_noBoundary.tif",
            )
            for tile in (*self.TRAIN, *self.TEST)
        ]

    def split_ids(self, table: str) -> dict[str, list[str]]:
        test = list(self.TEST)
        if table == "geoseg":
            drop = (*self.GEOSEG_VAL, *self.GEOSEG_EXCLUDED)
            return {"train": [t for t in self.TRAIN if t not in drop], "val": list(self.GEOSEG_VAL), "test": test}
        return {"train": list(self.TRAIN), "val": test, "test": test}


# ---------------------------------------------------------------------------------------------------------------
# Folder datasets: the scenes are whatever images the folder holds


class FolderSceneSet(SceneSet):
    """A source whose scenes are discovered by listing image files, each with a label path derived from it."""

    def _list(self, folder: Path, pattern: str) -> list[Path]:
        if not folder.is_dir():
            self._missing_dirs.add(f"{folder}: folder not found")
            return []
        files = sorted(folder.glob(pattern))
        if not files:
            self._missing_dirs.add(f"{folder}: no files matching {pattern!r}")
        return files

    def records(self) -> list[Record]:
        self._listed = True
        if getattr(self, "_records", None) is None:
            self._missing_dirs: set[str] = set()
            self._records = self._discover()
        return self._records

    def _discover(self) -> list[Record]:
        raise NotImplementedError

    def discovery_problems(self) -> list[str]:
        if getattr(self, "_records", None) is None:
            return []
        return sorted(self._missing_dirs)


def _seeded_split(ids: Sequence[str], counts: dict[str, int], seed: int) -> dict[str, list[str]]:
    """Split sorted ``ids`` at random (from ``seed``) into parts of the given sizes; the rest goes to train."""
    ids = sorted(ids)
    order = np.random.default_rng(seed).permutation(len(ids)).tolist()
    out, start = {}, 0
    for name, count in counts.items():
        out[name] = sorted(ids[i] for i in order[start : start + count])
        start += count
    out["train"] = sorted(ids[i] for i in order[start:])
    return out


class GID(FolderSceneSet):
    """GID-5, the large-scale classification set of the Gaofen Image Dataset: 150 Gaofen-2 scenes, 6800 x 7200 px.

    Layout as the archive extracts::

        Large-scale Classification_5classes/image_RGB/GF2_PMS1__L1A0000564539-MSS1.tif      (R, G, B)
        Large-scale Classification_5classes/image_NirRGB/GF2_PMS1__L1A0000564539-MSS1.tif   (NIR, R, G, B)
        Large-scale Classification_5classes/label_5classes/GF2_PMS1__L1A0000564539-MSS1_label.tif

    The ``standard`` table is the 120 / 30 scene split used by many: the IDs of that split are not published with
    the data, so rsseg draws the 30 validation scenes from the sorted names with ``split_seed`` (test = val).
    Pass ``split_file`` for a specific list.
    """

    dataset = "gid"
    VARIANTS = {"rgb": "image_RGB", "nirrgb": "image_NirRGB"}

    def __init__(
        self,
        root: str | Path,
        variant: str = "rgb",
        folder: str = "Large-scale Classification_5classes",
        label_dir: str = "label_5classes",
        val_scenes: int = 30,
        **protocol,
    ) -> None:
        super().__init__(root, **protocol)
        if variant not in self.VARIANTS:
            raise ConfigError(f"gid: variant={variant!r}; expected one of {', '.join(self.VARIANTS)}")
        self.variant, self.folder, self.label_dir, self.val_scenes = variant, folder, label_dir, int(val_scenes)

    def _discover(self) -> list[Record]:
        base = self.root / self.folder
        return [
            Record(p.stem, p, base / self.label_dir / f"{p.stem}_label.tif")
            for p in self._list(base / self.VARIANTS[self.variant], "*.tif")
        ]

    def split_ids(self, table: str) -> dict[str, list[str]]:
        ids = [r.id for r in self.records()]
        if ids and len(ids) <= self.val_scenes:
            raise DataError(f"gid: only {len(ids)} scenes found under {self.root / self.folder}, fewer than val_scenes={self.val_scenes} + 1")
        parts = _seeded_split(ids, {"val": self.val_scenes}, self.split_seed)
        parts["test"] = parts["val"]
        return parts


class Massachusetts(FolderSceneSet):
    """Massachusetts Buildings (Mnih 2013): 151 RGB tiles of 1500 x 1500 px at 1 m, split 137 / 4 / 10.

    Layout of the widely used Kaggle release::

        tiff/{train,val,test}/*.tiff            images
        tiff/{train,val,test}_labels/*.tif      labels (note the single-f .tif): buildings red (255, 0, 0)
    """

    dataset = "massachusetts"

    def __init__(self, root: str | Path, folder: str = "tiff", **protocol) -> None:
        super().__init__(root, **protocol)
        self.folder = folder

    def _discover(self) -> list[Record]:
        base = self.root / self.folder
        return [
            Record(f"{part}/{p.stem}", p, base / f"{part}_labels" / f"{p.stem}.tif")
            for part in SPLITS
            for p in self._list(base / part, "*.tiff")
        ]

    def split_ids(self, table: str) -> dict[str, list[str]]:
        return {name: [r.id for r in self.records() if r.id.split("/")[0] == name] for name in SPLITS}


class LoveDA(FolderSceneSet):
    """LoveDA: 1024 x 1024 PNG tiles of urban and rural China; index masks (0 no-data, 1..7 classes).

    Layout as the archives extract::

        {Train,Val,Test}/{Urban,Rural}/images_png/*.png
        {Train,Val}/{Urban,Rural}/masks_png/*.png

    ``standard``: train = Train, val = Val; the Test masks are hidden (scored on Codalab), so the test split is
    empty (predict Test with predict.py).
    """

    dataset = "loveda"

    def __init__(self, root: str | Path, domains: Sequence[str] = ("Urban", "Rural"), **protocol) -> None:
        super().__init__(root, **protocol)
        bad = [d for d in domains if d not in ("Urban", "Rural")]
        if bad or not domains:
            raise ConfigError(f"loveda: domains={list(domains)}; expected a subset of [Urban, Rural]")
        self.domains = list(domains)

    def _discover(self) -> list[Record]:
        return [
            Record(f"{part}/{domain}/{p.stem}", p, self.root / part / domain / "masks_png" / p.name)
            for part in ("Train", "Val")
            for domain in self.domains
            for p in self._list(self.root / part / domain / "images_png", "*.png")
        ]

    def split_ids(self, table: str) -> dict[str, list[str]]:
        ids = [r.id for r in self.records()]
        return {"train": [i for i in ids if i.startswith("Train/")], "val": [i for i in ids if i.startswith("Val/")],
                "test": []}


class DubaiAerial(FolderSceneSet):
    """"Semantic segmentation of aerial imagery" (Humans in the Loop / MBRSC, Dubai; CC0): 7 tiles x 9 images.

    Layout::

        Tile_{1..7}/images/image_part_00N.jpg       RGB, no georeferencing
        Tile_{1..7}/masks/image_part_00N.png        RGB or palette-mode colour masks

    ``standard`` (rsseg's: the set has no official split): in every tile, part ``val_parts`` validates and part
    ``test_parts`` tests, the others train (49 / 7 / 7), so every area appears in every split.
    """

    dataset = "dubai"

    def __init__(
        self, root: str | Path, val_parts: Sequence[int] = (8,), test_parts: Sequence[int] = (9,), **protocol
    ) -> None:
        super().__init__(root, **protocol)
        self.val_parts, self.test_parts = {int(p) for p in val_parts}, {int(p) for p in test_parts}

    def _discover(self) -> list[Record]:
        tiles = sorted((p for p in self.root.glob("Tile_*") if p.is_dir()), key=lambda p: _natural(p.name))
        if not tiles:
            self._missing_dirs.add(f"{self.root}: no Tile_* folders")
        return [
            Record(f"{tile.name}/{p.stem}", p, tile / "masks" / f"{p.stem}.png")
            for tile in tiles
            for p in self._list(tile / "images", "*.jpg")
        ]

    def split_ids(self, table: str) -> dict[str, list[str]]:
        def part(record_id: str) -> int:
            digits = re.findall(r"\d+", record_id.split("/")[-1])
            return int(digits[-1]) if digits else -1

        ids = [r.id for r in self.records()]
        return {
            "train": [i for i in ids if part(i) not in self.val_parts | self.test_parts],
            "val": [i for i in ids if part(i) in self.val_parts],
            "test": [i for i in ids if part(i) in self.test_parts],
        }


def _natural(name: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


class GeoTiffScenes(FolderSceneSet):
    """Any folder of image rasters with label rasters beside them (the Taikang case).

    ``images`` is a glob relative to the root; ``labels`` a pattern giving each image's label path, relative to
    the root, from ``{stem}`` (file name without suffix), ``{name}`` (file name) and ``{dir}`` (the image's
    folder relative to the root). Rasters may have any band count and dtype; image and label must agree in size,
    CRS and transform.

    Splits: ``splits`` (explicit lists of scene ids, i.e. image paths relative to the root without suffix, or
    bare stems), a ``split_file`` manifest, or the random tile split (``split: random``; also what ``standard``
    means for a folder that names no lists).
    """

    dataset = "geotiff"
    split_tables = ("standard",)

    def __init__(
        self,
        root: str | Path,
        images: str = "images/*.tif",
        labels: str | None = "labels/{stem}.tif",
        splits: dict[str, Sequence[str]] | None = None,
        **protocol,
    ) -> None:
        super().__init__(root, **protocol)
        self.images, self.labels = images, labels
        self.splits = {k: list(v) for k, v in splits.items()} if splits else None
        unknown = set(self.splits or {}) - set(SPLITS)
        if unknown:
            raise ConfigError(f"geotiff: splits has unknown parts {sorted(unknown)}; expected train, val, test")

    def _discover(self) -> list[Record]:
        files = sorted(p for p in self.root.glob(self.images) if p.is_file()) if self.root.is_dir() else []
        if not self.root.is_dir():
            self._missing_dirs.add(f"{self.root}: folder not found")
        elif not files:
            self._missing_dirs.add(f"{self.root}: no images matching {self.images!r}")
        records = []
        for path in files:
            relative = path.relative_to(self.root)
            label = None
            if self.labels:
                try:
                    label = self.root / self.labels.format(
                        stem=path.stem, name=path.name, dir=str(relative.parent), suffix=path.suffix
                    )
                except (KeyError, IndexError) as error:
                    raise ConfigError(
                        f"geotiff: labels pattern {self.labels!r} uses unknown field {error}; "
                        f"use {{stem}}, {{name}}, {{dir}}, {{suffix}}"
                    ) from None
            records.append(Record(str(relative.with_suffix("")), path, label))
        return records

    def split_ids(self, table: str) -> dict[str, list[str]]:
        records = self._by_id()

        def resolve(entry: str) -> str:
            scene_id = self.resolve_id(str(entry), records)
            if scene_id is None:
                raise DataError(f"geotiff: data.scenes.splits names {entry!r}, which matches no image under {self.root}")
            return scene_id

        return {name: [resolve(e) for e in self.splits.get(name, [])] for name in SPLITS}

    def _assign(self) -> dict[str, list[Scene]]:
        # A folder without explicit lists or a split file has no "standard" split: use the random tile split.
        if self._assignments is None and self.split_file is None and self.split_name == "standard" and not self.splits:
            self._assignments = self._random_tiles()
        return super()._assign()


def all_scenes(source, names: Iterable[str] = SPLITS) -> dict[str, list[Scene]]:
    """Every split of a source, tolerating missing files (used by ``rsseg prepare``)."""
    out = {}
    for name in names:
        try:
            out[name] = source.split(name, strict=False)
        except TypeError:  # a source without the ``strict`` switch (synthetic scenes)
            out[name] = source.split(name)
    return out


__all__ = [
    "DubaiAerial", "GID", "GeoTiffScenes", "LoveDA", "Massachusetts", "Potsdam", "Record", "SceneSet", "Vaihingen",
    "all_scenes",
]
