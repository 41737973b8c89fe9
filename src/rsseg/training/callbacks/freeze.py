"""Transfer-learning schedule: train with a frozen encoder first, then fine-tune everything.

The MST-DeepLabv3+ recipe (Wang et al. 2024, following bubbliiiing's ``train.py``) trains 50 epochs with the
ImageNet encoder frozen and 50 more with it unfrozen:

    python train.py model=mst_deeplab trainer.max_epochs=100 'callbacks=[default,freeze_encoder]'

bubbliiiing also changes the batch size between the phases (8 frozen, 4 unfrozen). A Lightning run cannot
change its dataloader's batch size cleanly mid-fit, so that is done as two runs: the frozen phase with
``trainer.max_epochs=50 data.batch_size=8`` and the callback, then the unfrozen phase resumed from its last
checkpoint with ``ckpt_path=<last.ckpt> trainer.max_epochs=100 data.batch_size=4`` (the callback, if still
given, sees epochs >= 50 and leaves the encoder trainable).
"""

from __future__ import annotations

import logging

import lightning as L
from torch import nn

from rsseg.errors import ConfigError

log = logging.getLogger(__name__)


def _encoder_of(pl_module: L.LightningModule) -> nn.Module:
    model = getattr(pl_module, "model", pl_module)
    encoder = getattr(model, "encoder", None)
    if not isinstance(encoder, nn.Module):
        raise AttributeError(f"{type(model).__name__} has no .encoder module to freeze")
    return encoder


def set_encoder_frozen(encoder: nn.Module, frozen: bool) -> None:
    """Freeze (no gradients, BatchNorm statistics fixed in eval mode) or unfreeze an encoder."""
    for param in encoder.parameters():
        param.requires_grad_(not frozen)
    for module in encoder.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.train(not frozen and encoder.training)


class FreezeEncoder(L.Callback):
    """Freeze ``pl_module.model.encoder`` for the first ``epochs`` epochs, then unfreeze it.

    ``fraction`` instead of ``epochs`` gives the frozen part as a share of ``trainer.max_epochs`` (the paper's 50 of
    100 epochs is ``fraction=0.5``), so the schedule keeps its shape when a run is shortened (``scale=cpu``).

    Frozen means ``requires_grad=False`` on every encoder parameter and its BatchNorm layers in eval mode
    (their running statistics stay the pretrained ones); the mode is re-applied at every training batch,
    because Lightning puts the whole module back in training mode after each validation. On unfreezing,
    ``unfreeze_lr`` (if given) becomes the learning rate (and base learning rate of the schedulers) of every
    optimizer parameter group.
    """

    def __init__(self, epochs: int | None = None, unfreeze_lr: float | None = None, fraction: float | None = None) -> None:
        super().__init__()
        if (epochs is None) == (fraction is None):
            raise ConfigError(
                f"callbacks.freeze_encoder: give epochs or fraction, not both nor neither (epochs={epochs}, "
                f"fraction={fraction})"
            )
        if fraction is not None and not 0.0 <= float(fraction) <= 1.0:
            raise ConfigError(f"callbacks.freeze_encoder.fraction={fraction}; expected a share of the epochs in [0, 1]")
        self.epochs = None if epochs is None else int(epochs)
        self.fraction = None if fraction is None else float(fraction)
        self.unfreeze_lr = unfreeze_lr
        self.frozen = False

    def _frozen_now(self, trainer: L.Trainer) -> bool:
        return trainer.current_epoch < self.frozen_epochs(trainer)

    def frozen_epochs(self, trainer: L.Trainer) -> int:
        if self.epochs is not None:
            return self.epochs
        max_epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else 0
        return round(self.fraction * max_epochs)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._frozen_now(trainer):
            set_encoder_frozen(_encoder_of(pl_module), True)
            self.frozen = True
            log.info("encoder frozen for epochs 0-%d", self.frozen_epochs(trainer) - 1)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        encoder = _encoder_of(pl_module)
        if self._frozen_now(trainer):
            set_encoder_frozen(encoder, True)
            self.frozen = True
        elif self.frozen:
            set_encoder_frozen(encoder, False)
            self.frozen = False
            self._set_lr(trainer)
            log.info("encoder unfrozen at epoch %d", trainer.current_epoch)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.frozen:
            set_encoder_frozen(_encoder_of(pl_module), True)

    def _set_lr(self, trainer: L.Trainer) -> None:
        if self.unfreeze_lr is None:
            return
        lr = float(self.unfreeze_lr)
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = lr
                group["initial_lr"] = lr
        for config in trainer.lr_scheduler_configs:
            scheduler = config.scheduler
            if hasattr(scheduler, "base_lrs"):
                scheduler.base_lrs = [lr for _ in scheduler.base_lrs]
