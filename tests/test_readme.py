"""Every README command that can run on the embedded synthetic data runs, exactly as printed, in README order.

Commands are taken from the README's code blocks. Those that need data, checkpoints or hardware this machine
does not have (a real dataset's folder, `ckpt=path/to/...`, GPUs, a SLURM cluster) are left out by the rules in
`needs_more_than_synthetic`; everything else runs in a fresh folder holding the entry scripts, so outputs land
there and not in the checkout.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

RUNNABLE = ("python train.py", "python eval.py", "python predict.py", "rsseg ", "python -m rsseg")
# Things only a user with more than the embedded data and a CPU can run.
NEEDS = (
    re.compile(r"data\.root=/"),  # a real dataset's folder
    re.compile(r"\bdata=(?!synthetic\b)\w+"),
    re.compile(r"(ckpt|input|label|pred)=\S*(path/to|best\.ckpt|scene|scenes/|labels/|pred/)"),
    re.compile(r"trainer=ddp(\s|$)|trainer=gpu|trainer\.devices=[2-9]"),  # GPUs
    re.compile(r"hydra/launcher=slurm"),  # a SLURM cluster
    re.compile(r"multirun/\d{4}-\d\d-\d\d"),  # a dated sweep folder of the user's
    re.compile(r"/full\b"),  # tables of full-scale runs
    re.compile(r"\.\.\."),
    re.compile(r"--config-dir conf\b|multirun/fields\b"),  # the README's own project: tests/test_own_configs.py
)


def readme_commands() -> list[str]:
    """The commands of the README's code blocks, continuation lines joined, comments stripped."""
    commands, block, pending = [], False, ""
    for line in (REPO / "README.md").read_text().splitlines():
        if line.startswith("```"):
            block = not block
            continue
        if not block:
            continue
        text = pending + line.strip()
        if text.endswith("\\"):
            pending = text[:-1] + " "
            continue
        pending = ""
        text = re.sub(r"\s+#.*$", "", text).strip()
        if text.startswith(RUNNABLE):
            commands.append(text)
    return commands


def needs_more_than_synthetic(command: str) -> bool:
    return any(pattern.search(command) for pattern in NEEDS)


COMMANDS = list(dict.fromkeys(c for c in readme_commands() if not needs_more_than_synthetic(c)))
# Sweeps whose rows include models over 60 M parameters (PSPNet, FCN-32s/8s, SegNet, DeconvNet) take 2-4 minutes
# each here, so they and their tables run with -m slow, like those models' own step in test_train_models.py.
# The default suite keeps mst_ablation's sweep and tables end to end; every experiment's rows compose in
# test_experiments.py and every table layout is checked on recorded runs in test_tables.py.
HEAVY_SWEEPS = ("mst_compare", "subpixel_compare", "deconvnet_compare")


def _marked(command: str):
    heavy = any(f"experiment={name} " in command + " " or f"multirun/{name}/" in command for name in HEAVY_SWEEPS)
    return pytest.param(command, marks=pytest.mark.slow) if heavy else command


def test_the_readme_shows_the_documented_commands():
    expected = {
        "python train.py -m experiment=mst_ablation scale=smoke", "rsseg tables multirun/mst_ablation/smoke",
        "python train.py -m experiment=mst_compare scale=smoke", "rsseg tables multirun/mst_compare/smoke",
        "python train.py -m experiment=subpixel_compare scale=smoke", "rsseg tables multirun/subpixel_compare/smoke",
        "python train.py -m experiment=deconvnet_compare scale=smoke",
        "rsseg tables multirun/deconvnet_compare/smoke", "python train.py experiment=mst_params",
        "python train.py trainer=ddp_sim scale=smoke",
    }
    assert expected <= set(COMMANDS)


@pytest.fixture(scope="module")
def readme_folder(tmp_path_factory, cache_dir) -> Path:
    folder = tmp_path_factory.mktemp("readme")
    for script in ("train.py", "eval.py", "predict.py"):
        (folder / script).symlink_to(REPO / script)
    return folder


@pytest.mark.parametrize("command", [_marked(c) for c in COMMANDS])
def test_readme_command_runs_as_printed(command, readme_folder, cache_dir):
    argv = shlex.split(command)
    if argv[0] == "python":
        argv[0] = sys.executable
    elif argv[0] == "rsseg":
        argv[0] = str(Path(sys.executable).with_name("rsseg"))
    env = {**os.environ, "RSSEG_CACHE": str(cache_dir), "WANDB_SILENT": "true"}
    result = subprocess.run(argv, cwd=readme_folder, capture_output=True, text=True, timeout=1200, env=env)
    assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    check_output(command, result.stdout, readme_folder)


def check_output(command: str, stdout: str, folder: Path) -> None:
    """What each kind of command must show, beyond exiting 0."""
    tables = {
        "mst_ablation": ["DeepLabv3+", "DeepLabv3+ (MobileNetV2)", "DeepLabv3+ (MobileNetV2 + SE)", "MST-DeepLabv3+"],
        "mst_compare": ["PSPNet", "UNet", "DeepLabv3+", "MST-DeepLabv3+"],
        "subpixel_compare": ["FCN-32s", "FCN-8s", "U-Net", "SegNet", "DeepLabv3+", "Ours (crop-and-stitch only)",
                             "Ours (sub-pixel only)", "Ours (crop-and-stitch + sub-pixel)"],
        "deconvnet_compare": ["Improved DeconvNet", "DeconvNet", "UNet"],
    }
    if command.startswith("rsseg tables multirun/"):
        experiment = command.split("/")[1]
        main = stdout.split("\n### ")[1]  # the first table: the paper's main table
        rows = [line.split("|")[1].strip() for line in main.splitlines() if line.startswith("| ") and "---" not in line]
        assert rows[1:] == tables[experiment], rows
        assert (folder / "multirun" / experiment / "smoke" / "tables" / f"{experiment}-synthetic-smoke.md").is_file()
        # The sweep's checkpoints were only needed for the figures: the next sweeps need the disk.
        for checkpoint in (folder / "multirun" / experiment).rglob("*.ckpt"):
            checkpoint.unlink()
    elif "experiment=mst_params" in command:
        for line in ("PSPNet                  68,062,156    259.64     259.64",
                     "MST-DeepLabv3+           6,019,094     22.96      22.96"):
            assert line in stdout
    elif "trainer=ddp_sim" in command:
        # Two processes at every scale: the world size the run trained with, as results.json records it.
        runs = [json.loads(p.read_text()) for p in folder.glob("outputs/train/*/*/results.json")]
        (run,) = [r for r in runs if "trainer=ddp_sim" in r["overrides"]]
        assert run["world_size"] == 2 and run["config"]["trainer"]["devices"] == 2, run["world_size"]
    elif command.startswith("python train.py -m experiment="):
        experiment = command.split("experiment=")[1].split()[0]
        assert f"{len(tables[experiment])} jobs, {len(tables[experiment])} done" in stdout
