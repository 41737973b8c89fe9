"""The bad-input corpus: every case runs a command exactly as a user types it, in a fresh working folder, and
must end with exit status 2, exactly one ``error:`` line naming the fault, no traceback, and nothing left behind
(neither in the working folder, where Hydra's run folders go, nor in the shared folder of inputs).

The inputs live in one session-wide folder (:func:`world`): a tiny rsseg checkpoint, rasters with every defect a
GIS folder holds, labels on other grids, broken checkpoints. Cases are run two at a time, the first time any of
them is asked for, so the whole corpus costs the wall time of half its commands.

Bad input whose right answer is a result, not a refusal (NaN pixels in a scene smaller than one tile, two
predictions writing one output, an interrupted prepare), is checked by the tests of test_right_answers.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from rasterio.transform import Affine

from tests.bad_inputs.corpus import Case, Payload, read_only_folder, snapshot
from tests.test_inference import smooth_image, write_geotiff
from tests.test_predict_cli import conv_model_config, data_config, write_checkpoint


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> Path:
    """The inputs every case reads: one of each kind of broken file, next to good ones."""
    root = tmp_path_factory.mktemp("world")
    write_checkpoint(root / "tiny.ckpt", conv_model_config(), data_config(label_format="index"))
    good = (root / "tiny.ckpt").read_bytes()
    (root / "truncated.ckpt").write_bytes(good[: len(good) // 2])
    (root / "empty.ckpt").write_bytes(b"")
    torch.save({"weights": torch.zeros(3)}, root / "plain.ckpt")
    torch.save({"state_dict": {}, "hyper_parameters": {"cfg": Payload(root / "pwned")}}, root / "tampered.ckpt")
    (root / "notes.txt").write_text("epoch,loss\n1,0.53\n")
    # weights of a one-layer network under the config of the two-layer tiny model
    write_checkpoint(root / "other_model.ckpt", {"_target_": "torch.nn.Conv2d", "in_channels": 3, "out_channels": 4,
                                                 "kernel_size": 1}, data_config(label_format="index"))
    other = torch.load(root / "other_model.ckpt", weights_only=True)
    other["hyper_parameters"]["cfg"]["model"] = conv_model_config()
    torch.save(other, root / "other_model.ckpt")
    (root / "checkpoints").mkdir()
    shutil.copy(root / "tiny.ckpt", root / "checkpoints" / "best.ckpt")

    write_geotiff(root / "scene.tif", smooth_image(64, 64))
    write_geotiff(root / "scene4.tif", smooth_image(64, 64, bands=4))
    (root / "fake.tif").write_text("this is not a raster")
    (root / "empty.tif").write_bytes(b"")
    write_geotiff(root / "big.tif", smooth_image(600, 600), tiled=True)
    data = (root / "big.tif").read_bytes()
    (root / "truncated.tif").write_bytes(data[: len(data) // 3])
    (root / "big.tif").unlink()
    (root / "existing.tif").write_bytes(b"a result to keep")
    (root / "notes").mkdir()
    (root / "notes" / "readme.txt").write_text("no rasters here")

    classes = (np.arange(64)[:, None] // 16 + np.arange(64)[None, :] // 32) % 4
    write_geotiff(root / "label.tif", classes.astype(np.uint8))
    write_geotiff(root / "label_4326.tif", classes.astype(np.uint8), crs="EPSG:4326")
    write_geotiff(root / "label_small.tif", classes[:32, :32].astype(np.uint8))
    write_geotiff(root / "label_9.tif", np.where(classes == 3, 9, classes).astype(np.uint8))
    shifted = root / "label_shifted.tif"
    write_geotiff(shifted, classes.astype(np.uint8))
    import rasterio

    with rasterio.open(shifted, "r+") as handle:  # the same grid 100 km east
        handle.transform = Affine(2, 0, 600_000, 0, -2, 4_000_000)
    write_geotiff(root / "pred_small.tif", classes[:48, :48].astype(np.uint8))
    write_geotiff(root / "pred_float.tif", classes.astype(np.float32) + 0.37)  # probabilities, not classes
    write_geotiff(root / "pred_rgb.tif", smooth_image(64, 64))  # a colour-coded map of a palette nobody named

    small = root / "small_set"
    for part in ("images", "labels"):
        (small / part).mkdir(parents=True)
    for name in ("a", "b"):
        write_geotiff(small / "images" / f"{name}.tif", smooth_image(64, 64, seed=ord(name)))
        write_geotiff(small / "labels" / f"{name}.tif", (classes % 2).astype(np.uint8))
    write_results_folders(root / "results")
    write_mmseg_folders(root)
    write_statistics_free_prepare(root / "prepared_without_pixels", small)
    (root / "read_only_path").write_text(str(read_only_folder(root)))
    return root


def write_mmseg_folders(root: Path) -> None:
    """Folders that look like mmsegmentation's layout and are not quite it."""
    from tests.test_mmseg_layout import ISPRS_ROW, make_mmseg_isprs, save_png, stripes

    make_mmseg_isprs(root / "mmseg_ann_only")
    shutil.rmtree(root / "mmseg_ann_only" / "img_dir")
    make_mmseg_isprs(root / "mmseg_rgb_labels")  # colour-coded labels where index PNGs belong
    for path in (root / "mmseg_rgb_labels" / "ann_dir").rglob("*.png"):
        save_png(path, np.stack([(stripes(ISPRS_ROW) % 7) * 36] * 3))
    make_mmseg_isprs(root / "mmseg_other_stems")  # labels named <stem>_mask.png
    for path in sorted((root / "mmseg_other_stems" / "ann_dir").rglob("*.png")):
        path.rename(path.with_name(f"{path.stem}_mask.png"))


def write_statistics_free_prepare(out: Path, dataset: Path) -> None:
    """What `rsseg prepare check_pixels=false` writes: splits.json, and a stats.json without band statistics."""
    from rsseg.config import compose_config
    from rsseg.data.prepare import run_prepare

    run_prepare(compose_config("prepare", ["data=geotiff", f"data.root={dataset}", f"out_dir={out}",
                                           "check_pixels=false", "data.cache=false", "data.scenes.split_tile_size=32"]))


def write_results_folders(results: Path) -> None:
    """What ``rsseg tables`` is pointed at: one good run, and folders that only look like runs."""
    from tests.test_tables import SCENE_A, write_run

    write_run(results / "good", [SCENE_A])
    (results / "empty").mkdir()
    for name, text in (("not_json", '{"task": "train" "metrics": {}}'), ("a_list", "[1, 2]"),
                       ("eval_run", '{"task": "eval", "metrics": {}}'), ("no_metrics", '{"task": "train"}')):
        (results / name / "run").mkdir(parents=True)
        (results / name / "run" / "results.json").write_text(text)
    write_run(results / "classes_differ" / "0", [SCENE_A])
    write_run(results / "classes_differ" / "1", [SCENE_A], classes=["background", "road"])


@pytest.fixture(scope="session")
def world_before(world) -> dict[str, int]:
    """The inputs folder as the cases found it."""
    return snapshot(world)


@pytest.fixture(scope="session")
def outcomes(request, world, world_before, tmp_path_factory) -> dict:
    """Runs every selected case once (two at a time) and returns ``{case: (CompletedProcess, cwd)}``."""
    selected = [item.callspec.params["case"] for item in request.session.items
                if hasattr(item, "callspec") and isinstance(item.callspec.params.get("case"), Case)]
    env = {**os.environ, "RSSEG_CACHE": str(tmp_path_factory.mktemp("cache")), "PYTHONWARNINGS": "ignore"}
    env.pop("HYDRA_FULL_ERROR", None)
    env.pop("RSSEG_DEBUG", None)

    def run(case: Case):
        cwd = tmp_path_factory.mktemp(case.id)
        done = subprocess.run(case.command(world), cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
        return case, (done, cwd)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(run, selected))


