"""Framework overhead: the rsseg Lightning task vs a bare PyTorch loop on the same model and the same batches.

Both loops run in this process, on identical pre-made batches held in memory (no data loading), with the same
model architecture, loss and optimiser, so the ratio isolates what the task adds: Lightning's loop, logging and
the per-step confusion-matrix update. Run: ``python benchmarks/train_overhead.py [--steps N] [--model NAME]``.
"""

from __future__ import annotations

import argparse
import time

import lightning as L
import torch
from hydra.utils import instantiate
from torch.utils.data import DataLoader, Dataset

from rsseg.config import compose_config
from rsseg.models.hub import instantiate_model
from rsseg.training.task import SegmentationTask


class Batches(Dataset):
    def __init__(self, batches: list[dict]) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int) -> dict:
        return self.batches[index]


def make_batches(steps: int, batch: int, size: int, classes: int) -> list[dict]:
    generator = torch.Generator().manual_seed(0)
    return [
        {"image": torch.randn(batch, 3, size, size, generator=generator),
         "mask": torch.randint(0, classes, (batch, size, size), generator=generator)}
        for _ in range(steps)
    ]


def bare_loop(model, loss_fn, optimizer, batches) -> float:
    model.train()
    start = time.perf_counter()
    for batch in batches:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(batch["image"]), batch["mask"])
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


class StepTimer(L.Callback):
    """Times the training batches only (Lightning's set-up and teardown are not per-step costs)."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == 0:
            self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):
        self.seconds = time.perf_counter() - self.start


def task_loop(cfg, batches) -> float:
    torch.manual_seed(0)
    task = SegmentationTask(
        model=instantiate_model(cfg.model), loss=instantiate(cfg.loss), optimizer=instantiate(cfg.optimizer),
        scheduler=instantiate(cfg.scheduler), num_classes=cfg.data.num_classes, class_names=cfg.data.class_names,
    )
    timer = StepTimer()
    trainer = L.Trainer(
        max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, limit_val_batches=0, callbacks=[timer], log_every_n_steps=10,
    )
    # batch_size=None: the dataset already holds whole batches, exactly the ones the bare loop uses.
    trainer.fit(task, train_dataloaders=DataLoader(Batches(batches), batch_size=None, shuffle=False))
    return timer.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--model", default="deeplabv3plus_mobilenetv2")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    cfg = compose_config("train", [f"model={args.model}", "paths.output_dir=.", "paths.cache_dir=."])
    batches = make_batches(args.steps, args.batch, args.size, cfg.data.num_classes)
    bare_times, task_times = [], []
    for _ in range(args.repeats):  # alternate so that drift in machine load hits both loops alike
        torch.manual_seed(0)
        model = instantiate_model(cfg.model)
        bare_times.append(bare_loop(model, instantiate(cfg.loss), instantiate(cfg.optimizer)(params=model.parameters()), batches))
        task_times.append(task_loop(cfg, batches))
    bare, task = min(bare_times), min(task_times)
    print(f"model {args.model}, {args.steps} steps of {args.batch}x3x{args.size}x{args.size}, best of {args.repeats}")
    print(f"{'loop':<22}{'steps/s':>10}{'s/step':>10}")
    print(f"{'bare PyTorch':<22}{args.steps / bare:>10.3f}{bare / args.steps:>10.3f}")
    print(f"{'rsseg task (Lightning)':<22}{args.steps / task:>10.3f}{task / args.steps:>10.3f}")
    print(f"overhead ratio (task / bare time): {task / bare:.3f}x  (goal <= 1.03x)")


if __name__ == "__main__":
    main()
