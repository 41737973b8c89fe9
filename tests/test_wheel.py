"""The built wheel, installed into a fresh virtualenv, trains, predicts, evaluates and exports from an empty
folder: nothing depends on a clone."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import rasterio

from tests.conftest import SMALL_DATA
from tests.readme import REPO

pytestmark = pytest.mark.slow


def build_wheel(tmp_path: Path) -> Path:
    """``pip wheel`` of a copy of the checkout (the checkout gets no build/ folder), offline: no build isolation,
    no dependencies."""
    project = tmp_path / "project"
    shutil.copytree(REPO / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md", "setup.py"):
        shutil.copy(REPO / name, project / name)
    run = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          "-w", str(tmp_path / "dist"), str(project)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("rsseg-*.whl")
    return wheel


def clean_environment() -> dict[str, str]:
    """The environment without what points Python at a checkout (PYTHONPATH) or at user configs."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RSSEG_CONFIG_PATH")}


def fresh_virtualenv(tmp_path: Path, wheel: Path) -> Path:
    """A new virtualenv holding only the wheel; the dependencies come from this interpreter's site-packages
    through a .pth file (a folder added by a .pth is not searched for .pth files, so no editable rsseg leaks in)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "shared_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    run = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
                          str(wheel)], capture_output=True, text=True, timeout=600, env=clean_environment())
    assert run.returncode == 0, run.stderr[-3000:]
    return venv


def test_the_wheel_installs_and_runs_from_an_empty_folder(tmp_path):
    wheel = build_wheel(tmp_path)
    venv = fresh_virtualenv(tmp_path, wheel)
    work = tmp_path / "empty"
    work.mkdir()
    env = clean_environment()
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}", RSSEG_CACHE=str(tmp_path / "cache"))

    def rsseg(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
        run = subprocess.run(["rsseg", *args], cwd=work, env=env, capture_output=True, text=True, timeout=timeout)
        assert run.returncode == 0, f"rsseg {' '.join(args)}\n{run.stderr[-3000:]}"
        return run

    # The installed package is the one that runs, and its resources hold every config group of the source tree.
    probe = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import json, rsseg; from importlib.resources import files\n"
         "def walk(node, group):\n"
         "    for child in node.iterdir():\n"
         "        if child.is_dir(): yield f'{group}/{child.name}'.lstrip('/'); yield from walk(child, f'{group}/{child.name}')\n"
         "        elif child.name.endswith('.yaml'): yield f'{group}/{child.name}'.lstrip('/')\n"
         "print(json.dumps({'file': rsseg.__file__, 'conf': sorted(walk(files('rsseg') / 'conf', ''))}))"],
        cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert probe.returncode == 0, probe.stderr[-3000:]
    installed = json.loads(probe.stdout)
    assert installed["file"].startswith(str(venv))
    source_conf = REPO / "src" / "rsseg" / "conf"
    assert installed["conf"] == sorted(p.relative_to(source_conf).as_posix() for p in source_conf.rglob("*"))

    assert "model: " in rsseg("train", "--help").stdout
    trained = rsseg("train", "scale=smoke", *SMALL_DATA)
    noise = re.compile(r"GPU available|TPU available|Seed set|deprecated|weights_only|Total FLOPs")
    assert not noise.findall(trained.stdout + trained.stderr)  # a quiet terminal
    (results_file,) = work.glob("outputs/train/*/*/results.json")
    run_folder = results_file.parent
    assert (run_folder / "checkpoints" / "best.ckpt").is_file() and (run_folder / "checkpoints" / "last.ckpt").is_file()
    assert {p.name for p in (run_folder / "plots").glob("*.png")} == {"curves.png", "confusion_val.png",
                                                                       "samples_val.png"}
    results = json.loads(results_file.read_text())
    assert results["steps"] == 2 and results["metrics"]["val"]["miou"] is not None  # 4 windows, batch 2
    checkpoint = Path(results["checkpoint"])
    assert checkpoint.is_file() and checkpoint.is_relative_to(work / "outputs")

    scene = next((tmp_path / "cache" / "synthetic").glob("*/scene_02.tif"))
    rsseg("predict", f"ckpt={checkpoint}", f"input={scene}", "output=scene_classes.tif", "progress=false")
    rsseg("eval", f"ckpt={checkpoint}", "progress=false")
    (eval_file,) = work.glob("outputs/eval/*/*/results.json")
    assert json.loads(eval_file.read_text())["split"] == "val"
    rsseg("export", f"ckpt={checkpoint}", "format=onnx", "output=model.onnx")
    rsseg("predict", "ckpt=model.onnx", f"input={scene}", "output=onnx_classes.tif", "progress=false")
    with rasterio.open(scene) as src, rasterio.open(work / "scene_classes.tif") as a, \
            rasterio.open(work / "onnx_classes.tif") as b:
        assert (a.crs, a.transform) == (src.crs, src.transform)
        assert np.mean(a.read(1) == b.read(1)) >= 0.999
    assert sorted(p.name for p in work.iterdir()) == ["model.onnx", "onnx_classes.tif", "outputs", "scene_classes.tif"]
