"""What rsseg prints: one-line errors, on their own line under a progress bar, no library noise before them, one
note for rasters without georeferencing, and files as readable as the rasters beside them."""

from __future__ import annotations

import fcntl
import io
import json
import logging
import os
import pty
import re
import struct
import subprocess
import sys
import termios

import numpy as np
import pytest
import rasterio
from PIL import Image

from rsseg.runtime.console import LightningNoise, print_error
from rsseg.runtime.results import write_results
from tests.conftest import REPO
from tests.readme import rsseg_program, run_rsseg
from tests.test_inference import smooth_image, write_geotiff
from tests.test_predict_cli import conv_model_config, data_config, write_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("quiet") / "tiny.ckpt", conv_model_config(),
                            data_config(label_format="index"))


def truncated_scene(path, size: int = 1024):
    """A tiled, uncompressed GeoTIFF cut in half: its header reads, its lower half does not."""
    write_geotiff(path, smooth_image(size, size))
    with rasterio.open(path) as src:
        pixels, profile = src.read(), {**src.profile, "tiled": True, "blockxsize": 256, "blockysize": 256}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(pixels)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def rendered_lines(raw: bytes) -> list[str]:
    """The lines a terminal shows for ``raw``: a carriage return goes back to the start of the line, ESC[K erases
    to its end, and later text overwrites earlier text."""
    lines = []
    for chunk in raw.decode(errors="replace").replace("\r\n", "\n").split("\n"):
        line, col = [], 0
        for token in re.split(r"(\r|\x1b\[K|\x1b\[[0-9;?]*[A-Za-z])", chunk):
            if token == "\r":
                col = 0
            elif token == "\x1b[K":
                del line[col:]
            elif token.startswith("\x1b["):
                continue
            else:
                for char in token:
                    line[col:col + 1] = [char]
                    col += 1
        lines.append("".join(line).rstrip())
    return lines


def test_an_unreadable_input_is_one_line_without_gdal_noise(checkpoint, tmp_path):
    (tmp_path / "notes.tif").write_text("meeting notes, not a raster")
    run = run_rsseg(["rsseg", "predict", f"ckpt={checkpoint}", "input=notes.tif"], tmp_path, timeout=300)
    assert run.returncode == 2
    assert run.stderr.splitlines() == [
        "error: notes.tif: not a readable raster ('notes.tif' not recognized as being in a supported file format.)"]
    assert "GDAL" not in run.stdout and "[INFO]" not in run.stdout


def on_a_terminal(args: list[str], cwd) -> tuple[int, bytes]:
    """Run ``args`` with stdout and stderr on a 120-column pseudo-terminal; its exit status and what it wrote."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    process = subprocess.Popen(args, cwd=cwd, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
    os.close(slave)
    raw = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the terminal closed: the program has ended
            break
        if not chunk:
            break
        raw += chunk
    os.close(master)
    return process.wait(timeout=300), raw


def test_an_error_under_a_progress_bar_gets_a_line_of_its_own(checkpoint, tmp_path):
    truncated_scene(tmp_path / "cut.tif")
    labels = write_geotiff(tmp_path / "cut_label.tif", np.zeros((1, 1024, 1024), np.uint8))
    status, raw = on_a_terminal([*rsseg_program(), "eval", f"ckpt={checkpoint}", "input=cut.tif",
                                 f"label={labels.name}", "tile_size=128", "overlap=0"], tmp_path)
    assert status == 2
    assert b"tile/s]" in raw or b"tile]" in raw  # a progress bar was drawn
    errors = [line for line in rendered_lines(raw) if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith("error: cut.tif: reading rows "), rendered_lines(raw)[-5:]
    assert b"GDAL signalled" not in raw


def test_print_error_erases_a_bar_on_a_terminal(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal, pipe = Terminal(), io.StringIO()
    monkeypatch.setattr("sys.stderr", terminal)
    terminal.write("eval val:  42%|####      | 42/100 [00:03<00:04, 13.1tile/s]")
    print_error("scene.tif: reading rows 512..640 failed")
    assert rendered_lines(terminal.getvalue().encode()) == ["error: scene.tif: reading rows 512..640 failed", ""]
    monkeypatch.setattr("sys.stderr", pipe)
    print_error("x")
    assert pipe.getvalue() == "error: x\n"  # a log file gets no terminal codes


def test_rasters_without_georeferencing_give_one_note(checkpoint, tmp_path):
    scenes = tmp_path / "photos"
    scenes.mkdir()
    for index in range(2):
        Image.fromarray(smooth_image(80, 90, seed=index).transpose(1, 2, 0)).save(scenes / f"photo_{index}.png")
    run = run_rsseg(["rsseg", "predict", f"ckpt={checkpoint}", "input=photos/*.png", "output=pred/",
                     "progress=false"], tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stderr.splitlines() == [
        "note: photos/photo_0.png is not georeferenced (no CRS or no geotransform): what is written from it is in "
        "pixel coordinates (further rasters like it are not reported)"]
    for index in range(2):
        with rasterio.open(tmp_path / "pred" / f"photo_{index}_classes.tif") as dst:
            assert dst.crs is None and dst.shape == (80, 90)
    # predict.log holds what the terminal showed: a line per scene and the summary.
    printed = run.stdout.splitlines()
    assert [line.split(" -> ")[0] for line in printed[:2]] == ["photos/photo_0.png", "photos/photo_1.png"], printed
    (log,) = tmp_path.glob("outputs/predict/*/*/predict.log")
    assert all(line in log.read_text() for line in printed), (printed, log.read_text())


def test_results_are_as_readable_as_the_rasters_beside_them(tmp_path):
    previous = os.umask(0o027)
    try:
        write_geotiff(tmp_path / "classes.tif", smooth_image(16, 16))
        write_results(tmp_path / "results.json", {"miou": 0.5})
    finally:
        os.umask(previous)
    raster_mode = (tmp_path / "classes.tif").stat().st_mode & 0o777
    assert raster_mode == 0o640
    assert (tmp_path / "results.json").stat().st_mode & 0o777 == raster_mode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["classes.tif", "results.json"]


def test_lightning_advertising_is_dropped():
    noise = LightningNoise()

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("lightning.pytorch.utilities.rank_zero", logging.INFO, "", 0, message, (), None)

    assert not noise.filter(record("💡 Tip: For seamless cloud logging, try installing [litlogger](...)"))
    assert not noise.filter(record("Trainer already configured with model summary callbacks: [...]"))
    assert not noise.filter(record("GPU available: False, used: False"))
    assert not noise.filter(record("TPU available: False, using: 0 TPU cores"))
    assert noise.filter(record("Restoring states from the checkpoint path at checkpoints/last.ckpt"))


# What Lightning and torch print on their own behalf: none of it may reach an ordinary run's terminal.
LIBRARY_NOISE = re.compile(r"GPU available|TPU available|HPU available|Seed set|deprecated|weights_only|"
                           r"Total FLOPs|smaller than the logging interval|LeafSpec")


def test_an_ordinary_training_run_is_quiet_and_its_log_holds_each_epoch(tmp_path, cache_dir):
    for script in ("train.py", "eval.py", "predict.py"):
        (tmp_path / script).symlink_to(REPO / script)
    env = {**os.environ, "RSSEG_CACHE": str(cache_dir), "WANDB_SILENT": "true"}
    run = subprocess.run([sys.executable, "train.py", "scale=smoke", "trainer.max_epochs=2"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    shown = run.stdout + run.stderr
    assert not LIBRARY_NOISE.findall(shown), shown
    assert "Params" not in shown and "┃" not in shown  # no model summary table unless asked for
    # Not a terminal: one plain line per epoch and per validation, no bar redrawn with carriage returns.
    assert "\r" not in shown and "\x1b[" not in shown
    epochs = [line for line in run.stdout.splitlines() if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in epochs] == ["epoch 1/2 validated", "epoch 1/2 trained",
                                                       "epoch 2/2 validated", "epoch 2/2 trained"], run.stdout
    assert re.fullmatch(r"epoch 2/2 trained: step 4, train/loss \d+\.\d{4} \(\d+\.\d s\)", epochs[3]), epochs
    assert re.fullmatch(r"epoch 2/2 validated: val/loss \d+\.\d{4}, val/mIoU% \d+\.\d{2} \(\d+\.\d s\)", epochs[2])
    # train.log holds what the terminal showed: the epoch lines, the metric tables and the results line.
    (log,) = (tmp_path / "outputs" / "train").glob("*/*/train.log")
    logged = log.read_text()
    for line in [*epochs, "val metrics (deeplabv3plus_mobilenetv2 on synthetic)", f"results: {log.parent}"]:
        assert line in logged, (line, logged)
    results = json.loads((log.parent / "results.json").read_text())
    assert results["world_size"] == 1 and results["steps"] == 4


def test_the_model_summary_is_printed_only_when_asked_for(tmp_path):
    from lightning.pytorch.callbacks import ModelSummary

    from rsseg.config import compose_config
    from rsseg.training.callbacks.progress import EpochLines
    from rsseg.training.train import _instantiate_group

    def summaries(*overrides: str) -> tuple[bool, list]:
        cfg = compose_config("train", ["scale=smoke", f"paths.output_dir={tmp_path}", *overrides])
        made = _instantiate_group(cfg.callbacks)
        assert sum(isinstance(c, EpochLines) for c in made) == 1  # pytest's stdout is not a terminal
        return cfg.trainer.enable_model_summary, [type(c).__name__ for c in made if isinstance(c, ModelSummary)]

    assert summaries() == (False, [])
    assert summaries("trainer.enable_model_summary=true") == (True, [])  # Lightning adds its own
    assert summaries("callbacks=[default,model_summary]") == (False, ["RichModelSummary"])


def test_rsseg_models_shows_progress_on_a_terminal_only(tmp_path):
    models = ["deeplabv3plus_mobilenetv2", "fcn32s"]
    status, raw = on_a_terminal([*rsseg_program(), "models", *models], tmp_path)
    assert status == 0
    assert re.search(rb"models: +50%\|.*\| 1/2 ", raw), raw[:500]
    rows = [line.split()[:2] for line in rendered_lines(raw) if line.startswith(tuple(models))]
    assert rows == [["deeplabv3plus_mobilenetv2", "5,814,294"], ["fcn32s", "134,432,582"]], rendered_lines(raw)
    piped = run_rsseg(["rsseg", "models", *models], tmp_path, timeout=300)
    assert piped.returncode == 0 and piped.stderr == "" and "\r" not in piped.stdout  # no bar without a terminal
    assert [line.split()[:2] for line in piped.stdout.splitlines() if line.startswith(tuple(models))] == rows
