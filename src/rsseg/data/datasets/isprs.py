"""ISPRS Vaihingen and Potsdam: fixed tile lists, the ``standard`` and ``geoseg`` split tables, eroded labels."""

from __future__ import annotations

from pathlib import Path

from rsseg.data.datasets.base import Record, SceneSet
from rsseg.errors import ConfigError

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
        return {"train": [f"area{n}" for n in self.TRAIN], "val": [], "test": test}


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
        return {"train": list(self.TRAIN), "val": [], "test": test}
