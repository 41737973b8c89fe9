"""The figures of run folders and eval (rsseg.runtime.plots): the data they draw, the log they read, and that a
figure which cannot be drawn is one warning, never a failed run."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from rsseg.runtime.plots import confusion_figure, epoch_curves, normalise_rows
from tests.conftest import REPO

NAMES = ["soil", "crop", "water"]


def test_the_confusion_figure_draws_each_true_row_divided_by_its_pixels():
    counts = np.array([[6, 2, 0],
                       [0, 0, 0],  # a class with no labelled pixel: its row stays 0, not NaN
                       [1, 1, 8]])
    expected = np.array([[0.75, 0.25, 0.0], [0.0, 0.0, 0.0], [0.1, 0.1, 0.8]])
    assert np.allclose(normalise_rows(counts), expected)
    axes = confusion_figure(counts, NAMES, "hand-made").axes[0]
    assert np.allclose(np.asarray(axes.images[0].get_array()), expected)
    assert [t.get_text() for t in axes.get_xticklabels()] == NAMES
    assert [t.get_text() for t in axes.get_yticklabels()] == NAMES
    assert (axes.get_xlabel(), axes.get_ylabel()) == ("predicted", "true")
    assert [t.get_text() for t in axes.texts][:3] == ["0.75", "0.25", "0.00"]


def test_curves_are_read_per_epoch_from_the_csv_log_without_the_runs_later_validations(tmp_path):
    # As Lightning's CSVLogger writes it: per epoch a validation row and a training row at the epoch's last step;
    # after fit, validate_best re-scores the best checkpoint and the test split is scored, at the epoch count and
    # the step count (one past the last trained epoch and the last validation's step); a validation repeating a
    # step is not a new point either.
    log = tmp_path / "metrics.csv"
    log.write_text("epoch,step,train/loss_epoch,train/loss_step,val/loss,val/miou,test/miou\n"
                   "0,3,,1.5,,,\n"
                   "0,3,,,1.2,0.30,\n"
                   "0,3,1.4,,,,\n"
                   "1,7,,,0.9,0.45,\n"
                   "1,7,1.0,,,,\n"
                   "1,7,,,0.85,0.46,\n"
                   "2,8,,,0.8,0.47,\n"
                   "2,8,,,,,0.44\n"
                   "2,8,,,0.7,0.48,\n")
    curves = epoch_curves(log)
    assert curves == {"train loss": ([0, 1], [1.4, 1.0]), "val loss": ([0, 1], [1.2, 0.9]),
                      "val mIoU": ([0, 1], [0.30, 0.45])}


def test_a_figure_that_fails_is_one_warning_and_the_others_are_drawn(tmp_path, capsys):
    from rsseg.training.plots import write_run_plots

    results = {"model": "unet", "data": "synthetic",
               "metrics": {"val": {"confusion": [[1, 0], [0, 1]]}}}  # two classes where the run has three
    no_trainer = SimpleNamespace(loggers=[], callbacks=[])
    assert write_run_plots(tmp_path, results, no_trainer, NAMES, None) == []
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["warning: plots/confusion_val.png not drawn: a 2 x 2 confusion matrix for 3 class names"]
    assert not (tmp_path / "plots").exists() or not any((tmp_path / "plots").iterdir())
    results["metrics"]["val"]["confusion"] = np.eye(3, dtype=int).tolist()
    assert write_run_plots(tmp_path, results, no_trainer, NAMES, None) == [tmp_path / "plots" / "confusion_val.png"]
    assert (tmp_path / "plots" / "confusion_val.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("module", ["rsseg.runtime.plots", "rsseg.evaluation.plots", "rsseg.tables.figures"])
def test_matplotlib_loads_only_to_draw(module):
    code = f"import sys, {module}; print('matplotlib' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "False"


def test_validation_samples_keep_the_first_tiles_and_their_prediction_and_log_them(tmp_path):
    import torch
    from lightning.pytorch.loggers import TensorBoardLogger

    from rsseg.training.callbacks.samples import ValidationSamples

    class Threshold(torch.nn.Module):
        """Class 2 where the first band is positive, else class 0."""

        class_names = NAMES
        hparams = {"cfg": {"data": {"mean": [10.0, 10.0, 10.0], "std": [2.0, 2.0, 2.0], "palette": None}}}

        def forward(self, image):
            positive = (image[:, :1] > 0).float()
            return torch.cat([1 - positive, torch.zeros_like(positive), 2 * positive], dim=1)

    image = torch.randn(5, 3, 8, 8)
    batch = {"image": image, "mask": torch.randint(0, 3, (5, 8, 8)), "scene": torch.tensor([1, 0, 1, 0, 0])}
    logger = TensorBoardLogger(tmp_path, name="tb")
    scenes = [SimpleNamespace(name="north"), SimpleNamespace(name="south")]
    trainer = SimpleNamespace(sanity_checking=False, is_global_zero=True, loggers=[logger], global_step=3,
                              val_dataloaders=SimpleNamespace(dataset=SimpleNamespace(scenes=scenes)))
    callback = ValidationSamples(num_tiles=3)
    callback.on_validation_batch_end(trainer, Threshold(), None, batch, 0)
    callback.on_validation_batch_end(trainer, Threshold(), None, {k: v + 1 for k, v in batch.items()}, 1)  # not kept
    callback.on_validation_epoch_end(trainer, Threshold())
    tiles = callback.latest
    assert tiles.names == ["tile 0, south", "tile 1, north", "tile 2, south"]
    assert np.array_equal(tiles.labels, batch["mask"][:3].numpy())
    assert np.array_equal(tiles.predictions, np.where(image[:3, 0].numpy() > 0, 2, 0))
    assert tiles.images.shape == (3, 8, 8, 3) and tiles.images.dtype == np.uint8 and tiles.images.max() == 255
    logger.experiment.flush()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(logger.log_dir), size_guidance={"images": 0})
    events.Reload()
    logged = events.Images("val/samples")  # the tiles in one grid, each image | label | prediction side by side
    assert [(i.step, i.width, i.height) for i in logged] == [(3, 3 * 24, 8)]
