"""Synthetic scenes, label decoding and windowed reading against direct reads."""

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin
from rasterio.windows import Window

from rsseg.data.dataset import (
    GridWindowDataset,
    RandomWindowDataset,
    RandomWindowSampler,
    SceneReader,
    grid_windows,
)
from rsseg.data.labels import ColourLabels, IndexLabels
from rsseg.data.raster import Scene, check_pair, read_window
from rsseg.data.synthetic import PALETTE, SyntheticScenes, generate_scene
from rsseg.errors import DataError


def test_generator_is_deterministic_and_varied():
    image_a, label_a = generate_scene(7, 256)
    image_b, label_b = generate_scene(7, 256)
    assert np.array_equal(image_a, image_b) and np.array_equal(label_a, label_b)
    image_c, _ = generate_scene(8, 256)
    assert not np.array_equal(image_a, image_c)
    assert image_a.shape == (3, 256, 256) and image_a.dtype == np.uint8
    assert label_a.max() < 6


def test_synthetic_scenes_are_georeferenced_and_cached(tmp_path):
    scenes = SyntheticScenes(tmp_path, seed=1, num_scenes=3, size=128, val_scenes=1)
    train = scenes.split("train")
    assert [s.name for s in train] == ["scene_00", "scene_01"]
    assert [s.name for s in scenes.split("val")] == ["scene_02"]
    with rasterio.open(train[0].image) as src, rasterio.open(train[0].label) as lab:
        assert src.crs.to_epsg() == 32650 and src.res == (2.0, 2.0) and src.count == 3
        assert lab.transform == src.transform and lab.count == 3
        direct = generate_scene(1000, 128)
        assert np.array_equal(src.read(), direct[0])
        assert np.array_equal(ColourLabels(PALETTE)(lab.read()), direct[1])
    stamp = train[0].image.stat().st_mtime_ns
    SyntheticScenes(tmp_path, seed=1, num_scenes=3, size=128, val_scenes=1).split("train")
    assert train[0].image.stat().st_mtime_ns == stamp  # reused, not regenerated


def _write(path, pixels, nodata=None):
    profile = dict(driver="GTiff", height=pixels.shape[1], width=pixels.shape[2], count=pixels.shape[0],
                   dtype=pixels.dtype, crs="EPSG:32650", transform=from_origin(500000, 3400000, 2, 2),
                   tiled=True, blockxsize=64, blockysize=64, nodata=nodata)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(pixels)


def test_windows_match_a_direct_read_including_past_the_edges(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (3, 150, 170), dtype=np.uint8)
    _write(tmp_path / "img.tif", pixels)
    with rasterio.open(tmp_path / "img.tif") as src:
        inner = read_window(src, Window(20, 10, 64, 64))
        assert np.array_equal(inner, pixels[:, 10:74, 20:84])
        edge = read_window(src, Window(140, 120, 64, 64), fill=7)
        assert np.array_equal(edge[:, :30, :30], pixels[:, 120:, 140:])
        assert (edge[:, 30:, :] == 7).all() and (edge[:, :, 30:] == 7).all()
        assert np.array_equal(read_window(src, Window(0, 0, 8, 8), bands=[3, 1]), pixels[[2, 0], :8, :8])


def test_grid_covers_every_pixel_exactly_once_and_reader_pads_with_ignore(tmp_path):
    rng = np.random.default_rng(1)
    classes = rng.integers(0, 6, (100, 90))
    _write(tmp_path / "img.tif", rng.integers(0, 255, (3, 100, 90), dtype=np.uint8))
    _write(tmp_path / "lab.tif", np.asarray(PALETTE, np.uint8)[classes].transpose(2, 0, 1))
    scene = Scene(tmp_path / "img.tif", tmp_path / "lab.tif")
    reader = SceneReader(ColourLabels(PALETTE))
    grid = GridWindowDataset([scene], [(100, 90)], reader, tile_size=64)
    assert len(grid) == 4 and len(grid_windows(100, 90, 64)) == 4
    counts = np.zeros(6, dtype=int)
    for item in grid:
        mask = item["mask"].numpy()
        counts += np.bincount(mask[mask != 255], minlength=6)
    assert np.array_equal(counts, np.bincount(classes.ravel(), minlength=6))


def test_random_windows_are_reproducible_and_change_every_epoch(tmp_path):
    _write(tmp_path / "img.tif", np.zeros((3, 200, 200), np.uint8))
    scene = Scene(tmp_path / "img.tif")
    reader = SceneReader(None)
    dataset = RandomWindowDataset([scene], [(200, 200)], reader, tile_size=32, samples_per_epoch=4, seed=3)
    sampler = RandomWindowSampler(4)
    epoch0, epoch1 = list(sampler), list(sampler)
    assert epoch0 == [0, 1, 2, 3] and epoch1 == [4, 5, 6, 7]
    first = [dataset.window(i)[1] for i in epoch0]
    assert first == [dataset.window(i)[1] for i in epoch0]
    assert first != [dataset.window(i)[1] for i in epoch1]
    assert all(0 <= w.row_off <= 168 and 0 <= w.col_off <= 168 for w in first)
    assert dataset[0]["image"].shape == (3, 32, 32)


def test_worker_processes_open_their_own_handles_and_read_the_same_windows(tmp_path):
    rng = np.random.default_rng(2)
    classes = rng.integers(0, 6, (160, 140))
    _write(tmp_path / "img.tif", rng.integers(0, 255, (3, 160, 140), dtype=np.uint8))
    _write(tmp_path / "lab.tif", np.asarray(PALETTE, np.uint8)[classes].transpose(2, 0, 1))
    scene = Scene(tmp_path / "img.tif", tmp_path / "lab.tif")
    reader = SceneReader(ColourLabels(PALETTE))
    dataset = RandomWindowDataset([scene], [(160, 140)], reader, tile_size=48, samples_per_epoch=12, seed=5)
    in_process = [dataset[i] for i in range(12)]  # the parent now holds open handles that workers must not share
    assert reader.pool._open
    loader = torch.utils.data.DataLoader(dataset, batch_size=3, num_workers=2, shuffle=False)
    batches = list(loader)
    images = torch.cat([b["image"] for b in batches])
    masks = torch.cat([b["mask"] for b in batches])
    assert images.shape == (12, 3, 48, 48)
    assert torch.equal(images, torch.stack([s["image"] for s in in_process]))
    assert torch.equal(masks, torch.stack([s["mask"] for s in in_process]))
    _, window = dataset.window(7)
    rows, cols = slice(window.row_off, window.row_off + 48), slice(window.col_off, window.col_off + 48)
    assert torch.equal(masks[7], torch.from_numpy(classes[rows, cols]))


def test_nodata_pixels_become_ignore(tmp_path):
    pixels = np.full((3, 64, 64), 50, np.uint8)
    pixels[:, :10, :] = 0
    _write(tmp_path / "img.tif", pixels, nodata=0)
    _write(tmp_path / "lab.tif", np.zeros((1, 64, 64), np.uint8))
    reader = SceneReader(IndexLabels(2))
    _, mask = reader.read(Scene(tmp_path / "img.tif", tmp_path / "lab.tif"), Window(0, 0, 64, 64))
    assert (mask[:10] == 255).all() and (mask[10:] == 0).all()
    assert mask.dtype == torch.uint8  # one byte per label pixel from the workers; int64 on the device


def test_unknown_colour_names_file_colour_and_count(tmp_path):
    labels = np.zeros((3, 4, 4), np.uint8)  # black everywhere: not in the synthetic palette
    labels[:, 0, 0] = 255
    with pytest.raises(DataError, match=r"lab.tif: label colour \(0, 0, 0\) is not in the palette \(15 pixels"):
        ColourLabels(PALETTE)(labels, "lab.tif")
    assert (ColourLabels(PALETTE, ignore_colours=[(0, 0, 0)])(labels, "x")[1:] == 255).all()


def test_image_label_mismatch_is_refused(tmp_path):
    _write(tmp_path / "img.tif", np.zeros((3, 64, 64), np.uint8))
    _write(tmp_path / "lab.tif", np.zeros((3, 64, 60), np.uint8))
    with pytest.raises(DataError, match=r"lab.tif: size 64x60 differs from its image img.tif \(64x64\)"):
        check_pair(Scene(tmp_path / "img.tif", tmp_path / "lab.tif"), 3, None)
    with pytest.raises(DataError, match="expects in_channels=4"):
        check_pair(Scene(tmp_path / "img.tif"), 4, None)
    with pytest.raises(DataError, match="missing.tif: file not found"):
        check_pair(Scene(tmp_path / "missing.tif"), 3, None)
