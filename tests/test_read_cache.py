"""The read cache: cached windows equal direct reads bit for bit, what is cached and what is not, rebuilds of changed
sources, one build under concurrent processes, no partial entry after a failed or killed build, the datamodule and
`rsseg prepare` with the cache on and off."""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from hydra.utils import instantiate
from PIL import Image
from rasterio.enums import ColorInterp
from rasterio.transform import from_origin
from rasterio.windows import Window

import rsseg.data.cache as cache_module
from rsseg.data.cache import ReadCache, needs_cache
from rsseg.data.prepare import run_prepare
from rsseg.data.raster import (
    RasterPool,
    is_palette_indexed,
    palette_lookup,
    read_label_decimated,
    read_label_window,
    read_window,
)
from rsseg.errors import ConfigError, DataError
from tests.conftest import compose_config
from tests.readme import rsseg_program
from tests.test_datasets import make_dubai

# Windows inside, across the edges and past the corner of a 300 x 420 raster.
WINDOWS = [Window(0, 0, 64, 64), Window(37, 200, 128, 96), Window(380, 250, 64, 64), Window(-10, -5, 50, 40)]


def texture(bands: int, height: int, width: int, seed: int = 0, high: int = 256, dtype=np.uint8) -> np.ndarray:
    """Smooth structure plus noise: JPEG keeps detail that differs from pixel to pixel."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width]
    base = (np.sin(rows / 17.0)[None] + np.cos(cols / 23.0)[None] + np.arange(bands)[:, None, None]) % 2 / 2
    return ((base * 0.8 + rng.random((bands, height, width)) * 0.2) * (high - 1)).astype(dtype)


def write_geotiff(path: Path, pixels: np.ndarray, nodata=None, **layout) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = dict(driver="GTiff", height=pixels.shape[1], width=pixels.shape[2], count=pixels.shape[0],
                   dtype=pixels.dtype, crs="EPSG:32650", transform=from_origin(500000.0, 3400000.0, 0.5, 0.5),
                   nodata=nodata, **layout)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(pixels)
    return path


def write_jpeg(path: Path, height: int = 300, width: int = 420, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(texture(3, height, width, seed).transpose(1, 2, 0)).save(path, quality=85)
    return path


def write_palette_png(path: Path, height: int = 300, width: int = 420) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    classes = (texture(1, height, width)[0] // 43).astype(np.uint8)  # six classes
    mask = Image.fromarray(classes, mode="P")
    mask.putpalette([v for i in range(6) for v in (40 * i, 255 - 30 * i, 17 * i)])
    mask.save(path)
    return path


def entries(cache: ReadCache) -> list[Path]:
    return sorted(cache.folder.glob("*.tif")) if cache.folder.exists() else []


def test_cached_jpeg_windows_equal_direct_reads_bit_for_bit(tmp_path):
    source = write_jpeg(tmp_path / "photo.jpg")
    cache = ReadCache(tmp_path / "cache")
    with rasterio.open(source) as direct, cache.open(source) as cached:
        assert cached.name != direct.name and Path(cached.name).parent == tmp_path / "cache" / "rasters"
        assert cached.driver == "GTiff" and cached.compression is None and cached.block_shapes[0] == (256, 256)
        assert cached.profile["interleave"] == "band" and not needs_cache(cached)
        assert cached.colorinterp == direct.colorinterp == (ColorInterp.red, ColorInterp.green, ColorInterp.blue)
        for window in WINDOWS:
            assert np.array_equal(read_window(cached, window, fill=7), read_window(direct, window, fill=7))
        assert np.array_equal(cached.read(), direct.read())
    pool = RasterPool(cache)
    handle = pool.get(source)
    assert pool.get(source) is handle and Path(handle.name) == cache.entry_path(source)
    pool.close()


def test_palette_png_label_comes_back_palette_indexed(tmp_path):
    source = write_palette_png(tmp_path / "mask.png")
    cache = ReadCache(tmp_path / "cache")
    with rasterio.open(source) as direct, cache.open(source) as cached:
        assert is_palette_indexed(direct) and is_palette_indexed(cached)
        assert palette_lookup(cached).tolist() == palette_lookup(direct).tolist()  # GeoTIFF pads its table to 256
        assert direct.colormap(1).items() <= cached.colormap(1).items()
        for window in WINDOWS:
            rgb = read_label_window(cached, window, bounds=(10, 20, 290, 400))
            assert rgb.shape[0] == 3 and np.array_equal(rgb, read_label_window(direct, window, bounds=(10, 20, 290, 400)))
        assert np.array_equal(read_label_decimated(cached, (30, 42)), read_label_decimated(direct, (30, 42)))


def test_striped_deflate_geotiff_keeps_pixels_crs_transform_and_nodata(tmp_path):
    pixels = texture(3, 300, 420)
    source = write_geotiff(tmp_path / "striped.tif", pixels, nodata=0, compress="deflate")
    cache = ReadCache(tmp_path / "cache")
    with rasterio.open(source) as direct:
        assert direct.block_shapes[0][1] == 420 and needs_cache(direct)  # full-width strips
    with rasterio.open(source) as direct, cache.open(source) as cached:
        assert cached.crs.to_epsg() == 32650 and cached.transform == from_origin(500000.0, 3400000.0, 0.5, 0.5)
        assert cached.nodata == 0 and cached.dtypes == ("uint8",) * 3
        for window in WINDOWS:
            assert np.array_equal(read_window(cached, window, [3, 1]), read_window(direct, window, [3, 1]))
        assert np.array_equal(cached.read(), pixels)


def test_uint16_raster_keeps_its_dtype_and_values(tmp_path):
    pixels = texture(4, 300, 420, high=4000, dtype=np.uint16)
    source = write_geotiff(tmp_path / "gaofen.tif", pixels)  # uncompressed but striped
    with ReadCache(tmp_path / "cache").open(source) as cached:
        assert cached.dtypes == ("uint16",) * 4 and cached.read().max() > 255
        assert np.array_equal(read_window(cached, WINDOWS[1], [4, 3, 2]), pixels[[3, 2, 1], 200:296, 37:165])


def test_a_copy_is_written_256_rows_at_a_time(tmp_path, monkeypatch):
    strips = []
    original = cache_module._read_strip

    def record(source, handle, strip):
        strips.append((int(strip.row_off), int(strip.height), int(strip.width)))
        return original(source, handle, strip)

    monkeypatch.setattr(cache_module, "_read_strip", record)
    ReadCache(tmp_path / "cache").ensure(write_jpeg(tmp_path / "tall.jpg", height=600, width=90))
    assert strips == [(0, 256, 90), (256, 256, 90), (512, 88, 90)]  # never the whole scene at once


def test_uncompressed_tiled_geotiff_is_read_directly(tmp_path):
    source = write_geotiff(tmp_path / "tiled.tif", texture(3, 300, 420), tiled=True, blockxsize=256, blockysize=256)
    cache = ReadCache(tmp_path / "cache")
    assert cache.ensure(source) is None
    with cache.open(source) as handle:
        assert Path(handle.name) == source
    assert not entries(cache)


@pytest.mark.parametrize(("layout", "cached"), [
    ({"tiled": True, "blockxsize": 256, "blockysize": 256}, False),
    ({"tiled": True, "blockxsize": 1024, "blockysize": 1024}, False),
    ({"tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "lzw"}, True),
    ({"tiled": True, "blockxsize": 2048, "blockysize": 2048}, True),  # blocks far larger than a window
    ({}, True),  # striped, uncompressed
])
def test_the_policy_caches_what_is_slow_to_read_in_windows(tmp_path, layout, cached):
    source = write_geotiff(tmp_path / "scene.tif", texture(1, 1100, 2100), **layout)
    with rasterio.open(source) as handle:
        assert needs_cache(handle) is cached


def test_a_changed_source_gets_a_new_entry_and_the_stale_one_goes(tmp_path):
    source = write_jpeg(tmp_path / "photo.jpg", seed=0)
    cache = ReadCache(tmp_path / "cache")
    first = cache.ensure(source)
    assert cache.ensure(source) == first and entries(cache) == [first]
    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))  # touched: same bytes, new mtime
    touched = cache.ensure(source)
    assert touched != first and entries(cache) == [touched] and not first.with_name(first.name + ".lock").exists()
    write_jpeg(source, height=280, seed=1)  # rewritten: new size and pixels
    rewritten = cache.ensure(source)
    assert rewritten not in (first, touched) and entries(cache) == [rewritten]
    with rasterio.open(source) as direct, cache.open(source) as cached:
        assert cached.shape == (280, 420) and np.array_equal(cached.read(), direct.read())
    other = cache.ensure(write_jpeg(tmp_path / "other" / "photo.jpg"))  # same name, other folder: its own entry
    assert len(entries(cache)) == 2 and other.name.split(".")[1] != rewritten.name.split(".")[1]


def test_two_processes_asking_at_once_build_one_complete_entry(tmp_path, monkeypatch):
    source = write_jpeg(tmp_path / "photo.jpg", height=600, width=500)
    with rasterio.open(source) as direct:
        expected = read_window(direct, Window(200, 300, 256, 256))
    builds = tmp_path / "builds.log"
    original = cache_module.write_tiled_copy

    def slow_build(*args):  # logs each build and holds the lock long enough for the other process to wait on it
        with open(builds, "a") as log:
            log.write(f"{os.getpid()}\n")
        time.sleep(0.5)
        original(*args)

    monkeypatch.setattr(cache_module, "write_tiled_copy", slow_build)
    context = multiprocessing.get_context("fork")
    start, results = context.Barrier(2), context.Queue()

    def ask():
        start.wait()
        cache = ReadCache(tmp_path / "cache")
        with cache.open(source) as handle:
            results.put((Path(handle.name).name, bool(np.array_equal(read_window(handle, Window(200, 300, 256, 256)),
                                                                     expected))))

    processes = [context.Process(target=ask) for _ in range(2)]
    for process in processes:
        process.start()
    got = [results.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    assert len(builds.read_text().splitlines()) == 1
    assert got[0][0] == got[1][0] and all(equal for _, equal in got)
    folder = tmp_path / "cache" / "rasters"
    assert [p.name for p in folder.glob("*.tif")] == [got[0][0]] and not list(folder.glob(".*.partial"))


def test_a_failed_build_leaves_no_entry_and_names_the_source(tmp_path):
    source = write_geotiff(tmp_path / "cut.tif", texture(3, 600, 420), compress="deflate")
    source.write_bytes(source.read_bytes()[: source.stat().st_size // 2])  # the header opens, the lower rows do not
    cache = ReadCache(tmp_path / "cache")
    with pytest.raises(DataError) as error:
        cache.ensure(source)
    assert str(error.value).startswith(f"{source}: reading rows ") and "while caching it" in str(error.value)
    assert len(str(error.value).splitlines()) == 1
    assert not cache.entry_path(source).exists() and not list(cache.folder.glob(".*.partial"))


def test_a_killed_build_leaves_no_entry_and_the_next_build_completes(tmp_path):
    source = write_jpeg(tmp_path / "photo.jpg", height=600)
    cache = ReadCache(tmp_path / "cache")

    def build_and_die():
        original = cache_module._read_strip

        def read_then_die(source, handle, strip):
            if strip.row_off > 0:  # one strip written: the process dies mid-build, holding the lock
                os.kill(os.getpid(), signal.SIGKILL)
            return original(source, handle, strip)

        cache_module._read_strip = read_then_die
        cache.ensure(source)

    process = multiprocessing.get_context("fork").Process(target=build_and_die)
    process.start()
    process.join(timeout=60)
    assert process.exitcode == -signal.SIGKILL
    entry = cache.entry_path(source)
    assert not entry.exists() and list(cache.folder.glob(f".{entry.name}.*.partial"))  # only its temporary file
    assert cache.ensure(source) == entry  # the lock died with its holder: nobody waits
    assert not list(cache.folder.glob(".*.partial"))
    with rasterio.open(source) as direct, rasterio.open(entry) as cached:
        assert np.array_equal(cached.read(), direct.read())


def test_an_unwritable_cache_folder_is_one_line_naming_the_source(tmp_path):
    source = write_jpeg(tmp_path / "photo.jpg")
    (tmp_path / "cache").write_text("a file where the cache folder should be")
    with pytest.raises(DataError) as error:
        ReadCache(tmp_path / "cache").ensure(source)
    message = str(error.value)
    assert message.startswith(f"{source}: cannot write its read cache entry") and "data.cache=false" in message


def dubai_datamodule(root: Path, *overrides: str):
    cfg = compose_config("train", [
        "data=dubai", f"data.root={root}", "data.tile_size=32", "data.eval_tile_size=48", "data.num_workers=0",
        "data.batch_size=2", "data.train_samples_per_epoch=6", *overrides,
    ])
    dm = instantiate(cfg.data, augment=None)
    dm.setup("fit")
    return dm


def test_training_and_validation_windows_equal_with_the_cache_on_and_off(tmp_path):
    root = tmp_path / "dubai"
    make_dubai(root)  # JPEG images, RGB masks in Tile_1, palette-mode masks in Tile_2
    on = dubai_datamodule(root, f"data.cache_dir={tmp_path / 'on'}")
    off = dubai_datamodule(root, f"data.cache_dir={tmp_path / 'off'}", "data.cache=false")
    assert not (tmp_path / "off").exists() and off.reader.pool.cache is None
    train_and_val = len(on.split_scenes("train")[0]) + len(on.split_scenes("val")[0])
    assert len(list((tmp_path / "on" / "rasters").glob("*.tif"))) == 2 * train_and_val  # built at setup
    for index in range(6):
        a, b = on.train_set[index], off.train_set[index]
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
    for index in range(len(on.val_set)):
        a, b = on.val_set[index], off.val_set[index]
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
    assert any(Path(h.name).suffix == ".tif" for h in on.reader.pool._open.values())
    assert all(Path(h.name).suffix in (".jpg", ".png") for h in off.reader.pool._open.values())
    pool = pickle.loads(pickle.dumps(on.reader.pool))  # a spawned DataLoader worker keeps the cache
    assert pool.cache.folder == tmp_path / "on" / "rasters" and pool._open == {}


@pytest.mark.parametrize("task", ["train", "eval", "prepare"])
def test_every_data_config_caches_under_paths_cache_dir(task, tmp_path):
    names = sorted(p.stem for p in (Path(cache_module.__file__).parents[1] / "conf" / "data").glob("*.yaml"))
    for name in names if task == "train" else ["dubai", "synthetic", "taikang"]:
        cfg = compose_config(task, [f"data={name}", f"paths.cache_dir={tmp_path}"])
        assert cfg.data.cache is True and cfg.data.cache_dir == str(tmp_path), name
    assert compose_config(task, ["data=gid", "data.cache=false"]).data.cache is False
    with pytest.raises(ConfigError, match=r"data.cache=maybe: not true or false"):
        compose_config(task, ["data=gid", "data.cache=maybe"])


def test_prepare_builds_the_read_cache_and_reports_its_size(tmp_path, capsys):
    root = tmp_path / "dubai"
    make_dubai(root)
    report = run_prepare(compose_config("prepare", [
        "data=dubai", f"data.root={root}", f"paths.cache_dir={tmp_path / 'cache'}", f"out_dir={tmp_path / 'out'}"]))
    built = sorted((tmp_path / "cache" / "rasters").glob("*.tif"))
    assert report["read_cache"]["rasters"] == len(built) == 16  # 8 images and their 8 masks, every split
    assert report["read_cache"]["mb"] == round(sum(p.stat().st_size for p in built) / 1e6, 1) > 0
    assert json.loads((tmp_path / "out" / "stats.json").read_text())["read_cache"] == report["read_cache"]
    summary = capsys.readouterr().out
    assert f"read cache: 16 rasters, {report['read_cache']['mb']:,.1f} MB under {tmp_path / 'cache' / 'rasters'}" in summary
    skipped = run_prepare(compose_config("prepare", [
        "data=dubai", f"data.root={root}", f"paths.cache_dir={tmp_path / 'off'}", f"out_dir={tmp_path / 'out2'}",
        "data.cache=false", "check_pixels=false"]))
    assert "read_cache" not in skipped and not (tmp_path / "off").exists()


@pytest.mark.slow
def test_rsseg_prepare_on_the_real_dubai_set_builds_its_read_cache(shared, tmp_path):
    root = shared / "data" / "dubai_aerial"
    run = subprocess.run(
        [*rsseg_program(), "prepare", "data=dubai", f"data.root={root}", "check_pixels=false", f"out_dir={tmp_path}"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
        env={**os.environ, "RSSEG_CACHE": str(tmp_path / "cache")},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads((tmp_path / "stats.json").read_text())["read_cache"]
    assert report["rasters"] == 126 and report["read_directly"] == 0  # 63 JPEG images and their 63 PNG masks
    assert 530 < report["mb"] < 540  # 400 MB of pixels, in whole 256 px blocks
    assert f"read cache: 126 rasters, {report['mb']:,.1f} MB" in run.stdout
