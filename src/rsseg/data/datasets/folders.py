"""Folder datasets, whose scenes are whatever images the folder holds: FolderSceneSet, GID, Massachusetts, LoveDA, Dubai."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rsseg.data.datasets.base import SPLITS, Record, SceneSet
from rsseg.errors import ConfigError, DataError
from rsseg.runtime.files import natural_key


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
    the data, so rsseg draws the 30 test scenes from the sorted names with ``split_seed``; ``val_fraction`` of the
    120 training scenes validate (12 by default). Pass ``split_file`` for a specific list.
    """

    dataset = "gid"
    VARIANTS = {"rgb": "image_RGB", "nirrgb": "image_NirRGB"}

    def __init__(
        self,
        root: str | Path,
        variant: str = "rgb",
        folder: str = "Large-scale Classification_5classes",
        label_dir: str = "label_5classes",
        test_scenes: int = 30,
        **protocol,
    ) -> None:
        super().__init__(root, **protocol)
        if variant not in self.VARIANTS:
            raise ConfigError(f"gid: variant={variant!r}; expected one of {', '.join(self.VARIANTS)}")
        self.variant, self.folder, self.label_dir, self.test_scenes = variant, folder, label_dir, int(test_scenes)

    def _discover(self) -> list[Record]:
        base = self.root / self.folder
        return [
            Record(p.stem, p, base / self.label_dir / f"{p.stem}_label.tif")
            for p in self._list(base / self.VARIANTS[self.variant], "*.tif")
        ]

    def split_ids(self, table: str) -> dict[str, list[str]]:
        ids = [r.id for r in self.records()]
        if ids and len(ids) <= self.test_scenes:
            raise DataError(f"gid: only {len(ids)} scenes found under {self.root / self.folder}, fewer than "
                            f"test_scenes={self.test_scenes} + 1")
        return {"val": [], **_seeded_split(ids, {"test": self.test_scenes}, self.split_seed)}


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
        tiles = sorted((p for p in self.root.glob("Tile_*") if p.is_dir()), key=lambda p: natural_key(p.name))
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
