"""Determinism and resuming: two seeded runs agree exactly, and a run killed (SIGKILL) mid-epoch, resumed, stopped
by SIGTERM and resumed again ends with the weights and metrics of the run nobody interrupted."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from rsseg.config import compose_config
from rsseg.models.checkpoint import read_checkpoint
from rsseg.training.resume import find_resume_checkpoint
from rsseg.training.train import train
from tests.conftest import REPO, SMALL_DATA

# Four epochs of two steps (8 windows of 64 px, batches of 4: long enough that the SIGTERM lands before the end
# on a fast machine), a last checkpoint every step, a CSV logger run.
RUN = [
    *SMALL_DATA, "model=smp_deeplabv3plus", "seed=3", "trainer.deterministic=true", "trainer.max_epochs=4",
    "callbacks.last_checkpoint.every_n_steps=1", "validate_best=false", "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false", "callbacks.rich_progress_bar=null", "callbacks.model_summary=null",
]
STEPS = 8


def run_in_process(folder: Path, cache_dir: Path) -> tuple[dict, dict]:
    results = train(compose_config("train", [*RUN, f"paths.output_dir={folder}", f"paths.cache_dir={cache_dir}"]))
    return results, read_checkpoint(folder / "checkpoints" / "last.ckpt")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, cache_dir) -> tuple[dict, dict]:
    return run_in_process(tmp_path_factory.mktemp("uninterrupted"), cache_dir)


def same_weights(first: dict, second: dict) -> bool:
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def test_two_seeded_deterministic_runs_give_identical_weights_and_metrics(uninterrupted, tmp_path, cache_dir):
    results, last = run_in_process(tmp_path, cache_dir)
    reference, reference_last = uninterrupted
    assert results["steps"] == reference["steps"] == STEPS
    assert results["metrics"] == reference["metrics"] and 0 < results["metrics"]["val"]["miou"] < 1
    assert same_weights(last["state_dict"], reference_last["state_dict"])


def step_of(path: Path) -> int:
    return int(read_checkpoint(path, mmap=True)["global_step"])


def wait_for(condition, process: subprocess.Popen, what: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"the run ended (or timed out) before {what}: {process.communicate()}")
        time.sleep(0.02)


def test_sigkill_then_sigterm_then_resume_ends_like_the_uninterrupted_run(uninterrupted, tmp_path, cache_dir):
    # As a user types it, from a working folder: runs go to outputs/train/<date>/<time>.
    command = [sys.executable, str(REPO / "train.py"), *RUN, f"paths.cache_dir={cache_dir}"]
    runs = tmp_path / "outputs" / "train"

    def last() -> Path | None:
        found = sorted(runs.glob("*/*/checkpoints/last.ckpt"))
        return found[0] if found else None

    first = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: last() is not None, first, "its first checkpoint")
    first.kill()  # SIGKILL: no handler runs, whatever was being written stays as it was
    first.communicate()
    checkpoint = last()
    killed_at = step_of(checkpoint)
    assert 1 <= killed_at < STEPS  # step 1 (mid-epoch 0), or later on a slow machine

    time.sleep(1.1)  # the next run gets a folder of its own (outputs/train/<date>/<time>)
    second = subprocess.Popen([*command, "resume=auto"], cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    written = checkpoint.stat().st_mtime_ns
    wait_for(lambda: checkpoint.stat().st_mtime_ns != written, second, "a checkpoint after the resumed step")
    second.send_signal(signal.SIGTERM)
    out, err = second.communicate(timeout=300)
    stopped_at = step_of(checkpoint)
    assert second.returncode == 130, err[-3000:]
    assert f"resuming {checkpoint.parents[1]} from {checkpoint} (step {killed_at})" in out
    assert err.strip().splitlines()[-1] == (
        f"interrupted: SIGTERM at step {stopped_at} (epoch {(stopped_at - 1) // 2}); saved {checkpoint}; continue with the "
        f"same command and resume=auto (or resume={checkpoint})")
    assert killed_at < stopped_at < STEPS and "Traceback" not in err

    third = subprocess.run([*command, "resume=auto"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert third.returncode == 0, third.stderr[-3000:]
    assert f"resuming {checkpoint.parents[1]} from {checkpoint} (step {stopped_at})" in third.stdout

    reference, reference_last = uninterrupted
    final = read_checkpoint(checkpoint)
    assert final["global_step"] == STEPS
    assert same_weights(final["state_dict"], reference_last["state_dict"])
    results = json.loads((checkpoint.parents[1] / "results.json").read_text())
    assert results["metrics"] == json.loads(json.dumps(reference["metrics"]))  # as results.json stores them
    # One run folder, one logger run, with the rows of every part of the run in step order.
    assert [p.relative_to(runs) for p in runs.glob("*/*")] == [checkpoint.parents[1].relative_to(runs)]
    logs = checkpoint.parents[1] / "csv"
    assert [p.name for p in logs.iterdir()] == ["version_0"]
    with (logs / "version_0" / "metrics.csv").open() as handle:
        steps = [int(row["step"]) for row in csv.DictReader(handle)]
    assert steps == sorted(steps) and steps[-1] >= STEPS - 1
    # What a sweep calls for a job folder without results.json: the same checkpoint, for the same config.
    config = read_checkpoint(checkpoint, mmap=True)["hyper_parameters"]["cfg"]
    assert find_resume_checkpoint(checkpoint.parents[1], config) == checkpoint
    assert find_resume_checkpoint(checkpoint.parents[1], {**config, "seed": 4}) is None


@pytest.mark.slow  # two launches of a two-job sweep: about a minute on a quiet 2-core machine
def test_sigterm_stops_a_sweep_and_the_same_command_continues_it(tmp_path, cache_dir):
    """A scheduler's SIGTERM ends the whole launch: the running job saves and is not recorded as failed, the next
    job does not start, and the same command then finishes the first job and runs the second."""
    sweep_dir = tmp_path / "sweep"
    command = [sys.executable, str(REPO / "train.py"), "-m", *[a for a in RUN if not a.startswith("seed=")],
               "seed=3,4", f"paths.cache_dir={cache_dir}", f"hydra.sweep.dir={sweep_dir}"]

    def last() -> Path | None:
        found = sorted(sweep_dir.glob("*/checkpoints/last.ckpt"))
        return found[0] if found else None

    first = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: last() is not None, first, "its first checkpoint")
    first.send_signal(signal.SIGTERM)
    out, err = first.communicate(timeout=300)
    assert first.returncode == 130, err[-3000:]
    job = last().parents[1]
    assert err.strip().splitlines()[-1].startswith(f"interrupted: sweep job {job}: SIGTERM at step ")
    assert not (job / "error.json").exists() and [p.name for p in sweep_dir.iterdir() if p.is_dir()] == [job.name]

    second = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"resuming {job} from {job / 'checkpoints' / 'last.ckpt'}" in second.stdout
    assert sorted(json.loads((p / "results.json").read_text())["seed"] for p in sweep_dir.iterdir() if p.is_dir()) == [3, 4]
