"""eval.py / rsseg eval: streamed confusion matrices on prediction/label pairs and on a checkpoint's dataset."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from omegaconf import OmegaConf

from rsseg.config import compose_config
from rsseg.errors import DataError
from rsseg.evaluation.evaluate import run_eval
from rsseg.evaluation.pairing import match_key, pair_files
from rsseg.evaluation.saved import evaluate_predictions
from tests.conftest import SMALL_DATA
from tests.test_inference import smooth_image, write_geotiff
from tests.test_predict_cli import PALETTE, conv_model_config, data_config, write_checkpoint

REPO = Path(__file__).resolve().parents[1]
NAMES = ["soil", "crop", "water"]

# rows = true class, columns = predicted; 255 in the labels is ignored, 255 in the prediction is nodata
LABELS = np.array([[0, 0, 1, 1, 2],
                   [0, 1, 1, 2, 2],
                   [255, 0, 1, 2, 2],
                   [0, 0, 0, 1, 255]], dtype=np.uint8)
PREDICTED = np.array([[0, 1, 1, 1, 2],
                      [0, 1, 0, 2, 1],
                      [2, 0, 1, 255, 2],
                      [0, 0, 2, 1, 0]], dtype=np.uint8)
# counted by hand, pixel by pixel (3 pixels left out: two ignored labels, one nodata prediction)
EXPECTED = np.array([[5, 1, 1],
                     [1, 5, 0],
                     [0, 1, 3]])


def write_prediction(path: Path, classes: np.ndarray, names=NAMES, palette=None) -> Path:
    write_geotiff(path, classes[None], nodata=255)
    with rasterio.open(path, "r+") as dst:
        dst.update_tags(CLASS_NAMES=json.dumps(names))
        if palette:
            dst.write_colormap(1, {i: (*c, 255) for i, c in enumerate(palette)})
    return path


def evaluate(*overrides: str) -> dict:
    return run_eval(compose_config("eval", ["progress=false", *overrides]))


def test_prediction_label_pairs_give_the_hand_computed_confusion(tmp_path):
    (tmp_path / "pred").mkdir()
    (tmp_path / "gt").mkdir()
    write_prediction(tmp_path / "pred" / "area7_classes.tif", PREDICTED)
    write_geotiff(tmp_path / "gt" / "area7_label.tif", LABELS)
    write_prediction(tmp_path / "pred" / "area9_classes.tif", LABELS.copy())  # a perfect scene
    write_geotiff(tmp_path / "gt" / "area9_label.tif", LABELS)
    result = evaluate(f"pred={tmp_path / 'pred'}", f"label={tmp_path / 'gt'}", f"out_dir={tmp_path / 'run'}")
    perfect = np.diag(np.bincount(LABELS[LABELS < 3], minlength=3))
    metrics = result["metrics"]["predictions"]
    assert np.array_equal(metrics["confusion"], EXPECTED + perfect)
    first = next(s for s in result["scenes"] if s["name"] == "area7_classes")
    assert first["pixels"] == 17 and first["miou"] == pytest.approx((5 / 8 + 5 / 8 + 3 / 5) / 3)
    assert first["oa"] == pytest.approx(13 / 17)
    stored = json.loads((tmp_path / "run" / "results.json").read_text())
    assert stored["metrics"]["predictions"]["confusion"] == metrics["confusion"]
    assert set(stored["metrics"]["predictions"]["per_class"]) == set(NAMES)
    assert sorted(p.name for p in (tmp_path / "run").glob("*.png")) == ["confusion_predictions.png",
                                                                        "iou_predictions.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") and p.stat().st_size > 10_000
               for p in (tmp_path / "run").glob("*.png"))
    # streaming in windows of a few pixels counts the same, and excluded classes leave the means only
    confusion, _ = evaluate_predictions(tmp_path / "pred" / "area7_classes.tif", tmp_path / "gt" / "area7_label.tif",
                                        NAMES, None, [], window_pixels=5)
    assert np.array_equal(confusion, EXPECTED)
    single = evaluate(f"pred={tmp_path / 'pred' / 'area7_classes.tif'}", f"label={tmp_path / 'gt' / 'area7_label.tif'}",
                      f"out_dir={tmp_path / 'run2'}", "exclude_from_mean=[water]", "plots=false")
    assert single["metrics"]["predictions"]["miou"] == pytest.approx(5 / 8)
    assert single["metrics"]["predictions"]["oa"] == pytest.approx(13 / 17)
    assert [p.name for p in (tmp_path / "run2").iterdir()] == ["results.json"]


def test_colour_labels_decode_through_the_palette_and_unknown_colours_fail(tmp_path):
    palette = [[128, 64, 0], [0, 200, 0], [0, 0, 255]]
    rgb = np.zeros((3, *LABELS.shape), dtype=np.uint8)
    for index, colour in enumerate(palette):
        rgb[:, LABELS == index] = np.array(colour, dtype=np.uint8)[:, None]
    rgb[:, LABELS == 255] = np.array([0, 0, 255], dtype=np.uint8)[:, None]  # label those as water
    labels = LABELS.copy()
    labels[labels == 255] = 2
    pred = write_prediction(tmp_path / "tile_classes.tif", PREDICTED, palette=palette)
    label = write_geotiff(tmp_path / "tile_label.tif", rgb)
    confusion, _ = evaluate_predictions(pred, label, NAMES, None, [])
    expected = np.zeros((3, 3), dtype=int)
    valid = PREDICTED != 255
    np.add.at(expected, (labels[valid], PREDICTED[valid]), 1)
    assert np.array_equal(confusion, expected)
    rgb[:, 0, :3] = np.array([9, 9, 9], dtype=np.uint8)[:, None]
    write_geotiff(label, rgb)
    with pytest.raises(DataError, match=r"tile_label.tif: label colour \(9, 9, 9\) is not in the palette \(3 pixels"):
        evaluate_predictions(pred, label, NAMES, None, [])


def test_colour_coded_and_float_predictions_score_as_their_classes(tmp_path):
    from rsseg.data.labels import build_decoder

    palette = [[128, 64, 0], [0, 200, 0], [0, 0, 255]]
    rgb_labels, rgb_pred = (np.zeros((3, *LABELS.shape), dtype=np.uint8) for _ in range(2))
    for index, colour in enumerate(palette):
        rgb_labels[:, LABELS == index] = np.array(colour, dtype=np.uint8)[:, None]
        rgb_pred[:, PREDICTED == index] = np.array(colour, dtype=np.uint8)[:, None]
    rgb_pred[:, PREDICTED == 255] = np.array(palette[2], dtype=np.uint8)[:, None]
    labels = np.where(LABELS == 255, 2, LABELS)
    rgb_labels[:, LABELS == 255] = np.array(palette[2], dtype=np.uint8)[:, None]
    label = write_geotiff(tmp_path / "tile_label.tif", rgb_labels)
    pred = write_geotiff(tmp_path / "tile_classes.tif", rgb_pred)  # a colour-coded class map, as GIS tools export
    confusion, _ = evaluate_predictions(pred, label, NAMES, build_decoder("colour", 3, palette), [])
    expected = np.zeros((3, 3), dtype=int)
    np.add.at(expected, (labels, np.where(PREDICTED == 255, 2, PREDICTED)), 1)
    assert np.array_equal(confusion, expected)
    # one float band of whole numbers (NaN = nodata) scores exactly as the uint8 raster does
    index_label = write_geotiff(tmp_path / "index_label.tif", LABELS)
    floats = write_geotiff(tmp_path / "float_classes.tif", np.where(PREDICTED == 255, np.nan, PREDICTED).astype(np.float32))
    confusion, _ = evaluate_predictions(floats, index_label, NAMES, build_decoder("index", 3), [])
    assert np.array_equal(confusion, EXPECTED)


def test_pairing_by_name_and_grid_checks(tmp_path):
    assert match_key(Path("top_mosaic_09cm_area1_classes.tif")) == match_key(Path("top_mosaic_09cm_area1_noBoundary.tif"))
    assert match_key(Path("top_potsdam_2_13_RGB_classes.tif")) == match_key(Path("top_potsdam_2_13_label.tif"))
    with pytest.raises(DataError, match="b_classes.tif: no label file with a matching name"):
        pair_files([Path("a_classes.tif"), Path("b_classes.tif")], [Path("a_label.tif"), Path("c_label.tif")])
    pred = write_prediction(tmp_path / "x_classes.tif", PREDICTED)
    label = write_geotiff(tmp_path / "x_label.tif", LABELS[:, :4].copy())
    with pytest.raises(DataError, match="x_label.tif: size 4x4 differs from the prediction"):
        evaluate_predictions(pred, label, NAMES, None, [])


def test_checkpoint_on_own_scenes_ignores_black_eroded_boundaries_and_matches_saved_predictions(tmp_path):
    data = data_config(label_format="colour", ignore_colours=[[0, 0, 0]], exclude_from_mean=["water"])
    ckpt = write_checkpoint(tmp_path / "m.ckpt", conv_model_config(), data)
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    rng = np.random.default_rng(0)
    for name in ("area1", "area2"):
        write_geotiff(images / f"{name}.tif", smooth_image(150, 170, seed=len(name) + ord(name[-1])))
        index = rng.integers(0, 4, (150, 170))
        rgb = np.asarray(PALETTE, dtype=np.uint8)[index].transpose(2, 0, 1).copy()
        rgb[:, 40:50, :] = 0  # eroded boundary: ignored
        write_geotiff(labels / f"{name}_noBoundary.tif", rgb)
    result = evaluate(f"ckpt={ckpt}", f"input={images}", f"label={labels}", f"out_dir={tmp_path / 'run'}",
                      "tile_size=64", "save_predictions=true")
    metrics = result["metrics"]["input"]
    assert int(np.sum(metrics["confusion"])) == 2 * 140 * 170
    assert metrics["classes_in_mean"] == ["building", "road", "tree"]
    assert result["inference"]["tiles"] == 2 * 3 * 4  # 150 rows: tiles at 0, 48, 86; 170 columns: 0, 48, 96, 106
    saved = sorted(p.name for p in (tmp_path / "run" / "predictions").iterdir())
    assert saved == ["area1_classes.tif", "area2_classes.tif"]
    # scoring the saved predictions (names and palette from the checkpoint's data config) counts the same
    again = evaluate(f"ckpt={ckpt}", f"pred={tmp_path / 'run' / 'predictions'}", f"label={labels}",
                     f"out_dir={tmp_path / 'run2'}")
    assert again["metrics"]["predictions"]["confusion"] == metrics["confusion"]


def test_checkpoint_on_its_stored_dataset_split(tmp_path, cache_dir):
    train_cfg = compose_config("train", [f"paths.output_dir={tmp_path}", f"paths.cache_dir={cache_dir}", *SMALL_DATA])
    data = OmegaConf.to_container(train_cfg.data, resolve=True)
    ckpt = write_checkpoint(tmp_path / "syn.ckpt", conv_model_config(classes=6), data)
    result = evaluate(f"ckpt={ckpt}", f"out_dir={tmp_path / 'run'}", "tile_size=128")
    assert result["split"] == "test"  # of 3 scenes, the last one tests
    metrics = result["metrics"]["test"]
    assert [(s["name"], s["pixels"]) for s in result["scenes"]] == [("scene_02", 256 * 256)]
    assert int(np.sum(metrics["confusion"])) == 256 * 256
    assert set(metrics["per_class"]) == set(data["class_names"])
    # the same dataset named on the command line gives the same matrix; split=val scores the scene before it
    named = evaluate(f"ckpt={ckpt}", "data=synthetic", f"paths.cache_dir={cache_dir}", *SMALL_DATA,
                     f"out_dir={tmp_path / 'run2'}", "tile_size=128", "split=test")
    assert named["metrics"]["test"]["confusion"] == metrics["confusion"] and named["data"] == "SyntheticScenes"
    val = evaluate(f"ckpt={ckpt}", f"out_dir={tmp_path / 'run3'}", "tile_size=128", "split=val")
    assert [s["name"] for s in val["scenes"]] == ["scene_01"] and val["metrics"]["val"]["confusion"] != metrics["confusion"]


def test_eval_py_reports_bad_input_in_one_line(tmp_path):
    run = subprocess.run(
        [sys.executable, "eval.py", f"pred={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1] == "error: pred= needs label= (the label rasters to score against)"
