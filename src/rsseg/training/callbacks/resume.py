"""Checkpoints a killed or pre-empted run continues from (``resume=auto`` / ``resume=<path>``, see rsseg.training.resume).

* :class:`LastCheckpoint` writes ``checkpoints/last.ckpt`` every ``every_n_steps`` optimiser steps and at the end
  of every epoch, atomically: the checkpoint is written under a temporary name beside it and renamed over the
  previous one, so a run killed at any instant (SIGKILL, a node failure) leaves the previous complete checkpoint.
  Lightning's ``ModelCheckpoint`` cannot do both (its step and epoch triggers are mutually exclusive) and its own
  saves go through a temporary file elsewhere, moved across file systems.
* :class:`Preemption` turns SIGTERM (a scheduler's pre-emption or time limit) and a first Ctrl-C into a clean
  stop: the step in progress finishes, ``last.ckpt`` is written, and the run exits with status 130 and a line
  naming the checkpoint. A second Ctrl-C stops at once.

A checkpoint written in the middle of an epoch resumes in the middle of it: the training DataLoader is resumable
(:class:`rsseg.data.resumable.ResumableLoader`), so the windows not yet seen in that epoch are the ones read next.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import lightning as L

from rsseg.errors import Interrupted
from rsseg.runtime.files import replaced_when_complete

LAST = "last.ckpt"


def save_atomically(trainer: L.Trainer, path: Path) -> None:
    """``trainer.save_checkpoint`` into a temporary file beside ``path``, renamed over it once complete."""
    if not trainer.is_global_zero:
        trainer.save_checkpoint(path, weights_only=False)  # a collective under DDP: ranks above 0 take part, rank 0 writes
        return
    with replaced_when_complete(path) as tmp:
        trainer.save_checkpoint(tmp, weights_only=False)
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())


class LastCheckpoint(L.Callback):
    """Writes ``<dirpath>/last.ckpt`` every ``every_n_steps`` optimiser steps and at each epoch's end."""

    def __init__(self, dirpath: str, every_n_steps: int = 100) -> None:
        if int(every_n_steps) < 1:
            from rsseg.errors import ConfigError

            raise ConfigError(f"callbacks.last_checkpoint.every_n_steps={every_n_steps}: below the minimum 1; "
                              f"expected a step count >= 1")
        self.path = Path(dirpath) / LAST
        self.every_n_steps = int(every_n_steps)
        self.saved_step = -1

    @property
    def state_key(self) -> str:
        return "LastCheckpoint"

    def save(self, trainer: L.Trainer) -> Path:
        if trainer.global_step != self.saved_step or not self.path.exists():
            save_atomically(trainer, self.path)
            self.saved_step = trainer.global_step
        return self.path

    def on_fit_start(self, trainer, pl_module) -> None:
        # A run killed while writing leaves its temporary behind; the complete checkpoint beside it is intact.
        if trainer.is_global_zero:
            for leftover in self.path.parent.glob(f".{LAST}.*.partial"):
                leftover.unlink(missing_ok=True)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        step = trainer.global_step
        if step > 0 and step % self.every_n_steps == 0 and step != self.saved_step:
            self.save(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self.save(trainer)


class Preemption(L.Callback):
    """SIGTERM or a first Ctrl-C: finish the step, write ``last.ckpt`` (through :class:`LastCheckpoint` when the
    run has one, else into ``dirpath``), stop with :class:`~rsseg.errors.Interrupted` (exit status 130)."""

    def __init__(self, dirpath: str) -> None:
        self.path = Path(dirpath) / LAST
        self.requested: str | None = None
        self._previous: dict[int, object] = {}

    def _request(self, signum, frame) -> None:
        if signum == signal.SIGINT and self.requested:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        self.requested = signal.Signals(signum).name

    def on_fit_start(self, trainer, pl_module) -> None:
        # SIGTERM: Lightning's own handler sets trainer.received_sigterm (and tells the other DDP ranks), read
        # after each step below. Ctrl-C would interrupt the step wherever it is, so it gets a handler here.
        self.requested = None
        if threading.current_thread() is threading.main_thread():
            self._previous[signal.SIGINT] = signal.signal(signal.SIGINT, self._request)

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _save(self, trainer: L.Trainer) -> Path:
        last = next((c for c in trainer.callbacks if isinstance(c, LastCheckpoint)), None)
        if last is not None:
            return last.save(trainer)
        save_atomically(trainer, self.path)
        return self.path

    @staticmethod
    def _stopped(signame: str, trainer: L.Trainer, path: Path) -> str:
        # The epoch of the last step: Lightning's current_epoch already counts an epoch whose end it stopped at.
        epoch = max(trainer.fit_loop.epoch_progress.current.started - 1, 0)
        return (f"{signame} at step {trainer.global_step} (epoch {epoch}); saved {path}; continue with the same "
                f"command and resume=auto (or resume={path})")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if self.requested or getattr(trainer, "received_sigterm", False):
            signame = self.requested or "SIGTERM"
            path = self._save(trainer)
            self._restore()
            raise Interrupted(self._stopped(signame, trainer, path))

    def on_fit_end(self, trainer, pl_module) -> None:
        self._restore()

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        # SIGTERM during validation, or after this callback's check of a step: Lightning stops there (the
        # checkpoint restarts an interrupted validation).
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        self._restore()
        if isinstance(exception, SIGTERMException) and trainer.global_step > 0:
            exception.add_note(self._stopped("SIGTERM", trainer, self._save(trainer)))
