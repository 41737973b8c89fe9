"""The LightningModule that trains and evaluates any segmentation ``nn.Module`` built from ``conf/model``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from rsseg.errors import ConfigError
from rsseg.metrics import flatten_for_logging
from rsseg.metrics.accumulators import SceneConfusion, SegmentationMetrics, argmax_classes
from rsseg.training.speed import apply_to_model, input_layout

STAGES = ("train", "val", "test")


class SegmentationTask(L.LightningModule):
    """Loss, optimisation, confusion-matrix metrics and logging around a segmentation network.

    The network returns logits ``[B, C, H, W]``; a network with an auxiliary head (PSPNet) returns
    ``{"out": logits, "aux": aux_logits}`` in training and carries the auxiliary loss weight as ``aux_weight``.
    The run's resolved config is stored in every checkpoint (``hyper_parameters["cfg"]``) so a checkpoint alone
    rebuilds the model, its normalisation and its classes (see :func:`rsseg.models.checkpoint.load_model_from_checkpoint`).

    Validation and test keep, beside the stage's confusion matrix, one matrix per scene of the split (when the
    batches carry a ``"scene"`` index): ``stage_scenes[stage]`` lists ``{"name", "confusion"}`` per scene.

    ``channels_last`` and ``compile_model`` are the run's speed settings (:mod:`rsseg.training.speed`).
    """

    def __init__(
        self,
        model: nn.Module,
        loss: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None,
        num_classes: int,
        class_names: Sequence[str],
        ignore_index: int = 255,
        exclude_from_mean: Sequence[str] = (),
        cfg: dict | None = None,
        channels_last: bool = False,
        compile_model: bool = False,
    ) -> None:
        super().__init__()
        self.channels_last, self.compile_model = bool(channels_last), bool(compile_model)
        self.model = model
        self.loss = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.class_names = list(class_names)
        # "train" cannot be a ModuleDict key (it would shadow nn.Module.train), hence the suffix.
        self.metrics = nn.ModuleDict(
            {f"{stage}_metrics": SegmentationMetrics(num_classes, class_names, ignore_index, exclude_from_mean)
             for stage in STAGES}
        )
        self.ignore_index = ignore_index
        self.scene_metrics = nn.ModuleDict()
        self._scene_names: dict[str, list[str]] = {}
        self.stage_results: dict[str, dict] = {}
        self.stage_scenes: dict[str, list[dict]] = {}
        self.save_hyperparameters({"cfg": cfg or {}})

    def configure_model(self) -> None:
        apply_to_model(self.model, self.channels_last, self.compile_model)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        output = self.model(input_layout(image, self.channels_last))
        return output["out"] if isinstance(output, dict) else output

    def _loss(self, output: torch.Tensor | dict, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(output, dict):
            return self.loss(output, mask), output
        logits = output["out"]
        loss = self.loss(logits, mask)
        aux = output.get("aux")
        if aux is not None:
            if aux.shape[-2:] != mask.shape[-2:]:
                aux = F.interpolate(aux, size=mask.shape[-2:], mode="bilinear", align_corners=False)
            loss = loss + float(getattr(self.model, "aux_weight", 0.4)) * self.loss(aux, mask)
        return loss, logits

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss, logits = self._loss(self.model(input_layout(batch["image"], self.channels_last)), batch["mask"])
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(logits))
        self.metrics["train_metrics"].update(logits.detach(), batch["mask"])
        return loss

    def _evaluate(self, batch: dict, stage: str) -> None:
        logits = self(batch["image"])
        mask = batch["mask"]
        if bool((mask != self.ignore_index).any()):  # a batch of DDP padding windows has no loss
            loss = self.loss(logits, mask)
            self.log(f"{stage}/loss", loss, on_epoch=True, prog_bar=stage == "val", batch_size=len(logits),
                     sync_dist=True)
        preds = argmax_classes(logits)
        self.metrics[f"{stage}_metrics"].update(preds, mask)
        if stage in self.scene_metrics and "scene" in batch:
            self.scene_metrics[stage].update(preds, mask, batch["scene"])

    def _open_scene_metric(self, stage: str, loaders) -> None:
        """A per-scene confusion metric sized to the scenes of the split being evaluated."""
        loader = loaders[0] if isinstance(loaders, (list, tuple)) else loaders
        scenes = getattr(getattr(loader, "dataset", None), "scenes", None)
        if scenes is None:
            self.scene_metrics.pop(stage, None)
            return
        self.scene_metrics[stage] = SceneConfusion(len(scenes), len(self.class_names), self.ignore_index).to(self.device)
        self._scene_names[stage] = [scene.name for scene in scenes]

    def on_validation_epoch_start(self) -> None:
        self._open_scene_metric("val", self.trainer.val_dataloaders)

    def on_test_epoch_start(self) -> None:
        self._open_scene_metric("test", self.trainer.test_dataloaders)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def _close_stage(self, stage: str) -> None:
        metric = self.metrics[f"{stage}_metrics"]
        if not metric.update_called:
            return
        result = metric.compute()
        metric.reset()
        scenes = None
        if stage in self.scene_metrics:
            confusions = self.scene_metrics[stage].compute().tolist()
            scenes = [{"name": name, "confusion": matrix} for name, matrix in zip(self._scene_names[stage], confusions)]
            self.scene_metrics[stage].reset()
        if self.trainer.sanity_checking:
            return
        self.stage_results[stage] = result
        if scenes is not None:
            self.stage_scenes[stage] = scenes
        flat = flatten_for_logging(result, stage)
        self.log(f"{stage}/miou", flat.pop(f"{stage}/miou"), prog_bar=stage == "val", sync_dist=True)
        # Every rank holds the same synchronised matrix, so the mean over ranks changes nothing; it keeps the values
        # identical wherever a callback reads them.
        self.log_dict({k: v for k, v in flat.items() if v == v}, sync_dist=True)

    def on_train_epoch_end(self) -> None:
        self._close_stage("train")

    def on_validation_epoch_end(self) -> None:
        self._close_stage("val")

    def on_test_epoch_end(self) -> None:
        self._close_stage("test")

    def configure_optimizers(self) -> dict:
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return {"optimizer": optimizer}
        scheduler = self.scheduler_factory(optimizer, total_steps=int(self.trainer.estimated_stepping_batches))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def check_class_count(model: nn.Module, num_classes: int, in_channels: int, model_name: str = "model") -> None:
    """Refuse a model whose output class count differs from the dataset's, before any training step."""
    declared = getattr(model, "num_classes", None)
    if declared is None:
        was_training = model.training
        model.eval()
        with torch.no_grad():
            output = model(torch.zeros(1, in_channels, 64, 64))
        model.train(was_training)
        declared = (output["out"] if isinstance(output, dict) else output).shape[1]
    if int(declared) != int(num_classes):
        raise ConfigError(
            f"{model_name} predicts {declared} classes but data.num_classes={num_classes}; "
            f"set model.num_classes to {num_classes} or use the dataset the model was made for"
        )
