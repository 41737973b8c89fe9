"""rsseg as an installed package: its configs are package data, the wheel holds them all, and the rsseg command
answers --help with its commands, config groups and options."""

from __future__ import annotations

import json
import zipfile
from importlib.resources import files
from pathlib import Path

import pytest
import yaml

from rsseg.cli import COMMANDS, main
from rsseg.config import CONF_DIR, PRIMARY_CONFIGS, config_groups
from tests.conftest import SMALL_DATA
from tests.readme import REPO, run_rsseg
from tests.test_wheel import build_wheel

SOURCE_CONF = REPO / "src" / "rsseg" / "conf"


def resource_options(root) -> dict[str, set[str]]:
    """``{group: options}`` of a config folder read through importlib.resources: every folder is a group
    (``row`` holds only sub-groups), ``""`` holds the primary configs."""
    found: dict[str, set[str]] = {}

    def walk(node, group: str) -> None:
        found.setdefault(group, set())
        for child in node.iterdir():
            if child.is_dir():
                walk(child, f"{group}/{child.name}".lstrip("/"))
            elif child.name.endswith(".yaml"):
                found.setdefault(group, set()).add(child.name[: -len(".yaml")])

    walk(root, "")
    return found


def defaults_of(primary: str) -> dict[str, str | None]:
    """``{group: default option}`` of a primary config's defaults list (``hydra/help`` for an override)."""
    entries = yaml.safe_load((SOURCE_CONF / f"{primary}.yaml").read_text())["defaults"]
    chosen = {}
    for entry in entries:
        if isinstance(entry, dict):
            ((key, value),) = entry.items()
            if not key.startswith("optional "):  # optional: a user's own (local/default.yaml) may add it
                chosen[key.removeprefix("override ")] = value
    return chosen


def test_installed_package_resources_hold_every_config_group():
    conf = files("rsseg") / "conf"
    assert Path(str(conf)) == CONF_DIR
    shipped = resource_options(conf)
    assert shipped[""] >= set(PRIMARY_CONFIGS)
    for primary in PRIMARY_CONFIGS:
        for group, option in defaults_of(primary).items():
            assert group in shipped, f"{primary}.yaml names group {group!r}, which the package lacks"
            assert option is None or option in shipped[group], f"{primary}.yaml: {group}={option} is missing"
    expected = {"data", "model", "model/encoder", "model/attention", "model/upsample", "aug", "loss", "optimizer",
                "scheduler", "trainer", "callbacks", "logger", "paths", "protocol", "scale", "hydra",
                "hydra/help", "hydra/job_logging"}
    assert expected <= set(shipped)
    on_disk = {p.relative_to(SOURCE_CONF).as_posix() for p in SOURCE_CONF.rglob("*") if p.is_dir()}
    assert set(shipped) == {"", *on_disk}
    assert {g: sorted(o) for g, o in shipped.items() if o and g and not g.startswith("hydra")} == config_groups()


def test_the_built_wheel_holds_every_config_and_module(tmp_path):
    wheel = build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = {f"rsseg/conf/{p.relative_to(SOURCE_CONF).as_posix()}" for p in SOURCE_CONF.rglob("*.yaml")}
    assert len(configs) > 100 and configs <= names
    sources = {f"rsseg/{p.relative_to(SOURCE_CONF.parent).as_posix()}" for p in SOURCE_CONF.parent.rglob("*.py")}
    assert sources <= names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "rsseg = rsseg.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_rsseg_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for command in COMMANDS.values():
        assert f"  {command.name:<8}  {command.summary}" in lines
    assert main([]) == 2
    assert "usage: rsseg {train|eval|predict|prepare|export|models|datasets|tables}" in capsys.readouterr().err
    assert main(["trian"]) == 2
    assert "rsseg: unknown command 'trian'" in capsys.readouterr().err


def test_train_help_lists_every_config_group_with_its_options(tmp_path):
    run = run_rsseg(["rsseg", "train", "--help"], tmp_path, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stdout.splitlines()
    assert lines[0].startswith("rsseg train: ")
    for group, options in config_groups().items():  # generated from the folders: new groups appear by themselves
        assert f"{group}: {', '.join(options)}" in lines
    assert {"seed: 0", "ckpt_path: null", "  num_classes: 6"} <= set(lines)
    assert not list(tmp_path.iterdir())  # --help writes no run folder


def test_predict_help_lists_its_keys(tmp_path):
    run = run_rsseg(["rsseg", "predict", "--help"], tmp_path, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stdout.splitlines()
    assert lines[0].startswith("rsseg predict: ")
    assert {"ckpt: null", "input: null", "tta: none", "overlap: 0.25"} <= set(lines)
    assert not any(line.startswith("model: ") for line in lines)  # predict has no config groups to choose


def test_models_and_datasets_lists(capsys):
    from rsseg.data.__main__ import main as datasets
    from rsseg.models.__main__ import main as models

    assert models(["mst_deeplab"]) == 0
    row = capsys.readouterr().out.splitlines()[1].split()
    assert row == ["mst_deeplab", "6,019,094", "22.96", "52.50"]
    assert datasets([]) == 0
    table = capsys.readouterr().out.splitlines()
    listed = {line.split()[0]: line.split()[1:3] for line in table[1:-1]}
    assert set(listed) == set(config_groups()["data"])
    assert listed["vaihingen"] == ["6", "3"] and listed["gid_nirrgb"] == ["6", "4"] and listed["loveda"] == ["7", "3"]
    assert datasets(["vaihingen"]) == 0
    details = capsys.readouterr().out
    assert "classes (6): impervious_surface, building, low_vegetation, tree, car, clutter" in details
    assert "ISPRS_semantic_labeling_Vaihingen/top/top_mosaic_09cm_area{N}.tif" in details


@pytest.mark.slow
def test_ddp_ranks_run_the_rsseg_command(tmp_path, cache_dir):
    run = run_rsseg(["rsseg", "train", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
                     "trainer.sync_batchnorm=false", "trainer.fast_dev_run=true", "logger=none", *SMALL_DATA],
                    tmp_path, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    (results,) = tmp_path.glob("outputs/train/*/*/results.json")
    # Lightning's "GLOBAL_RANK: 1, MEMBER: 2/2" stays off the terminal now; results.json says how many ranks ran.
    recorded = json.loads(results.read_text())
    assert recorded["world_size"] == 2 and recorded["steps"] == 1
