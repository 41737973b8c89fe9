"""How fast one GPU trains and predicts with rsseg's settings, against what the model itself can do.

Three tables, in one run that finishes in under 5 minutes on a current GPU:

1. **Training**: images/s of a full training step (forward, loss, backward, Adam) at 512 x 512 for MST-DeepLabv3+
   and DeepLabv3+ (Xception), in fp32, bf16 autocast, bf16 + channels_last and bf16 + channels_last +
   torch.compile, each beside the forward-only rate of the same setting (the ceiling a step cannot pass).
2. **Loading**: training windows/s of the real data path (``SegmentationDataModule`` -> DataLoader) with 8 and 16
   workers from the Dubai JPEGs read directly and through the read cache, beside the fastest training rate of
   table 1: a loader below it leaves the GPU waiting.
3. **Whole-scene prediction**: tiles/s of ``predict_raster`` (reader thread, model, softmax, blending, arg-max,
   GeoTIFF writer) on a 20,000 x 20,000 scene against the forward-only rate on the same tiles.

    python benchmarks/gpu.py                              # on a GPU
    python benchmarks/gpu.py --device cpu --quick         # the same tables, small, on a CPU (tests run this)

``--quick`` shrinks every size (64 px tiles, batch 2, a 512 px scene, 0 and 2 workers) and leaves out
torch.compile unless ``--compile`` is given (compiling two networks for a CPU takes minutes).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
DUBAI = REPO.parent / "shared" / "data" / "dubai_aerial"

SETTINGS = {  # name: (autocast dtype, channels_last, compile)
    "fp32": (None, False, False),
    "bf16": (torch.bfloat16, False, False),
    "bf16 + channels_last": (torch.bfloat16, True, False),
    "bf16 + channels_last + compile": (torch.bfloat16, True, True),
}


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def rate(step, count: int, warmup: int, device: torch.device) -> float:
    """Calls of ``step`` per second after ``warmup`` untimed calls."""
    for _ in range(warmup):
        step()
    synchronise(device)
    started = time.perf_counter()
    for _ in range(count):
        step()
    synchronise(device)
    return count / (time.perf_counter() - started)


def training_rates(name: str, setting: str, args, device: torch.device) -> dict:
    from rsseg.models.hub import build_model
    from rsseg.training.speed import apply_to_model, input_layout

    dtype, channels_last, compiled = SETTINGS[setting]
    torch.manual_seed(0)
    model = build_model(name, 6, 3).to(device)
    apply_to_model(model, channels_last, compiled)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-4)
    image = input_layout(torch.randn(args.batch, 3, args.tile, args.tile, device=device), channels_last)
    mask = torch.randint(0, 6, (args.batch, args.tile, args.tile), device=device)
    autocast = dict(device_type=device.type, dtype=dtype or torch.float32, enabled=dtype is not None)

    def train_step():
        with torch.autocast(**autocast):
            logits = model(image)
            out = logits["out"] if isinstance(logits, dict) else logits
            loss = torch.nn.functional.cross_entropy(out.float(), mask)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    def forward():
        with torch.inference_mode(), torch.autocast(**autocast):
            model(image)

    warmup = args.warmup + (3 if compiled else 0)
    model.train()
    train = rate(train_step, args.steps, warmup, device) * args.batch
    model.eval()
    ahead = rate(forward, args.steps, warmup, device) * args.batch
    return {"model": name, "setting": setting, "train_images_s": round(train, 2), "forward_images_s": round(ahead, 2),
            "ratio": round(train / ahead, 3)}


def loader_rate(workers: int, cache: bool, args, cache_dir: Path) -> float | None:
    """Training windows/s from the Dubai JPEGs through the datamodule's DataLoader (None without the data)."""
    from hydra.utils import instantiate

    from rsseg.config import compose_config

    if not args.dubai.is_dir():
        return None
    cfg = compose_config("train", [
        "data=dubai", f"data.root={args.dubai}", f"data.num_workers={workers}", f"data.tile_size={args.loader_tile}",
        f"data.batch_size={args.batch}", f"data.train_samples_per_epoch={args.batch * args.loader_batches}",
        f"data.cache={str(cache).lower()}", f"data.cache_dir={cache_dir}", f"paths.output_dir={cache_dir / 'run'}",
        "aug=none",
    ])
    datamodule = instantiate(cfg.data, _recursive_=True)
    datamodule.setup("fit")  # builds the cache entries when asked for (timed apart: once per scene)
    loader = datamodule.train_dataloader()
    batches = iter(loader)
    next(batches)  # the workers' start
    started, windows = time.perf_counter(), 0
    for batch in batches:
        windows += len(batch["image"])
    return windows / (time.perf_counter() - started)


def prediction_rates(args, device: torch.device, workdir: Path) -> dict:
    import rasterio

    from predict import make_scene
    from rsseg.inference.engine import predict_raster
    from rsseg.inference.geotiff import GeoTiffSink, OutputPaths
    from rsseg.inference.predictor import TilePredictor
    from rsseg.models.hub import build_model

    scene = workdir / f"scene_{args.scene}.tif"
    make_scene(scene, args.scene)
    torch.manual_seed(0)
    model = build_model("mst_deeplab", 6, 3)
    precision = "bf16" if device.type == "cuda" else "32"
    predictor = TilePredictor(model, [120.0] * 3, [50.0] * 3, 6, device=device, precision=precision,
                              batch_size=args.predict_batch)
    raw = torch.randint(0, 256, (args.predict_batch, 3, args.tile, args.tile), dtype=torch.uint8)
    forward = rate(lambda: predictor.logits(predictor.normalise(raw)), args.steps, args.warmup, device)
    with rasterio.open(scene) as handle:
        sink = GeoTiffSink(OutputPaths(workdir / "prediction.tif"), handle, [f"class_{i}" for i in range(6)])
        try:
            stats = predict_raster(handle, predictor, sink, tile_size=args.tile, overlap=0.25)
            sink.commit()
        except BaseException:
            sink.discard()
            raise
    forward_tiles = forward * args.predict_batch
    return {"scene": args.scene, "tiles": stats.tiles, "seconds": round(stats.seconds, 1),
            "pipeline_tiles_s": round(stats.tiles_per_second, 2), "forward_tiles_s": round(forward_tiles, 2),
            "ratio": round(stats.tiles_per_second / forward_tiles, 3)}


def print_table(title: str, rows: list[dict], columns: list[str]) -> None:
    print(f"\n{title}")
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join("-" if row.get(c) is None else str(row.get(c)) for c in columns) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a CPU or a smoke test")
    parser.add_argument("--compile", action="store_true", help="with --quick: keep the torch.compile rows")
    parser.add_argument("--json", type=Path, help="also write every row to this file")
    parser.add_argument("--dubai", type=Path, default=DUBAI, help="the Dubai aerial set (data=dubai's layout)")
    args = parser.parse_args()
    device = torch.device(args.device)
    quick = args.quick
    args.tile, args.batch = (64, 2) if quick else (512, 16)
    args.steps, args.warmup = (2, 1) if quick else (20, 5)
    args.loader_tile, args.loader_batches = (64, 4) if quick else (512, 40)
    args.scene, args.predict_batch = (512, 4) if quick else (20000, 32)
    workers = (0, 2) if quick else (8, 16)
    settings = [s for s in SETTINGS if not (quick and SETTINGS[s][2] and not args.compile)]
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), torch "
          f"{torch.__version__}, tile {args.tile}, batch {args.batch}{', quick' if quick else ''}", flush=True)

    started = time.perf_counter()
    training = [training_rates(name, setting, args, device)
                for name in ("mst_deeplab", "deeplabv3plus") for setting in settings]
    print_table(f"Training at {args.tile} x {args.tile}, batch {args.batch} (images/s)", training,
                ["model", "setting", "train_images_s", "forward_images_s", "ratio"])
    consumption = max(row["train_images_s"] for row in training if row["model"] == "mst_deeplab")

    with tempfile.TemporaryDirectory(prefix="rsseg-gpu-bench-") as folder:
        workdir = Path(folder)
        loading = []
        for cache in (False, True):
            for count in workers:
                windows = loader_rate(count, cache, args, workdir / "cache")
                loading.append({"source": "cache" if cache else "JPEG", "workers": count,
                                "windows_s": None if windows is None else round(windows, 1),
                                "vs_training": None if windows is None else round(windows / consumption, 2)})
        note = "" if args.dubai.is_dir() else f" (no {args.dubai}: not measured)"
        print_table(f"Loading {args.loader_tile} px Dubai windows against mst_deeplab's {consumption} images/s{note}",
                    loading, ["source", "workers", "windows_s", "vs_training"])
        prediction = prediction_rates(args, device, workdir)
    print_table(f"Whole-scene prediction, mst_deeplab, tile {args.tile}, overlap 25 %", [prediction],
                ["scene", "tiles", "seconds", "pipeline_tiles_s", "forward_tiles_s", "ratio"])
    print(f"\n{time.perf_counter() - started:.0f} s in all")
    if args.json:
        args.json.write_text(json.dumps({"device": str(device), "training": training, "loading": loading,
                                         "prediction": prediction}, indent=1))


if __name__ == "__main__":
    main()
