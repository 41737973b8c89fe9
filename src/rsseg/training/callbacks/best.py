"""``checkpoints/best.ckpt``: the best checkpoint under a name a user (and the README's ``ckpt=.../best.ckpt``) can
find, beside the descriptive name Lightning gives it (``epoch_004-miou_73.12.ckpt``).

Lightning's ``ModelCheckpoint`` names the best file after its epoch and score, so its name changes with every new
best; ``filename: best`` alone would not do either, since Lightning writes a second ``best-v1.ckpt`` beside one
it did not write in this run, and its write goes through a temporary file elsewhere that is moved (copied,
across file systems) into place. :class:`BestCheckpoint` keeps Lightning's selection and files, and after each
new best makes ``best.ckpt`` the same file, atomically (:func:`rsseg.runtime.files.same_file_as`), so
``best.ckpt`` is always a complete checkpoint: the previous best until the new one is whole.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

from rsseg.runtime.files import same_file_as

BEST = "best.ckpt"


class BestCheckpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` that also keeps the best checkpoint as ``<dirpath>/best.ckpt``."""

    @property
    def best_path(self) -> Path | None:
        """``best.ckpt`` when this run (or the run it continues) saved a best checkpoint, else None."""
        if not self.dirpath or not self.best_model_path:
            return None
        path = Path(self.dirpath) / BEST
        return path if path.is_file() else None

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        super()._save_checkpoint(trainer, filepath)
        if trainer.is_global_zero and filepath == self.best_model_path and Path(filepath).is_file():
            same_file_as(filepath, Path(filepath).with_name(BEST))
