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
"""

from __future__ import annotations

import argparse
import json
import os
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
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--scene", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--runtime", default="pytorch", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

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


if __name__ == "__main__":
    main()
