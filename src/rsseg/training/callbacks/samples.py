"""Prediction images on fixed validation tiles, at every validation: logged to the loggers that take images and
kept for the run folder's ``plots/samples_val.png``."""

from __future__ import annotations

from dataclasses import dataclass

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

from rsseg.data.labels import colour_table
from rsseg.runtime.plots import colourise, stretch


def display_image(image: torch.Tensor, mean, std) -> np.ndarray:
    """A normalised ``[C, H, W]`` input as ``[H, W, 3]`` uint8 for display: the first three bands, de-normalised
    and each stretched between its 2nd and 98th percentiles (:func:`rsseg.runtime.plots.stretch`)."""
    bands = image[:3].float().cpu().numpy()
    mean = np.asarray(list(mean)[: len(bands)], dtype=np.float32).reshape(-1, 1, 1)
    std = np.asarray(list(std)[: len(bands)], dtype=np.float32).reshape(-1, 1, 1)
    raw = bands * std + mean if len(mean) == len(std) == len(bands) else bands
    return (stretch(raw) * 255).astype(np.uint8)


@dataclass
class SampleTiles:
    """The validation tiles of one validation, as shown: display images, labels and the model's prediction."""

    images: np.ndarray  # [N, H, W, 3] uint8
    labels: np.ndarray  # [N, H, W] class indices, the ignore index where unlabelled
    predictions: np.ndarray  # [N, H, W] class indices
    names: list[str]


class ValidationSamples(L.Callback):
    """Image | label | prediction for the first ``num_tiles`` windows of the validation set at the end of every
    validation, so progress can be watched on the same tiles through a run (W&B ``log_image``, TensorBoard
    ``add_image``; other loggers are skipped). The latest validation's tiles stay in :attr:`latest` for the run
    folder's plots. Only rank 0 keeps them; the windows are the same every time because the validation grid is not
    shuffled."""

    def __init__(self, num_tiles: int = 4) -> None:
        self.num_tiles = int(num_tiles)
        self._batch: dict | None = None
        self.latest: SampleTiles | None = None

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if batch_idx == 0 and not trainer.sanity_checking and trainer.is_global_zero and self.num_tiles > 0:
            keep = slice(0, self.num_tiles)
            self._batch = {key: batch[key][keep].detach() for key in ("image", "mask", "scene") if key in batch}

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        batch, self._batch = self._batch, None
        if batch is None:
            return
        self.latest = tiles = self._tiles(trainer, pl_module, batch)
        targets = [lg for lg in trainer.loggers if isinstance(lg, (WandbLogger, TensorBoardLogger))]
        if not targets:
            return
        colours = colour_table(self._data(pl_module).get("palette"), len(pl_module.class_names))
        panels = [np.concatenate([image, colourise(mask, colours), colourise(pred, colours)], axis=1)
                  for image, mask, pred in zip(tiles.images, tiles.labels, tiles.predictions)]
        for logger in targets:
            if isinstance(logger, WandbLogger):
                logger.log_image("val/samples", panels, step=trainer.global_step,
                                 caption=[f"image | label | prediction, tile {i}" for i in range(len(panels))])
            else:
                logger.experiment.add_images("val/samples", np.stack(panels), trainer.global_step, dataformats="NHWC")

    @staticmethod
    def _data(pl_module: L.LightningModule) -> dict:
        return (pl_module.hparams.get("cfg") or {}).get("data", {})

    def _tiles(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: dict) -> SampleTiles:
        with torch.no_grad():
            preds = pl_module(batch["image"]).argmax(1).cpu().numpy()
        data = self._data(pl_module)
        images = np.stack([display_image(image, data.get("mean", []), data.get("std", [])) for image in batch["image"]])
        loader = trainer.val_dataloaders
        scenes = getattr(getattr(loader, "dataset", None), "scenes", None)
        names = [f"tile {i}" for i in range(len(images))]
        if scenes is not None and "scene" in batch:
            names = [f"tile {i}, {scenes[int(s)].name}" if 0 <= int(s) < len(scenes) else names[i]
                     for i, s in enumerate(batch["scene"].tolist())]
        return SampleTiles(images, batch["mask"].cpu().numpy(), preds, names)
