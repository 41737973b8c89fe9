"""The GPU benchmark runs anywhere: ``benchmarks/gpu.py --device cpu --quick`` prints its three tables with
measured numbers, on a small data set in the Dubai layout."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
PALETTE = [(60, 16, 152), (132, 41, 246), (110, 193, 228), (254, 221, 58), (226, 169, 41), (155, 155, 155)]


def dubai_layout(root: Path, parts: int = 9, size: int = 96) -> Path:
    """One tile of ``parts`` JPEG images with colour-coded PNG masks, as the Dubai set is published."""
    rng = np.random.default_rng(0)
    for kind in ("images", "masks"):
        (root / "Tile_1" / kind).mkdir(parents=True)
    for part in range(1, parts + 1):
        classes = rng.integers(0, 6, (size // 16, size // 16)).repeat(16, 0).repeat(16, 1)
        mask = np.asarray(PALETTE, np.uint8)[classes]
        image = (mask // 2 + rng.integers(0, 60, mask.shape)).astype(np.uint8)
        Image.fromarray(image).save(root / "Tile_1" / "images" / f"image_part_00{part}.jpg", quality=90)
        Image.fromarray(mask).save(root / "Tile_1" / "masks" / f"image_part_00{part}.png")
    return root


def test_gpu_benchmark_runs_on_cpu_quick_and_reports_every_table(tmp_path):
    data = dubai_layout(tmp_path / "dubai")
    out = tmp_path / "gpu.json"
    run = subprocess.run([sys.executable, "benchmarks/gpu.py", "--device", "cpu", "--quick", "--dubai", str(data),
                          "--json", str(out)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = json.loads(out.read_text())
    training = rows["training"]
    assert {(r["model"], r["setting"]) for r in training} == {
        (m, s) for m in ("mst_deeplab", "deeplabv3plus") for s in ("fp32", "bf16", "bf16 + channels_last")}
    for row in training:  # a training step does more than a forward pass
        assert 0 < row["train_images_s"] < row["forward_images_s"]
    assert [(r["source"], r["workers"]) for r in rows["loading"]] == [("JPEG", 0), ("JPEG", 2), ("cache", 0), ("cache", 2)]
    assert all(r["windows_s"] > 0 for r in rows["loading"])
    prediction = rows["prediction"]
    assert prediction["tiles"] == 121  # 512 px at 64 px tiles with 16 px overlap: 11 x 11
    assert 0 < prediction["pipeline_tiles_s"] and 0 < prediction["ratio"]
    assert "Training at 64 x 64" in run.stdout and "Whole-scene prediction" in run.stdout
