"""The training step on this machine's CPU as a fraction of its fp32 peak, and what each setting changes.

The peak is measured, not looked up: the best GFLOP/s of fp32 matrix products (``torch.mm`` of n x n matrices,
2 n^3 FLOPs, n from 256 to 2048), which the BLAS runs near the cores' fused multiply-add throughput (cores x FMA
units x vector width x 2 x clock; the clock of a virtual machine is not known to it). It is a lower bound of the
true peak: oneDNN's convolutions can pass it. A training step counts 3 x the forward's FLOPs (the backward pass
computes gradients for both activations and weights: about twice the forward), the usual convention.

For MST-DeepLabv3+ (and any ``--models``) at ``--tile`` px and ``--batch`` windows, each setting is timed on the
same pre-made batches, interleaved so that a busy machine moves all of them alike:

* ``default``: NCHW, the thread count torch picks;
* ``channels_last``: NHWC weights and inputs (oneDNN's preferred layout);
* ``forward``: the eval-mode forward alone (the ceiling), and the loss and metric update's own share.

    python benchmarks/train_step.py [--models mst_deeplab] [--tile 256] [--batch 8] [--steps 6]
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import torch

from rsseg.metrics import SegmentationMetrics
from rsseg.models.hub import build_model
from rsseg.models.profile import count_gflops
from rsseg.training.speed import apply_to_model, input_layout


def matmul_peak(sizes=(256, 512, 1024, 2048), repeats: int = 3) -> float:
    """The best fp32 GFLOP/s of ``torch.mm`` on ``n x n`` matrices over ``sizes`` (small ones stay in cache)."""
    best_rate = 0.0
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        torch.mm(a, b)
        calls = max(1, int(2e10 / (2 * n**3)))  # about 20 GFLOP per timing
        for _ in range(repeats):
            started = time.perf_counter()
            for _ in range(calls):
                torch.mm(a, b)
            best_rate = max(best_rate, 2 * n**3 * calls / (time.perf_counter() - started) / 1e9)
    return best_rate


def step_seconds(model, batches, channels_last: bool, metrics: SegmentationMetrics | None) -> float:
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-4)
    model.train()
    started = time.perf_counter()
    for image, mask in batches:
        logits = model(input_layout(image, channels_last))
        loss = torch.nn.functional.cross_entropy(logits, mask, ignore_index=255)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        if metrics is not None:
            metrics.update(logits.detach(), mask)
    return (time.perf_counter() - started) / len(batches)


def forward_seconds(model, batches, channels_last: bool) -> float:
    model.eval()
    started = time.perf_counter()
    with torch.inference_mode():
        for image, _ in batches:
            model(input_layout(image, channels_last))
    return (time.perf_counter() - started) / len(batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["mst_deeplab"])
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds per setting (best is kept)")
    args = parser.parse_args()

    peak = matmul_peak()
    print(f"{torch.get_num_threads()} torch threads; fp32 matmul peak {peak:.1f} GFLOP/s (best torch.mm, n 256-2048)")
    generator = torch.Generator().manual_seed(0)
    batches = [(torch.randn(args.batch, 3, args.tile, args.tile, generator=generator),
                torch.randint(0, 6, (args.batch, args.tile, args.tile), generator=generator)) for _ in range(args.steps)]
    print("| model | setting | s/step | GFLOP/s | fraction of peak |\n|---|---|---|---|---|")
    for name in args.models:
        torch.manual_seed(0)
        plain = build_model(name, 6, 3)
        torch.manual_seed(0)
        nhwc = build_model(name, 6, 3)
        apply_to_model(nhwc, channels_last=True, compile_model=False)
        step_flops = 3 * count_gflops(plain, args.tile) * args.batch
        forward_flops = step_flops / 3
        timings: dict[str, list[float]] = {}
        metrics = SegmentationMetrics(6, [f"c{i}" for i in range(6)], 255)
        settings = {
            "default": partial(step_seconds, plain, batches, False, None),
            "default + loss and metrics update": partial(step_seconds, plain, batches, False, metrics),
            "channels_last": partial(step_seconds, nhwc, batches, True, None),
            "forward only (eval)": partial(forward_seconds, plain, batches, False),
            "forward only, channels_last": partial(forward_seconds, nhwc, batches, True),
        }
        for run in settings.values():  # warm-up: allocator, oneDNN primitive caches
            run()
        for _ in range(args.rounds):
            for setting, run in settings.items():
                timings.setdefault(setting, []).append(run())
        for setting, seconds in timings.items():
            best = min(seconds)
            flops = forward_flops if setting.startswith("forward") else step_flops
            print(f"| {name} | {setting} | {best:.3f} | {flops / best:.1f} | {flops / best / peak:.2f} |")


if __name__ == "__main__":
    main()
