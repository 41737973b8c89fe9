"""The optional integrations are extras: a command that needs a missing one says which extra, in one line (exit 2).

A missing package is simulated in a child process: ``sys.modules[name] = None`` makes Python's import and
``importlib.util.find_spec`` see no such module, and leaving a Hydra plugin out of ``pkgutil.walk_packages`` keeps
Hydra from discovering it, as if neither were installed.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.test_predict_cli import conv_model_config, data_config, write_checkpoint

HIDE = """
import pkgutil, runpy, sys
for name in {modules!r}:
    sys.modules[name] = None
walk = pkgutil.walk_packages
pkgutil.walk_packages = lambda *a, **k: (m for m in walk(*a, **k) if not any(p in m.name for p in {plugins!r}))
sys.argv = {argv!r}
if sys.argv[0] == "rsseg":
    from rsseg.cli import main
    sys.exit(main())
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run_without(argv: list[str], cwd, modules=(), plugins=()) -> subprocess.CompletedProcess:
    code = HIDE.format(modules=list(modules), plugins=list(plugins), argv=argv)
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONWARNINGS": "ignore", "RSSEG_CACHE": str(cwd)})


CASES = [
    (["train.py", "logger=wandb", "scale=smoke"], ["wandb"], [],
     "error: logger=wandb needs the wandb extra: pip install 'rsseg[wandb]'"),
    (["train.py", "-m", "hydra/launcher=parallel", "seed=0,1", "scale=smoke"], [], ["hydra_joblib_launcher"],
     "error: hydra/launcher=parallel needs the launchers extra (hydra-joblib-launcher): pip install 'rsseg[launchers]'"),
    (["train.py", "hparams_search=lr_loss", "scale=smoke"], [], ["hydra_optuna_sweeper"],
     "error: hparams_search=lr_loss needs the optuna extra (hydra-optuna-sweeper): pip install 'rsseg[optuna]'"),
]


@pytest.mark.parametrize(("argv", "modules", "plugins", "line"), CASES, ids=["wandb", "launchers", "optuna"])
def test_a_missing_extra_is_named_in_one_line(argv, modules, plugins, line, tmp_path):
    (tmp_path / argv[0]).symlink_to(REPO / argv[0])
    done = run_without(argv, tmp_path, modules, plugins)
    assert done.returncode == 2, done.stderr[-3000:]
    assert done.stderr.strip().splitlines()[-1] == line and "Traceback" not in done.stderr
    assert list(tmp_path.glob("outputs/**/*.json")) == []  # refused before anything ran


def test_onnx_export_without_the_onnx_extra(tmp_path):
    ckpt = write_checkpoint(tmp_path / "tiny.ckpt", conv_model_config(), data_config())
    done = run_without(["rsseg", "export", f"ckpt={ckpt}", "format=onnx", f"output={tmp_path / 'm.onnx'}"],
                       tmp_path, modules=["onnx", "onnxruntime"])
    assert done.returncode == 2, done.stderr[-3000:]
    assert done.stderr.strip().splitlines()[-1] == "error: format=onnx needs the onnx extra: pip install 'rsseg[onnx]'"
    assert not (tmp_path / "m.onnx").exists()


def test_dev_installs_every_extra_the_tests_use():
    tomllib = pytest.importorskip("tomllib")
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(extras) == {"wandb", "launchers", "optuna", "onnx", "all", "dev"}
    assert "rsseg[all]" in extras["dev"] and extras["all"] == ["rsseg[wandb,launchers,optuna,onnx]"]
    core = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert not [d for d in core if d.split(">")[0] in ("wandb", "hydra-joblib-launcher", "hydra-submitit-launcher",
                                                       "hydra-optuna-sweeper", "onnx", "onnxruntime")]
