"""`rsseg prepare`: every problem listed, statistics and class counts against direct reads, tiles as the papers cut
them, everything written atomically."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from hydra.utils import instantiate

import rsseg.config  # noqa: F401 - registers ${rsseg.stats:...}
from rsseg.data.prepare import run_prepare
from rsseg.errors import DataError
from tests.conftest import compose_config
from tests.test_datasets import GID, class_map, colours, make_gid, write_tif


def prepare(*overrides: str):
    return run_prepare(compose_config("prepare", list(overrides)))


@pytest.fixture(scope="module")
def gid_scene_set(tmp_path_factory):
    # Scenes of 6800 x 7200 px scaled down 16 times, tiles of 512 likewise: 425 x 450 px, tiles of 32.
    root = tmp_path_factory.mktemp("gid")
    return root, make_gid(root, scenes=2, size=(425, 450))


def test_statistics_class_counts_manifest_and_gid_tiles(gid_scene_set, tmp_path):
    root, truth = gid_scene_set
    out = tmp_path / "out"
    report = prepare("data=gid", f"data.root={root}", "data.scenes.test_scenes=1", "protocol.select_on=test",
                     f"out_dir={out}", "window=100", "tiles.write=true", "tiles.size=32", "tiles.splits=[train]")
    manifest = json.loads((out / "splits.json").read_text())
    train = [e["name"] for e in manifest["splits"]["train"]]
    assert len(train) == 1 and report["splits"] == {"train": 1, "val": 1, "test": 1}
    assert manifest["splits"]["val"] == manifest["splits"]["test"] and manifest["protocol"]["select_on"] == "test"
    image_path = root / manifest["splits"]["train"][0]["image"]
    with rasterio.open(image_path) as src:
        pixels = src.read().reshape(3, -1).astype(np.float64)
    assert np.allclose(report["mean"], pixels.mean(1), atol=1e-3) and np.allclose(report["std"], pixels.std(1), atol=1e-3)
    names = ["built_up", "farmland", "forest", "meadow", "water", "background"]
    expected = np.bincount(truth[train[0]].ravel(), minlength=6)
    assert [report["class_counts"]["train"][n] for n in names] == expected.tolist()
    assert sum(report["class_frequencies"].values()) == pytest.approx(1.0, abs=1e-5)
    # GID's 13 x 14 = 182 tiles per scene, remainders dropped; contents equal the source windows.
    assert report["tiles"]["train"] == 182
    tiles = json.loads((out / "tiles" / "splits.json").read_text())["splits"]["train"]
    assert len(tiles) == 182 and len(list((out / "tiles" / "train" / "images").glob("*.tif"))) == 182
    last = next(t for t in tiles if t["name"].endswith("_384_416"))
    with rasterio.open(out / "tiles" / last["image"]) as tile, rasterio.open(image_path) as src:
        assert np.array_equal(tile.read(), src.read(window=((384, 416), (416, 448))))
        assert tile.transform.c == pytest.approx(src.xy(384, 416, offset="ul")[0])
    with rasterio.open(out / "tiles" / last["label"]) as tile:
        assert np.array_equal(tile.read(), colours(truth[train[0]][384:416, 416:448], GID))
    assert not list(out.rglob("*.partial"))  # atomic writes leave no temporary file behind
    # The tiles read back as a dataset through their manifest, and the stats file feeds the normalisation.
    cfg = compose_config("train", ["data=gid", f"data.root={out / 'tiles'}", "protocol=manifest",
                                   f"protocol.split_file={out / 'tiles' / 'splits.json'}", "data.num_workers=0",
                                   f"data.stats_file={out / 'stats.json'}"])
    dm = instantiate(cfg.data, augment=None)
    scenes, sizes = dm.split_scenes("train")
    held_out = dm.split_scenes("val")[0]  # the manifest lists no val: 10 % of its training tiles validate
    assert len(scenes) + len(held_out) == 182 and len(held_out) == 18 and set(sizes) == {(32, 32)}
    assert list(cfg.data.mean) == report["mean"] and list(cfg.data.std) == report["std"]


@pytest.mark.parametrize("protocol", ["random", "standard"])
def test_prepare_writes_splits_whose_val_and_test_share_no_tile(protocol, tmp_path):
    import subprocess
    import sys

    out = tmp_path / protocol
    done = subprocess.run(
        [sys.executable, "-m", "rsseg.cli", "prepare", "data=synthetic", f"protocol={protocol}", f"out_dir={out}",
         f"paths.cache_dir={tmp_path / 'cache'}", "data.scenes.size=512", "data.scenes.num_scenes=5",
         "data.scenes.split_tile_size=128", "window=128"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    splits = json.loads((out / "splits.json").read_text())["splits"]
    key = lambda entry: (entry["image"], tuple(entry["window"] or ()))  # noqa: E731
    val, test, train = ({key(e) for e in splits[name]} for name in ("val", "test", "train"))
    assert val and test and not val & test and not val & train and not test & train
    if protocol == "random":  # 5 scenes of 4 x 4 tiles: 64 train (6 of them validate), 16 test
        assert (len(train), len(val), len(test)) == (58, 6, 16)
    else:  # scenes 0-1 train, 2-3 validate, 4 tests (whole scenes: no window)
        assert (len(train), len(val), len(test)) == (2, 2, 1)
        assert [e["image"].rsplit("/", 1)[-1] for e in splits["test"]] == ["scene_04.tif"]
    # The file prepare says to train with is one the synthetic data config takes.
    suggested = done.stdout.strip().splitlines()[-1].rsplit("train with ", 1)[1]
    assert suggested == f"data.stats_file={out / 'stats.json'}"
    cfg = compose_config("train", ["data=synthetic", suggested, f"paths.output_dir={tmp_path}"])
    assert list(cfg.data.mean) == json.loads((out / "stats.json").read_text())["mean"] != [89.7, 111.6, 73.5]


def test_every_missing_or_malformed_file_is_listed(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "set"
    for stem in ("good", "nolabel", "badvalue", "size", "bands", "corrupt"):
        bands = 4 if stem == "bands" else 3
        write_tif(root / "images" / f"{stem}.tif", rng.integers(0, 255, (bands, 48, 48)).astype(np.uint8))
        if stem == "nolabel":
            continue
        labels = class_map(rng, 48, 40 if stem == "size" else 48, 2).astype(np.uint8)
        if stem == "badvalue":
            labels[:3, :3] = 9
        write_tif(root / "labels" / f"{stem}.tif", labels[None])
    corrupt = root / "images" / "corrupt.tif"
    corrupt.write_bytes(corrupt.read_bytes()[: 3000])  # truncated: the header opens, the pixels do not read
    with pytest.raises(DataError) as error:
        prepare("data=geotiff", f"data.root={root}", f"out_dir={tmp_path / 'out'}",
                "data.scenes.splits={train:[good,nolabel,badvalue,size,bands],val:[corrupt]}")
    message = str(error.value)
    lines = message.splitlines()
    assert lines[0].startswith("5 problem(s)")
    assert any("labels/nolabel.tif: file not found" in line for line in lines)
    assert any("badvalue.tif: label value 9 is not a class (9 pixels)" in line for line in lines)
    assert any("labels/size.tif: size 48x40 differs from its image size.tif (48x48)" in line for line in lines)
    assert any("images/bands.tif: 4 bands read but the data config expects in_channels=3" in line for line in lines)
    assert any("images/corrupt.tif" in line and "unreadable" in line for line in lines)
    assert not (tmp_path / "out" / "stats.json").exists()


def test_cli_prepare_prints_problems_and_exits_2(tmp_path, capsys):
    from rsseg.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["prepare", "data=vaihingen", f"data.root={tmp_path / 'none'}", f"out_dir={tmp_path / 'out'}",
              f"hydra.run.dir={tmp_path / 'run'}"])
    assert exit_info.value.code == 2
    assert "vaihingen folder not found" in capsys.readouterr().err


def test_cli_prepare_on_the_real_dubai_set(shared, tmp_path, capsys):
    from rsseg.cli import main

    main(["prepare", "data=dubai", f"data.root={shared / 'data' / 'dubai_aerial'}", f"out_dir={tmp_path}",
          f"hydra.run.dir={tmp_path / 'run'}", "check_pixels=false"])
    assert "no problem found" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "splits.json").read_text())
    assert [len(manifest["splits"][s]) for s in ("train", "val", "test")] == [49, 7, 7]
    assert manifest["splits"]["val"][0]["image"] == str(Path("Tile_1/images/image_part_008.jpg"))
