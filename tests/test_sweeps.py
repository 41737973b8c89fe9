"""Sweeps as users run them: re-launched sweeps skip finished jobs, a failing job does not stop the others, DDP
inside single runs and sweeps, W&B runs per job, and the paper experiments from sweep to table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, SMALL_DATA

QUIET = ["callbacks.rich_progress_bar=null", "callbacks.model_summary=null", "trainer.enable_model_summary=false"]
SMALL = ["model=smp_deeplabv3plus", *SMALL_DATA, "trainer.max_epochs=1", "logger=none", *QUIET]


def run(args: list[str], cwd: Path, cache_dir: Path, timeout: int = 900, **env) -> subprocess.CompletedProcess:
    environment = {**os.environ, "RSSEG_CACHE": str(cache_dir), "WANDB_SILENT": "true", **env}
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=environment)


def user_folder(tmp_path: Path) -> Path:
    """A fresh working folder holding the repository's entry scripts, so that README commands (`python
    train.py ...`) run exactly as printed and write their outputs here, not into the checkout."""
    folder = tmp_path / "work"
    folder.mkdir()
    for script in ("train.py", "eval.py", "predict.py"):
        (folder / script).symlink_to(REPO / script)
    return folder


def job(sweep: Path, override: str) -> Path:
    """The job folder of a sweep whose name holds ``override`` (job folders are named by their overrides; in a name
    too long for one folder, ``data.batch_size=4`` reads ``batch_size=4``)."""
    key, value = override.split("=", 1)
    forms = {override, f"{key.rsplit('.', 1)[-1]}={value}"}
    [folder] = [p for p in sweep.iterdir() if p.is_dir() and forms & set(p.name.split(","))]
    return folder


def test_relaunched_sweep_skips_its_finished_jobs(tmp_path, cache_dir):
    sweep = tmp_path / "sweep"
    command = [sys.executable, "train.py", "-m", "seed=0,1", f"hydra.sweep.dir={sweep}", *SMALL]
    first = run(command, REPO, cache_dir)
    assert first.returncode == 0, first.stderr[-3000:]
    results = [job(sweep, f"seed={seed}") / "results.json" for seed in (0, 1)]
    assert len(list(sweep.glob("*/results.json"))) == 2
    stamps = [p.stat().st_mtime_ns for p in results]
    assert [json.loads(p.read_text())["seed"] for p in results] == [0, 1]

    again = run(command, REPO, cache_dir)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("already holds results.json for this config") == 2
    assert "2 jobs, 0 done, 2 skipped" in again.stdout
    assert [p.stat().st_mtime_ns for p in results] == stamps  # nothing re-trained, nothing re-written


def test_a_failing_job_is_recorded_and_the_others_finish(tmp_path, cache_dir):
    sweep = tmp_path / "sweep"
    command = [sys.executable, "train.py", "-m", "model.classes=6,4", f"hydra.sweep.dir={sweep}", *SMALL]
    first = run(command, REPO, cache_dir)
    assert first.returncode == 1
    done, failed = job(sweep, "model.classes=6"), job(sweep, "model.classes=4")
    assert (done / "results.json").is_file()
    error = json.loads((failed / "error.json").read_text())
    assert error["status"] == "failed"
    assert error["error"] == "ConfigError: smp_deeplabv3plus predicts 4 classes but data.num_classes=6; " \
                             "set model.num_classes to 6 or use the dataset the model was made for"
    assert error["config"]["model"]["classes"] == 4 and "Traceback" in error["traceback"]
    assert not (failed / "results.json").exists()
    assert f"error: sweep job {failed} failed: ConfigError: smp_deeplabv3plus predicts 4 classes" in first.stderr
    assert "2 jobs, 1 done, 0 skipped (finished before), 1 failed" in first.stdout

    # Launched again, the finished job is skipped and the failed one runs again (and fails again).
    before = (failed / "error.json").stat().st_mtime_ns
    again = run(command, REPO, cache_dir)
    assert again.returncode == 1
    assert "2 jobs, 0 done, 1 skipped (finished before), 1 failed" in again.stdout
    assert (failed / "error.json").stat().st_mtime_ns > before


def test_ddp_with_two_cpu_processes_trains_end_to_end_through_train_py(tmp_path, cache_dir):
    work = user_folder(tmp_path)
    result = run([sys.executable, "train.py", "trainer=ddp_sim", *SMALL, "trainer.max_epochs=2"], work, cache_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    # Rank 1 made no folder of its own and wrote nothing: one run folder, one results.json, one checkpoint set.
    runs = [p for p in (work / "outputs" / "train").glob("*/*") if p.is_dir()]
    assert len(runs) == 1
    assert sorted(p.name for p in work.iterdir()) == ["eval.py", "outputs", "predict.py", "train.py"]
    assert len(list(work.rglob("results.json"))) == 1
    results = json.loads((runs[0] / "results.json").read_text())
    assert results["config"]["trainer"]["devices"] == 2 and results["epochs"] == 2
    # The synchronised matrices count every pixel once: one 256 x 256 scene validates, the next one tests.
    for split, scene in (("val", "scene_01"), ("test", "scene_02")):
        assert sum(map(sum, results["metrics"][split]["confusion"])) == 256 * 256
        assert [s["name"] for s in results["scenes"][split]] == [scene]
        assert sum(map(sum, results["scenes"][split][0]["confusion"])) == 256 * 256
    assert sorted(p.name for p in (runs[0] / "checkpoints").iterdir())[-1] == "last.ckpt"


def _validate(checkpoint: str, cache_dir: Path, devices: int) -> dict:
    """The logged validation metrics of a checkpoint, from ``devices`` CPU processes (9 windows of 96 px: with two
    processes one rank gets a padding window)."""
    import lightning as L
    from hydra.utils import instantiate

    from rsseg.models.hub import instantiate_model
    from rsseg.training.task import SegmentationTask
    from rsseg.training.train import build_datamodule
    from tests.conftest import compose_config

    cfg = compose_config("train", [f"paths.output_dir={cache_dir}", f"paths.cache_dir={cache_dir}", *SMALL_DATA,
                                   "model=smp_deeplabv3plus", "data.eval_tile_size=96", "data.eval_batch_size=2"])
    task = SegmentationTask(instantiate_model(cfg.model), instantiate(cfg.loss), instantiate(cfg.optimizer), None,
                            num_classes=6, class_names=list(cfg.data.class_names))
    trainer = L.Trainer(accelerator="cpu", devices=devices, strategy="ddp_spawn" if devices > 1 else "auto",
                        logger=False, enable_progress_bar=False, enable_model_summary=False)
    [metrics] = trainer.validate(task, datamodule=build_datamodule(cfg), ckpt_path=checkpoint, verbose=False)
    return {key: float(value) for key, value in metrics.items()}


def test_two_process_ddp_validation_equals_one_process(train_config, cache_dir, tmp_path):
    from rsseg.training.train import train

    results = train(train_config("model=smp_deeplabv3plus", "data.train_samples_per_epoch=8"))
    one = _validate(results["checkpoint"], cache_dir, devices=1)
    two = _validate(results["checkpoint"], cache_dir, devices=2)
    # Every metric comes from the synchronised confusion matrix; the loss is a mean per process and is left out.
    metrics = {key for key in one if not key.endswith("/loss")}
    assert metrics == {key for key in two if not key.endswith("/loss")} and {"val/miou", "val/iou/meadow"} <= metrics
    for key in metrics:
        assert two[key] == pytest.approx(one[key], abs=1e-6), key


def test_wandb_offline_sweep_makes_one_run_per_job(tmp_path, cache_dir):
    from rsseg.training.loggers import wandb_identity

    sweep = tmp_path / "sweep"
    result = run([sys.executable, "train.py", "-m", "seed=0,1", "logger=wandb", f"hydra.sweep.dir={sweep}",
                  *[a for a in SMALL if a != "logger=none"]], REPO, cache_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    for seed in (0, 1):
        folder = job(sweep, f"seed={seed}")
        runs = list((folder / "wandb").glob("offline-run-*"))
        assert len(runs) == 1, runs
        # The run id comes from the job folder: resuming in the same folder continues the same W&B run.
        identity = wandb_identity(folder, {"seed": seed}, sweep)
        assert runs[0].name.endswith(identity["id"]) and (runs[0] / f"run-{identity['id']}.wandb").is_file()
        assert identity["name"] == folder.name and identity["group"] == f"{tmp_path.name}/sweep"
