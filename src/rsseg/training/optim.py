"""Learning-rate schedules stepped once per optimisation step, each a ``LambdaLR`` over the run's length.

Every factory takes ``(optimizer, total_steps, ...)`` so the task can build any of them the same way once
Lightning knows how many steps the run has. A warm-up is given in steps (``warmup_steps``) or as a share of the
run (``warmup_fraction``, which keeps a paper's schedule in shape when the run is shortened).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def _warmed_up(optimizer: Optimizer, total_steps: int, warmup_steps: int, warmup_fraction: float | None,
               start_factor: float, decay: Callable[[float], float]) -> LambdaLR:
    """A linear warm-up from ``start_factor`` to 1, then ``decay(progress)`` over the rest of the run
    (``progress`` from 0 to 1)."""
    if warmup_fraction is not None:
        warmup_steps = int(round(float(warmup_fraction) * total_steps))
    warmup_steps = int(warmup_steps)

    def factor(step: int) -> float:
        if warmup_steps > 0 and step < warmup_steps:
            return start_factor + (1 - start_factor) * step / warmup_steps
        return decay(min((step - warmup_steps) / max(total_steps - warmup_steps, 1), 1.0))

    return LambdaLR(optimizer, factor)


def poly(optimizer: Optimizer, total_steps: int, power: float = 0.9, warmup_steps: int = 0,
         warmup_start_factor: float = 0.1, min_factor: float = 0.0, warmup_fraction: float | None = None) -> LambdaLR:
    """``lr * (1 - t/T) ** power``, the DeepLab schedule (seed 001 decays SGD 0.007 this way)."""
    return _warmed_up(optimizer, total_steps, warmup_steps, warmup_fraction, warmup_start_factor,
                      lambda progress: max((1 - progress) ** power, min_factor))


def cosine(optimizer: Optimizer, total_steps: int, warmup_steps: int = 0, warmup_start_factor: float = 0.1,
           min_factor: float = 0.01, warmup_fraction: float | None = None) -> LambdaLR:
    """Linear warm-up then cosine decay to ``min_factor * lr``."""
    return _warmed_up(optimizer, total_steps, warmup_steps, warmup_fraction, warmup_start_factor,
                      lambda progress: min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * progress)))


def step(optimizer: Optimizer, total_steps: int, milestones: Sequence[float] = (0.5, 0.75), gamma: float = 0.1) -> LambdaLR:
    """Multiply the lr by ``gamma`` at each milestone, given as fractions of the run."""
    boundaries = [int(m * total_steps) for m in milestones]

    def factor(current: int) -> float:
        return gamma ** sum(current >= b for b in boundaries)

    return LambdaLR(optimizer, factor)


def constant(optimizer: Optimizer, total_steps: int) -> LambdaLR:
    """No schedule."""
    return LambdaLR(optimizer, lambda _: 1.0)
