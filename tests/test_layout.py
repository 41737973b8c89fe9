"""The package as a map of the system: no import cycle, small files, a short top level, and runs written before
the subpackages (tests/data/run_before_layout) still predict and resume."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import rasterio
import torch

from tests.conftest import REPO
from tests.test_inference import smooth_image, write_geotiff

PACKAGE = REPO / "src" / "rsseg"
OLD_RUN = REPO / "tests" / "data" / "run_before_layout"
# The overrides the old run was trained with (tests/data/run_before_layout/README.md), and the synthetic data's
# default of that time: no test scene.
OLD_OVERRIDES = [
    "model=deeplabv3plus_mobilenetv2", "model/encoder=timm", "model.encoder.name=test_efficientnet",
    "model.encoder.output_stride=null", "model.aspp.out_channels=16", "model.decoder.low_projection=8",
    "model.decoder.channels=16", "data.scenes.size=256", "data.scenes.num_scenes=3", "data.scenes.val_scenes=1",
    "data.tile_size=64", "data.eval_tile_size=64", "data.train_samples_per_epoch=8", "data.batch_size=4",
    "data.num_workers=0", "trainer.max_epochs=1", "seed=0", "data.scenes.test_scenes=0",
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """The rsseg modules ``path`` imports anywhere in it (functions and TYPE_CHECKING blocks included)."""
    name = module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1] + [node.module or ""]) if node.level else node.module
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and target != "rsseg":
                found.add(target)
    return found


def test_no_import_cycle_no_file_over_400_lines_and_a_short_top_level():
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: imported_modules(path, set(files)) for name, path in files.items()}

    def cycle_from(start: str) -> list[str] | None:
        stack, seen = [(start, [start])], set()
        while stack:
            node, trail = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    return trail + [start]
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, trail + [nxt]))
        return None

    cycles = [c for name in sorted(graph) if (c := cycle_from(name))]
    assert cycles == []
    long_files = {str(p.relative_to(REPO)): n for p in files.values() if (n := len(p.read_text().splitlines())) > 400}
    assert long_files == {}
    top_level = sorted(p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    assert len(top_level) <= 10, top_level


def test_the_old_run_names_modules_that_moved_and_they_still_import():
    stored = torch.load(OLD_RUN / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    cfg = stored["hyper_parameters"]["cfg"]
    assert cfg["loss"]["_target_"] == "rsseg.losses.CrossEntropy"
    assert cfg["callbacks"]["last_checkpoint"]["_target_"] == "rsseg.callbacks.resume.LastCheckpoint"
    import rsseg.callbacks.resume
    import rsseg.losses
    from hydra.utils import get_class

    import rsseg.training.callbacks.resume
    import rsseg.training.losses

    assert rsseg.losses is rsseg.training.losses  # the same module, not a second copy of its classes
    assert rsseg.callbacks.resume is rsseg.training.callbacks.resume
    assert get_class(cfg["loss"]["_target_"]) is rsseg.training.losses.CrossEntropy
    assert rsseg.training.losses.__spec__.name == "rsseg.training.losses"


def test_a_checkpoint_written_before_the_move_predicts(tmp_path):
    scene = write_geotiff(tmp_path / "scene.tif", smooth_image(150, 130))
    out = tmp_path / "scene_classes.tif"
    run = subprocess.run(
        [sys.executable, "predict.py", f"ckpt={OLD_RUN / 'checkpoints' / 'last.ckpt'}", f"input={scene}",
         f"output={out}", "progress=false", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    with rasterio.open(scene) as source, rasterio.open(out) as classes:
        assert (classes.crs, classes.transform, classes.shape) == (source.crs, source.transform, (150, 130))
        names = json.loads(classes.tags()["CLASS_NAMES"])
        values = classes.read(1)
    assert names == ["built-up", "road", "farmland", "forest", "meadow", "water"]
    assert values.max() < 6


def test_resume_auto_continues_a_run_started_before_the_move(tmp_path, cache_dir):
    run_dir = tmp_path / "old_run"
    (run_dir / "checkpoints").mkdir(parents=True)
    shutil.copy(OLD_RUN / "checkpoints" / "last.ckpt", run_dir / "checkpoints" / "last.ckpt")
    run = subprocess.run(
        [sys.executable, "train.py", *OLD_OVERRIDES, "logger=csv", "resume=auto",
         f"hydra.run.dir={run_dir}", "trainer.enable_progress_bar=false", "callbacks.rich_progress_bar=null"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env={**os.environ, "RSSEG_CACHE": str(cache_dir)},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"resuming {run_dir} from {run_dir / 'checkpoints' / 'last.ckpt'} (step 2)" in run.stdout
    # The old run had finished its one epoch: the same config continues it without a step more.
    results = json.loads((run_dir / "results.json").read_text())
    assert (results["steps"], results["epochs"]) == (2, 1)
