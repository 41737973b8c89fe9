"""Size, compute and CPU speed of every named model, beside the MST-DeepLabv3+ paper's Table 9.

For each ``conf/model`` config (6 classes, 3 bands, no pretrained weights): parameters, MiB
(params x 4 / 2^20, the paper's "MB"), GFLOPs at 512 x 512 (2 x MACs / 1e9, FlopCounterMode) and the median
CPU forward time of one 512 x 512 image (batch 1, eval, ``torch.inference_mode``) over ``--repeats`` runs
after one warm-up. Run: ``python benchmarks/models.py [--repeats 3] [--size 512] [--json] [names...]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time

import torch

from rsseg.models.hub import NAMED_MODELS, build_model
from rsseg.models.profile import count_gflops, model_size

# Table 9 (and Table 8 for the DeepLabv3+ variants) of Wang et al. 2024, "Parameter amount (MB)".
PAPER_MB = {
    "deeplabv3plus": 208.70,
    "deeplabv3plus_mobilenetv2": 22.19,
    "mst_deeplab": 22.96,
    "pspnet": 259.64,
    "unet": 94.95,
}


def forward_ms(model: torch.nn.Module, size: int, repeats: int) -> float:
    x = torch.randn(1, 3, size, size)
    model.eval()
    times = []
    with torch.inference_mode():
        model(x)  # warm-up: allocator, oneDNN primitive caches
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("models", nargs="*", default=list(NAMED_MODELS))
    args = parser.parse_args(argv)

    rows = []
    if not args.json:
        print(
            f"{'model':<26} {'params':>13} {'MiB':>9} {'paper MB':>9} {'GFLOPs':>9} {'CPU ms':>10}",
            flush=True,
        )
    for name in args.models:
        torch.manual_seed(0)
        model = build_model(name, num_classes=6, in_channels=3, pretrained=None)
        params, mib = model_size(model)
        gflops = count_gflops(model, args.size)
        ms = forward_ms(model, args.size, args.repeats)
        paper = PAPER_MB.get(name)
        rows.append(
            {
                "name": name,
                "params": params,
                "mib": round(mib, 2),
                "paper_mb": paper,
                "gflops": round(gflops, 2),
                "cpu_ms": round(ms, 1),
            }
        )
        del model
        gc.collect()
        if not args.json:
            paper_text = f"{paper:.2f}" if paper else "-"
            print(
                f"{name:<26} {params:>13,} {mib:>9.2f} {paper_text:>9} {gflops:>9.2f} {ms:>10.1f}", flush=True
            )
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(
            f"\n{args.size}x{args.size}, batch 1, {torch.get_num_threads()} CPU threads, "
            f"torch {torch.__version__}; "
            "MiB = params*4/2^20; GFLOPs = 2*MACs/1e9 (FlopCounterMode)"
        )


if __name__ == "__main__":
    main()
