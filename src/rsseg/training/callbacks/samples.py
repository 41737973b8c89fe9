"""Prediction images on fixed validation tiles, logged at every validation to the loggers that take images."""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

from rsseg.data.labels import colour_table


def colourise(classes: np.ndarray, palette, num_classes: int) -> np.ndarray:
    """``[H, W]`` class indices (255: ignored) as ``[H, W, 3]`` uint8 colours of the dataset's palette."""
    lookup = np.zeros((256, 3), dtype=np.uint8)
    for index, colour in colour_table(palette, num_classes).items():
        lookup[index] = colour[:3]
    return lookup[classes.astype(np.uint8)]


def display_image(image: torch.Tensor, mean, std) -> np.ndarray:
    """A normalised ``[C, H, W]`` input as ``[H, W, 3]`` uint8 for display: the first three bands, de-normalised
    and stretched between their 2nd and 98th percentiles (a 16-bit or NIR band would be dark or white otherwise)."""
    bands = image[:3].float().cpu().numpy()
    if bands.shape[0] < 3:
        bands = np.repeat(bands[:1], 3, axis=0)
    mean = np.asarray(list(mean)[: bands.shape[0]] or [0.0], dtype=np.float32).reshape(-1, 1, 1)
    std = np.asarray(list(std)[: bands.shape[0]] or [1.0], dtype=np.float32).reshape(-1, 1, 1)
    raw = bands * std[: len(bands)] + mean[: len(bands)] if len(mean) == len(bands) else bands
    low, high = np.percentile(raw, 2), np.percentile(raw, 98)
    scaled = np.clip((raw - low) / max(high - low, 1e-6), 0, 1)
    return (scaled.transpose(1, 2, 0) * 255).astype(np.uint8)


class ValidationSamples(L.Callback):
    """Logs image | label | prediction for the first ``num_tiles`` windows of the validation set at the end of
    every validation, so progress can be watched on the same tiles through a run (W&B ``log_image``,
    TensorBoard ``add_image``; other loggers are skipped). Only rank 0 logs; the windows are the same every time
    because the validation grid is not shuffled."""

    def __init__(self, num_tiles: int = 4) -> None:
        self.num_tiles = int(num_tiles)
        self._batch: dict | None = None

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if batch_idx == 0 and not trainer.sanity_checking and trainer.is_global_zero:
            keep = slice(0, self.num_tiles)
            self._batch = {"image": batch["image"][keep].detach(), "mask": batch["mask"][keep].detach()}

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        batch, self._batch = self._batch, None
        targets = [lg for lg in trainer.loggers if isinstance(lg, (WandbLogger, TensorBoardLogger))]
        if batch is None or not targets:
            return
        with torch.no_grad():
            preds = pl_module(batch["image"]).argmax(1).cpu().numpy()
        data = (pl_module.hparams.get("cfg") or {}).get("data", {})
        palette, k = data.get("palette"), len(pl_module.class_names)
        panels = []
        for image, mask, pred in zip(batch["image"], batch["mask"].cpu().numpy(), preds):
            shown = display_image(image, data.get("mean", []), data.get("std", []))
            panels.append(np.concatenate([shown, colourise(mask, palette, k), colourise(pred, palette, k)], axis=1))
        for logger in targets:
            if isinstance(logger, WandbLogger):
                logger.log_image("val/samples", panels, step=trainer.global_step,
                                 caption=[f"image | label | prediction, tile {i}" for i in range(len(panels))])
            else:
                logger.experiment.add_images("val/samples", np.stack(panels), trainer.global_step, dataformats="NHWC")
