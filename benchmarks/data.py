"""Data loading throughput and memory on large GeoTIFF scenes, beside the model's training consumption rate.

Generates an N x N scene (3-band uint8 image and an RGB colour-coded label, tiled 256 x 256 and deflate-compressed,
written in strips so the generator itself never holds the scene) and reads random training windows from it through
the real data path (``conf/data/geotiff.yaml`` -> SegmentationDataModule -> RandomWindowDataset -> DataLoader):

* windows/s with 0 and 2 DataLoader workers;
* the model's consumption rate: images/s of a full train step (forward, backward, Adam step) at the same tile size
  and batch, on CPU;
* peak memory (RSS) of a fresh process reading windows from scenes of different sizes: it must not grow with the
  scene size, since no scene is ever read whole;
* windows/s per core by format: random RGB windows in one process, each from a file drawn at random, from the
  63 Dubai JPEGs (when ``../shared/data/dubai_aerial`` is beside the checkout), four striped deflate GeoTIFFs and
  four tiled uncompressed GeoTIFFs (generated; more decoded data than GDAL's block cache holds, as in training),
  each read directly and through the read cache (``rsseg.data.cache``), beside the train step's consumption.

The training path reads through the read cache (``data.cache``, kept under the work folder here).

Run: ``python benchmarks/data.py [--sizes 5000 10000] [--tile 512] [--batch 8] [--windows 160] [--model smp_deeplabv3plus]
[--format-size 4096] [--quick]`` (``--quick``: small scenes and few windows, a smoke run of every measure)
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

REPO = Path(__file__).resolve().parents[1]
DUBAI = REPO.parent / "shared" / "data" / "dubai_aerial"
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
        f"data.cache_dir={folder.parent / 'read_cache'}",
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
                         cwd=REPO)
    return json.loads(out.stdout.strip().splitlines()[-1])


def write_format(path: Path, size: int, strip: int = 256, **layout) -> Path:
    """A ``size`` x ``size`` RGB GeoTIFF in ``layout`` (striped deflate, tiled ...), written strip by strip."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    cols = np.arange(size)
    with rasterio.open(path, "w", driver="GTiff", height=size, width=size, count=3, dtype="uint8", crs="EPSG:32650",
                       transform=from_origin(500000, 3400000, 0.5, 0.5), **layout) as dst:
        for row in range(0, size, strip):
            rows = np.arange(row, min(row + strip, size))
            base = 96 + 60 * np.sin(rows[:, None] / 40.0) * np.cos(cols[None, :] / 55.0)  # compresses like imagery
            pixels = base[None] + rng.integers(0, 24, (3, len(rows), size))
            dst.write(np.clip(pixels, 0, 255).astype(np.uint8), window=Window(0, row, size, len(rows)))
    return path


def window_rate(paths: list[Path], opener, tile: int, windows: int) -> float:
    """Random ``tile`` x ``tile`` windows/s of bands 1-3 read in this process, each from a file drawn at random
    among ``paths`` (as training draws them): with more decoded data than GDAL's block cache holds, a window from a
    file without tiles decodes what it needs again, as it does in a real epoch."""
    from rasterio.windows import Window

    from rsseg.data.raster import read_window

    rng = np.random.default_rng(0)
    handles = [opener(path) for path in paths]
    try:
        draws = []
        for _ in range(windows):
            handle = handles[int(rng.integers(0, len(handles)))]
            side = min(tile, handle.height, handle.width)
            draws.append((handle, int(rng.integers(0, handle.height - side + 1)),
                          int(rng.integers(0, handle.width - side + 1)), side))
        start = time.perf_counter()
        for handle, row, col, side in draws:
            read_window(handle, Window(col, row, side, side), [1, 2, 3])
        return windows / (time.perf_counter() - start)
    finally:
        for handle in handles:
            handle.close()


def format_rates(work: Path, size: int, tile: int, windows: int, files: int = 4) -> list[tuple[str, float, float | None]]:
    """(format, direct windows/s, read-cache windows/s or None where the cache reads the source directly), each
    format a set of files whose decoded size exceeds GDAL's block cache (``GDAL_CACHEMAX``, 128 MiB here)."""
    from rsseg.data.cache import ReadCache
    from rsseg.data.raster import open_raster

    sources = []
    jpegs = sorted(DUBAI.glob("Tile_*/images/*.jpg")) if DUBAI.is_dir() else []
    if jpegs:
        sources.append((f"Dubai JPEGs (all {len(jpegs)}, 510-2061 px)", jpegs))
    else:
        print(f"note: {DUBAI} is absent: the Dubai JPEG row is left out")
    folder = work / "formats"
    sources.append((f"striped deflate GeoTIFF, {files} x {size} px",
                    [write_format(folder / f"striped_deflate_{size}_{i}.tif", size, compress="deflate")
                     for i in range(files)]))
    sources.append((f"tiled uncompressed GeoTIFF, {files} x {size} px",
                    [write_format(folder / f"tiled_{size}_{i}.tif", size, tiled=True, blockxsize=256, blockysize=256)
                     for i in range(files)]))
    cache = ReadCache(work / "read_cache")
    rows = []
    for name, paths in sources:
        direct = window_rate(paths, open_raster, tile, windows)
        cached = None
        if all(cache.ensure(path) is not None for path in paths):
            cached = window_rate(paths, cache.open, tile, windows)
        rows.append((name, direct, cached))
    return rows


def print_format_table(rows, tile: int, consumption: float, batch: int, model: str) -> None:
    width = max(len(r[0]) for r in rows)
    print(f"\nwindows/s per core by format ({tile} x {tile} RGB windows at random, one process)")
    print(f"{'format'.ljust(width)}  {'direct':>10}  {'read cache':>14}")
    for name, direct, cached in rows:
        shown = f"{cached:14.1f}" if cached is not None else f"{'(not cached)':>14}"
        print(f"{name.ljust(width)}  {direct:10.1f}  {shown}")
    print(f"{'train step consumption'.ljust(width)}  {consumption:10.2f}  images/s ({model}, batch {batch}, CPU)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 10000])
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--windows", type=int, default=160)
    parser.add_argument("--model", default="smp_deeplabv3plus")
    parser.add_argument("--steps", type=int, default=2, help="timed train steps (after one warm-up step)")
    parser.add_argument("--workdir", default=None, help="where to generate the scenes (default: a temporary folder)")
    parser.add_argument("--format-size", type=int, default=4096, help="side of the generated striped and tiled rasters")
    parser.add_argument("--format-windows", type=int, default=200, help="windows timed per format and way of reading")
    parser.add_argument("--quick", action="store_true", help="small scenes and few windows: a smoke run of every measure")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.tile, args.batch, args.windows, args.steps = [1024], 256, 2, 8, 1
        args.format_size, args.format_windows = 1024, 8

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
        rows.append((f"DataLoader, {workers} workers ({max(args.sizes)} px scene, read cache)", f"{rate:.1f} windows/s"))
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
    print_format_table(format_rates(work, args.format_size, args.tile, args.format_windows), args.tile, consumption,
                       args.batch, args.model)


if __name__ == "__main__":
    main()
