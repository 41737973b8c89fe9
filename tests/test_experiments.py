"""The paper experiments compose row by row with their papers' recipes; the pieces they rely on (per-scene
confusion matrices, DDP evaluation shards, fractional freeze schedules and warm-ups, split-sized epochs)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from rsseg.config import CONF_DIR
from tests.conftest import compose_config


def sweep_rows(experiment: str) -> list[str]:
    """The rows an experiment's sweep runs, as `python train.py -m experiment=<name>` expands them."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment={experiment}"], return_hydra_config=True)
    return str(cfg.hydra.sweeper.params.row).split(",")


def row_config(experiment: str, row: str, *overrides: str):
    return compose_config("train", [f"experiment={experiment}", f"row={row}", "paths.output_dir=/tmp/x", *overrides])


@pytest.mark.parametrize(
    ("experiment", "rows"),
    [
        ("mst_compare", ["pspnet", "unet", "xception", "mst_deeplab"]),
        ("mst_ablation", ["xception", "mobilenetv2", "mobilenetv2_se", "mst_deeplab"]),
        ("subpixel_compare", ["fcn32s", "fcn8s", "unet", "segnet", "deeplabv3plus", "ours_crop_stitch",
                              "ours_subpixel", "ours"]),
        ("deconvnet_compare", ["deconvnet_skip", "deconvnet", "unet"]),
    ],
)
def test_each_experiment_sweeps_its_table_rows_in_the_papers_order(experiment, rows):
    swept = sweep_rows(experiment)
    assert [row.split("/")[1] for row in swept] == rows
    cfg = row_config(experiment, swept[0])
    assert list(cfg.table.rows) == rows and cfg.table.name == experiment
    for row in swept:
        assert row_config(experiment, row).row.name == row.split("/")[1]


def test_mst_rows_carry_the_papers_recipe_and_differ_only_where_the_ablation_says():
    cfgs = {row: row_config("mst_ablation", f"mst/{row}") for row in ("xception", "mobilenetv2", "mobilenetv2_se",
                                                                       "mst_deeplab")}
    for cfg in cfgs.values():  # Adam 5e-4, batch 8, 100 epochs, 512 px, flips and rotations, random 80/20 tiles
        assert cfg.optimizer._target_ == "torch.optim.Adam" and cfg.optimizer.lr == 5e-4
        assert cfg.optimizer.weight_decay == 0.0 and cfg.data.batch_size == 8 and cfg.trainer.max_epochs == 100
        assert cfg.data.tile_size == 512 and cfg.aug._target_ == "rsseg.data.augment.FlipRotate"
        assert cfg.protocol.name == "random" and cfg.scheduler.warmup_fraction == 0.03
    assert cfgs["xception"].model.encoder._target_.endswith("XceptionEncoder")
    assert cfgs["mobilenetv2"].model.encoder._target_.endswith("MobileNetV2Encoder")
    assert cfgs["mobilenetv2"].model.attention.kind == "none"
    assert cfgs["mobilenetv2_se"].model.attention.kind == "se" and cfgs["mobilenetv2_se"].model.pretrained is None
    tl = cfgs["mst_deeplab"]
    assert tl.model.pretrained == "imagenet" and tl.callbacks.freeze_encoder.fraction == 0.5
    assert "freeze_encoder" not in cfgs["mobilenetv2_se"].callbacks
    assert dict(tl.row.marks) == {"Xception": False, "MobileNetV2": True, "SENet": True, "Transfer learning": True}


def test_subpixel_and_deconvnet_recipes():
    ours = row_config("subpixel_compare", "subpixel/ours")
    assert ours.optimizer.lr == 0.007 and ours.optimizer.momentum == 0.9 and ours.optimizer.weight_decay == 2e-4
    assert ours.trainer.max_steps == 30000 and ours.data.batch_size == 10
    assert ours.scheduler.min_factor * ours.optimizer.lr == pytest.approx(1e-6, rel=0.01)
    assert ours.protocol.train_fraction == 0.8 and ours.protocol.val_fraction == 0.25  # 6:2:2 of the tiles
    assert ours.aug._target_ == "rsseg.data.augment.RICAP" and ours.model.upsample._target_.endswith("SubPixelUpsample")
    only_crop = row_config("subpixel_compare", "subpixel/ours_crop_stitch")
    assert only_crop.aug._target_ == "rsseg.data.augment.RICAP"
    assert not only_crop.model.upsample._target_.endswith("SubPixelUpsample")
    assert not row_config("subpixel_compare", "subpixel/ours_subpixel").aug  # aug=none
    baseline = row_config("subpixel_compare", "subpixel/deeplabv3plus")
    assert baseline.model.encoder._target_.endswith("ResNetEncoder") and list(baseline.model.aspp.rates) == [6, 12, 18]
    deconv = row_config("deconvnet_compare", "deconvnet/deconvnet_skip")
    assert deconv.trainer.max_epochs == 400 and deconv.model._target_.endswith("DeconvNetSkip")


@pytest.mark.parametrize("scale", ["cpu", "smoke"])
def test_a_scale_shrinks_every_row_alike_and_keeps_the_recipe(scale):
    rows = sweep_rows("mst_compare")
    cfgs = [row_config("mst_compare", row, f"scale={scale}") for row in rows]
    budgets = {(c.trainer.max_epochs, c.data.train_samples_per_epoch, c.data.tile_size, c.data.batch_size) for c in cfgs}
    assert budgets == ({(12, 128, 256, 8)} if scale == "cpu" else {(1, 4, 64, 2)})
    assert {c.optimizer.lr for c in cfgs} == {5e-4} and {c.scale.name for c in cfgs} == {scale}


def test_scene_confusion_keeps_one_matrix_per_scene_and_skips_padding_and_ignored_pixels():
    from rsseg.metrics.accumulators import SceneConfusion

    metric = SceneConfusion(num_scenes=2, num_classes=2, ignore_index=255)
    preds = torch.tensor([[[0, 1], [1, 1]], [[0, 0], [1, 0]], [[1, 1], [1, 1]]])
    target = torch.tensor([[[0, 1], [0, 255]], [[0, 1], [1, 1]], [[0, 0], [0, 0]]])
    metric.update(preds, target, torch.tensor([1, 0, -1]))  # the third window is DDP padding
    assert metric.compute().tolist() == [[[1, 0], [2, 1]], [[1, 1], [0, 1]]]


def test_even_shards_cover_every_window_once_and_pad_the_short_rank(tmp_path):
    from rsseg.data.dataset import EvenShardSampler, GridWindowDataset

    class Reader:
        ignore_index = 255

        def pixel_dtype(self, scene):
            return torch.uint8

    dataset = GridWindowDataset(["scene"], [(8, 8)], Reader(), tile_size=8, in_channels=3)
    dataset.items = [(0, None)] * 5
    shards = [list(EvenShardSampler(dataset, num_replicas=2, rank=rank)) for rank in (0, 1)]
    assert shards == [[0, 2, 4], [1, 3, 5]] and len(EvenShardSampler(dataset, 2, 1)) == 3
    padding = dataset[5]
    assert padding["scene"] == -1 and padding["image"].shape == (3, 8, 8) and bool((padding["mask"] == 255).all())
    assert padding["image"].dtype == torch.uint8  # collated with the scenes' raw windows


def test_freeze_fraction_and_warmup_fraction_follow_the_run_length():
    from rsseg.errors import ConfigError
    from rsseg.training.callbacks.freeze import FreezeEncoder
    from rsseg.training.optim import cosine

    class Trainer:
        max_epochs = 8

    assert FreezeEncoder(fraction=0.5).frozen_epochs(Trainer()) == 4
    assert FreezeEncoder(epochs=3).frozen_epochs(Trainer()) == 3
    with pytest.raises(ConfigError, match="give epochs or fraction"):
        FreezeEncoder(epochs=3, fraction=0.5)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = cosine(optimizer, total_steps=200, warmup_fraction=0.05, warmup_start_factor=0.1)
    lrs = []
    for _ in range(12):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert lrs[0] == pytest.approx(0.1) and lrs[5] == pytest.approx(0.1 + 0.9 * 5 / 10) and lrs[10] == pytest.approx(1.0)


def test_an_epoch_of_null_samples_tiles_the_training_split_once():
    from rsseg.data.datamodule import windows_covering

    assert windows_covering([(1024, 1024), (600, 300)], 512) == 4 + 2 * 1


def test_mst_params_prints_table_9_without_training(tmp_path):
    from rsseg.training.train import train

    cfg = compose_config("train", ["experiment=mst_params", f"paths.output_dir={tmp_path}"])
    results = train(cfg)
    sizes = {row["row"]: row["mib"] for row in results["sizes"]}
    assert sizes == {"pspnet": 259.64, "unet": 94.95, "xception": 208.70, "mst_deeplab": 22.96}
    assert OmegaConf.select(OmegaConf.create(results["config"]), "fit") is False
    assert (tmp_path / "results.json").is_file() and "metrics" not in results


RECIPE_LINE = re.compile(r"^\s*(?:- override /(?P<group>[\w/]+)|(?P<key>\w+)):\s*(?P<value>[^#]*?)\s*"
                         r"#\s*(?P<source>paper|code|rsseg):\s*(?P<note>.*)$")


def recipe_rows(path: Path) -> list[tuple[str, str, str]]:
    """(dotted key, value, source) of every value a recipe YAML sets; a value without a source is an error."""
    rows, stack = [], []
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        indent = len(line) - len(line.lstrip())
        stack = [(i, k) for i, k in stack if i < indent]
        parent = re.match(r"^\s*(\w+):\s*$", line)
        if parent:
            stack.append((indent, parent.group(1)))
            continue
        match = RECIPE_LINE.match(line)
        assert match, f"{path.name}: {line.strip()!r} does not say where its value comes from (paper:, code:, rsseg:)"
        key = match.group("group") or ".".join([k for _, k in stack] + [match.group("key")])
        rows.append((key, match.group("value"), match.group("source")))
    return rows


@pytest.mark.parametrize("recipe", ["mst", "subpixel", "deconvnet"])
def test_every_recipe_value_says_where_it_comes_from_and_the_readme_agrees(recipe):
    rows = recipe_rows(CONF_DIR / "recipe" / f"{recipe}.yaml")
    readme = (CONF_DIR.parents[2] / "README.md").read_text()
    section = readme.split(f"`recipe={recipe}`:", 1)[1].split("\n\n", 2)[1]
    shown = [tuple(cell.strip().strip("`") for cell in line.strip("|").split(" | ")[:3])
             for line in section.splitlines()[2:] if line.startswith("| ")]
    assert shown == rows
    assert len(rows) >= 10 and {source for _, _, source in rows} >= {"paper", "rsseg"}


def test_a_gid_table_shows_the_papers_gid_numbers(tmp_path):
    """`experiment=mst_compare data=gid` prints the paper's GID numbers (Table 4) beside ours, not ISPRS'."""
    import subprocess
    import sys

    from tests.test_datasets import make_gid

    make_gid(tmp_path / "gid")
    repo = CONF_DIR.parents[2]
    sweep = tmp_path / "sweep"
    train = subprocess.run(
        [sys.executable, "train.py", "-m", "experiment=mst_compare", "scale=smoke", "data=gid",
         f"data.root={tmp_path / 'gid'}", "row=mst/mst_deeplab", "protocol.split_tile_size=32",
         f"hydra.sweep.dir={sweep}", f"paths.cache_dir={tmp_path / 'cache'}", "callbacks.rich_progress_bar=null"],
        cwd=repo, capture_output=True, text=True, timeout=600,
    )
    assert train.returncode == 0, train.stderr[-3000:]
    tables = subprocess.run([sys.executable, "-m", "rsseg.cli", "tables", str(sweep), "--no-figures"], cwd=repo,
                            capture_output=True, text=True, timeout=300)
    assert tables.returncode == 0, tables.stderr
    header = next(line for line in tables.stdout.splitlines() if line.startswith("| Model | mIoU"))
    cells = header.strip("|").split(" | ")
    row = next(line for line in tables.stdout.splitlines() if line.startswith("| MST-DeepLabv3+ |"))
    values = row.strip("|").split(" | ")
    assert values[cells.index("mIoU (paper)")].strip() == "73.44" and "82.47" not in tables.stdout
    assert "(paper): the paper's reported numbers, GID, the paper's random tile split (Table 4" in tables.stdout
    # The per-class table carries Table 5: MST-DeepLabv3+'s water IoU.
    assert "| water (paper) |" in tables.stdout and " 88.86 " in tables.stdout
