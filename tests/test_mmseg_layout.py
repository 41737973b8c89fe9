"""Datasets laid out the mmsegmentation way (img_dir/ann_dir, index PNGs, reduce_zero_label): tiny fixtures as
mmseg's ISPRS and LoveDA converters write them, decoded to hand-checked classes, split without letting the reported
split choose the checkpoint, trained and evaluated from the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rasterio.windows import Window

from rsseg.data.labels import build_decoder
from rsseg.errors import ConfigError
from tests.conftest import REPO
from tests.test_datasets import build, image, names

# One row of every value a converted label holds, 4 px per value, and the class each must decode to.
ISPRS_ROW = [0, 1, 2, 3, 4, 5, 6, 255]  # 0 = eroded boundary, 1..6 = impervious ... clutter, 255 = ignored
ISPRS_CLASSES = [255, 0, 1, 2, 3, 4, 5, 255]
LOVEDA_ROW = [0, 1, 2, 3, 4, 5, 6, 7]  # 0 = no-data, 1..7 = background ... agricultural
LOVEDA_CLASSES = [255, 0, 1, 2, 3, 4, 5, 6]


def stripes(values: list[int], size: int = 32) -> np.ndarray:
    """A ``size`` x ``size`` label whose columns hold ``values`` in 4 px stripes, the rows below shifted by one."""
    row = np.repeat(np.asarray(values, np.uint8), size // len(values))
    return np.stack([np.roll(row, 4 * (r // 8)) for r in range(size)])


def save_png(path: Path, pixels: np.ndarray, palette: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if pixels.ndim == 3:
        Image.fromarray(pixels.transpose(1, 2, 0)).save(path)
    elif palette:  # an index label saved with a colour table for display, as mmseg's own outputs are
        picture = Image.fromarray(pixels, mode="P")
        picture.putpalette([v for i in range(256) for v in ((i * 37) % 256, (i * 91) % 256, (i * 53) % 256)])
        picture.save(path)
    else:
        Image.fromarray(pixels).save(path)


def make_mmseg_isprs(root: Path) -> None:
    """Patches of Vaihingen areas as tools/dataset_converters/vaihingen.py names them: 32 px every 16 px."""
    rng = np.random.default_rng(7)
    for part, areas in (("train", ("area1", "area3", "area5", "area7")), ("val", ("area2", "area4"))):
        for area in areas:
            for x0 in (0, 16):
                stem = f"{area}_{x0}_0_{x0 + 32}_32"
                save_png(root / "img_dir" / part / f"{stem}.png", image(rng, 3, 32, 32))
                save_png(root / "ann_dir" / part / f"{stem}.png", stripes(ISPRS_ROW))


def make_mmseg_loveda(root: Path) -> None:
    """LoveDA as tools/dataset_converters/loveda.py moves it: test images without labels; one palette PNG label."""
    rng = np.random.default_rng(8)
    for part, stems in (("train", range(1366, 1372)), ("val", range(2522, 2524)), ("test", range(4180, 4182))):
        for stem in stems:
            save_png(root / "img_dir" / part / f"{stem}.png", image(rng, 3, 32, 32))
            if part != "test":
                save_png(root / "ann_dir" / part / f"{stem}.png", stripes(LOVEDA_ROW), palette=stem == 2522)


def read_mask(dm, split: str, name: str) -> np.ndarray:
    scene = next(s for s in dm.split_scenes(split)[0] if s.name == name)
    return dm.reader.read(scene, Window(0, 0, 32, 32))[1].numpy()


def test_isprs_converted_by_mmseg_decodes_with_reduce_zero_label_and_tests_on_its_val_folder(tmp_path):
    make_mmseg_isprs(tmp_path)
    _, dm = build("mmseg_isprs", tmp_path)
    mask = read_mask(dm, "test", "val/area2_0_0_32_32")
    assert mask[0, ::4].tolist() == ISPRS_CLASSES  # 0 -> 255, 1..6 -> 0..5 (clutter = 5), 255 stays ignored
    assert mask[8, ::4].tolist() == [255, 255, 0, 1, 2, 3, 4, 5]  # the next 8 rows, shifted by one stripe
    # mmseg's val folder (the ISPRS test tiles) is the test split and never validates; the held-out validation
    # takes whole areas, since a converter's patches of one area overlap.
    assert names(dm, "test") == {f"val/{a}_{x}_0_{x + 32}_32" for a in ("area2", "area4") for x in (0, 16)}
    train, val = names(dm, "train"), names(dm, "val")
    areas = lambda ids: {i.split("/")[1].split("_")[0] for i in ids}  # noqa: E731
    assert len(train) == 6 and len(val) == 2 and areas(val) & areas(train) == set() and len(areas(val)) == 1
    _, mmseg_practice = build("mmseg_isprs", tmp_path, "protocol.select_on=test")
    assert names(mmseg_practice, "val") == names(mmseg_practice, "test") and len(names(mmseg_practice, "train")) == 8


def test_loveda_converted_by_mmseg_gives_seven_classes_and_leaves_out_unlabelled_test_images(tmp_path):
    make_mmseg_loveda(tmp_path)
    _, dm = build("mmseg_loveda", tmp_path)
    assert dm.num_classes == 7 and read_mask(dm, "train", "train/1366")[0, ::4].tolist() == LOVEDA_CLASSES
    # A palette PNG holds its indices, not its display colours.
    assert read_mask(dm, "test", "val/2522")[0, ::4].tolist() == LOVEDA_CLASSES
    assert names(dm, "test") == {"val/2522", "val/2523"}
    assert len(names(dm, "train")) == 5 and len(names(dm, "val")) == 1  # 10 % of 6 images, at least one
    # Without reduce_zero_label the same files hold 8 classes, 0 among them.
    _, raw = build("mmseg", tmp_path, "data.num_classes=8", "data.class_names=[a,b,c,d,e,f,g,h]")
    assert read_mask(raw, "train", "train/1366")[0, ::4].tolist() == LOVEDA_ROW


def test_a_labelled_test_folder_makes_three_splits(tmp_path):
    make_mmseg_loveda(tmp_path)
    for stem in (4180, 4181):
        save_png(tmp_path / "ann_dir" / "test" / f"{stem}.png", stripes(LOVEDA_ROW))
    _, dm = build("mmseg_loveda", tmp_path)
    assert names(dm, "val") == {"val/2522", "val/2523"} and names(dm, "test") == {"test/4180", "test/4181"}
    assert len(names(dm, "train")) == 6


def test_reduce_zero_label_is_one_way_of_mapping_values():
    reduced = build_decoder("index", 3, reduce_zero_label=True)
    raw = np.array([[[0, 1, 2, 3, 255]]], np.uint8)
    assert reduced(raw).tolist() == [[255, 0, 1, 2, 255]]
    with pytest.raises(ConfigError, match=r"data.reduce_zero_label=true and data.label_offset=1 both map"):
        build_decoder("index", 3, label_offset=1, reduce_zero_label=True)
    with pytest.raises(ConfigError, match=r"data.label_format='colour'; expected data.label_format=index"):
        build_decoder("colour", 1, palette=[[0, 0, 0]], reduce_zero_label=True)


@pytest.mark.slow  # two commands of about 20 s each on two cores
def test_train_py_and_eval_py_on_an_mmseg_layout(tmp_path):
    root = tmp_path / "vaihingen_mmseg"
    make_mmseg_isprs(root)
    small = [f"paths.cache_dir={tmp_path / 'cache'}", "data.num_workers=0", "data.tile_size=32",
             "data.eval_tile_size=32", "data.batch_size=2", "data.train_samples_per_epoch=2", "model=smp_deeplabv3plus"]
    run = subprocess.run(
        [sys.executable, "train.py", "data=mmseg_isprs", f"data.root={root}", "trainer.max_epochs=1", "logger=none",
         f"hydra.run.dir={tmp_path / 'train'}", *small],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads((tmp_path / "train" / "results.json").read_text())
    assert set(results["metrics"]["test"]["per_class"]) == {
        "impervious_surface", "building", "low_vegetation", "tree", "car", "clutter"}
    run = subprocess.run(
        [sys.executable, "eval.py", f"ckpt={results['checkpoint']}", "split=test", "progress=false",
         f"out_dir={tmp_path / 'eval'}", f"hydra.run.dir={tmp_path / 'eval'}"],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    scored = json.loads((tmp_path / "eval" / "results.json").read_text())
    # 4 test patches of 32 x 32, 2 of every 8 columns ignored (label 0 and 255): 768 pixels scored
    assert int(np.sum(scored["metrics"]["test"]["confusion"])) == 4 * 32 * 24


@pytest.mark.parametrize("protocol", ["standard", "mmseg", "random", "manifest"])
def test_every_protocol_validates_on_scenes_that_never_test(protocol, tmp_path):
    make_mmseg_isprs(tmp_path / "set")
    overrides = ["data.scenes.split_tile_size=16"]
    if protocol == "manifest":  # mmseg's own lists, as a split file of scene ids
        (tmp_path / "split.json").write_text(json.dumps({"train": ["train/area1_0_0_32_32", "train/area3_0_0_32_32"],
                                                         "test": ["val/area2_0_0_32_32"]}))
        overrides.append(f"protocol.split_file={tmp_path / 'split.json'}")
    _, dm = build("mmseg_isprs", tmp_path / "set", f"protocol={protocol}", *overrides)
    splits = dm.scenes.manifest()["splits"]
    key = lambda entry: (entry["image"], tuple(entry["window"] or ()))  # noqa: E731
    val, test, train = ({key(e) for e in splits[name]} for name in ("val", "test", "train"))
    assert val and train and not val & test and not val & train, protocol
