"""Whole-scene prediction throughput and memory: the streamed pipeline against the bare model on the same tiles.

For each scene size (a square uint8 3-band GeoTIFF, tiled and deflate-compressed, generated once in strips into
the work folder) a fresh subprocess, so that peak RSS is per scene:

1. runs the whole pipeline (``rsseg.inference.predict_raster`` with the GeoTIFF writer: windowed reads, a reader
   thread, normalisation, the model, softmax, blending, the strip accumulator, argmax, compressed block writes);
2. times the bare model on batches of tiles of the same size held in memory (normalised input -> logits, no I/O,
   no softmax, no blending), before and after the pipeline (the mean of the two: the machine may be shared);
3. reports tiles/s of both and their ratio (goal >= 0.9 at 25 % overlap), the peak RSS of the subprocess and
   the size of the strip accumulator (goal: flat in the scene size, under 2 GiB at 20,000 x 20,000).

    python benchmarks/predict.py                      # 5,000, 10,000 and 20,000 px scenes
    python benchmarks/predict.py --sizes 2000 --tile 256   # a quick run
    python benchmarks/predict.py --model passthrough --sizes 5000    # the pipeline alone, no network
    python benchmarks/predict.py --model deeplabv3plus_mobilenetv2 --sizes 3000 --tile 128 \
        --runtimes pytorch compiled onnxruntime                      # PyTorch beside onnxruntime, same network
    python benchmarks/predict.py --quick                             # a 2,000 px scene and a small region

A scaling row follows (``--scaling-scenes``, 0 to leave it out): a region of scenes predicted by ``predict.py -m``
(the command a user runs, through ``hydra/launcher=parallel``) as 1 shard with all the threads, as 1 shard with
half of them, and as 2 shards with half each at once. Ideal scaling makes the 2 shards twice as fast as one
shard on half the threads; the row gives the ratio of the measured rate to that ideal. Rates count from each
shard's first scene to its last (the shards' own summaries), so process start and imports stay out.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


def make_scene(path: Path, size: int, strip: int = 1024) -> None:
    """A ``size x size`` uint8 3-band GeoTIFF (UTM 50N, 2 m), written strip by strip (never whole in memory)."""
    import rasterio
    from affine import Affine

    if path.exists():
        return
    tmp = path.with_name(f".{path.name}.partial")
    profile = {"driver": "GTiff", "width": size, "height": size, "count": 3, "dtype": "uint8", "crs": "EPSG:32650",
               "transform": Affine(2, 0, 500_000, 0, -2, 4_000_000), "tiled": True, "blockxsize": 256,
               "blockysize": 256, "compress": "deflate", "BIGTIFF": "IF_SAFER"}
    rng = np.random.default_rng(0)
    xx = np.arange(size, dtype=np.float32)[None, :]
    with rasterio.open(tmp, "w", **profile) as dst:
        for row in range(0, size, strip):
            n = min(strip, size - row)
            yy = np.arange(row, row + n, dtype=np.float32)[:, None]
            bands = [120 + 60 * np.sin(xx / (37.0 + 11 * b)) * np.cos(yy / (53.0 - 7 * b))
                     + rng.normal(0, 4, (n, size)).astype(np.float32) for b in range(3)]
            dst.write(np.stack(bands).clip(0, 255).astype(np.uint8), window=((row, row + n), (0, size)))
    os.replace(tmp, path)


class PassThrough(torch.nn.Module):
    """A "model" that returns its input's first bands as the class scores (repeated up to the class count): the
    pipeline's own cost per tile (reading, normalisation, softmax, blending, arg-max, writing) without a network.
    It writes into one output buffer kept between calls, as a network's last layer costs one write of the scores
    and nothing more: a fresh 50 MB tensor per batch would measure the allocator's page faults instead."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.classes = classes
        self.out: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (x.shape[0], self.classes, *x.shape[2:])
        if self.out is None or self.out.shape != shape:
            self.out = x.new_empty(shape)
        for c in range(self.classes):  # plane copies: a gather along the channel axis costs 3x more on a CPU
            self.out[:, c].copy_(x[:, c % x.shape[1]])
        return self.out


def build_model(name: str, classes: int):
    import torch
    from torch import nn

    torch.manual_seed(0)
    if name == "passthrough":
        return PassThrough(classes)
    if name in ("mst_deeplab", "deeplabv3plus_mobilenetv2"):  # a real network, as in the papers
        from rsseg.models.hub import build_model as build_rsseg_model

        return build_rsseg_model(name, classes, 3)
    if name == "tiny":  # two convolutions: the pipeline's own cost shows most
        return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, classes, 3, padding=1))
    # "small": four convolutions of 16 channels at full resolution (about 1.3 GMAC per 512 px tile)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, classes, 1),
    )


def forward_rate(predictor, tile: int, batch: int, tiles: int) -> float:
    """Bare model tiles/s on in-memory batches: normalise + forward, nothing else."""
    import torch

    x = torch.randint(0, 256, (batch, 3, tile, tile), dtype=torch.uint8)
    with torch.inference_mode():
        predictor.logits(predictor.normalise(x))  # warm-up
        if predictor.device.type == "cuda":
            torch.cuda.synchronize()
        done, started = 0, time.perf_counter()
        while done < tiles:
            predictor.logits(predictor.normalise(x))
            done += batch
        if predictor.device.type == "cuda":
            torch.cuda.synchronize()
    return done / (time.perf_counter() - started)


def child(args: argparse.Namespace) -> None:
    import rasterio
    import torch

    import rsseg.metrics  # noqa: F401 - imported once per process (torchmetrics, ~5 s here), not a per-tile cost
    from rsseg.inference.engine import predict_raster
    from rsseg.inference.geotiff import GeoTiffSink, OutputPaths
    from rsseg.inference.predict import peak_memory
    from rsseg.inference.predictor import TilePredictor

    if args.threads:
        torch.set_num_threads(args.threads)
    model = build_model(args.model, args.classes).eval()
    if args.runtime == "onnxruntime":  # the same network exported to ONNX, run by onnxruntime on the CPU
        from rsseg.inference.exported import OnnxNetwork
        from rsseg.models.export import export_onnx

        path = Path(args.out).with_suffix(".onnx")
        export_onnx(model, path, args.tile, 3, 17)
        model = OnnxNetwork(path, args.tile, args.classes, 3)
    predictor = TilePredictor(model, [120.0] * 3, [50.0] * 3, args.classes, device=args.device,
                              precision=args.precision, batch_size=args.batch, compile=args.runtime == "compiled")
    names = [f"class_{i}" for i in range(args.classes)]
    sample = max(args.batch * 2, args.forward_tiles)
    started = time.perf_counter()
    with torch.inference_mode():  # the first batch: torch.compile's one-off cost when compiled
        predictor.logits(predictor.normalise(torch.zeros(args.batch, 3, args.tile, args.tile, dtype=torch.uint8)))
    first_batch_s = time.perf_counter() - started
    before = forward_rate(predictor, args.tile, args.batch, sample)
    out = Path(args.out)
    with rasterio.Env(GDAL_CACHEMAX=64 * 2**20), rasterio.open(args.scene) as handle:
        sink = GeoTiffSink(OutputPaths(out), handle, names)
        try:
            stats = predict_raster(handle, predictor, sink, tile_size=args.tile, overlap=args.overlap, blend="cosine")
            sink.commit()
        except BaseException:
            sink.discard()
            raise
    after = forward_rate(predictor, args.tile, args.batch, sample)
    forward = (before + after) / 2
    result = {
        "runtime": args.runtime, "size": args.size, "tiles": stats.tiles, "seconds": round(stats.seconds, 2),
        "pipeline_tiles_s": round(stats.tiles_per_second, 2), "forward_tiles_s": round(forward, 2),
        "forward_before": round(before, 2), "forward_after": round(after, 2),
        "ratio": round(stats.tiles_per_second / forward, 3), "first_batch_s": round(first_batch_s, 1),
        "accumulator_mib": round(stats.accumulator_bytes / 2**20, 1),
        **{k: round(v, 1) for k, v in peak_memory().items()},
        "output_mib": round(out.stat().st_size / 2**20, 1),
    }
    out.unlink()
    print("RESULT " + json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 10000, 20000])
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--overlap", type=float, default=0.25)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--classes", type=int, default=6)
    parser.add_argument("--model", choices=["passthrough", "tiny", "small", "mst_deeplab", "deeplabv3plus_mobilenetv2"],
                        default="small", help="passthrough: no network, the pipeline's own cost")
    parser.add_argument("--runtimes", nargs="+", choices=["pytorch", "compiled", "onnxruntime"], default=["pytorch"],
                        help="run the same network through each, one after the other (compiled: torch.compile "
                             "with weight freezing, predict's compile=true; onnxruntime: CPU only)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--forward-tiles", type=int, default=48, help="tiles timed for the bare forward rate")
    parser.add_argument("--workdir", type=Path, default=None, help="where scenes are generated (kept; default: temp)")
    parser.add_argument("--scaling-scenes", type=int, default=8, help="scenes of the scaling row's region (0: none)")
    parser.add_argument("--scaling-size", type=int, default=2000, help="side of each scaling scene in px")
    parser.add_argument("--quick", action="store_true", help="one 2,000 px scene, tile 256; a region of 4 x 512 px")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--scene", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--runtime", default="pytorch", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    if args.quick:
        args.sizes, args.tile, args.forward_tiles = [2000], 256, 16
        args.scaling_scenes, args.scaling_size = min(args.scaling_scenes, 4), 512
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="rsseg-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for size in args.sizes:
        scene = workdir / f"scene_{size}.tif"
        started = time.perf_counter()
        make_scene(scene, size)
        print(f"scene {size} x {size}: {scene} ({scene.stat().st_size / 2**20:.0f} MiB, "
              f"{time.perf_counter() - started:.0f} s to make)", flush=True)
        for runtime in args.runtimes:
            command = [sys.executable, __file__, "--child", "--scene", str(scene), "--size", str(size),
                       "--out", str(workdir / f"pred_{size}.tif"), "--tile", str(args.tile), "--overlap",
                       str(args.overlap), "--batch", str(args.batch), "--classes", str(args.classes), "--model",
                       args.model, "--device", args.device, "--precision", args.precision, "--threads",
                       str(args.threads), "--forward-tiles", str(args.forward_tiles), "--runtime", runtime]
            run = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
            line = next((ln for ln in run.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if run.returncode != 0 or line is None:
                print(run.stdout[-2000:], run.stderr[-4000:], file=sys.stderr)
                sys.exit(f"the {size} px run through {runtime} failed")
            rows.append(json.loads(line[len("RESULT "):]))
            print(json.dumps(rows[-1]), flush=True)

    print(f"\nmodel {args.model}, tile {args.tile}, overlap {args.overlap}, batch {args.batch}, "
          f"{args.classes} classes, device {args.device}, precision {args.precision}")
    header = (f"{'runtime':>12} {'scene':>13} {'tiles':>6} {'seconds':>8} {'pipeline t/s':>13} {'forward t/s':>12} {'ratio':>6} "
              f"{'1st batch s':>12} {'peak RSS MiB':>13} {'accum. MiB':>11}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['runtime']:>12} {r['size']:>6} x{r['size']:>6} {r['tiles']:>6} {r['seconds']:>8} {r['pipeline_tiles_s']:>13} "
              f"{r['forward_tiles_s']:>12} {r['ratio']:>6} {r['first_batch_s']:>12} {r['rss_peak_mib']:>13} "
              f"{r['accumulator_mib']:>11}"
              + (f"  (CUDA peak {r['cuda_peak_mib']} MiB)" if "cuda_peak_mib" in r else ""))
    if args.scaling_scenes:
        scaling(args, workdir)


# --------------------------------------------------------------------------------------------------------------
# Scaling: one shard against two on the same machine
# --------------------------------------------------------------------------------------------------------------


def write_checkpoint(path: Path, classes: int) -> Path:
    """A checkpoint as rsseg's training writes it, of the "small" network (``build_model``), for predict.py."""
    conv = {"_target_": "torch.nn.Conv2d", "kernel_size": 3, "padding": 1}
    relu = {"_target_": "torch.nn.ReLU"}
    model_cfg = {"_target_": "torch.nn.Sequential", "_args_": [
        {**conv, "in_channels": 3, "out_channels": 16}, relu, {**conv, "in_channels": 16, "out_channels": 16}, relu,
        {**conv, "in_channels": 16, "out_channels": 16}, relu,
        {"_target_": "torch.nn.Conv2d", "in_channels": 16, "out_channels": classes, "kernel_size": 1}]}
    data = {"num_classes": classes, "in_channels": 3, "class_names": [f"class_{i}" for i in range(classes)],
            "palette": None, "ignore_index": 255, "bands": None, "nodata": None, "mean": [120.0] * 3,
            "std": [50.0] * 3, "tile_size": 256, "eval_tile_size": 512}
    state = {f"model.{k}": v for k, v in build_model("small", classes).state_dict().items()}
    torch.save({"hyper_parameters": {"cfg": {"model": model_cfg, "data": data}}, "state_dict": state}, path)
    return path


def region_rate(args, scenes: Path, ckpt: Path, out: Path, shards: int, threads: int) -> dict:
    """``predict.py -m`` over the region in ``shards`` jobs of ``threads`` threads each; tiles/s and km²/h from
    the shards' summaries (the first shard's start to the last one's end, taken as all starting together)."""
    sweep = out.with_name(out.name + "_sweep")
    shutil.rmtree(sweep, ignore_errors=True)  # job folders are named by their overrides: no earlier run's summaries
    command = [sys.executable, str(REPO / "predict.py"), "-m", f"ckpt={ckpt}", f"input={scenes}",
               f"output={out}", f"shards={shards}", "region=true", f"tile_size={args.tile}",
               f"overlap={args.overlap}", f"batch_size={args.batch}", f"num_threads={threads}", "progress=false",
               f"device={args.device}", "overwrite=true", "mosaic=none", "hydra/launcher=parallel",
               f"hydra.launcher.n_jobs={shards}", f"hydra.sweep.dir={sweep}"]
    run = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if run.returncode != 0:
        print(run.stdout[-2000:], run.stderr[-4000:], file=sys.stderr)
        sys.exit(f"the {shards}-shard region run failed")
    summaries = [json.loads(p.read_text())["summary"] for p in sweep.rglob("results.json")]
    seconds = max(s["predict_seconds"] for s in summaries)
    tiles, km2 = sum(s["tiles"] for s in summaries), sum(s["km2"] for s in summaries)
    for record in out.glob("*_record.json"):  # the next run predicts everything again
        record.unlink()
    return {"shards": shards, "threads": threads, "tiles": tiles, "seconds": round(seconds, 2),
            "tiles_s": round(tiles / seconds, 2), "km2_h": round(km2 / seconds * 3600, 1)}


def scaling(args, workdir: Path) -> None:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 2)
    threads = args.threads or cores
    half = max(1, threads // 2)
    scenes = workdir / f"region_{args.scaling_size}"
    scenes.mkdir(parents=True, exist_ok=True)
    for i in range(args.scaling_scenes):
        make_scene(scenes / f"scene_{i:03d}.tif", args.scaling_size)
    ckpt = write_checkpoint(workdir / "small.ckpt", args.classes)
    rows = [region_rate(args, scenes, ckpt, workdir / "region_pred", shards, n)
            for shards, n in ((1, threads), (1, half), (2, half))]
    ideal = 2 * rows[1]["tiles_s"]
    print(f"\nScaling: {args.scaling_scenes} scenes of {args.scaling_size} px through predict.py -m "
          f"hydra/launcher=parallel, {cores} cores; ideal for 2 shards = 2 x one shard on {half} threads")
    header = f"{'shards':>6} {'threads/shard':>14} {'tiles':>6} {'seconds':>8} {'tiles/s':>8} {'km²/h':>8} {'vs ideal':>9}"
    print(header)
    print("-" * len(header))
    for row in rows:
        versus = f"{row['tiles_s'] / ideal:.2f}" if row["shards"] == 2 else "-"
        print(f"{row['shards']:>6} {row['threads']:>14} {row['tiles']:>6} {row['seconds']:>8} {row['tiles_s']:>8} "
              f"{row['km2_h']:>8} {versus:>9}")
    print(f"2 shards x {half} threads against 1 shard x {threads} threads: "
          f"{rows[2]['tiles_s'] / rows[0]['tiles_s']:.2f}x")


if __name__ == "__main__":
    main()
