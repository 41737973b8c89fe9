"""Stop training at the first non-finite loss, before it reaches the weights, naming the windows at fault.

A NaN or infinite loss poisons every weight through the next optimiser step and every checkpoint after it; the
run then goes on for hours producing a model that predicts one class. :class:`StopOnNonFiniteLoss` checks the
loss before the backward pass, so the weights and the last checkpoint (``checkpoints/last.ckpt``) stay those of
the last good step, and stops the run with the step and the training windows (file, row, col) of the batch.
Lightning's ``detect_anomaly`` finds the operation instead, at a large cost on every step.
"""

from __future__ import annotations

import lightning as L
import torch

from rsseg.errors import RssegError
from rsseg.training.callbacks.resume import LastCheckpoint


class NonFiniteLoss(RssegError):
    """The training loss was NaN or infinite."""


class StopOnNonFiniteLoss(L.Callback):
    """Raises :class:`NonFiniteLoss` (exit status 2) at the first non-finite training loss."""

    def __init__(self, max_windows: int = 8) -> None:
        self.max_windows = int(max_windows)
        self._batch: dict | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        self._batch = batch

    def on_before_backward(self, trainer, pl_module, loss: torch.Tensor) -> None:
        if bool(torch.isfinite(loss.detach()).all()):
            return
        windows = self.windows(trainer, self._batch)
        shown = "; ".join(windows[: self.max_windows])
        more = f" and {len(windows) - self.max_windows} more" if len(windows) > self.max_windows else ""
        last = next((c.path for c in trainer.callbacks if isinstance(c, LastCheckpoint)), None)
        kept = f"the last good checkpoint is {last}" if last and last.exists() else "no checkpoint was written yet"
        raise NonFiniteLoss(
            f"training loss is {float(loss.detach()):g} at step {trainer.global_step} (epoch {trainer.current_epoch}, "
            f"batch {trainer.fit_loop.epoch_loop.batch_idx}); windows of the batch: {shown or 'unknown'}{more}; "
            f"{kept}; expected finite inputs and a stable learning rate (check these windows, lower optimizer.lr)"
        )

    @staticmethod
    def windows(trainer, batch: dict | None) -> list[str]:
        """``file (row r, col c)`` of every window of a training batch, in raster pixels."""
        if not batch or "index" not in batch:
            return []
        dataset = getattr(getattr(trainer, "datamodule", None), "train_set", None)
        if dataset is None or not hasattr(dataset, "window"):
            return []
        images = batch.get("image")
        found = []
        for position, index in enumerate(batch["index"].tolist()):
            scene_index, window = dataset.window(int(index))
            scene = dataset.scenes[scene_index]
            row0, col0 = (scene.window[0], scene.window[1]) if scene.window else (0, 0)
            bad = images is not None and not bool(torch.isfinite(images[position]).all())
            found.append(f"{scene.image} (row {row0 + int(window.row_off)}, col {col0 + int(window.col_off)}"
                         f"{', non-finite pixels' if bad else ''})")
        return found
