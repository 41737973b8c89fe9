"""predict.py / rsseg predict: georeferenced outputs, companions, refusals and interrupted runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from rsseg.config import compose_config
from rsseg.errors import ConfigError, DataError
from rsseg.inference.predict import run_predict
from tests.test_inference import smooth_image, write_geotiff

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared"
CLASSES = ["building", "road", "tree", "water"]
PALETTE = [[255, 0, 0], [255, 255, 255], [0, 255, 0], [0, 0, 255]]


def conv_model_config(in_channels: int = 3, classes: int = 4) -> dict:
    conv = {"_target_": "torch.nn.Conv2d", "kernel_size": 3, "padding": 1}
    return {"_target_": "torch.nn.Sequential", "_args_": [
        {**conv, "in_channels": in_channels, "out_channels": 8}, {"_target_": "torch.nn.ReLU"},
        {**conv, "in_channels": 8, "out_channels": classes}]}


def data_config(**extra) -> dict:
    return {"num_classes": 4, "in_channels": 3, "class_names": CLASSES, "palette": PALETTE, "ignore_index": 255,
            "bands": None, "nodata": None, "mean": [120.0, 110.0, 100.0], "std": [50.0, 45.0, 40.0],
            "tile_size": 64, "eval_tile_size": 128, **extra}


def write_checkpoint(path: Path, model_cfg: dict, data: dict, seed: int = 0) -> Path:
    """A checkpoint as rsseg's training writes it: the resolved config under hyper_parameters.cfg and the
    network's weights under ``model.``."""
    torch.manual_seed(seed)
    model = instantiate(OmegaConf.create(model_cfg))
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    torch.save({"hyper_parameters": {"cfg": {"model": model_cfg, "data": data}}, "state_dict": state}, path)
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.ckpt", conv_model_config(), data_config())


def predict(checkpoint: Path, *overrides: str) -> dict:
    cfg = compose_config("predict", [f"ckpt={checkpoint}", "progress=false", *overrides])
    return run_predict(cfg)


def test_class_raster_keeps_georeferencing_and_carries_classes(checkpoint, tmp_path):
    source = write_geotiff(tmp_path / "odd.tif", smooth_image(1001, 777))
    out = tmp_path / "out" / "odd_classes.tif"
    summary = predict(checkpoint, f"input={source}", f"output={out}", "tile_size=256")
    assert summary["tiles"] == 20 and summary["rss_peak_mib"] > 0
    with rasterio.open(source) as src, rasterio.open(out) as dst:
        assert (dst.crs, dst.transform, dst.shape) == (src.crs, src.transform, src.shape)
        assert dst.count == 1 and dst.dtypes[0] == "uint8" and dst.nodata == 255
        assert dst.profile["tiled"] and dst.compression.name.lower() == "deflate"
        assert dst.colormap(1)[1] == (255, 255, 255, 255) and dst.colormap(1)[255][3] == 0
        assert json.loads(dst.tags()["CLASS_NAMES"]) == CLASSES and dst.tags()["CLASS_3"] == "water"
        assert dst.descriptions == ("class",)
        classes = dst.read(1)
    assert classes.max() < 4
    assert sorted(p.name for p in out.parent.iterdir()) == ["odd_classes.tif"]  # no temporaries left


def test_scene_smaller_than_a_tile_and_all_companion_outputs(checkpoint, tmp_path):
    source = write_geotiff(tmp_path / "small.tif", smooth_image(90, 70))
    out = tmp_path / "small_classes.tif"
    predict(checkpoint, f"input={source}", f"output={out}", "confidence=true", "probabilities=true",
            "preview=true", "cog=true", "preview_size=32")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["small.tif", "small_classes.tif", "small_confidence.tif", "small_preview.png",
                     "small_probabilities.tif"]
    with rasterio.open(out) as dst:
        assert dst.shape == (90, 70) and dst.colormap(1)[0] == (255, 0, 0, 255)
        assert dst.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        classes = dst.read(1)
    with rasterio.open(tmp_path / "small_probabilities.tif") as probs:
        assert probs.count == 4 and probs.descriptions == tuple(CLASSES)
        stack = probs.read().astype(int)
    assert np.abs(stack.sum(0) - 254).max() <= 4  # uint8 probabilities x 254 sum to ~254
    top2 = np.sort(stack, 0)[-2:]
    clear = top2[1] - top2[0] > 1  # away from ties that rounding to uint8 can swap
    assert clear.mean() > 0.5 and (stack.argmax(0) == classes)[clear].all()
    with rasterio.open(tmp_path / "small_confidence.tif") as conf:
        confidence = conf.read(1)
    assert confidence.min() >= 254 // 4 and confidence.max() <= 254
    from PIL import Image

    preview = Image.open(tmp_path / "small_preview.png")
    assert preview.mode == "RGBA" and max(preview.size) <= 32


def test_cog_has_overviews(checkpoint, tmp_path):
    source = write_geotiff(tmp_path / "big.tif", smooth_image(700, 600), tiled=True)
    out = tmp_path / "big_classes.tif"
    predict(checkpoint, f"input={source}", f"output={out}", "cog=true", "tile_size=256", "overlap=0")
    with rasterio.open(out) as dst:
        factors = dst.overviews(1)
        assert factors and max(dst.shape) / factors[-1] <= 256  # overviews down to one 256 px block
        assert dst.colormap(1)[2] == (0, 255, 0, 255)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.tif", "big_classes.tif"]


def test_folder_and_glob_inputs_write_one_class_raster_per_scene(checkpoint, tmp_path):
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    for name in ("a", "b"):
        write_geotiff(scenes / f"{name}.tif", smooth_image(100, 120, seed=ord(name)))
    (scenes / "notes.txt").write_text("not a raster")
    predict(checkpoint, f"input={scenes}", f"output={tmp_path / 'pred'}")
    assert sorted(p.name for p in (tmp_path / "pred").iterdir()) == ["a_classes.tif", "b_classes.tif"]
    predict(checkpoint, f"input='{scenes}/b*.tif'", f"output={tmp_path / 'globbed'}")
    assert sorted(p.name for p in (tmp_path / "globbed").iterdir()) == ["b_classes.tif"]
    # predicting into the input folder twice: the second run skips the first run's outputs as inputs
    predict(checkpoint, f"input={scenes}", f"output={scenes}")
    summary = predict(checkpoint, f"input={scenes}", f"output={scenes}", "overwrite=true")
    assert [Path(s["input"]).name for s in summary["scenes"]] == ["a.tif", "b.tif"]


def test_nodata_stays_nodata(checkpoint, tmp_path):
    pixels = smooth_image(160, 200)
    pixels[:, 20:60, 30:120] = 0
    source = write_geotiff(tmp_path / "nd.tif", pixels, nodata=0)
    out = tmp_path / "nd_classes.tif"
    predict(checkpoint, f"input={source}", f"output={out}", "confidence=true")
    nodata = (pixels == 0).all(0)
    with rasterio.open(out) as dst, rasterio.open(tmp_path / "nd_confidence.tif") as conf:
        assert (dst.read(1)[nodata] == 255).all() and (dst.read(1)[~nodata] < 4).all()
        assert (conf.read(1)[nodata] == 255).all() and conf.nodata == 255


def test_refusals_name_the_file_and_write_nothing(checkpoint, tmp_path):
    source = write_geotiff(tmp_path / "s.tif", smooth_image(64, 64))
    with pytest.raises(DataError, match="missing.tif: file not found"):
        predict(checkpoint, f"input={tmp_path / 'missing.tif'}", f"output={tmp_path / 'o.tif'}")
    four = write_geotiff(tmp_path / "four.tif", np.zeros((4, 64, 64), dtype=np.uint8))
    with pytest.raises(DataError, match=r"four.tif: 4 bands but the checkpoint's model expects in_channels=3"):
        predict(checkpoint, f"input={four}", f"output={tmp_path / 'o.tif'}")
    text = tmp_path / "fake.tif"
    text.write_text("hello")
    with pytest.raises(DataError, match="fake.tif: not a readable raster"):
        predict(checkpoint, f"input={text}", f"output={tmp_path / 'o.tif'}")
    with pytest.raises(DataError, match="would overwrite its input"):
        predict(checkpoint, f"input={source}", f"output={source}", "overwrite=true")
    existing = tmp_path / "exists.tif"
    existing.write_bytes(b"keep me")
    with pytest.raises(DataError, match="exists.tif: output exists; pass overwrite=true"):
        predict(checkpoint, f"input={source}", f"output={existing}")
    assert existing.read_bytes() == b"keep me"
    with pytest.raises(ConfigError, match="ckpt= is required"):
        run_predict(compose_config("predict", [f"input={source}"]))
    with pytest.raises(DataError, match="checkpoint not found"):
        predict(tmp_path / "none.ckpt", f"input={source}", f"output={tmp_path / 'o.tif'}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists.tif", "fake.tif", "four.tif", "s.tif"]
    predict(checkpoint, f"input={source}", f"output={existing}", "overwrite=true")
    with rasterio.open(existing) as dst:
        assert dst.shape == (64, 64)


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
def test_an_interrupted_prediction_leaves_no_output(checkpoint, tmp_path, monkeypatch, error):
    from rsseg.inference.predictor import TilePredictor

    source = write_geotiff(tmp_path / "scene.tif", smooth_image(600, 300))
    original = TilePredictor.probabilities
    calls = {"n": 0}

    def dies(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 3:
            raise error("stopped mid-scene")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(TilePredictor, "probabilities", dies)
    out = tmp_path / "out"
    with pytest.raises(error):
        predict(checkpoint, f"input={source}", f"output={out / 'scene_classes.tif'}", "tile_size=64",
                "batch_size=2", "confidence=true", "probabilities=true", "preview=true", "cog=true")
    assert calls["n"] == 4
    assert list(out.iterdir()) == []  # neither outputs nor .partial temporaries


def test_real_geotiff_keeps_crs_transform_and_nodata(checkpoint, tmp_path):
    path = SHARED / "data" / "geotiff" / "RGB.byte.tif"
    if not path.is_file():
        pytest.skip("../shared/data/geotiff/RGB.byte.tif is not present")
    out = tmp_path / "rgb_classes.tif"
    predict(checkpoint, f"input={path}", f"output={out}", "tile_size=256")
    with rasterio.open(path) as src, rasterio.open(out) as dst:
        assert src.crs.to_epsg() == 32618 and dst.crs == src.crs
        assert dst.transform == src.transform and dst.shape == src.shape == (718, 791)
        nodata = (src.read() == src.nodata).all(0)
        classes = dst.read(1)
    assert nodata.any() and (classes[nodata] == 255).all() and (classes[~nodata] < 4).all()


def test_predict_py_and_rsseg_predict_report_bad_input_in_one_line(checkpoint, tmp_path):
    source = write_geotiff(tmp_path / "s.tif", smooth_image(64, 64))
    bad = subprocess.run(
        [sys.executable, "predict.py", f"ckpt={checkpoint}", f"input={tmp_path / 'nope.tif'}",
         f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1] == f"error: {tmp_path / 'nope.tif'}: file not found"
    good = subprocess.run(
        [sys.executable, "-m", "rsseg.cli", "predict", f"ckpt={checkpoint}", f"input={source}",
         f"output={tmp_path / 'cli.tif'}", "progress=false", f"hydra.run.dir={tmp_path / 'run2'}"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert good.returncode == 0, good.stderr[-2000:]
    assert "tiles/s" in good.stdout and "peak RSS" in good.stdout
    with rasterio.open(tmp_path / "cli.tif") as dst:
        assert dst.shape == (64, 64)
