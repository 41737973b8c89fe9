"""Scene sources for the real datasets, read exactly as their official archives extract.

Each source lists the scenes of a split (``split("train" | "val" | "test") -> list[Scene]``) under a *protocol*
(``conf/protocol/``): which split table (``standard``: mmsegmentation/torchgeo and the datasets' own splits;
``geoseg``: the UNetFormer/GeoSeg split of ISPRS; ``random``: the papers' random split of 512 x 512 tiles from a
seed), which labels train and evaluate (``full`` or ``eroded``: the ISPRS ``noBoundary`` files), and where a
``split_file`` (a JSON manifest, as ``rsseg prepare`` writes) replaces the built-in tables.

Model selection never sees the test split: where a split table has no validation part (the random tile split,
ISPRS ``standard``, GID), ``val_fraction`` of the training part is held out to validate (seeded with
``split_seed``), so the test part stays exactly the paper's or the dataset's. ``select_on="test"`` asks for the
papers' own practice, the best epoch on the test split: validation then uses the test scenes, and every table
marks runs made so.

Missing files are reported all at once, one line each, naming the file and the dataset layout that expects it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rsseg.data.raster import Scene, open_raster
from rsseg.errors import ConfigError, DataError

SPLITS = ("train", "val", "test")
LABEL_CHOICES = ("full", "eroded")
SELECT_ON = ("val", "test")


@dataclass(frozen=True)
class Record:
    """One scene of a dataset as it lies on disk: its image, its full label and (ISPRS) its eroded label."""

    id: str
    image: Path
    label: Path | None = None
    eroded: Path | None = None


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
        val_fraction: float = 0.1,
        select_on: str = "val",
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
        if not 0 < train_fraction <= 1 or not 0 <= val_fraction < 1:
            raise ConfigError(
                f"{self.dataset}: train_fraction={train_fraction} and val_fraction={val_fraction}; expected "
                f"0 < train_fraction <= 1 (the training part, validation included) and 0 <= val_fraction < 1 "
                f"(the share of the training part that validates)"
            )
        if select_on not in SELECT_ON:
            raise ConfigError(f"protocol.select_on={select_on!r}; expected 'val' (a validation split disjoint from "
                              f"test chooses the checkpoint) or 'test' (the papers' best epoch on the test split)")
        self.split_name = split
        self.train_labels, self.eval_labels = train_labels, eval_labels
        self.split_file = Path(str(split_file)).expanduser() if split_file else None
        self.split_seed = int(split_seed)
        self.split_tile_size = int(split_tile_size)
        self.train_fraction, self.val_fraction = float(train_fraction), float(val_fraction)
        self.select_on = select_on
        self._assignments: dict[str, list[Scene]] | None = None

    # -- what subclasses provide -------------------------------------------------------------------------------
    def records(self) -> list[Record]:
        """Every scene of the dataset (expected by its layout, whether or not the files are there)."""
        raise NotImplementedError

    def split_ids(self, table: str) -> dict[str, list[str]]:
        """The record ids of train, val and test under the built-in split table ``table``; a table without a
        validation part leaves ``val`` empty and :meth:`_assign` holds it out of ``train``."""
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
                if not scenes:
                    return f"no scene was found under {self.root}; expected the dataset's images there"
                side = 1 << (min(largest).bit_length() - 1)  # the largest power of two that fits
                return (f"no {size} x {size} tile fits in any of the {scenes} scenes under {self.root} (the largest "
                        f"is {largest[0]} x {largest[1]}); expected tiles that fit, e.g. "
                        f"data.scenes.split_tile_size={side}")
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
                "val_fraction": self.val_fraction, "select_on": self.select_on,
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
            elif self.split_name == "random" or self.tiles_by_default():
                self._assignments = self._random_tiles()
            else:
                self._assignments = self._from_table(self.split_ids(self.split_name))
            self._assignments = self._selection_split(self._assignments)
        return self._assignments

    def tiles_by_default(self) -> bool:
        """Whether this source's ``standard`` split is the random tile split (a folder without split lists)."""
        return False

    def split_origin(self) -> str:
        """Where the split lists came from, for error messages."""
        return f"the split file {self.split_file}" if self.split_file else f"the {self.split_name} split table"

    def _held_out(self, parts: dict) -> dict:
        """``parts`` (lists of ids, entries or tile indices per split) with ``val_fraction`` of ``train`` moved to
        ``val`` (seeded with ``split_seed``) when the table has no validation part; the test part is untouched."""
        train = list(parts.get("train", []))
        if list(parts.get("val", [])) or not train or self.val_fraction <= 0 or self.select_on == "test":
            return parts
        order = np.random.default_rng([self.split_seed, 1]).permutation(len(train))
        held = set(order[: min(len(train) - 1, max(1, int(round(self.val_fraction * len(train)))))].tolist())
        return {**parts, "train": [x for i, x in enumerate(train) if i not in held],
                "val": [x for i, x in enumerate(train) if i in held]}

    def _selection_split(self, parts: dict[str, list[Scene]]) -> dict[str, list[Scene]]:
        """The validation split that chooses the checkpoint: the test split under ``select_on="test"``, else one
        that shares no scene with test (:meth:`_held_out` made it where the table had none)."""
        if self.select_on == "test":
            return {**parts, "val": list(parts["test"])}
        test = {_scene_key(s) for s in parts["test"]}
        shared = [s.name for s in parts["val"] if _scene_key(s) in test]
        if shared:
            raise ConfigError(
                f"{self.dataset}: {self.split_origin()} validates on {len(shared)} test scene(s) (e.g. {shared[0]}); "
                f"expected a validation split disjoint from test, or protocol.select_on=test to choose the "
                f"checkpoint on the test split on purpose (tables then mark the run)"
            )
        return parts

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
        ids = self._held_out(ids)
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
        splits = self._held_out({name: list(splits.get(name, [])) for name in SPLITS})
        for name in SPLITS:
            role = "train" if name == "train" else "eval"
            scenes = []
            for entry in splits[name]:
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
        13 x 14 = 182 tiles per 6800 x 7200 GID scene), the tiles shuffled with ``split_seed``, the first
        ``train_fraction`` train and the rest test. The papers had no validation set: :meth:`_selection_split`
        holds ``val_fraction`` of the training tiles out, so the test tiles are the same whatever it is."""
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
        parts = self._held_out({"train": order[:n_train].tolist(), "val": [], "test": order[n_train:].tolist()})

        def scene(index: int, role: str) -> Scene:
            record, window = tiles[index]
            return Scene(record.image, self._label_for(record, role), f"{record.id}@{window[0]},{window[1]}", window)

        # Sorted by position so that reading order follows the files, whatever the shuffle.
        return {
            name: [scene(i, "train" if name == "train" else "eval") for i in sorted(parts[name])]
            for name in SPLITS
        }


def _scene_key(scene: Scene) -> tuple:
    """What makes two scenes the same pixels: the image and the window read from it."""
    return (str(scene.image), tuple(scene.window) if scene.window else None)


def all_scenes(source, names: Iterable[str] = SPLITS) -> dict[str, list[Scene]]:
    """Every split of a source, tolerating missing files (used by ``rsseg prepare``)."""
    return {name: source.split(name, strict=False) for name in names}
