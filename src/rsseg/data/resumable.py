"""Training that resumes mid-epoch exactly where it stopped, and randomness that does not depend on history.

Lightning restarts a resumed epoch's data from its first batch while counting on from the saved batch, so the
resumed epoch would train on windows it had already seen. The datamodule stores :func:`training_position` in
every checkpoint (its ``state_dict``) and gets it back before the training DataLoader is built;
:func:`resume_sampler` then starts the :class:`~rsseg.data.dataset.RandomWindowSampler` after the batches
already done. Since a window is a pure function of ``(seed, index)``, the resumed run reads exactly the windows
the uninterrupted one would have.

The other random draws of a training step (per-window augmentation, RICAP, dropout) would depend on everything
drawn before them in the process, which a resumed run does not replay. So they are seeded from their position
instead: a window's augmentation from ``(seed, window index)`` (:func:`window_generator_seed`, in
:class:`~rsseg.data.device.DeviceBatch`), a batch's RICAP and dropout from ``(seed, batch number, rank)`` (:func:`seed_batch`).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch


def window_generator_seed(seed: int, index: int) -> int:
    """The seed of window ``index``'s augmentation (independent of the seed its position is drawn from)."""
    return int(np.random.SeedSequence([int(seed), int(index), 1]).generate_state(1)[0])


def seed_batch(seed: int, trainer) -> None:
    """Seed torch's generators for the training batch about to run, from the run's seed, the number of batches
    started before it (restored with the checkpoint) and the DDP rank."""
    loop = getattr(trainer, "fit_loop", None)
    if loop is None:  # batches transferred outside a Trainer's fit
        return
    started = loop.epoch_loop.batch_progress.total.ready
    state = np.random.SeedSequence([int(seed), int(started), int(trainer.global_rank), 2]).generate_state(1)[0]
    torch.manual_seed(int(state))


def training_position(trainer) -> dict:
    """Where training is in its epoch: ``{"epoch", "batches" done in it, "complete"}`` (the datamodule stores it
    in every checkpoint)."""
    done = int(trainer.fit_loop.epoch_loop.batch_progress.current.processed)
    return {"epoch": int(trainer.current_epoch), "batches": done, "complete": done >= trainer.num_training_batches}


def resume_sampler(sampler, position: dict | None, batch_size: int) -> None:
    """Start ``sampler`` (a RandomWindowSampler) where a checkpoint's ``position`` left its epoch: the next
    epoch when that one was complete, else the same epoch after the batches already trained on."""
    if not position:
        return
    # Lightning reads a DataLoader's own state too late for this loader (after estimating the schedule's
    # length has started it); it warns that the loader is not resumable, which this datamodule makes moot.
    warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch")
    if position.get("complete"):
        sampler.set_epoch(int(position["epoch"]) + 1)
    else:
        sampler.set_epoch(int(position["epoch"]))
        sampler.skip_next(int(position["batches"]) * int(batch_size))
