"""Bad input with a right answer instead of an error: each case checks the answer (the refusals are in the other
files of this folder). A scene smaller than one tile with NaN pixels, two predictions writing one output at once,
``rsseg prepare`` interrupted, and ``prepare check_pixels=false`` followed by training."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import rasterio
import torch

from rsseg.config import CONF_DIR, compose_config
from rsseg.data.prepare import run_prepare
from rsseg.inference.engine import ArraySink, predict_raster
from rsseg.inference.predictor import TilePredictor
from tests.test_inference import smooth_image, write_geotiff
from tests.test_predict_cli import conv_model_config, data_config, write_checkpoint

# --------------------------------------------------------------------------------------------------------------
# Prediction
# --------------------------------------------------------------------------------------------------------------


class GlobalContext(torch.nn.Module):
    """Per-pixel logits plus the image mean: one NaN anywhere would reach every output pixel."""

    def __init__(self) -> None:
        super().__init__()
        self.pixel = torch.nn.Conv2d(3, 4, 1)
        torch.nn.init.normal_(self.pixel.weight, std=1.0, generator=torch.Generator().manual_seed(0))

    def forward(self, x):
        return self.pixel(x) + self.pixel(x).mean((2, 3), keepdim=True)



@pytest.mark.parametrize("height, width", [(96, 80), (40, 50)])  # the second is smaller than one 64 px tile
def test_nan_and_inf_pixels_are_nodata_and_never_reach_their_neighbours(tmp_path, height, width):
    pixels = smooth_image(height, width).astype(np.float32)
    pixels[:, 10:20, 30:40] = np.nan  # a block of NaN in every band: 100 pixels
    pixels[1, 25, 5] = np.inf  # one band infinite: the pixel is unusable as a whole
    with_nan = write_geotiff(tmp_path / "nan.tif", pixels)
    declared = pixels.copy()
    declared[:, ~np.isfinite(pixels).all(0)] = -9999  # the same pixels, as declared nodata
    with_nodata = write_geotiff(tmp_path / "nodata.tif", declared, nodata=-9999)

    predictor = TilePredictor(GlobalContext(), [120.0] * 3, [50.0] * 3, 4)
    results = {}
    for name, path in (("nan", with_nan), ("nodata", with_nodata)):
        sink = ArraySink(height, width, 4, probabilities=False)
        with rasterio.open(path) as handle:
            stats = predict_raster(handle, predictor, sink, tile_size=64, overlap=16)
        results[name] = (sink.classes, stats.extra["nonfinite_pixels"])
    classes, counted = results["nan"]
    bad = ~np.isfinite(pixels).all(0)
    assert counted == 101 and results["nodata"][1] == 0
    assert (classes[bad] == 255).all() and (classes[~bad] < 4).all()
    # Exactly what the same pixels declared as nodata give: nothing of the NaN leaked into the other pixels.
    assert np.array_equal(classes, results["nodata"][0])
    assert len(np.unique(classes[~bad])) > 1



def test_two_predictions_writing_the_same_cog_at_once_both_finish(tmp_path):
    """Each process writes under temporary names of its own; the last to finish replaces the output whole."""
    ckpt = write_checkpoint(tmp_path / "tiny.ckpt", conv_model_config(), data_config())
    source = write_geotiff(tmp_path / "scene.tif", smooth_image(768, 768), tiled=True)
    out = tmp_path / "out" / "classes.tif"
    command = [sys.executable, str(CONF_DIR.parents[2] / "predict.py"), f"ckpt={ckpt}", f"input={source}",
               f"output={out}", "tile_size=64", "cog=true", "progress=false"]
    runs = [subprocess.Popen([*command, f"hydra.run.dir={tmp_path / f'run{i}'}"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for i in range(2)]
    for run in runs:
        _, stderr = run.communicate(timeout=300)
        assert run.returncode == 0, stderr
    assert sorted(p.name for p in out.parent.iterdir()) == ["classes.tif"]
    with rasterio.open(out) as dst:
        assert (dst.width, dst.height) == (768, 768) and dst.overviews(1)
        assert set(np.unique(dst.read(1))) <= {0, 1, 2, 3}


# --------------------------------------------------------------------------------------------------------------
# rsseg prepare
# --------------------------------------------------------------------------------------------------------------


@pytest.fixture
def small_set(tmp_path):
    """Two 64 x 64 scenes of two classes, images/ and labels/ as data=geotiff reads them."""
    classes = (np.arange(64)[:, None] // 16 + np.arange(64)[None, :] // 32) % 2
    for part in ("images", "labels"):
        (tmp_path / "set" / part).mkdir(parents=True)
    for name in ("a", "b"):
        write_geotiff(tmp_path / "set" / "images" / f"{name}.tif", smooth_image(64, 64, seed=ord(name)))
        write_geotiff(tmp_path / "set" / "labels" / f"{name}.tif", classes.astype(np.uint8))
    return tmp_path / "set"


def prepare(*overrides: str):
    return run_prepare(compose_config("prepare", ["data=geotiff", "data.cache=false", "data.scenes.split_tile_size=32",
                                                  *overrides]))


@pytest.mark.parametrize("moment", ["after_the_tiles", "while_the_second_file_is_written"])
def test_an_interrupted_prepare_leaves_neither_splits_nor_stats(small_set, tmp_path, monkeypatch, moment):
    import rsseg.data.prepare as module
    import rsseg.runtime.results as results

    if moment == "after_the_tiles":
        write_tiles = module.write_tiles

        def interrupted(splits, folder, *args):
            write_tiles(splits, folder, *args)
            raise KeyboardInterrupt  # Ctrl-C once every tile is on disk, before the outputs are complete

        monkeypatch.setattr(module, "write_tiles", interrupted)
    else:
        jsonable, written = results.jsonable, []

        def interrupted(payload):
            written.append(payload)
            if len(written) == 2:  # stats.json's temporary is complete, splits.json's is being written
                raise KeyboardInterrupt
            return jsonable(payload)

        monkeypatch.setattr(results, "jsonable", interrupted)
    out = tmp_path / "out"
    tiles = ["tiles.write=true", "tiles.size=32"] if moment == "after_the_tiles" else []
    with pytest.raises(KeyboardInterrupt):
        prepare(f"data.root={small_set}", f"out_dir={out}", "window=32", *tiles)
    assert not out.exists() or list(out.iterdir()) == []  # neither splits.json, stats.json nor tiles/
    monkeypatch.undo()
    prepare(f"data.root={small_set}", f"out_dir={out}", "window=32", *tiles)
    assert sorted(p.name for p in out.iterdir()) == ["splits.json", "stats.json", *(["tiles"] if tiles else [])]


def test_prepare_without_pixel_checks_says_what_to_run_and_that_trains(small_set, tmp_path, capsys):
    out = tmp_path / "out"
    prepare(f"data.root={small_set}", f"out_dir={out}", "check_pixels=false")
    said = capsys.readouterr().out.strip().splitlines()[-1]
    assert said == (f"wrote {out / 'stats.json'} and {out / 'splits.json'} without band statistics "
                    f"(check_pixels=false); run without check_pixels=false for a stats.json that data.stats_file= "
                    f"takes")
    report = prepare(f"data.root={small_set}", f"out_dir={out}")  # what it says to run
    said = capsys.readouterr().out.strip().splitlines()[-1]
    assert said.endswith(f"train with data.stats_file={out / 'stats.json'}")
    from hydra.utils import instantiate

    cfg = compose_config("train", ["data=geotiff", f"data.root={small_set}", f"data.stats_file={out / 'stats.json'}",
                                   "data.num_workers=0", "data.cache=false", "protocol=random",
                                   "data.scenes.split_tile_size=32", "data.tile_size=32"])
    datamodule = instantiate(cfg.data, augment=None)
    assert list(cfg.data.mean) == report["mean"] and list(cfg.data.std) == report["std"]
    datamodule.setup("fit")
    assert datamodule.train_set[0]["image"].shape == (3, 32, 32)
