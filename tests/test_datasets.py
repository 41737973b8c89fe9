"""Real-dataset sources and configs: tiny fixtures in each dataset's on-disk format (names, folders, band counts,
palettes, eroded labels), composed through the real conf/data/<name>.yaml; the Dubai set from ../shared."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from hydra.utils import instantiate
from PIL import Image
from rasterio.transform import from_origin

import rsseg.config  # noqa: F401 - registers ${rsseg.stats:...}
from rsseg.data.dataset import GridWindowDataset
from rsseg.data.datasets import Potsdam, Vaihingen
from rsseg.errors import ConfigError, DataError
from tests.conftest import compose_config

ISPRS = [(255, 255, 255), (0, 0, 255), (0, 255, 255), (0, 255, 0), (255, 255, 0), (255, 0, 0)]
GID = [(255, 0, 0), (0, 255, 0), (0, 255, 255), (255, 255, 0), (0, 0, 255), (0, 0, 0)]
DUBAI = [(60, 16, 152), (132, 41, 246), (110, 193, 228), (254, 221, 58), (226, 169, 41), (155, 155, 155)]
IGNORE = 255


# -- fixture writers ---------------------------------------------------------------------------------------------
def write_tif(path: Path, pixels: np.ndarray, crs="EPSG:32632", origin=(500000.0, 5400000.0), nodata=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = dict(driver="GTiff", height=pixels.shape[1], width=pixels.shape[2], count=pixels.shape[0],
                   dtype=pixels.dtype, crs=crs, transform=from_origin(*origin, 0.5, 0.5), nodata=nodata)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(pixels)


def class_map(rng, height: int, width: int, classes: int, block: int = 8) -> np.ndarray:
    coarse = rng.integers(0, classes, (-(-height // block), -(-width // block)))
    return np.kron(coarse, np.ones((block, block), dtype=np.int64))[:height, :width]


def boundaries(classes: np.ndarray) -> np.ndarray:
    edge = np.zeros(classes.shape, bool)
    edge[:-1] |= classes[:-1] != classes[1:]
    edge[1:] |= classes[:-1] != classes[1:]
    edge[:, :-1] |= classes[:, :-1] != classes[:, 1:]
    edge[:, 1:] |= classes[:, :-1] != classes[:, 1:]
    return edge


def colours(classes: np.ndarray, palette, black: np.ndarray | None = None) -> np.ndarray:
    rgb = np.asarray(palette, np.uint8)[classes].transpose(2, 0, 1).copy()
    if black is not None:
        rgb[:, black] = 0
    return rgb


def image(rng, bands: int, height: int, width: int, dtype=np.uint8) -> np.ndarray:
    high = {np.uint8: 255, np.uint16: 4000}.get(dtype, 1)
    if dtype == np.float32:
        return rng.random((bands, height, width)).astype(np.float32)
    return rng.integers(1, high, (bands, height, width)).astype(dtype)


def make_isprs(root: Path, dataset: str, size=(64, 72)) -> dict[str, dict]:
    """Every tile of Vaihingen or Potsdam in the official layout; returns per scene id the class maps."""
    rng = np.random.default_rng(0)
    truth = {}
    if dataset == "vaihingen":
        ids = [f"area{n}" for n in Vaihingen.AREAS]
        for n, scene in zip(Vaihingen.AREAS, ids):
            classes = class_map(rng, *size, 6)
            edge = boundaries(classes)
            write_tif(root / "ISPRS_semantic_labeling_Vaihingen/top" / f"top_mosaic_09cm_area{n}.tif", image(rng, 3, *size))
            write_tif(root / "ISPRS_semantic_labeling_Vaihingen_ground_truth_COMPLETE" / f"top_mosaic_09cm_area{n}.tif",
                      colours(classes, ISPRS))
            write_tif(root / "ISPRS_semantic_labeling_Vaihingen_ground_truth_eroded_COMPLETE" /
                      f"top_mosaic_09cm_area{n}_noBoundary.tif", colours(classes, ISPRS, edge))
            truth[scene] = {"full": classes, "eroded": np.where(edge, IGNORE, classes)}
    else:
        for tile in (*Potsdam.TRAIN, *Potsdam.TEST):
            classes = class_map(rng, *size, 6)
            edge = boundaries(classes)
            rgbir = image(rng, 4, *size)
            write_tif(root / "2_Ortho_RGB" / f"top_potsdam_{tile}_RGB.tif", rgbir[:3])
            write_tif(root / "3_Ortho_IRRG" / f"top_potsdam_{tile}_IRRG.tif", rgbir[[3, 0, 1]])
            write_tif(root / "4_Ortho_RGBIR" / f"top_potsdam_{tile}_RGBIR.tif", rgbir)
            write_tif(root / "5_Labels_all" / f"top_potsdam_{tile}_label.tif", colours(classes, ISPRS))
            write_tif(root / "5_Labels_all_noBoundary" / f"top_potsdam_{tile}_label_noBoundary.tif",
                      colours(classes, ISPRS, edge))
            truth[tile] = {"full": classes, "eroded": np.where(edge, IGNORE, classes), "rgbir": rgbir}
    return truth


def make_gid(root: Path, scenes: int = 3, size=(96, 100)) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    base = root / "Large-scale Classification_5classes"
    truth = {}
    for i in range(scenes):
        name = f"GF2_PMS1__L1A00005645{39 + i}-MSS1"
        classes = class_map(rng, *size, 6)  # 5 = background (0, 0, 0)
        nirrgb = image(rng, 4, *size)
        write_tif(base / "image_RGB" / f"{name}.tif", nirrgb[1:])
        write_tif(base / "image_NirRGB" / f"{name}.tif", nirrgb)
        write_tif(base / "label_5classes" / f"{name}_label.tif", colours(classes, GID))
        truth[name] = classes
    return truth


def make_massachusetts(root: Path, size=(64, 64)) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(2)
    truth = {}
    for part, count in (("train", 3), ("val", 1), ("test", 2)):
        for i in range(count):
            stem = f"2{i}{part[:2]}8915_15"
            classes = class_map(rng, *size, 2)
            pixels = image(rng, 3, *size)
            pixels[:, :8, :16] = 255  # a white no-data block
            write_tif(root / "tiff" / part / f"{stem}.tiff", pixels)
            write_tif(root / "tiff" / f"{part}_labels" / f"{stem}.tif", colours(classes, [(0, 0, 0), (255, 0, 0)]))
            expected = classes.copy()
            expected[:8, :16] = IGNORE
            truth[f"{part}/{stem}"] = expected
    return truth


def make_loveda(root: Path, size=(64, 64)) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    truth = {}
    for part in ("Train", "Val", "Test"):
        for domain in ("Urban", "Rural"):
            for i in range(2):
                stem = str(1366 + i + (10 if domain == "Rural" else 0))
                (root / part / domain / "images_png").mkdir(parents=True, exist_ok=True)
                Image.fromarray(image(rng, 3, *size).transpose(1, 2, 0)).save(root / part / domain / "images_png" / f"{stem}.png")
                if part == "Test":
                    continue  # hidden labels
                raw = class_map(rng, *size, 8).astype(np.uint8)  # 0 = no-data, 1..7 = classes
                (root / part / domain / "masks_png").mkdir(parents=True, exist_ok=True)
                Image.fromarray(raw).save(root / part / domain / "masks_png" / f"{stem}.png")
                truth[f"{part}/{domain}/{stem}"] = np.where(raw == 0, IGNORE, raw.astype(np.int64) - 1)
    return truth


def make_dubai(root: Path) -> dict[str, np.ndarray]:
    """Two tiles: Tile_1 with RGB masks, Tile_2 with palette-mode masks (as in the public set)."""
    rng = np.random.default_rng(4)
    truth = {}
    for tile, size in (("Tile_1", (60, 70)), ("Tile_2", (50, 66))):
        for part in (1, 2, 8, 9):
            stem = f"image_part_{part:03d}"
            classes = class_map(rng, *size, 6)
            classes[:2, :3] = 6  # unannotated specks: black
            (root / tile / "images").mkdir(parents=True, exist_ok=True)
            (root / tile / "masks").mkdir(parents=True, exist_ok=True)
            Image.fromarray(image(rng, 3, *size).transpose(1, 2, 0)).save(root / tile / "images" / f"{stem}.jpg", quality=90)
            palette = [*DUBAI, (0, 0, 0)]
            if tile == "Tile_2":
                mask = Image.fromarray(classes.astype(np.uint8), mode="P")
                mask.putpalette([v for c in palette for v in c])
            else:
                mask = Image.fromarray(np.asarray(palette, np.uint8)[classes])
            mask.save(root / tile / "masks" / f"{stem}.png")
            truth[f"{tile}/{stem}"] = np.where(classes == 6, IGNORE, classes)
    return truth


# -- helpers -----------------------------------------------------------------------------------------------------
def build(name: str, root: Path, *overrides: str):
    cfg = compose_config("train", [
        f"data={name}", f"data.root={root}", "data.tile_size=32", "data.eval_tile_size=48", "data.num_workers=0",
        "data.batch_size=2", "data.eval_batch_size=2", "data.train_samples_per_epoch=4", *overrides,
    ])
    return cfg, instantiate(cfg.data, augment=None)


def rsseg_error(error: BaseException) -> BaseException:
    """The RssegError behind Hydra's InstantiationException (constructors raise inside ``instantiate``)."""
    while not isinstance(error, (ConfigError, DataError)) and error.__cause__ is not None:
        error = error.__cause__
    return error


def names(dm, split: str) -> set[str]:
    return {s.name for s in dm.split_scenes(split)[0]}


def grid_counts(dm, split: str, classes: int) -> np.ndarray:
    scenes, sizes = dm.split_scenes(split)
    counts = np.zeros(classes + 1, dtype=np.int64)  # last: ignored
    for item in GridWindowDataset(scenes, sizes, dm.reader, dm.eval_tile_size):
        mask = item["mask"].numpy()
        assert set(np.unique(mask).tolist()) <= set(range(classes)) | {IGNORE}
        counts[:classes] += np.bincount(mask[mask != IGNORE], minlength=classes)[:classes]
    return counts[:classes]


def direct_counts(maps, classes: int) -> np.ndarray:
    return sum(np.bincount(m[m != IGNORE].ravel(), minlength=classes)[:classes] for m in maps)


def check_batches(dm, in_channels: int, classes: int, tile: int = 32, eval_tile: int = 48) -> None:
    dm.setup("fit")
    raw = next(iter(dm.train_dataloader()))
    assert raw["mask"].dtype == torch.uint8  # the workers send raw pixels and one byte per label pixel
    assert raw["image"].dtype in (torch.uint8, torch.int32, torch.float32)
    batch = dm.on_after_batch_transfer(raw, 0)  # normalised where the model runs
    assert batch["image"].shape == (2, in_channels, tile, tile) and batch["image"].dtype == torch.float32
    assert batch["mask"].shape == (2, tile, tile) and batch["mask"].dtype == torch.int64
    assert set(batch["mask"].unique().tolist()) <= set(range(classes)) | {IGNORE}
    val = next(iter(dm.val_dataloader()))
    assert val["image"].shape[1:] == (in_channels, eval_tile, eval_tile)


# -- ISPRS -------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def vaihingen(tmp_path_factory):
    root = tmp_path_factory.mktemp("vaihingen")
    return root, make_isprs(root, "vaihingen")


def test_vaihingen_standard_split_eroded_evaluation(vaihingen):
    root, truth = vaihingen
    cfg, dm = build("vaihingen", root)
    # The official test tiles test; 10 % of the 16 training tiles (2, seeded) validate, so no test tile does.
    assert names(dm, "test") == {f"area{n}" for n in Vaihingen.TEST}
    assert names(dm, "train") | names(dm, "val") == {f"area{n}" for n in Vaihingen.TRAIN}
    assert len(names(dm, "val")) == 2 and not names(dm, "val") & names(dm, "train")
    assert names(build("vaihingen", root, "protocol.split_seed=1")[1], "val") != names(dm, "val")
    assert names(build("vaihingen", root, "protocol.select_on=test")[1], "val") == names(dm, "test")
    check_batches(dm, 3, 6)
    # Training reads the full labels, validation the eroded ones (boundaries ignored).
    assert all(s.label.parent.name.endswith("ground_truth_COMPLETE") for s in dm.split_scenes("train")[0])
    assert all(s.label.name.endswith("_noBoundary.tif") for s in dm.split_scenes("val")[0])
    val_ids = sorted(names(dm, "val"))
    assert np.array_equal(grid_counts(dm, "val", 6), direct_counts([truth[i]["eroded"] for i in val_ids], 6))
    assert list(cfg.data.exclude_from_mean) == []
    # Bands come as stored (IRRG): the first channel is the first band of the file, as read, normalised later.
    scene = dm.split_scenes("train")[0][0]
    with rasterio.open(scene.image) as src:
        first = src.read(1, window=((0, 32), (0, 32)))
    got, _ = dm.reader.read(scene, rasterio.windows.Window(0, 0, 32, 32))
    assert got.dtype == torch.uint8 and torch.equal(got[0], torch.from_numpy(first))
    normalised = dm.on_after_batch_transfer({"image": got[None], "mask": torch.zeros(1, 32, 32, dtype=torch.uint8)}, 0)
    assert torch.allclose(normalised["image"][0, 0], (torch.from_numpy(first).float() - cfg.data.mean[0]) / cfg.data.std[0])


def test_vaihingen_geoseg_protocol(vaihingen):
    root, truth = vaihingen
    cfg, dm = build("vaihingen", root, "protocol=geoseg")
    assert names(dm, "val") == {"area30"}
    assert names(dm, "train") == {f"area{n}" for n in Vaihingen.TRAIN} - {"area30"} and len(names(dm, "train")) == 15
    assert len(names(dm, "test")) == 17
    assert list(cfg.data.exclude_from_mean) == ["clutter"] and cfg.protocol.name == "geoseg"
    assert np.array_equal(grid_counts(dm, "val", 6), direct_counts([truth["area30"]["eroded"]], 6))


def test_missing_files_are_all_listed_one_line_each(vaihingen, tmp_path):
    root, _ = vaihingen
    import shutil

    copy = tmp_path / "v"
    shutil.copytree(root, copy)
    (copy / "ISPRS_semantic_labeling_Vaihingen/top/top_mosaic_09cm_area7.tif").unlink()
    (copy / "ISPRS_semantic_labeling_Vaihingen_ground_truth_COMPLETE/top_mosaic_09cm_area3.tif").unlink()
    (copy / "ISPRS_semantic_labeling_Vaihingen_ground_truth_COMPLETE/top_mosaic_09cm_area5.tif").unlink()
    _, dm = build("vaihingen", copy)
    with pytest.raises(DataError) as error:
        dm.split_scenes("train")
    lines = str(error.value).splitlines()
    assert "3 problem(s) in the train split" in lines[0]
    assert any(line.strip().endswith("top/top_mosaic_09cm_area7.tif: file not found") for line in lines)
    assert sum("file not found" in line for line in lines) == 3
    with pytest.raises(DataError, match="vaihingen folder not found"):
        build("vaihingen", tmp_path / "nowhere")[1].split_scenes("train")


@pytest.fixture(scope="module")
def potsdam(tmp_path_factory):
    root = tmp_path_factory.mktemp("potsdam")
    return root, make_isprs(root, "potsdam", size=(48, 56))


def test_potsdam_variants_and_geoseg_excludes_7_10(potsdam):
    root, truth = potsdam
    _, dm = build("potsdam", root)
    assert len(names(dm, "train")) == 22 and len(names(dm, "val")) == 2 and len(names(dm, "test")) == 14
    assert not names(dm, "val") & names(dm, "test")  # 2 of the 24 training tiles validate, no test tile
    check_batches(dm, 3, 6)
    _, dm4 = build("potsdam_rgbir", root)
    check_batches(dm4, 4, 6)
    assert dm4.split_scenes("train")[0][0].image.name.endswith("_RGBIR.tif")
    _, irrg = build("potsdam_irrg", root)
    assert irrg.split_scenes("train")[0][0].image.parent.name == "3_Ortho_IRRG"
    _, geo = build("potsdam", root, "protocol=geoseg")
    assert names(geo, "val") == {"2_10"} and "7_10" not in names(geo, "train") and len(names(geo, "train")) == 22
    assert "7_10" not in names(geo, "test") | names(geo, "val")
    # Four bands configured, three-band files: refused up front, naming the file.
    with pytest.raises(DataError, match=r"_RGB.tif: 3 bands read but the data config expects in_channels=4"):
        build("potsdam_rgbir", root, "data.scenes.variant=rgb")[1].split_scenes("train")


def test_mmseg_protocol_trains_on_eroded_labels_with_overlapping_evaluation(potsdam):
    root, truth = potsdam
    cfg, dm = build("potsdam", root, "protocol=mmseg")
    assert all(s.label.name.endswith("_noBoundary.tif") for s in dm.split_scenes("train")[0])
    assert cfg.data.eval_stride == 256


# -- GID: 6 classes with background, RGB and NIR-R-G-B, the papers' random tile split ---------------------------------
@pytest.fixture(scope="module")
def gid(tmp_path_factory):
    root = tmp_path_factory.mktemp("gid")
    return root, make_gid(root)


def test_gid_rgb_and_nirrgb(gid):
    root, truth = gid
    cfg, dm = build("gid", root, "data.scenes.test_scenes=1")
    # 3 scenes: 1 tests, 1 of the other 2 validates (10 %, at least one), the last trains.
    assert cfg.data.class_names[-1] == "background" and len(names(dm, "train")) == 1
    assert len(names(dm, "val")) == len(names(dm, "test")) == 1 and not names(dm, "val") & names(dm, "test")
    check_batches(dm, 3, 6)
    val = sorted(names(dm, "val"))
    assert np.array_equal(grid_counts(dm, "val", 6), direct_counts([truth[i] for i in val], 6))
    _, dm4 = build("gid_nirrgb", root, "data.scenes.test_scenes=1")
    check_batches(dm4, 4, 6)
    with pytest.raises(Exception) as error:
        build("gid", root, "protocol=geoseg")
    assert isinstance(rsseg_error(error.value), ConfigError)
    assert "protocol split 'geoseg' is not defined for gid" in str(rsseg_error(error.value))


def test_random_tile_protocol_splits_tiles_from_a_seed(gid):
    root, truth = gid
    cfg, dm = build("gid", root, "protocol=random", "protocol.split_tile_size=32")
    train, val, test = (dm.split_scenes(name)[0] for name in ("train", "val", "test"))
    # 96 x 100 scenes: 3 x 3 = 9 tiles of 32 each (remainders dropped), 27 tiles, 80 / 20; 10 % of the 22
    # training tiles validate (2), and the test tiles are those of the paper's split whatever validates.
    assert len(train) + len(val) == round(0.8 * 27) and len(val) == 2 and len(test) == 27 - 22
    assert {s.name for s in train + val}.isdisjoint({s.name for s in test}) and not names(dm, "val") & names(dm, "train")
    wider = build("gid", root, "protocol=random", "protocol.split_tile_size=32", "protocol.val_fraction=0.5")[1]
    assert names(wider, "test") == names(dm, "test") and len(names(wider, "val")) == 11
    on_test = build("gid", root, "protocol=random", "protocol.split_tile_size=32", "protocol.select_on=test")[1]
    assert names(on_test, "val") == names(on_test, "test") == names(dm, "test")
    assert names(on_test, "train") == names(dm, "train") | names(dm, "val")
    assert all(s.window[2:] == (32, 32) for s in train + test)
    assert dm.split_scenes("train")[1] == [(32, 32)] * len(train)
    again = build("gid", root, "protocol=random", "protocol.split_tile_size=32")[1]
    assert names(again, "train") == names(dm, "train")
    other = build("gid", root, "protocol=random", "protocol.split_tile_size=32", "protocol.split_seed=1")[1]
    assert names(other, "train") != names(dm, "train")
    # Windows of a tile scene never see past the tile: a grid of 48 px over a 32 px tile pads with ignore.
    counts = grid_counts(dm, "test", 6)
    expected = sum(np.bincount(truth[s.name.split("@")[0]][s.window[0]:s.window[0] + 32, s.window[1]:s.window[1] + 32].ravel(),
                               minlength=6) for s in test)
    assert np.array_equal(counts, expected)
    check_batches(dm, 3, 6)


# -- Massachusetts, LoveDA, Dubai ---------------------------------------------------------------------------------
def test_massachusetts_folders_and_white_nodata(tmp_path):
    truth = make_massachusetts(tmp_path)
    _, dm = build("massachusetts", tmp_path)
    assert names(dm, "train") == {k for k in truth if k.startswith("train/")}
    assert names(dm, "val") == {k for k in truth if k.startswith("val/")} and len(names(dm, "test")) == 2
    check_batches(dm, 3, 2)
    for split in ("val", "test"):
        ids = sorted(names(dm, split))
        assert np.array_equal(grid_counts(dm, split, 2), direct_counts([truth[i] for i in ids], 2))


def test_loveda_index_masks(tmp_path):
    truth = make_loveda(tmp_path)
    _, dm = build("loveda", tmp_path)
    assert names(dm, "train") == {k for k in truth if k.startswith("Train/")}
    assert names(dm, "val") == {k for k in truth if k.startswith("Val/")} and names(dm, "test") == set()
    check_batches(dm, 3, 7)
    ids = sorted(names(dm, "val"))
    assert np.array_equal(grid_counts(dm, "val", 7), direct_counts([truth[i] for i in ids], 7))
    _, urban = build("loveda", tmp_path, "data.scenes.domains=[Urban]")
    assert all("/Urban/" in n for n in names(urban, "train"))


def test_dubai_layout_with_palette_mode_masks(tmp_path):
    truth = make_dubai(tmp_path)
    _, dm = build("dubai", tmp_path)
    assert names(dm, "val") == {"Tile_1/image_part_008", "Tile_2/image_part_008"}
    assert names(dm, "test") == {"Tile_1/image_part_009", "Tile_2/image_part_009"} and len(names(dm, "train")) == 4
    check_batches(dm, 3, 6)
    for split in ("val", "test"):  # Tile_2's masks are palette-mode PNGs
        ids = sorted(names(dm, split))
        assert np.array_equal(grid_counts(dm, split, 6), direct_counts([truth[i] for i in ids], 6))


# -- any folder of GeoTIFFs and the Taikang preset -------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_geotiff_folder_any_bands_and_dtype_with_explicit_splits_and_manifest(tmp_path, dtype):
    rng = np.random.default_rng(5)
    truth = {}
    for stem in ("a", "b", "c"):
        classes = class_map(rng, 40, 44, 3)
        write_tif(tmp_path / "images" / f"{stem}.tif", image(rng, 5, 40, 44, dtype))
        write_tif(tmp_path / "labels" / f"{stem}_label.tif", classes[None].astype(np.uint8))
        truth[stem] = classes
    common = ["data.scenes.labels='labels/{stem}_label.tif'", "data.in_channels=5", "data.num_classes=3",
              "data.class_names=[x,y,z]", "data.palette=[[0,0,0],[1,1,1],[2,2,2]]",
              "data.mean=[0,0,0,0,0]", "data.std=[1,1,1,1,1]"]
    _, dm = build("geotiff", tmp_path, *common, "data.scenes.splits={train:[a,b],val:[c]}")
    assert names(dm, "train") == {"images/a", "images/b"} and names(dm, "val") == {"images/c"}
    # Validating on a test scene is refused unless asked for; asked for, validation is the test split.
    with pytest.raises(ConfigError, match=r"geotiff: data.scenes.splits validates on 1 test scene\(s\) \(e.g. images/c\); "
                                          r"expected a validation split disjoint from test, or protocol.select_on=test"):
        names(build("geotiff", tmp_path, *common, "data.scenes.splits={train:[a,b],val:[c],test:[c]}")[1], "val")
    on_test = build("geotiff", tmp_path, *common, "data.scenes.splits={train:[a,b],test:[c]}", "protocol.select_on=test")[1]
    assert names(on_test, "val") == names(on_test, "test") == {"images/c"}
    check_batches(dm, 5, 3)
    assert np.array_equal(grid_counts(dm, "val", 3), direct_counts([truth["c"]], 3))
    manifest = tmp_path / "split.json"
    manifest.write_text('{"train": ["b", "c"], "val": ["a"], "test": []}')
    _, dm2 = build("geotiff", tmp_path, *common, "protocol=manifest", f"protocol.split_file={manifest}")
    assert names(dm2, "train") == {"images/b", "images/c"} and names(dm2, "val") == {"images/a"}
    # A label in another CRS than its image is refused, naming the label file.
    write_tif(tmp_path / "labels" / "b_label.tif", truth["b"][None].astype(np.uint8), crs="EPSG:4326")
    with pytest.raises(DataError, match=r"b_label.tif: CRS EPSG:4326 differs from its image's EPSG:32632"):
        build("geotiff", tmp_path, *common, "data.scenes.splits={train:[a,b],val:[c]}")[1].split_scenes("train")


def test_geotiff_empty_folder_and_missing_labels_are_reported(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(DataError, match=r"no images matching 'images/\*.tif'"):
        build("geotiff", tmp_path)[1].split_scenes("train")
    write_tif(tmp_path / "images" / "x.tif", np.zeros((3, 40, 40), np.uint8))
    with pytest.raises(DataError, match=r"labels/x.tif: file not found"):
        build("geotiff", tmp_path, "data.scenes.splits={train:[x]}")[1].split_scenes("train")


def test_taikang_preset_four_band_gaofen_random_tiles(tmp_path):
    rng = np.random.default_rng(6)
    for stem in ("3350241", "3661472"):
        write_tif(tmp_path / "images" / f"{stem}.tif", image(rng, 4, 96, 96, np.uint16), crs="EPSG:32650")
        write_tif(tmp_path / "labels" / f"{stem}.tif", class_map(rng, 96, 96, 2)[None].astype(np.uint8), crs="EPSG:32650")
    cfg, dm = build("taikang", tmp_path, "data.scenes.split_tile_size=32")
    assert cfg.data.in_channels == 4 and list(cfg.data.class_names) == ["background", "cultivated_land"]
    train, val, test = (dm.split_scenes(name)[0] for name in ("train", "val", "test"))
    assert len(train) + len(val) == round(0.9 * 18) and len(test) == 18 - 16  # the paper's 90 / 10 of tiles
    assert len(val) == 2  # 10 % of the 16 training tiles choose the checkpoint
    check_batches(dm, 4, 2)


def _make_taikang(root: Path) -> None:
    rng = np.random.default_rng(6)
    for stem in ("3350241", "3661472"):
        write_tif(root / "images" / f"{stem}.tif", image(rng, 4, 96, 96, np.uint16), crs="EPSG:32650")
        write_tif(root / "labels" / f"{stem}.tif", class_map(rng, 96, 96, 2)[None].astype(np.uint8), crs="EPSG:32650")


FIXTURES = {
    "vaihingen": (lambda root: make_isprs(root, "vaihingen"), ["standard", "geoseg", "mmseg", "random"]),
    "potsdam": (lambda root: make_isprs(root, "potsdam", size=(48, 56)), ["standard", "geoseg", "mmseg", "random"]),
    "gid": (make_gid, ["standard", "random"]),
    "massachusetts": (make_massachusetts, ["standard", "random"]),
    "loveda": (make_loveda, ["standard", "random"]),
    "dubai": (make_dubai, ["standard", "random"]),
    "taikang": (_make_taikang, ["standard", "random"]),
}


@pytest.mark.parametrize("dataset", sorted(FIXTURES))
def test_every_protocol_validates_on_scenes_that_never_test(dataset, tmp_path):
    make, protocols = FIXTURES[dataset]
    make(tmp_path)
    for protocol in protocols:
        overrides = [f"protocol={protocol}", "data.scenes.split_tile_size=32"]
        if dataset == "gid":
            overrides.append("data.scenes.test_scenes=1")
        _, dm = build(dataset, tmp_path, *overrides)
        splits = dm.scenes.manifest()["splits"]  # what `rsseg prepare` writes to splits.json
        key = lambda entry: (entry["image"], tuple(entry["window"] or ()))  # noqa: E731
        val, test = {key(e) for e in splits["val"]}, {key(e) for e in splits["test"]}
        assert val and not val & test, (protocol, sorted(val & test)[:3])
        assert not val & {key(e) for e in splits["train"]}, protocol


def test_protocol_as_a_default_of_the_primary_config():
    # conf/prepare.yaml lists `protocol: standard` in its defaults, as conf/train.yaml should: then protocol=<name>.
    standard = compose_config("prepare", ["data=vaihingen"])
    assert standard.protocol.name == "standard" and list(standard.data.exclude_from_mean) == []
    assert standard.data.scenes.split == "standard" and standard.data.scenes.eval_labels == "eroded"
    geoseg = compose_config("prepare", ["data=potsdam", "protocol=geoseg"])
    assert list(geoseg.data.exclude_from_mean) == ["clutter"] and geoseg.data.scenes.split == "geoseg"
    random = compose_config("prepare", ["data=gid", "protocol=random"])
    assert random.data.scenes.split == "random" and random.data.scenes.train_fraction == 0.8
    taikang = compose_config("prepare", ["data=taikang"])
    assert taikang.data.scenes.train_fraction == 0.9  # the standard protocol leaves the dataset's own default


def test_stats_file_replaces_mean_and_std(tmp_path):
    stats = tmp_path / "stats.json"
    cfg = compose_config("train", ["data=vaihingen", f"data.stats_file={stats}"])
    assert list(cfg.data.mean) == [123.675, 116.28, 103.53]  # not there yet: the config's own
    stats.write_text('{"mean": [1.0, 2.0, 3.0], "std": [4.0, 5.0, 6.0]}')
    assert list(cfg.data.mean) == [1.0, 2.0, 3.0] and list(cfg.data.std) == [4.0, 5.0, 6.0]


# -- the real Dubai set in ../shared ----------------------------------------------------------------------------------
def test_dubai_real_windows_match_a_direct_count_of_the_masks(shared):
    root = shared / "data" / "dubai_aerial"
    _, dm = build("dubai", root, "data.eval_tile_size=512")
    for split in ("val", "test"):
        scenes, _ = dm.split_scenes(split)
        counts = grid_counts(dm, split, 6)
        direct = np.zeros(6, dtype=np.int64)
        codes = {(r << 16) | (g << 8) | b: i for i, (r, g, b) in enumerate(DUBAI)}
        for scene in scenes:
            rgb = np.asarray(Image.open(scene.label).convert("RGB")).astype(np.int64)
            code = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
            values, n = np.unique(code, return_counts=True)
            assert set(values.tolist()) <= set(codes) | {0}, scene.label
            for v, c in zip(values.tolist(), n.tolist()):
                if v in codes:
                    direct[codes[v]] += c
        assert np.array_equal(counts, direct), split


def test_dubai_real_fast_dev_run_trains(shared, tmp_path):
    from rsseg.training.train import train

    cfg = compose_config("train", [
        "model=smp_deeplabv3plus", "data=dubai", f"data.root={shared / 'data' / 'dubai_aerial'}",
        f"paths.output_dir={tmp_path}", "trainer.fast_dev_run=true", "trainer.accelerator=cpu",
        "data.tile_size=64", "data.eval_tile_size=128", "data.batch_size=2", "data.num_workers=0",
        "data.train_samples_per_epoch=4", "logger=none", "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false", "callbacks.rich_progress_bar=null", "callbacks.model_summary=null",
        "callbacks.lr_monitor=null",
    ])
    results = train(cfg)
    assert results["steps"] == 1 and results["config"]["data"]["class_names"][0] == "building"
    assert (tmp_path / "results.json").exists()


# -- class-balanced sampling ------------------------------------------------------------------------------------------
def test_class_balanced_windows_favour_rare_classes_and_are_pure_functions_of_seed_and_index(tmp_path):
    classes = np.zeros((256, 256), dtype=np.int64)
    classes[200:208, 40:48] = 4  # one car
    classes[:, 128:] = 3
    write_tif(tmp_path / "images" / "s.tif", np.full((3, 256, 256), 100, np.uint8))
    write_tif(tmp_path / "labels" / "s.tif", colours(classes, ISPRS))
    common = ["data.label_format=colour", "data.num_classes=6", "data.class_names=[a,b,c,d,car,f]",
              f"data.palette={[list(c) for c in ISPRS]}".replace(" ", ""), "data.scenes.splits={train:[s],val:[s]}"]

    def car_share(dm, count=200):
        dm.setup("fit")
        hits = 0
        for index in range(count):
            scene, window = dm.train_set.window(index)
            rows = slice(int(window.row_off), int(window.row_off + window.height))
            cols = slice(int(window.col_off), int(window.col_off + window.width))
            hits += bool((classes[rows, cols] == 4).any())
        return hits / count

    _, uniform = build("geotiff", tmp_path, *common)
    _, balanced = build("geotiff", tmp_path, *common, "data.sampling=class_balanced", "data.class_balance=1.0")
    assert car_share(uniform) < 0.15 and car_share(balanced) > 0.25
    assert balanced.train_set.class_probabilities[4] == pytest.approx(1 / 3)  # three classes present
    _, again = build("geotiff", tmp_path, *common, "data.sampling=class_balanced", "data.class_balance=1.0")
    again.setup("fit")
    first = [balanced.train_set.window(i)[1] for i in range(20)]
    assert first == [again.train_set.window(i)[1] for i in range(20)]  # same (seed, index): same window
    assert first != [balanced.train_set.window(i)[1] for i in range(20, 40)]
    batch = next(iter(balanced.train_dataloader()))
    assert batch["image"].shape == (2, 3, 32, 32)
    _, reseeded = build("geotiff", tmp_path, *common, "data.sampling=class_balanced", "data.class_balance=1.0", "seed=1")
    reseeded.setup("fit")
    assert first != [reseeded.train_set.window(i)[1] for i in range(20)]
