"""Prediction over a region: catalogues, shards on Hydra's local launcher, resuming, failed scenes, index and mosaic."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from rsseg.config import compose_config
from rsseg.errors import DataError
from rsseg.inference.catalogue import deal, list_inputs, scene_info
from rsseg.inference.region import run_region
from tests.test_inference import smooth_image
from tests.test_predict_cli import conv_model_config, data_config, write_checkpoint

REPO = Path(__file__).resolve().parents[1]
HEIGHT, WIDTH = 96, 80
NAMES = ["a", "b", "c", "d", "e", "f"]
CRS = "EPSG:32650"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.ckpt", conv_model_config(), data_config())


def write_scenes(folder: Path) -> list[Path]:
    """Six 96 x 80 scenes at 2 m in a 3 x 2 grid of adjacent footprints."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, name in enumerate(NAMES):
        row, col = divmod(i, 3)
        transform = Affine(2, 0, 500_000 + col * WIDTH * 2, 0, -2, 4_000_000 - row * HEIGHT * 2)
        path = folder / f"{name}.tif"
        with rasterio.open(path, "w", driver="GTiff", width=WIDTH, height=HEIGHT, count=3, dtype="uint8", crs=CRS,
                           transform=transform) as dst:
            dst.write(smooth_image(HEIGHT, WIDTH, seed=i))
        paths.append(path)
    return paths


def region(checkpoint: Path, scenes: Path, output: Path, *overrides: str) -> dict:
    cfg = compose_config("predict", [f"ckpt={checkpoint}", f"input={scenes}", f"output={output}", "region=true",
                                     "tile_size=64", "num_threads=1", "progress=false", *overrides])
    return run_region(cfg)


def classes(folder: Path) -> dict[str, np.ndarray]:
    out = {}
    for name in NAMES:
        with rasterio.open(folder / f"{name}_classes.tif") as handle:
            out[name] = handle.read(1)
    return out


def test_catalogues_list_the_same_scenes(tmp_path):
    scenes = write_scenes(tmp_path / "scenes")
    (tmp_path / "list.txt").write_text("# the region\nscenes/a.tif\n\n" + "\n".join(str(p) for p in scenes[1:3]))
    assert list_inputs(tmp_path / "list.txt") == (scenes[:3], True)

    features = [{"type": "Feature", "geometry": None, "properties": {"path": f"scenes/{n}.tif"}} for n in "ab"]
    (tmp_path / "tiles.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    assert list_inputs(tmp_path / "tiles.geojson") == (scenes[:2], True)

    items = [{"type": "Feature", "stac_version": "1.0.0", "id": n, "geometry": None, "properties": {},
              "assets": {"thumbnail": {"href": "x.png", "type": "image/png"},
                         "visual": {"href": str(tmp_path / "scenes" / f"{n}.tif"),
                                    "type": "image/tiff; application=geotiff"}}} for n in "fe"]
    (tmp_path / "items.json").write_text(json.dumps({"type": "FeatureCollection", "features": items}))
    assert list_inputs(tmp_path / "items.json")[0] == [scenes[5], scenes[4]]

    with sqlite3.connect(tmp_path / "index.gpkg") as db:  # as gdaltindex writes one: a "location" column
        db.execute("CREATE TABLE gpkg_contents (table_name TEXT, data_type TEXT, identifier TEXT)")
        db.execute("INSERT INTO gpkg_contents VALUES ('tiles', 'features', 'tiles')")
        db.execute("CREATE TABLE tiles (fid INTEGER PRIMARY KEY, geom BLOB, location TEXT)")
        db.executemany("INSERT INTO tiles (location) VALUES (?)", [("scenes/d.tif",), ("scenes/c.tif",)])
    assert list_inputs(tmp_path / "index.gpkg")[0] == [scenes[3], scenes[2]]
    assert list_inputs(tmp_path / "index.gpkg", "LOCATION")[0] == [scenes[3], scenes[2]]

    (tmp_path / "bad.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": None, "properties": {"name": "a"}}]}))
    with pytest.raises(DataError, match=r"bad.geojson: feature 0 has no path or location"):
        list_inputs(tmp_path / "bad.geojson")
    (tmp_path / "missing.txt").write_text("scenes/nope.tif\n")
    with pytest.raises(DataError, match=r"missing.txt: scene scenes/nope.tif not found"):
        list_inputs(tmp_path / "missing.txt")


def test_scenes_are_dealt_largest_first_to_the_least_loaded_shard(tmp_path):
    assert deal([10, 1, 5, 5, 3], 2) == [[0, 4], [1, 2, 3]]
    assert deal([4] * 6, 2) == [[0, 2, 4], [1, 3, 5]]
    assert deal([7, 0], 3) == [[0], [1], []]
    info = scene_info(write_scenes(tmp_path)[0])
    assert (info.pixels, info.crs) == (HEIGHT * WIDTH, CRS)
    assert info.km2 == pytest.approx(HEIGHT * WIDTH * 4 / 1e6)


def test_one_shard_writes_records_an_index_and_a_mosaic(checkpoint, tmp_path):
    scenes = write_scenes(tmp_path / "scenes")
    summary = region(checkpoint, tmp_path / "scenes", tmp_path / "pred", "mosaic=cog")
    assert (summary["scenes"], summary["done"], summary["skipped"], summary["failed"]) == (6, 6, 0, 0)
    assert summary["tiles"] == 6 * 4  # 64 px tiles overlapping 16 px: 2 x 2 per 96 x 80 scene
    assert summary["km2"] == pytest.approx(6 * HEIGHT * WIDTH * 4 / 1e6)
    assert set(summary["stage_seconds"]) == {"read", "model", "write"}
    record = json.loads((tmp_path / "pred" / "a_record.json").read_text())
    assert record["status"] == "done" and sum(record["class_counts"].values()) == HEIGHT * WIDTH
    counts = np.bincount(classes(tmp_path / "pred")["a"].ravel(), minlength=4)
    assert [record["class_counts"][n] for n in data_config()["class_names"]] == counts[:4].tolist()

    index = json.loads((tmp_path / "pred" / "index.geojson").read_text())
    assert [f["properties"]["status"] for f in index["features"]] == ["done"] * 6
    assert [Path(f["properties"]["input"]) for f in index["features"]] == scenes
    lon, lat = np.array(index["features"][0]["geometry"]["coordinates"][0]).T
    assert 116 < lon.min() < lon.max() < 118 and 36 < lat.min() < lat.max() < 37  # UTM 50N near 4,000 km north

    with rasterio.open(tmp_path / "pred" / "mosaic.vrt") as mosaic:
        assert mosaic.crs == rasterio.crs.CRS.from_string(CRS)
        assert tuple(mosaic.bounds) == (500_000, 4_000_000 - 2 * HEIGHT * 2, 500_000 + 3 * WIDTH * 2, 4_000_000)
        assert mosaic.colormap(1)[1] == (255, 255, 255, 255) and mosaic.nodata == 255
        assert json.loads(mosaic.tags()["CLASS_NAMES"]) == data_config()["class_names"]
        whole = mosaic.read(1)
    with rasterio.open(tmp_path / "pred" / "mosaic_cog.tif") as cog:
        assert cog.bounds == mosaic.bounds and cog.colormap(1)[1] == (255, 255, 255, 255)
        assert np.array_equal(cog.read(1), whole)
    parts = classes(tmp_path / "pred")
    assert np.array_equal(whole[:HEIGHT, WIDTH : 2 * WIDTH], parts["b"])
    assert np.array_equal(whole[HEIGHT:, 2 * WIDTH :], parts["f"])


def test_a_killed_run_resumes_with_the_scenes_left(checkpoint, tmp_path, monkeypatch):
    import rsseg.inference.region as region_module

    write_scenes(tmp_path / "scenes")
    real, calls, kill = region_module.predict_scene, [], {"at": 4}

    def killed_at_the_fourth(*args, **kwargs):
        calls.append(Path(args[0].name).stem)
        if len(calls) == kill["at"]:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(region_module, "predict_scene", killed_at_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        region(checkpoint, tmp_path / "scenes", tmp_path / "pred")
    pred = tmp_path / "pred"
    assert sorted(p.name for p in pred.glob("*_classes.tif")) == ["a_classes.tif", "b_classes.tif", "c_classes.tif"]
    assert json.loads((pred / "d_record.json").read_text())["status"] == "running"
    before = {p.name: p.stat().st_mtime_ns for p in pred.glob("*_classes.tif")}
    (pred / ".d_classes.tif.x1y2.partial").write_bytes(b"left by a SIGKILL mid-scene")

    calls.clear()
    kill["at"] = None
    summary = region(checkpoint, tmp_path / "scenes", pred)
    assert calls == ["d", "e", "f"] and (summary["done"], summary["skipped"]) == (3, 3)
    assert {n: pred.joinpath(n).stat().st_mtime_ns for n in before} == before
    assert not list(pred.glob(".*.partial"))

    # a changed input is predicted again; so is every scene under other settings
    os.utime(tmp_path / "scenes" / "b.tif", ns=(1, 1))
    calls.clear()
    region(checkpoint, tmp_path / "scenes", pred)
    assert calls == ["b"]
    calls.clear()
    region(checkpoint, tmp_path / "scenes", pred, "tta=flip")
    assert calls == NAMES


def test_a_corrupt_scene_fails_alone(checkpoint, tmp_path, capsys):
    write_scenes(tmp_path / "scenes")
    (tmp_path / "scenes" / "c.tif").write_bytes(b"II*\x00 not really a GeoTIFF")
    with pytest.raises(SystemExit) as stop:
        region(checkpoint, tmp_path / "scenes", tmp_path / "pred")
    assert stop.value.code == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "c.tif" in errors[0] and "not a readable raster" in errors[0]
    assert sorted(p.name for p in (tmp_path / "pred").glob("*_classes.tif")) == [
        f"{n}_classes.tif" for n in NAMES if n != "c"]
    index = json.loads((tmp_path / "pred" / "index.geojson").read_text())
    statuses = {Path(f["properties"]["input"]).stem: f["properties"]["status"] for f in index["features"]}
    assert statuses == {**dict.fromkeys(NAMES, "done"), "c": "failed"}
    failed = next(f for f in index["features"] if f["properties"]["status"] == "failed")
    assert failed["geometry"] is None and "not a readable raster" in failed["properties"]["error"]
    with rasterio.open(tmp_path / "pred" / "mosaic.vrt") as mosaic:
        assert mosaic.read(1)[:HEIGHT, 2 * WIDTH :].tolist() == np.full((HEIGHT, WIDTH), 255).tolist()


# Two processes that each import torch take ~50 s on two shared cores: the same jobs one after the other in
# Hydra's own launcher run in the default suite, joblib's parallel processes with -m slow.
@pytest.mark.parametrize("launcher", ["basic", pytest.param("parallel", marks=pytest.mark.slow)])
def test_two_shards_on_the_local_launcher_match_one(checkpoint, tmp_path, launcher):
    write_scenes(tmp_path / "scenes")
    region(checkpoint, tmp_path / "scenes", tmp_path / "one")
    command = [sys.executable, str(REPO / "predict.py"), "-m", f"ckpt={checkpoint}", f"input={tmp_path / 'scenes'}",
               f"output={tmp_path / 'two'}", "shards=2", "tile_size=64", "num_threads=1", "progress=false",
               f"hydra/launcher={launcher}", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    one, two = classes(tmp_path / "one"), classes(tmp_path / "two")
    assert all(np.array_equal(one[n], two[n]) for n in NAMES)
    shards = [json.loads((tmp_path / "two" / f"{n}_record.json").read_text())["shard"] for n in NAMES]
    assert shards == [0, 1, 0, 1, 0, 1]  # equal sizes: dealt in turn
    assert "sweep" in run.stdout and "2 jobs, 2 done" in run.stdout
    assert "region: 6 scenes (6 predicted, 0 complete before, 0 failed), 24 tiles, 0.18 km²" in run.stdout
    index = json.loads((tmp_path / "two" / "index.geojson").read_text())
    assert [f["properties"]["status"] for f in index["features"]] == ["done"] * 6
    with rasterio.open(tmp_path / "two" / "mosaic.vrt") as mosaic:
        assert mosaic.shape == (2 * HEIGHT, 3 * WIDTH)


@pytest.mark.slow
def test_a_predict_sweep_of_settings_ends_with_its_jobs_done(checkpoint, tmp_path):
    """Not a region: each job still leaves the results.json the sweep's summary reads."""
    write_scenes(tmp_path / "scenes")
    command = [sys.executable, str(REPO / "predict.py"), "-m", f"ckpt={checkpoint}",
               f"input={tmp_path / 'scenes' / 'a.tif'}", f"output={tmp_path / 'out'}/", "tta=none,flip",
               "overwrite=true", "progress=false", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "2 jobs, 2 done, 0 skipped (finished before), 0 failed" in run.stdout
    jobs = sorted((tmp_path / "sweep").glob("*/results.json"))  # job folders are named by their overrides
    assert len(jobs) == 2 and all("tta=" in job.parent.name for job in jobs)
    results = [json.loads(job.read_text()) for job in jobs]
    assert [r["summary"]["tiles"] for r in results] == [1, 1]  # one 128 px tile covers a 96 x 80 scene


@pytest.mark.slow
def test_the_prediction_benchmark_gives_a_scaling_row(tmp_path):
    run = subprocess.run([sys.executable, "benchmarks/predict.py", "--quick", "--workdir", str(tmp_path)],
                         cwd=REPO, capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = run.stdout.split("Scaling:")[1].splitlines()[3:6]
    cores = len(os.sched_getaffinity(0))
    half = str(max(1, cores // 2))
    assert [row.split()[:3] for row in rows] == [["1", str(cores), "36"], ["1", half, "36"], ["2", half, "36"]]
    assert float(rows[2].split()[-1]) > 0
