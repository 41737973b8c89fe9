"""Training end to end on small synthetic scenes: fast_dev_run of train.py, a loss that falls, bad input."""

import json
import shlex
import subprocess
import sys

import pytest
import torch

from rsseg.errors import ConfigError
from rsseg.training.train import train
from tests.conftest import REPO, SMALL_DATA

SMALL_MODEL = ["model=smp_deeplabv3plus"]


def test_fast_dev_run_of_train_py_writes_results(tmp_path, cache_dir):
    args = ["train.py", "trainer.fast_dev_run=true", f"hydra.run.dir={tmp_path}", f"paths.cache_dir={cache_dir}",
            "callbacks.rich_progress_bar=null", "plots=false", *SMALL_DATA]
    run = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["command"] == shlex.join(["python", *args])  # as typed: a command that runs again
    assert set(results["metrics"]["val"]["per_class"]) == {"built-up", "road", "farmland", "forest", "meadow", "water"}
    assert results["steps"] == 1 and results["params"] > 1_000_000
    assert results["mib"] == pytest.approx(results["params"] * 4 / 2**20, abs=0.01)
    assert results["config"]["data"]["num_classes"] == 6
    assert "mIoU" in run.stdout
    assert not (tmp_path / "plots").exists()  # plots=false; it validated, so the confusion figure had its data


def test_training_lowers_the_loss_and_checkpoints_rebuild_the_model(train_config, tmp_path):
    import csv

    import numpy as np
    from PIL import Image

    from rsseg.models.checkpoint import load_model_from_checkpoint
    from rsseg.runtime.plots import epoch_curves

    cfg = train_config(*SMALL_MODEL, "logger=csv", "trainer.max_epochs=6", "data.train_samples_per_epoch=16",
                       "aug=none", "optimizer.lr=2e-3", "scheduler=constant")
    results = train(cfg)
    assert results["epochs"] == 6 and results["steps"] == 24
    rows = list(csv.DictReader(open(tmp_path / "csv" / "version_0" / "metrics.csv")))
    epoch_losses = [float(r["train/loss_epoch"]) for r in rows if r.get("train/loss_epoch")]
    assert len(epoch_losses) == 6
    assert epoch_losses[-1] < 0.9 * epoch_losses[0]
    best = results["checkpoint"]
    assert best and best.endswith(".ckpt")
    # results.json says which split chose the checkpoint and when: the epoch of the best val mIoU in the log.
    val = [(float(r["val/miou"]), int(r["epoch"])) for r in rows if r.get("val/miou")]
    selection = results["selection"]
    assert (selection["split"], selection["monitor"], selection["mode"]) == ("val", "val/miou", "max")
    assert selection["epoch"] == max(val, key=lambda v: v[0])[1] and selection["score"] == pytest.approx(max(val)[0])
    assert selection["step"] == 4 * (selection["epoch"] + 1)
    model, stored = load_model_from_checkpoint(best)
    assert stored.data.class_names[0] == "built-up"
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 6, 64, 64)
    # The run folder's figures: curves from this very log, one point per trained epoch.
    curves = epoch_curves(tmp_path / "csv" / "version_0" / "metrics.csv")
    assert curves["train loss"] == (list(range(6)), epoch_losses)
    assert curves["val mIoU"] == ([epoch for _, epoch in val[:6]], [miou for miou, _ in val[:6]])
    assert curves["val mIoU"][0] == list(range(6)) and len(curves["val loss"][0]) == 6
    plots = tmp_path / "plots"
    assert sorted(p.name for p in plots.iterdir()) == ["confusion_val.png", "curves.png", "samples_val.png"]
    for path in plots.iterdir():
        with Image.open(path) as image:
            assert image.format == "PNG" and image.width > 400 and image.height > 300, path
            assert np.asarray(image.convert("L")).std() > 20, path  # drawn, not blank
    with Image.open(plots / "samples_val.png") as samples:  # 4 tiles of image | label | prediction
        assert samples.height > samples.width


def test_class_count_mismatch_stops_before_training(train_config):
    cfg = train_config(*SMALL_MODEL, "model.classes=4")
    with pytest.raises(ConfigError, match="predicts 4 classes but data.num_classes=6"):
        train(cfg)


@pytest.mark.parametrize(
    "case",
    ["class_count", "missing_dataset_folder", "unknown_option"],
)
def test_bad_input_exits_with_one_line(tmp_path, cache_dir, case):
    # Run as users do (a fresh interpreter), so that nothing a test imported earlier hides a missing registration.
    args, status, expected = {
        "class_count": (
            [*SMALL_MODEL, "model.classes=4", *SMALL_DATA], 2,
            "error: smp_deeplabv3plus predicts 4 classes but data.num_classes=6",
        ),
        "missing_dataset_folder": (
            [*SMALL_MODEL, "data=vaihingen", f"data.root={tmp_path / 'nowhere'}"], 2,
            f"error: {tmp_path / 'nowhere'}: vaihingen folder not found (set data.root=/path/to/vaihingen)",
        ),
        "unknown_option": (["model=no_such_model"], 2, "error: model=no_such_model: no such option"),
    }[case]
    run = subprocess.run(
        [sys.executable, "train.py", f"hydra.run.dir={tmp_path}", f"paths.cache_dir={cache_dir}", *args],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == status, run.stderr[-2000:]
    lines = run.stderr.strip().splitlines()
    assert any(line.startswith(expected) for line in lines), run.stderr[-2000:]
    assert "Traceback" not in run.stderr


def test_wandb_logger_works_offline_without_a_key(train_config, tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = train_config(*SMALL_MODEL, "logger=wandb", "trainer.max_steps=1", "trainer.limit_val_batches=1",
                       "validate_best=false")
    results = train(cfg)
    assert results["steps"] == 1
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and any(runs[0].glob("*.wandb"))


def test_results_record_the_commit_the_run_started_from(train_config, monkeypatch):
    # A checkout that moves on while a long run trains (a commit, an edit) must not be credited with the run.
    import lightning.pytorch

    checkout = {"commit": "started-here"}
    monkeypatch.setattr("rsseg._version.git_commit", lambda source=None: checkout["commit"])
    fit = lightning.pytorch.Trainer.fit

    def fit_then_move_on(self, *args, **kwargs):
        fit(self, *args, **kwargs)
        checkout["commit"] = "committed-while-it-trained"

    monkeypatch.setattr(lightning.pytorch.Trainer, "fit", fit_then_move_on)
    results = train(train_config(*SMALL_MODEL, "trainer.max_steps=1", "trainer.limit_val_batches=1",
                                 "validate_best=false", "plots=false"))
    assert checkout["commit"] == "committed-while-it-trained" and results["git_commit"] == "started-here"


def test_rsseg_command_without_a_subcommand_prints_usage():
    run = subprocess.run([sys.executable, "-m", "rsseg.cli"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "usage: rsseg {train|eval|predict|prepare|export|models|datasets|tables}" in run.stderr
