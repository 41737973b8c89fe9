"""A model and a dataset of the user's own, from a config folder of theirs: the README's path, run as typed."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from rsseg.config import compose_config
from rsseg.errors import ConfigError
from tests.readme import documented_commands, documented_files, run_rsseg, section

SECTION = "Your own models and datasets"
OWN_FILES = {"my_models.py", "fields.py", "conf/model/my_unet.yaml", "conf/data/my_fields.yaml"}


def write_fields(folder: Path, names=("north", "east", "south"), size: int = 160) -> None:
    """RGB scenes of grey ground with yellow fields, and their 0/1 label rasters; two train, one val."""
    rng = np.random.default_rng(0)
    for d in ("images", "labels"):
        (folder / d).mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(names):
        label = np.zeros((size, size), np.uint8)
        for _ in range(4):
            r, c = rng.integers(0, size - 40, 2)
            h, w = rng.integers(20, 40, 2)
            label[r:r + h, c:c + w] = 1
        image = np.where(label[None] == 1, np.array([200, 190, 60])[:, None, None], 100).astype(np.float32)
        image = np.clip(image + rng.normal(0, 12, image.shape), 0, 255).astype(np.uint8)
        profile = {"driver": "GTiff", "width": size, "height": size, "dtype": "uint8", "crs": "EPSG:32633",
                   "transform": from_origin(500_000 + 1_000 * index, 5_000_000, 1.0, 1.0)}
        with rasterio.open(folder / "images" / f"{name}.tif", "w", count=3, **profile) as dst:
            dst.write(image)
        with rasterio.open(folder / "labels" / f"{name}.tif", "w", count=1, **profile) as dst:
            dst.write(label[None])
    (folder / "split.json").write_text(json.dumps({"train": list(names[:2]), "val": [names[2]]}))


@pytest.fixture
def project(tmp_path) -> Path:
    """The README's project folder: its files exactly as printed there, and a small field survey."""
    root = tmp_path / "my_project"
    files = documented_files(section(SECTION))
    assert set(files) == OWN_FILES
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    write_fields(root / "fields")
    return root


def tiny_unet_params(project: Path, num_classes: int) -> int:
    spec = importlib.util.spec_from_file_location("readme_my_models", project / "my_models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return sum(p.numel() for p in module.TinyUNet(num_classes, 3, 16).parameters())


def command(prefix: str) -> list[str]:
    matches = [c for c in documented_commands(section(SECTION)) if " ".join(c).startswith(prefix)]
    assert len(matches) == 1, (prefix, matches)
    return matches[0]


def test_own_model_and_dataset_train_from_a_config_dir(project, cache_dir):
    listed = run_rsseg(command("rsseg models --config-dir conf my_unet"), project, timeout=300)
    assert listed.returncode == 0, listed.stderr[-2000:]
    row = re.search(r"^my_unet +([\d,]+) +([\d.]+) +([\d.]+)$", listed.stdout, re.MULTILINE)
    assert row and int(row.group(1).replace(",", "")) == tiny_unet_params(project, 6)  # listed at 6 classes
    assert float(row.group(3)) > 0  # GFLOPs at 512 x 512

    expected_params = tiny_unet_params(project, 2)

    run = run_rsseg(command("rsseg train --config-dir conf model=my_unet data=my_fields trainer.fast_dev_run=true"),
                    project)
    assert run.returncode == 0, run.stderr[-3000:]
    (results_file,) = project.glob("outputs/train/*/*/results.json")
    results = json.loads(results_file.read_text())
    assert (results["model"], results["data"]) == ("my_unet", "my_fields")
    assert results["params"] == expected_params and results["steps"] == 1
    assert results["config"]["model"]["_target_"] == "my_models.TinyUNet"
    assert results["config"]["data"]["scenes"]["_target_"] == "fields.FieldScenes"
    val = results["metrics"]["val"]
    assert set(val["per_class"]) == {"background", "field"}
    # one val scene of 160 x 160 in 128 px windows: 4 windows, all pixels labelled
    assert sum(c["support"] for c in val["per_class"].values()) == 160 * 160
    output = run.stdout + run.stderr
    # Quiet output: no advertising, no notice that the model summary callback rsseg configures exists.
    assert "Tip:" not in output and "already configured with model summary" not in output
    assert "Traceback" not in output and "Warning" not in run.stderr.replace("`isinstance(treespec", "")


def test_help_lists_the_groups_and_options_of_a_config_dir(project):
    run = run_rsseg(["rsseg", "train", "--config-dir", "conf", "--help"], project, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stdout.splitlines()
    model_line = next(line for line in lines if line.startswith("model: "))
    data_line = next(line for line in lines if line.startswith("data: "))
    assert "my_unet" in model_line.split(": ")[1].split(", ") and "mst_deeplab" in model_line
    assert "my_fields" in data_line.split(": ")[1].split(", ") and "vaihingen" in data_line


def test_rsseg_config_path_puts_the_folders_on_every_search_path(project, monkeypatch):
    import rsseg

    (project / "conf" / "local").mkdir()
    (project / "conf" / "local" / "default.yaml").write_text("# @package _global_\ndata:\n  num_workers: 8\n")
    monkeypatch.setenv("RSSEG_CONFIG_PATH", str(project / "conf"))
    monkeypatch.syspath_prepend(str(project))
    cfg = compose_config("train", ["model=my_unet", "data=my_fields", f"paths.output_dir={project}"])
    assert cfg.model._target_ == "my_models.TinyUNet" and cfg.model.width == 16
    assert cfg.data.num_workers == 8  # local/default.yaml of a user folder applies to every training run
    assert cfg.data.scenes._target_ == "fields.FieldScenes" and cfg.data.num_classes == 2
    model = rsseg.models.build("my_unet", num_classes=2, in_channels=4)
    assert type(model).__name__ == "TinyUNet" and model.down[0].in_channels == 4
    with pytest.raises(ConfigError, match="model='no_such_unet': no such model config"):
        rsseg.models.build("no_such_unet")
    monkeypatch.delenv("RSSEG_CONFIG_PATH")
    with pytest.raises(Exception, match="my_unet"):
        compose_config("train", ["model=my_unet"])


@pytest.mark.slow
def test_own_model_in_a_sweep_and_a_table(project, cache_dir):
    sweep = command("rsseg train -m --config-dir conf data=my_fields")
    run = run_rsseg(sweep, project, timeout=3000)
    assert run.returncode == 0, run.stderr[-3000:]
    jobs = [json.loads(p.read_text()) for p in sorted(project.glob("multirun/fields/*/results.json"))]
    assert sorted((job["model"], job["seed"]) for job in jobs) == [
        ("deeplabv3plus_mobilenetv2", 0), ("deeplabv3plus_mobilenetv2", 1), ("my_unet", 0), ("my_unet", 1)]
    assert all(job["metrics"]["val"]["miou"] is not None for job in jobs)
    if importlib.util.find_spec("rsseg.tables") is None:
        pytest.skip("rsseg tables is not part of this checkout yet; the sweep above was checked")
    tables = run_rsseg(command("rsseg tables multirun/fields"), project, timeout=600)
    assert tables.returncode == 0, tables.stderr[-3000:]
    written = list((project / "tables").rglob("*"))
    assert any("my_unet" in p.read_text() for p in written if p.is_file())
