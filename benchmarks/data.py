"""Data loading throughput and memory on large GeoTIFF scenes, beside the model's training consumption rate.

Generates an N x N scene (3-band uint8 image and an RGB colour-coded label, tiled 256 x 256 and deflate-compressed,
written in strips so the generator itself never holds the scene) and reads random training windows from it through
the real data path (``conf/data/geotiff.yaml`` -> SegmentationDataModule -> RandomWindowDataset -> DataLoader):

* windows/s with 0 and 2 DataLoader workers;
* the model's consumption rate: images/s of a full train step (forward, backward, Adam step) at the same tile size
  and batch, on CPU;
* peak memory (RSS) of a fresh process reading windows from scenes of different sizes: it must not grow with the
  scene size, since no scene is ever read whole.

Run: ``python benchmarks/data.py [--sizes 5000 10000] [--tile 512] [--batch 8] [--windows 160] [--model smp_deeplabv3plus]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PALETTE = [(255, 255, 255), (0, 0, 255), (0, 255, 255), (0, 255, 0), (255, 255, 0), (255, 0, 0)]


def generate(folder: Path, size: int, strip: int = 512) -> None:
    """``images/scene.tif`` and ``labels/scene.tif`` of ``size`` x ``size`` px, written strip by strip."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "labels").mkdir(parents=True, exist_ok=True)
    common = dict(driver="GTiff", height=size, width=size, dtype="uint8", crs="EPSG:32650", tiled=True,
                  blockxsize=256, blockysize=256, compress="deflate", transform=from_origin(500000, 3400000, 0.5, 0.5))
    rng = np.random.default_rng(0)
    block = 64  # label parcels of 64 px, six classes
    coarse = rng.integers(0, 6, (-(-size // block), -(-size // block)))
    palette = np.asarray(PALETTE, np.uint8)
    cols = np.arange(size)
    with rasterio.open(folder / "images" / "scene.tif", "w", count=3, **common) as img, \
            rasterio.open(folder / "labels" / "scene.tif", "w", count=3, **common) as lab:
        for row in range(0, size, strip):
            height = min(strip, size - row)
            rows = np.arange(row, row + height)
            classes = coarse[rows[:, None] // block, cols[None, :] // block]
            base = palette[classes].transpose(2, 0, 1).astype(np.int16) // 2 + 40
            noise = rng.integers(0, 24, (3, height, size), dtype=np.int16)
            img.write(np.clip(base + noise, 0, 255).astype(np.uint8), window=Window(0, row, size, height))
            lab.write(palette[classes].transpose(2, 0, 1), window=Window(0, row, size, height))


def datamodule(folder: Path, tile: int, batch: int, workers: int, windows: int):
    from hydra.utils import instantiate

    from rsseg.config import compose_config

    cfg = compose_config("train", [
        "data=geotiff", f"data.root={folder}", "data.scenes.labels='labels/{stem}.tif'", "data.label_format=colour",
        "data.num_classes=6", "data.class_names=[a,b,c,d,e,f]",
        "data.palette=" + json.dumps([list(c) for c in PALETTE]).replace(" ", ""),
        "data.scenes.splits={train:[scene],val:[scene]}", f"data.tile_size={tile}", f"data.batch_size={batch}",
        f"data.num_workers={workers}", f"data.train_samples_per_epoch={windows}",
    ])
    dm = instantiate(cfg.data, augment=None)
    dm.setup("fit")
    return dm


def loader_rate(folder: Path, tile: int, batch: int, workers: int, windows: int) -> float:
    """Windows per second through the training DataLoader (after its first batch, which starts the workers)."""
    dm = datamodule(folder, tile, batch, workers, windows + batch)
    loader = iter(dm.train_dataloader())
    next(loader)
    start = time.perf_counter()
    count = 0
    for item in loader:
        count += item["image"].shape[0]
    return count / (time.perf_counter() - start)


def model_rate(model: str, tile: int, batch: int, steps: int = 2) -> float:
    import torch
    from hydra.utils import instantiate

    from rsseg.config import compose_config

    torch.manual_seed(0)
    cfg = compose_config("train", [f"model={model}"])
    net = instantiate(cfg.model).train()  # the model contract: the config is the constructor
    optimizer = torch.optim.Adam(net.parameters(), 1e-4)
    image = torch.randn(batch, 3, tile, tile)
    mask = torch.randint(0, int(cfg.data.num_classes), (batch, tile, tile))

    def step():
        optimizer.zero_grad(set_to_none=True)
        out = net(image)
        out = out["out"] if isinstance(out, dict) else out
        torch.nn.functional.cross_entropy(out, mask).backward()
        optimizer.step()

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - start)


def peak_rss_mib() -> float:
    """This process's peak resident set: VmHWM (per address space, so a fork/exec child does not inherit its
    parent's peak, as ``ru_maxrss`` does on Linux), else ``ru_maxrss``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss_child(folder: Path, tile: int, batch: int, windows: int) -> dict:
    """Read ``windows`` windows in a fresh process (0 workers); its peak RSS in MiB and its rate."""
    code = (
        "import json, sys; sys.path.insert(0, 'benchmarks'); import data as bench; from pathlib import Path; "
        f"rate = bench.loader_rate(Path({str(folder)!r}), {tile}, {batch}, 0, {windows}); "
        "print(json.dumps({'rate': rate, 'peak_mib': bench.peak_rss_mib()}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 10000])
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--windows", type=int, default=160)
    parser.add_argument("--model", default="smp_deeplabv3plus")
    parser.add_argument("--steps", type=int, default=2, help="timed train steps (after one warm-up step)")
    parser.add_argument("--workdir", default=None, help="where to generate the scenes (default: a temporary folder)")
    args = parser.parse_args()

    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="rsseg-bench-data-"))
    print(f"cpu cores: {os.cpu_count()}; tile {args.tile}, batch {args.batch}; scenes under {work}")
    folders = {}
    for size in args.sizes:
        folder = work / f"scene_{size}"
        if not (folder / "labels" / "scene.tif").exists():
            started = time.perf_counter()
            generate(folder, size)
            mib = sum(p.stat().st_size for p in folder.rglob("*.tif")) / 2**20
            print(f"generated {size} x {size} scene + label ({mib:.0f} MiB on disk) in {time.perf_counter() - started:.1f} s")
        folders[size] = folder

    largest = folders[max(args.sizes)]
    rows = []
    memory = []
    for size, folder in folders.items():
        result = peak_rss_child(folder, args.tile, args.batch, args.windows)
        memory.append((size, result))
    for workers in (0, 2):
        rate = loader_rate(largest, args.tile, args.batch, workers, args.windows)
        rows.append((f"DataLoader, {workers} workers ({max(args.sizes)} px scene)", f"{rate:.1f} windows/s"))
    consumption = model_rate(args.model, args.tile, args.batch, args.steps)
    rows.append((f"train step of {args.model}, batch {args.batch} (CPU)", f"{consumption:.2f} images/s"))
    for size, result in memory:
        rows.append((f"peak RSS reading {args.windows} windows, {size} x {size} scene", f"{result['peak_mib']:.0f} MiB"
                     f" (that process read {result['rate']:.1f} windows/s, 0 workers)"))
    width = max(len(r[0]) for r in rows)
    print(f"{'measure'.ljust(width)}  value")
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}")
    ratio = memory[-1][1]["peak_mib"] / memory[0][1]["peak_mib"]
    print(f"peak RSS ratio {memory[-1][0]} / {memory[0][0]} px scene: {ratio:.2f} (scene area ratio "
          f"{(memory[-1][0] / memory[0][0]) ** 2:.1f})")
    print(f"loading headroom: {rows[1][1].split()[0]} windows/s with 2 workers vs {consumption:.2f} images/s consumed")


if __name__ == "__main__":
    main()
