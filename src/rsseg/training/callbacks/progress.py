"""Training progress as a user sees it: Rich's bar on a terminal, one plain line per epoch and per validation
without one.

A bar redrawn in place is what a terminal needs; in a log file, a pipe or a scheduler's output file it becomes
thousands of fragments (Rich wraps it one word per line). :func:`progress_bar` (``callbacks.rich_progress_bar``)
picks :class:`RichBar` when stdout is a terminal and :class:`EpochLines` otherwise. Both write the same lines into
the run's ``train.log``, so the log holds each epoch whichever the terminal showed.
"""

from __future__ import annotations

import sys
import time

import lightning as L
from lightning.pytorch.callbacks import ProgressBar, RichProgressBar

from rsseg.runtime.console import is_terminal, say, to_log_files


def progress_bar(refresh_rate: int = 1, leave: bool = False) -> ProgressBar:
    """:class:`RichBar` (``refresh_rate``, ``leave`` as Lightning's RichProgressBar) on a terminal, else
    :class:`EpochLines`."""
    if is_terminal(sys.stdout):
        return RichBar(refresh_rate=refresh_rate, leave=leave)
    return EpochLines()


class EpochReport:
    """The text of the line of a finished training epoch or validation, from the metrics the task logs for the
    progress bar (``train/loss``, ``val/loss``, ``val/miou``) and the time the stage took (an epoch's time
    without the validations run inside it)."""

    def __init__(self) -> None:
        self._started: dict[str, float] = {}
        self._validating = 0.0  # seconds of validation inside the current training epoch

    def start(self, stage: str) -> None:
        self._started[stage] = time.perf_counter()
        if stage == "train":
            self._validating = 0.0

    def _elapsed(self, stage: str) -> float:
        return time.perf_counter() - self._started.get(stage, time.perf_counter())

    def _seconds(self, stage: str) -> str:
        return f"{self._elapsed(stage) - (self._validating if stage == 'train' else 0.0):.1f} s"

    @staticmethod
    def _epoch(trainer: L.Trainer) -> str:
        limit = trainer.max_epochs
        return f"epoch {trainer.current_epoch + 1}/{limit}" if limit and limit > 0 else \
            f"epoch {trainer.current_epoch + 1}"

    @staticmethod
    def _metrics(trainer: L.Trainer, prefix: str) -> str:
        shown = []
        for name, value in trainer.progress_bar_metrics.items():
            if name.startswith(prefix) and not name.endswith("_step"):
                digits = 2 if name.endswith("%") else 4  # percent as the tables print it, losses to 4 places
                shown.append(f"{name.removesuffix('_epoch')} {float(value):.{digits}f}")
        return ", ".join(shown)

    def train_line(self, trainer: L.Trainer) -> str:
        metrics = self._metrics(trainer, "train/")
        return (f"{self._epoch(trainer)} trained: step {trainer.global_step}{', ' + metrics if metrics else ''} "
                f"({self._seconds('train')})")

    def validation_line(self, trainer: L.Trainer) -> str:
        self._validating += self._elapsed("val")
        metrics = self._metrics(trainer, "val/")
        return f"{self._epoch(trainer)} validated: {metrics or 'no metrics'} ({self._seconds('val')})"


def _reported_validation(trainer: L.Trainer) -> bool:
    """A validation inside fitting (the sanity check and the re-validation of the best checkpoint have their own
    reports)."""
    return trainer.state.fn == "fit" and not trainer.sanity_checking


class EpochLines(ProgressBar):
    """Without a terminal: one line per training epoch and one per validation, on stdout and in ``train.log``."""

    def __init__(self) -> None:
        super().__init__()
        self._enabled = True
        self.report = EpochReport()

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.report.start("train")

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self._enabled:
            say(self.report.train_line(trainer))

    def on_validation_start(self, trainer, pl_module) -> None:
        self.report.start("val")

    def on_validation_end(self, trainer, pl_module) -> None:
        if self._enabled and _reported_validation(trainer):
            say(self.report.validation_line(trainer))


class RichBar(RichProgressBar):
    """Lightning's Rich bar, which also writes each epoch's and validation's line into ``train.log``."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.report = EpochReport()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        self.report.start("train")

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if trainer.is_global_zero:
            to_log_files(self.report.train_line(trainer))

    def on_validation_start(self, trainer, pl_module) -> None:
        super().on_validation_start(trainer, pl_module)
        self.report.start("val")

    def on_validation_end(self, trainer, pl_module) -> None:
        super().on_validation_end(trainer, pl_module)
        if trainer.is_global_zero and _reported_validation(trainer):
            to_log_files(self.report.validation_line(trainer))
