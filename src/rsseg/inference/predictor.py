"""Running a model on batches of raw tiles: the device, autocast precision, test-time augmentation, normalisation
and the class probabilities that the engine blends."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from rsseg.config.schema import PRECISIONS, TTAS
from rsseg.errors import ConfigError

if TYPE_CHECKING:
    from rsseg.inference.model import TrainedModel


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(str(device))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={device} but CUDA is not available here; use device=cpu or device=auto")
    return device


def resolve_precision(precision: str | int | None, device: torch.device) -> torch.dtype | None:
    """The autocast dtype (``None``: full float32). ``auto``: bf16 on a GPU that supports it, else float32."""
    precision = "auto" if precision is None else str(precision)
    if precision not in PRECISIONS:
        raise ConfigError(f"precision={precision!r}; expected one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return None
    if precision == "32":
        return None
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("precision=fp16 needs a CUDA device; use precision=bf16 or 32 on CPU")
    return torch.bfloat16 if precision == "bf16" else torch.float16


def _tta_transforms(mode: str) -> list[tuple[Callable, Callable]]:
    """(forward, inverse) pairs on ``[B, C, H, W]`` tensors: identity; flips; or the eight dihedral maps (d4)."""
    if mode not in TTAS:
        raise ConfigError(f"tta={mode!r}; expected one of {', '.join(TTAS)}")
    identity = (lambda t: t, lambda t: t)
    if mode == "none":
        return [identity]
    if mode == "flip":
        return [identity, (lambda t: t.flip(-1), lambda t: t.flip(-1)), (lambda t: t.flip(-2), lambda t: t.flip(-2))]
    pairs = []
    for flip in (False, True):
        for k in range(4):
            def forward(t, k=k, flip=flip):
                return torch.rot90(t.flip(-1) if flip else t, k, (-2, -1))

            def inverse(t, k=k, flip=flip):
                t = torch.rot90(t, -k, (-2, -1))
                return t.flip(-1) if flip else t

            pairs.append((forward, inverse))
    return pairs


class TilePredictor:
    """Turns batches of raw tiles ``[B, bands, T, T]`` (any numeric dtype) into class probabilities.

    Normalisation ``(raw - mean) / std`` happens on the model's device; nodata pixels become 0 after it. The
    model returns logits ``[B, K, T, T]`` (or ``{"out": logits}``); probabilities are the softmax in float32,
    averaged over the test-time augmentations.
    """

    def __init__(
        self,
        model: nn.Module,
        mean: Sequence[float],
        std: Sequence[float],
        num_classes: int,
        device: str | torch.device | None = "cpu",
        precision: str | None = "32",
        tta: str = "none",
        batch_size: int = 8,
    ) -> None:
        if len(mean) != len(std):
            raise ConfigError(f"mean has {len(mean)} values but std has {len(std)}")
        if not 1 <= int(num_classes) <= 255:
            raise ConfigError(f"num_classes={num_classes}: class rasters are uint8 with 255 as nodata (1..255)")
        if int(batch_size) < 1:
            raise ConfigError(f"batch_size={batch_size} must be >= 1")
        self.device = resolve_device(device)
        self.autocast_dtype = resolve_precision(precision, self.device)
        self.model = model.to(self.device).eval()
        self.mean = torch.tensor(list(mean), dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        self.std = torch.tensor(list(std), dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        self.num_classes = int(num_classes)
        self.in_channels = len(mean)
        self.tta = _tta_transforms(tta)
        self.batch_size = int(batch_size)
        self.forward_calls = 0

    def normalise(self, raw: torch.Tensor, nodata: torch.Tensor | None = None) -> torch.Tensor:
        x = (raw.to(self.device, torch.float32) - self.mean) / self.std
        if nodata is not None:
            x.masked_fill_(nodata.to(self.device).unsqueeze(1), 0.0)
        return x

    @torch.inference_mode()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
            out = self.model(x)
        self.forward_calls += 1
        out = out["out"] if isinstance(out, dict) else out
        if out.shape[0] != x.shape[0] or out.shape[1] != self.num_classes or out.shape[-2:] != x.shape[-2:]:
            raise ConfigError(
                f"the model returned {tuple(out.shape)} for input {tuple(x.shape)}; expected logits "
                f"[{x.shape[0]}, {self.num_classes}, {x.shape[-2]}, {x.shape[-1]}] (try a tile_size the model "
                f"accepts, e.g. a multiple of 32)"
            )
        return out

    @torch.inference_mode()
    def probabilities(self, raw: torch.Tensor, nodata: torch.Tensor | None = None) -> torch.Tensor:
        x = self.normalise(raw, nodata)
        total = None
        for forward, inverse in self.tta:
            probs = inverse(self.logits(forward(x)).float().softmax(1))
            total = probs if total is None else total.add_(probs)
        if len(self.tta) > 1:
            total.div_(len(self.tta))
        return total


def build_predictor(trained: TrainedModel, cfg) -> TilePredictor:
    """The tile predictor that ``rsseg predict`` and ``rsseg eval`` run: the model's network on ``cfg.device``
    (``auto``: a GPU when there is one), with ``cfg``'s precision, test-time augmentation, batch size and CPU
    threads."""
    device = resolve_device(cfg.get("device", "auto"))
    if cfg.get("num_threads"):
        torch.set_num_threads(int(cfg.num_threads))
    return TilePredictor(trained.network(), trained.mean, trained.std, trained.num_classes, device,
                         cfg.get("precision", "auto"), cfg.get("tta", "none"), int(cfg.get("batch_size", 8)))
