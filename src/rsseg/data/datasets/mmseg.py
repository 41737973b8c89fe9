"""Datasets laid out as mmsegmentation's dataset converters leave them: ``img_dir/<split>`` and ``ann_dir/<split>``."""

from __future__ import annotations

import re
from pathlib import Path

from rsseg.data.datasets.base import SPLITS, Record
from rsseg.data.datasets.folders import FolderSceneSet

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
# mmseg's ISPRS and iSAID converters name each patch after its scene and its box: area1_0_0_512_512.png
PATCH_BOX = re.compile(r"_\d+_\d+_\d+_\d+$")


class MMSegFolders(FolderSceneSet):
    """A dataset in mmsegmentation's layout, as its converters (ISPRS, LoveDA, iSAID ...) write it::

        img_dir/{train,val[,test]}/<stem><img_suffix>        images (PNG, JPEG or GeoTIFF)
        ann_dir/{train,val[,test]}/<stem><seg_map_suffix>    index labels (one band of class values)

    ``img_suffix`` null takes any image suffix; ``seg_map_suffix`` is what mmseg's dataset class names so
    (``.png``; iSAID: ``_instance_color_RGB.png``). An ``img_dir/test`` without ``ann_dir/test`` (LoveDA's hidden
    test labels) is left out: predict it with predict.py.

    Splits: with a labelled test folder, train / val / test are the three folders. Without one, mmseg's ``val``
    folder is the test split (what mmsegmentation reports, e.g. the 17 Vaihingen test areas) and ``val_fraction``
    of the training *scenes* validate (patches named ``<scene>_x0_y0_x1_y1`` by the converters are grouped by
    scene, since they overlap), so the checkpoint is never chosen on the split that is reported;
    ``protocol.select_on=test`` chooses on it as mmsegmentation does, and tables mark the run.
    """

    dataset = "mmseg"

    def __init__(
        self,
        root: str | Path,
        img_dir: str = "img_dir",
        ann_dir: str = "ann_dir",
        img_suffix: str | None = None,
        seg_map_suffix: str = ".png",
        **protocol,
    ) -> None:
        super().__init__(root, **protocol)
        self.img_dir, self.ann_dir = img_dir, ann_dir
        self.img_suffix, self.seg_map_suffix = img_suffix, seg_map_suffix

    def _stem(self, path: Path) -> str | None:
        """The stem mmseg matches image and label by, or None when ``path`` is no image of this dataset."""
        suffixes = (self.img_suffix,) if self.img_suffix else IMAGE_SUFFIXES
        return next((path.name[: -len(s)] for s in suffixes if path.name.lower().endswith(s.lower())), None)

    def labelled_test(self) -> bool:
        return (self.root / self.ann_dir / "test").is_dir()

    def _discover(self) -> list[Record]:
        images, labels = self.root / self.img_dir, self.root / self.ann_dir
        for folder in (images, labels):
            if not folder.is_dir():
                self._missing_dirs.add(
                    f"{folder}: folder not found; expected mmsegmentation's layout, {self.img_dir}/{{train,val}} "
                    f"with the images and {self.ann_dir}/{{train,val}} with their labels (data.scenes.img_dir / "
                    f"data.scenes.ann_dir name other folders)")
        if self._missing_dirs:
            return []
        records = []
        for part in SPLITS:
            if part == "test" and not self.labelled_test():
                continue  # unlabelled test images (LoveDA): nothing to train or score on
            records.extend(self._pairs(images / part, labels / part, part))
        return records

    def _pairs(self, images: Path, labels: Path, part: str) -> list[Record]:
        """The image / label pairs of one split folder; unmatched files are reported in one line per side."""
        if not images.is_dir() or not labels.is_dir():
            missing = images if not images.is_dir() else labels
            self._missing_dirs.add(f"{missing}: folder not found; expected the {part} split there")
            return []
        stems = {}
        for path in sorted(images.iterdir()):
            stem = self._stem(path) if path.is_file() else None
            if stem is not None:
                stems[stem] = path
        if not stems:
            what = f"*{self.img_suffix}" if self.img_suffix else "*.png, *.jpg or *.tif"
            self._missing_dirs.add(f"{images}: no images ({what})")
            return []
        names = {p.name for p in labels.iterdir() if p.is_file()}
        unlabelled = [s for s in stems if f"{s}{self.seg_map_suffix}" not in names]
        if unlabelled:
            self._missing_dirs.add(self._unmatched(images, labels, unlabelled, len(stems), names))
        return [Record(f"{part}/{s}", stems[s], labels / f"{s}{self.seg_map_suffix}")
                for s in stems if s not in unlabelled]

    def _unmatched(self, images: Path, labels: Path, unlabelled: list[str], count: int, names: set[str]) -> str:
        example = f"{unlabelled[0]}{self.seg_map_suffix}"
        found = sorted(n for n in names if not n.startswith("."))
        seen = f"; {labels.name}/ holds e.g. {found[0]}" if found else f"; {labels} is empty"
        # Labels named <stem><another suffix>: say which seg_map_suffix would match them.
        suffix = next((n[len(unlabelled[0]):] for n in found if n.startswith(unlabelled[0])), None)
        hint = f", e.g. data.scenes.seg_map_suffix={suffix}" if suffix else ""
        return (f"{labels}: {len(unlabelled)} of the {count} images in {images} have no label of the same stem "
                f"(e.g. no {example}{seen}); expected <stem>{self.seg_map_suffix} for every <stem> image "
                f"(data.scenes.seg_map_suffix and data.scenes.img_suffix are mmseg's seg_map_suffix and img_suffix"
                f"{hint})")

    def split_ids(self, table: str) -> dict[str, list[str]]:
        by_part = {name: [r.id for r in self.records() if r.id.split("/", 1)[0] == name] for name in SPLITS}
        if self.labelled_test():
            return by_part
        parts = {"train": by_part["train"], "val": [], "test": by_part["val"]}
        scenes = sorted({PATCH_BOX.sub("", i) for i in parts["train"]})
        if len(scenes) < 2 or len(scenes) == len(parts["train"]):
            return parts  # patches of one scene, or no grouping: base._held_out holds out single images
        held = set(self._held_out({"train": scenes, "val": [], "test": []})["val"])
        return {**parts, "train": [i for i in parts["train"] if PATCH_BOX.sub("", i) not in held],
                "val": [i for i in parts["train"] if PATCH_BOX.sub("", i) in held]}
