"""The Python API: the README's example runs as printed, a network of one's own predicts, bad options are
refused in one line."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import rasterio
import torch

import rsseg
from rsseg.errors import ConfigError
from tests.readme import code_blocks, section
from tests.test_inference import MEAN, STD, pointwise_model, smooth_image, write_geotiff
from tests.test_predict_cli import CLASSES, PALETTE, conv_model_config, data_config, write_checkpoint


@pytest.fixture
def workspace(tmp_path):
    """What the README's example starts from: best.ckpt, scene.tif and its colour-coded scene_label.tif."""
    pixels = smooth_image(200, 180)
    write_geotiff(tmp_path / "scene.tif", pixels)
    classes = np.digitize(pixels[0], [100, 120, 140])
    write_geotiff(tmp_path / "scene_label.tif", np.asarray(PALETTE, np.uint8)[classes].transpose(2, 0, 1))
    write_checkpoint(tmp_path / "best.ckpt", conv_model_config(),
                     data_config(label_format="colour", eval_tile_size=64))
    return tmp_path


def test_readme_example_runs_as_printed(workspace, monkeypatch, capsys):
    (code,) = code_blocks(section("Python API"), "python")
    assert len(code.strip().splitlines()) <= 10
    monkeypatch.chdir(workspace)
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"{CLASSES} {PALETTE} [120.0, 110.0, 100.0] [50.0, 45.0, 40.0] None"
    results = json.loads((workspace / "eval" / "results.json").read_text())
    miou = results["metrics"]["input"]["miou"]
    assert re.search(rf"^mIoU {miou:.3f}$", out, re.MULTILINE)
    assert results["scenes"][0]["pixels"] == 200 * 180
    with rasterio.open(workspace / "scene.tif") as src:
        for name in ("scene_classes.tif", "onnx_classes.tif"):
            with rasterio.open(workspace / name) as dst:
                assert (dst.crs, dst.transform, dst.shape) == (src.crs, src.transform, src.shape)
                assert dst.read(1).max() < 4
    assert rsseg.load_checkpoint(workspace / "model.onnx").class_names == CLASSES


def test_a_network_of_ones_own_predicts_through_trained_model(tmp_path):
    pixels = smooth_image(150, 130)
    scene = write_geotiff(tmp_path / "scene.tif", pixels)
    net = pointwise_model(classes=5)
    model = rsseg.TrainedModel(net, class_names=list("abcde"), mean=MEAN, std=STD)
    summary = rsseg.predict_scene(model, scene, tmp_path / "out" / "classes.tif", tile_size=64, progress=False)
    assert summary["tiles"] == 9  # 64 px tiles every 48 px: rows start at 0, 48, 86; columns at 0, 48, 66
    x = (torch.from_numpy(pixels).float() - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)
    with torch.no_grad():
        expected = net(x[None]).argmax(1)[0].numpy()
    with rasterio.open(tmp_path / "out" / "classes.tif") as dst:
        assert dst.tags()["CLASS_4"] == "e" and dst.tags()["RSSEG_CHECKPOINT"] == "<in memory>"
        assert np.array_equal(dst.read(1), expected)  # a 1x1 network: tiling and blending change nothing


def test_options_are_the_commands_keys(workspace):
    with pytest.raises(ConfigError, match="tile_sise=64: rsseg predict has no option 'tile_sise'; expected one of"):
        rsseg.predict_scene(workspace / "best.ckpt", workspace / "scene.tif", tile_sise=64)
    with pytest.raises(ConfigError, match="expected a checkpoint path or a TrainedModel, got Conv2d"):
        rsseg.predict_scene(torch.nn.Conv2d(3, 2, 1), workspace / "scene.tif")
    with pytest.raises(ConfigError, match="rsseg eval data=nowhere_dataset"):
        rsseg.evaluate(workspace / "best.ckpt", data="nowhere_dataset")
    assert not list(workspace.glob("*_classes.tif"))
