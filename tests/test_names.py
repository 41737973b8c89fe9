"""Names a user can find: sweep job folders named by their overrides (a path value as one safe folder name),
checkpoints/best.ckpt and last.ckpt, the command recorded as typed, ``--cfg job`` in either order, and the commit
of an rsseg that is not a git checkout."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from rsseg.config import CONF_DIR
from rsseg.config.names import MAX_NAME, job_folder
from rsseg.errors import ConfigError
from rsseg.runtime.cmdline import for_hydra
from tests.conftest import REPO


def sha(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:6]


def test_a_job_folder_is_named_by_its_overrides_as_hydra_would_where_that_is_safe():
    assert job_folder(["seed=1", "model=unet", "+data.extra=3", "~callbacks.model_summary"]) == \
        "+data.extra=3,model=unet,seed=1,~callbacks.model_summary"


def test_a_path_value_becomes_one_safe_folder_name():
    name = job_folder(["protocol.split_file=/data/split.json", "seed=0"])
    assert name == f"protocol.split_file=data_split.json-{sha('/data/split.json')},seed=0"
    # Two paths that read alike still get folders of their own; a Windows path is one name too.
    assert job_folder(["protocol.split_file=/data_split.json"]) == \
        f"protocol.split_file=data_split.json-{sha('/data_split.json')}"
    windows = r"C:\runs\stats.json"
    assert job_folder([f"data.stats_file={windows}"]) == f"data.stats_file=C_runs_stats.json-{sha(windows)}"
    # A group option with a slash (row=mst/unet) is a value like any other.
    assert job_folder(["row=mst/unet"]) == f"row=mst_unet-{sha('mst/unet')}"


def test_long_values_and_names_are_shortened_with_a_hash():
    path = "/home/someone/projects/fields/splits/fold_3_of_5_with_buffers.json"
    name = job_folder([f"protocol.split_file={path}"])
    assert name == f"protocol.split_file=fold_3_of_5_with_buffers.json-{sha(path)}"
    # Too long a name: keys by their last part, and a hash of the whole name.
    small = ["data.scenes.num_scenes=3", "data.scenes.size=256", "data.scenes.val_scenes=1", "data.tile_size=64",
             "data.eval_tile_size=128", "data.train_samples_per_epoch=8", "data.batch_size=4", "trainer.max_epochs=1",
             "model=smp_deeplabv3plus", "seed=0"]
    whole = ",".join(sorted(small))
    assert len(whole) > MAX_NAME
    assert job_folder(small) == ("batch_size=4,eval_tile_size=128,num_scenes=3,size=256,val_scenes=1,tile_size=64,"
                                 "train_samples_per_epoch=8,model=smp_deeplabv3plus,seed=0,max_epochs=1-"
                                 + hashlib.sha1(whole.encode()).hexdigest()[:8])
    many = [f"model.option_{i}=value_{i}" for i in range(30)]
    long = job_folder(many)
    assert len(long) == MAX_NAME and long.endswith("-" + hashlib.sha1(",".join(sorted(many)).encode()).hexdigest()[:8])
    assert long != job_folder(many[:-1])


def test_excluded_keys_and_patterns_stay_out_and_an_empty_name_takes_the_fallback():
    overrides = ["paths.cache_dir=/tmp/cache", "logger=none", "logger.wandb.project=x", "seed=2"]
    assert job_folder(overrides, ["paths.*", "logger", "logger.*"]) == "seed=2"
    assert job_folder(["logger=none"], ["logger"], 3) == "3"


def hydra_config(overrides: list[str]):
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose("train", overrides=[*overrides, "hydra.job.num=4"], return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()


def test_the_sweep_configs_name_job_folders_by_their_overrides():
    plain = hydra_config(["model=unet", "protocol=manifest", "protocol.split_file=/data/split.json", "seed=1",
                          "paths.cache_dir=/c", "callbacks.rich_progress_bar=null"])
    assert OmegaConf.select(plain, "hydra.sweep.subdir") == \
        f"model=unet,protocol.split_file=data_split.json-{sha('/data/split.json')},protocol=manifest,seed=1"
    # Only keys that change nothing: the job number names the job.
    assert OmegaConf.select(hydra_config(["logger=none"]), "hydra.sweep.subdir") == "4"
    # A named experiment: multirun/<experiment>/<scale>/<row>/<other overrides>, as before for plain values.
    experiment = hydra_config(["experiment=mst_ablation", "scale=smoke", "row=mst/mobilenetv2", "seed=2",
                               "data=dubai", "data.root=/data/dubai", "protocol=standard"])
    assert OmegaConf.select(experiment, "hydra.sweep.dir") == "multirun/mst_ablation/smoke"
    assert OmegaConf.select(experiment, "hydra.sweep.subdir") == "mobilenetv2/data=dubai,protocol=standard,seed=2"
    with_path = hydra_config(["experiment=mst_ablation", "row=mst/mobilenetv2", "protocol=manifest",
                              "protocol.split_file=/s/a.json"])
    assert OmegaConf.select(with_path, "hydra.sweep.subdir") == \
        f"mobilenetv2/protocol.split_file=s_a.json-{sha('/s/a.json')},protocol=manifest"


def test_hydra_flags_go_anywhere_and_minus_m_with_cfg_is_refused():
    assert for_hydra(["model=unet", "--cfg", "job", "seed=1", "hydra.job.name=train"]) == \
        ["--cfg", "job", "model=unet", "seed=1", "hydra.job.name=train"]
    assert for_hydra(["a=1", "--config-dir", "conf", "-m", "b=2,3", "c=3"]) == \
        ["--config-dir", "conf", "-m", "a=1", "b=2,3", "c=3"]
    assert for_hydra(["a=1", "--info", "b=2", "--info", "defaults"])[:3] == ["--info", "--info", "defaults"]
    with pytest.raises(ConfigError, match=r"^-m with --cfg: "):
        for_hydra(["-m", "model=unet,segnet", "--cfg=job"])
    with pytest.raises(ConfigError, match=r"^--info and -m: Hydra does one of these per command"):
        for_hydra(["--info", "-m", "seed=1,2"])


def rsseg(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rsseg.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("order", ["flag last", "flag first"])
def test_cfg_job_prints_the_config_with_the_flag_in_either_order(tmp_path, order):
    args = ["model=unet", "seed=7", "--cfg", "job"] if order == "flag last" else ["--cfg", "job", "model=unet", "seed=7"]
    run = rsseg("train", *args, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    printed = OmegaConf.create(run.stdout)
    assert printed.seed == 7 and printed.model._target_ == "rsseg.models.unet.UNet"
    assert not any(tmp_path.iterdir())  # printing the config writes nothing


def test_a_sweep_with_cfg_gets_one_line(tmp_path):
    run = rsseg("train", "-m", "model=unet,segnet", "--cfg", "job", cwd=tmp_path)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        "error: -m with --cfg: --cfg prints the config of one run, and a sweep runs one per job; expected --cfg "
        "job without -m, with one value per key (model=unet, not model=unet,segnet)"]


def test_a_plain_sweep_names_its_job_folders_by_their_overrides_and_records_the_typed_command(tmp_path):
    """``fit=false`` jobs measure the model instead of training it: the sweep, its job folders and results.json are
    those of any training sweep (tests/test_sweeps.py re-launches one that trains)."""
    args = ["train", "-m", "model=unet,segnet", "scale=smoke", "fit=false", "hydra.sweep.dir=multirun/names"]
    first = rsseg(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    sweep = tmp_path / "multirun" / "names"
    # Hydra's sweeper hands each job its overrides re-written (fit=False).
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == \
        ["fit=False,model=segnet,scale=smoke", "fit=False,model=unet,scale=smoke"]
    results = json.loads((sweep / "fit=False,model=unet,scale=smoke" / "results.json").read_text())
    assert results["command"] == shlex.join(["rsseg", *args])
    assert [s["model"] for s in results["sizes"]] == ["unet"]


def test_a_smoke_training_leaves_best_and_last_checkpoints(train_config, tmp_path):
    import csv

    from rsseg.models.checkpoint import read_checkpoint
    from rsseg.training.train import train

    results = train(train_config("scale=smoke", "model=smp_deeplabv3plus", "logger=csv", "trainer.max_epochs=2"))
    folder = tmp_path / "checkpoints"
    best, last = folder / "best.ckpt", folder / "last.ckpt"
    assert results["checkpoint"] == str(best.resolve())
    assert best.is_file() and last.is_file()
    # best.ckpt is the best epoch's file, also kept under its epoch and its mIoU in percent (the progress bar's).
    selection = results["selection"]
    [described] = [p for p in folder.iterdir() if p.name.startswith("epoch_")]
    assert described.name == f"epoch_{selection['epoch']:03d}-miou_{100 * selection['score']:.2f}.ckpt"
    assert described.read_bytes() == best.read_bytes()
    # At smoke scale both hold weights only: the last is the end of training, step 2 x 4 windows / batch 4.
    assert read_checkpoint(last)["global_step"] == 4 and "optimizer_states" not in read_checkpoint(last)
    # The logs keep fractions; the percent on the progress bar is never logged.
    rows = list(csv.DictReader(open(tmp_path / "csv" / "version_0" / "metrics.csv")))
    assert "val/mIoU%" not in rows[0] and 0 <= max(float(r["val/miou"]) for r in rows if r["val/miou"]) <= 1


def test_an_installed_rsseg_inside_another_git_repository_reports_no_commit_of_its_own(tmp_path):
    from rsseg._version import git_commit

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    copy = tmp_path / "site-packages" / "rsseg" / "_version.py"
    copy.parent.mkdir(parents=True)
    copy.write_text("")
    assert git_commit(copy) is None  # the user's repository, which does not track it
    assert git_commit(REPO / "src" / "rsseg" / "_version.py") == git_commit()


def test_a_wheel_records_the_commit_it_was_built_from(tmp_path):
    import zipfile
    from importlib.metadata import version

    from tests.test_wheel import clean_environment, fresh_virtualenv

    # A copy of the working tree committed as a checkout of its own (the build reads the commit from git).
    project = tmp_path / "project"
    shutil.copytree(REPO / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md", "setup.py"):
        shutil.copy(REPO / name, project / name)
    git = {**os.environ, "GIT_AUTHOR_NAME": "rsseg", "GIT_AUTHOR_EMAIL": "rsseg@example.org",
           "GIT_COMMITTER_NAME": "rsseg", "GIT_COMMITTER_EMAIL": "rsseg@example.org"}
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "build"]):
        subprocess.run(["git", *command], cwd=project, env=git, check=True, capture_output=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True,
                            check=True).stdout.strip()
    run = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                          str(tmp_path / "dist"), str(project)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("rsseg-*.whl")
    assert zipfile.ZipFile(wheel).read("rsseg/_commit.txt").decode().strip() == commit
    venv = fresh_virtualenv(tmp_path, wheel)
    stamp = subprocess.run([str(venv / "bin" / "python"), "-c", "import json, rsseg._version as v; "
                            "print(json.dumps(v.version_stamp()))"], cwd=tmp_path, capture_output=True, text=True,
                           env={**clean_environment(), "PYTHONDONTWRITEBYTECODE": "1"}, timeout=120)
    assert json.loads(stamp.stdout) == {"rsseg_version": version("rsseg"), "git_commit": commit}, stamp.stderr
