"""No silent wrong answers: non-finite pixels, label codes, labels without georeferencing, empty splits, non-finite
losses, interrupted predictions, and configs checked against their schemas."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from rasterio.windows import Window

from rsseg.config import CONF_DIR, compose_config
from rsseg.data.dataset import SceneReader
from rsseg.data.device import DeviceBatch
from rsseg.data.labels import IndexLabels
from rsseg.data.raster import Scene, check_pair
from rsseg.data.transforms import Normalize
from rsseg.errors import ConfigError, DataError
from rsseg.inference.engine import ArraySink, predict_raster
from rsseg.inference.predictor import TilePredictor
from rsseg.models.checkpoint import read_checkpoint
from rsseg.training.losses import CrossEntropy
from tests.bad_inputs.test_right_answers import GlobalContext
from tests.test_inference import smooth_image, write_geotiff
from tests.test_predict_cli import conv_model_config, data_config, predict, write_checkpoint

# --------------------------------------------------------------------------------------------------------------
# Non-finite pixels
# --------------------------------------------------------------------------------------------------------------


def test_predict_counts_nan_pixels_in_a_warning(tmp_path, capsys):
    ckpt = write_checkpoint(tmp_path / "tiny.ckpt", conv_model_config(), data_config())
    pixels = smooth_image(64, 64).astype(np.float32)
    pixels[:, :5, :4] = np.nan
    source = write_geotiff(tmp_path / "float.tif", pixels)
    predict(ckpt, f"input={source}", f"output={tmp_path / 'out.tif'}")
    assert f"warning: {source}: 20 pixels are NaN or infinite; treated as nodata (255 in the outputs)" in capsys.readouterr().err


def test_16_bit_input_to_an_8_bit_model_is_warned_about(tmp_path, capsys):
    ckpt = write_checkpoint(tmp_path / "tiny.ckpt", conv_model_config(), data_config())
    source = write_geotiff(tmp_path / "uint16.tif", (smooth_image(64, 64).astype(np.uint16) * 16))
    predict(ckpt, f"input={source}", f"output={tmp_path / 'out.tif'}")
    err = capsys.readouterr().err
    assert f"warning: {source}: uint16 pixels (99th percentile" in err and "trained on 8-bit data" in err
    as_8_bit = write_geotiff(tmp_path / "uint16_small.tif", smooth_image(64, 64).astype(np.uint16))
    predict(ckpt, f"input={as_8_bit}", f"output={tmp_path / 'out2.tif'}")
    assert "warning" not in capsys.readouterr().err  # 8-bit values stored in 16 bits are fine


def test_training_windows_with_nan_pixels_are_finite_and_ignored(tmp_path):
    pixels = smooth_image(32, 32).astype(np.float32)
    pixels[0, 4:8, 4:8] = np.nan
    pixels[2, 20, 20] = -np.inf
    image = write_geotiff(tmp_path / "img.tif", pixels)
    label = write_geotiff(tmp_path / "lab.tif", np.ones((32, 32), np.uint8))
    reader = SceneReader(IndexLabels(2))
    raw, mask = reader.read(Scene(image, label), Window(0, 0, 32, 32))
    batch = DeviceBatch(Normalize([120.0] * 3, [50.0] * 3)).prepare({"image": raw[None], "mask": mask[None]})
    window, mask = batch["image"][0], batch["mask"][0]
    assert torch.isfinite(window).all()
    assert (window[0, 4:8, 4:8] == 0).all() and window[2, 20, 20] == 0  # NaN and inf became 0, the band mean
    assert (mask[4:8, 4:8] == 255).all() and mask[20, 20] == 255 and int((mask == 1).sum()) == 32 * 32 - 17
    loss = CrossEntropy()(torch.zeros(1, 2, 32, 32, requires_grad=True), mask[None])
    assert torch.isfinite(loss)


def test_a_batch_without_labelled_pixels_gives_a_zero_loss_not_nan():
    logits = torch.randn(2, 3, 8, 8, requires_grad=True)
    loss = CrossEntropy(class_weights=[1.0, 2.0, 1.0])(logits, torch.full((2, 8, 8), 255))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(logits.grad, torch.zeros_like(logits))


# --------------------------------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------------------------------


def test_label_values_map_codes_to_classes_without_colliding_with_ignore_index():
    building = IndexLabels(2, values=[0, 255])  # a 0/255 building mask, ignore_index 255
    window = np.array([[[0, 255], [255, 0]]], dtype=np.uint8)
    assert building(window).tolist() == [[0, 1], [1, 0]]
    gid = IndexLabels(3, ignore_values=[0], values=[10, 20, 30])
    assert gid(np.array([[[30, 10, 0, 20]]], dtype=np.uint8)).tolist() == [[2, 0, 255, 1]]
    with pytest.raises(DataError, match=r"m.tif: label value 7 is not a class \(2 pixels\); expected one of the "
                                        r"data.label_values \[10, 20, 30\] or ignored \[0\]"):
        gid(np.array([[[7, 7, 10]]], dtype=np.uint8), "m.tif")
    with pytest.raises(ConfigError, match=r"data.label_values=\[0\]: 1 values but data.num_classes=2"):
        IndexLabels(2, values=[0])
    floats = np.array([[[0.0, np.nan, 1.0]]], dtype=np.float32)
    assert IndexLabels(2)(floats).tolist() == [[0, 255, 1]]  # NaN in a float label raster means "no label"


def test_label_values_reach_the_datamodule_from_the_config(tmp_path):
    cfg = compose_config("train", ["data=geotiff", f"data.root={tmp_path}", "data.label_values=[0,255]",
                                   f"paths.output_dir={tmp_path}"])
    from hydra.utils import instantiate

    dm = instantiate(cfg.data, augment=None)
    assert dm.decode_labels(np.array([[[255, 0]]], dtype=np.uint8)).tolist() == [[1, 0]]


def test_label_without_georeferencing_is_accepted_with_a_warning(tmp_path, capsys):
    image = write_geotiff(tmp_path / "img.tif", smooth_image(48, 48))
    rendered = write_geotiff(tmp_path / "mask.tif", np.zeros((48, 48), np.uint8), crs=None)
    import rasterio

    with rasterio.open(rendered, "r+") as handle:  # a mask rendered from vectors: no CRS, no transform
        handle.transform = rasterio.Affine.identity()
    assert check_pair(Scene(image, rendered), 3, None) == (48, 48)
    err = capsys.readouterr().err
    assert f"warning: {rendered}: no georeferencing; taken to line up with img.tif (same size 48x48)" in err


# --------------------------------------------------------------------------------------------------------------
# Splits, schemas
# --------------------------------------------------------------------------------------------------------------


def test_an_empty_split_says_why(tmp_path):
    from rsseg.data.datasets import GeoTiffScenes
    from rsseg.runtime.preflight import empty_split_reason

    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    for name in ("a", "b"):
        write_geotiff(tmp_path / "images" / f"{name}.tif", smooth_image(100, 120))
        write_geotiff(tmp_path / "labels" / f"{name}.tif", np.zeros((100, 120), np.uint8))
    source = GeoTiffScenes(tmp_path, split="random", split_tile_size=128)
    assert source.split("train") == []
    assert empty_split_reason(source, "train") == (
        f"no 128 x 128 tile fits in any of the 2 scenes under {tmp_path} (the largest is 100 x 120); expected "
        f"tiles that fit, e.g. data.scenes.split_tile_size=64")
    # The suggested key exists in every data config (Hydra takes it without +) and the suggested size splits.
    suggested = GeoTiffScenes(tmp_path, split="random", split_tile_size=64)
    assert suggested.split("train")
    from rsseg.config import compose_config
    from rsseg.config.compose import config_groups

    for name in config_groups()["data"]:
        cfg = compose_config("train", [f"data={name}", "data.scenes.split_tile_size=64", f"paths.output_dir={tmp_path}"])
        assert cfg.data.scenes.split_tile_size == 64, name
    few = GeoTiffScenes(tmp_path, split="random", split_tile_size=64, train_fraction=1.0)
    # both tiles in the training part: one trains, one is held out to validate, none tests
    assert len(few.split("train")) == len(few.split("val")) == 1 and few.split("test") == []
    assert "the 2 tiles of 64 x 64 px cut from 2 scenes leave none for test" in few.why_empty("test")


def test_every_experiment_row_composes_under_the_schema(tmp_path):
    """Experiments merge keys at the top level (table, row, scale, pretrained_weights): the train schema has them."""
    experiments = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
    assert experiments
    for experiment in experiments:
        sweep = OmegaConf.load(CONF_DIR / "experiment" / f"{experiment}.yaml")
        rows = str(OmegaConf.select(sweep, "hydra.sweeper.params.row", default="") or "").split(",")
        for row in [r.strip() for r in rows if r.strip()] or [None]:
            cfg = compose_config("train", [f"experiment={experiment}", "scale=smoke", f"paths.output_dir={tmp_path}",
                                           *([f"row={row}"] if row else [])])
            assert cfg.scale.name == "smoke" and cfg.table.name


def test_documented_plus_overrides_are_accepted_and_misspellings_refused(tmp_path):
    cfg = compose_config("eval", ["ckpt=best.ckpt", "+data.root=/mnt/potsdam"])
    assert cfg.data.root == "/mnt/potsdam"
    with pytest.raises(ConfigError, match=r"data.rooot: not an argument of .*SegmentationDataModule "
                                          r"\(did you mean root\?\)"):
        compose_config("eval", ["ckpt=best.ckpt", "+data.rooot=/mnt/potsdam"])
    with pytest.raises(ConfigError, match=r"callbacks.last_checkpoint.every_n_step: not an argument of "
                                          r"rsseg.training.callbacks.resume.LastCheckpoint \(did you mean every_n_steps\?\)"):
        compose_config("train", [f"paths.output_dir={tmp_path}", "+callbacks.last_checkpoint.every_n_step=5"])


# --------------------------------------------------------------------------------------------------------------
# Interrupts
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", ["predict.py", "rsseg predict"])
def test_sigterm_during_prediction_leaves_no_file_and_exits_130(tmp_path, entry):
    ckpt = write_checkpoint(tmp_path / "tiny.ckpt", conv_model_config(), data_config())
    source = write_geotiff(tmp_path / "big.tif", smooth_image(2048, 2048), tiled=True)
    out = tmp_path / "out"
    head = [sys.executable, str(CONF_DIR.parents[2] / "predict.py")] if entry == "predict.py" else \
        [sys.executable, "-m", "rsseg.cli", "predict"]
    command = [*head, f"ckpt={ckpt}", f"input={source}", f"output={out / 'big_classes.tif'}", "tile_size=64",
               "batch_size=1", "tta=d4", "confidence=true", "progress=false", f"hydra.run.dir={tmp_path / 'run'}"]
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (out.is_dir() and any(out.iterdir())) and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # the temporaries appear when the outputs are created, before the first strip
    assert run.poll() is None, run.communicate()
    run.send_signal(signal.SIGTERM)
    stdout, stderr = run.communicate(timeout=120)
    assert run.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "interrupted: nothing half-written was left behind"
    assert "Traceback" not in stderr and list(out.iterdir()) == []
    assert not (tmp_path / "run").exists()  # the run folder held nothing but Hydra's records


def test_an_interrupt_while_the_reader_starts_still_stops_it(tmp_path, monkeypatch):
    """A thread left reading at interpreter exit crashes GDAL (exit -11 instead of 130)."""
    import threading

    import rasterio

    from rsseg.inference.reader import StripReader

    def start_then_interrupt(self):
        threading.Thread.start(self)
        raise KeyboardInterrupt  # where a SIGTERM lands while start() waits for the thread

    monkeypatch.setattr(StripReader, "start", start_then_interrupt)
    source = write_geotiff(tmp_path / "scene.tif", smooth_image(512, 512), tiled=True)
    predictor = TilePredictor(GlobalContext(), [120.0] * 3, [50.0] * 3, 4)
    with rasterio.open(source) as handle, pytest.raises(KeyboardInterrupt):
        predict_raster(handle, predictor, ArraySink(512, 512, 4), tile_size=64, overlap=16)
    assert [t.name for t in threading.enumerate() if t.name in ("rsseg-reader", "rsseg-sink")] == []


def test_an_interrupt_while_the_outputs_are_created_leaves_none_of_them(tmp_path, monkeypatch):
    import rasterio

    from rsseg.inference import geotiff
    from rsseg.inference.geotiff import GeoTiffSink, OutputPaths

    created = []

    def create_then_interrupt(*args, **kwargs):
        if created:  # the classes raster exists; the interrupt comes while the confidence one is created
            raise KeyboardInterrupt
        created.append(geotiff_create(*args, **kwargs))
        return created[-1]

    geotiff_create = geotiff.create_raster
    monkeypatch.setattr(geotiff, "create_raster", create_then_interrupt)
    source = write_geotiff(tmp_path / "scene.tif", smooth_image(64, 64), tiled=True)
    out = tmp_path / "out"
    paths = OutputPaths(out / "scene_classes.tif", out / "scene_confidence.tif", None, None)
    with rasterio.open(source) as handle, pytest.raises(KeyboardInterrupt):
        GeoTiffSink(paths, handle, ["a", "b", "c", "d"])
    assert len(created) == 1 and created[0].closed
    assert list(out.iterdir()) == []


def test_prepared_tiles_appear_whole_or_not_at_all(tmp_path):
    from rsseg.runtime.files import folder_replaced_when_complete as complete_folder

    target = tmp_path / "tiles"
    with complete_folder(target) as partial:
        (partial / "a.tif").write_text("first run")
    with pytest.raises(KeyboardInterrupt), complete_folder(target) as partial:
        (partial / "b.tif").write_text("interrupted run")
        raise KeyboardInterrupt
    assert [p.name for p in tmp_path.iterdir()] == ["tiles"] and [p.name for p in target.iterdir()] == ["a.tif"]
    with complete_folder(target) as partial:
        (partial / "c.tif").write_text("second run")
    assert [p.name for p in tmp_path.iterdir()] == ["tiles"] and [p.name for p in target.iterdir()] == ["c.tif"]


class LossTurningNaN(torch.nn.Module):
    """Cross-entropy that turns NaN at training step ``step`` (a diverging run, on cue)."""

    def __init__(self, step: int = 2, **cross_entropy) -> None:
        super().__init__()
        self.step, self.calls, self.inner = int(step), 0, CrossEntropy(**cross_entropy)

    def forward(self, logits, target):
        loss = self.inner(logits, target)
        if not self.training:
            return loss
        self.calls += 1
        return loss * float("nan") if self.calls > self.step else loss


def test_a_non_finite_loss_stops_training_before_it_reaches_the_weights(train_config, tmp_path):
    from rsseg.training.callbacks.nonfinite import NonFiniteLoss
    from rsseg.training.train import train

    cfg = train_config("model=smp_deeplabv3plus", "loss._target_=tests.test_reliability.LossTurningNaN",
                       "+loss.step=2", "callbacks.last_checkpoint.every_n_steps=1", "trainer.max_epochs=2")
    with pytest.raises(NonFiniteLoss) as stopped:
        train(cfg)
    last = tmp_path / "checkpoints" / "last.ckpt"
    message = str(stopped.value)
    assert message.startswith("training loss is nan at step 2 (epoch 1, batch 0); windows of the batch: ")
    assert message.count("scene_0") == 4 and "(row " in message and f"the last good checkpoint is {last}" in message
    kept = read_checkpoint(last)
    assert kept["global_step"] == 2 and all(torch.isfinite(v).all() for v in kept["state_dict"].values()
                                            if v.is_floating_point())


def test_debug_shows_the_traceback_instead_of_the_line(tmp_path):
    run = subprocess.run([sys.executable, str(CONF_DIR.parents[2] / "predict.py"), f"ckpt={tmp_path / 'a.ckpt'}",
                          f"input={tmp_path / 'nope.tif'}", "--debug"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 1
    assert "Traceback" in run.stderr and f"DataError: {tmp_path / 'nope.tif'}: file not found" in run.stderr
