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


def _identity(t: torch.Tensor) -> torch.Tensor:
    return t


def _tta_transforms(mode: str) -> list[tuple[Callable, Callable]]:
    """(forward, inverse) pairs on ``[B, C, H, W]`` tensors: identity; flips; or the eight dihedral maps (d4)."""
    if mode not in TTAS:
        raise ConfigError(f"tta={mode!r}; expected one of {', '.join(TTAS)}")
    identity = (_identity, _identity)
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


# Integer pixel types that float32 holds exactly.
_EXACT_IN_FLOAT32 = (torch.uint8, torch.int8, torch.int16, torch.uint16)


class TilePredictor:
    """Turns batches of raw tiles ``[B, bands, T, T]`` (any numeric dtype) into class probabilities.

    Normalisation ``(raw - mean) / std`` happens on the model's device; nodata pixels become 0 after it. The
    model returns logits ``[B, K, T, T]`` (or ``{"out": logits}``); probabilities are the softmax in float32,
    averaged over the test-time augmentations.

    A convolutional network runs in the channels-last layout (NHWC), the one oneDNN on CPU and cuDNN's tensor
    cores are fastest in (about 1.2x on 2 CPU cores for MobileNetV2 DeepLabv3+, benchmarks/README.md).
    ``compile=True`` runs it through ``torch.compile`` with inductor's weight freezing (batch norm folded into the
    convolutions, weights pre-packed): it takes half a minute once, then runs about 1.2x faster on CPU, at 0.9 of
    onnxruntime's rate; every batch is then padded to ``batch_size`` so that the compiled graph is never rebuilt.
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
        channels_last: bool = True,
        compile: bool = False,
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
        # Only a network of 2-D convolutions gains from NHWC; an exported graph or a parameter-free model does not.
        self.channels_last = bool(channels_last) and any(p.dim() == 4 for p in self.model.parameters())
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.compiled = bool(compile)
        self.network: Callable = torch.compile(self.model) if self.compiled else self.model
        self.mean = torch.tensor(list(mean), dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        self.std = torch.tensor(list(std), dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        self.num_classes = int(num_classes)
        self.in_channels = len(mean)
        self.tta = _tta_transforms(tta)
        self.batch_size = int(batch_size)
        self.forward_calls = 0
        self._buffers: dict[str, torch.Tensor] = {}

    def _buffer(self, name: str, shape: tuple[int, ...]) -> torch.Tensor:
        """A float32 tensor kept between batches. Allocating a fresh tensor of tens of MB per batch costs more
        on a CPU than the arithmetic done in it (the allocator hands large blocks back to the OS, and every page
        of a new one faults on first touch), so the input and the probabilities reuse theirs. A shorter batch
        (the last of a strip) gets the first rows of the buffer, not a buffer of its own."""
        buffer = self._buffers.get(name)
        if buffer is None or buffer.shape[1:] != shape[1:] or buffer.shape[0] < shape[0]:
            layout = torch.channels_last if self.channels_last else torch.contiguous_format
            buffer = torch.empty(shape, dtype=torch.float32, device=self.device, memory_format=layout)
            self._buffers[name] = buffer
        return buffer[: shape[0]]

    def normalise(self, raw: torch.Tensor | Sequence[torch.Tensor], nodata: torch.Tensor | None = None) -> torch.Tensor:
        """``(raw - mean) / std`` as float32 on the model's device, nodata pixels 0. ``raw``: a batch
        ``[B, bands, T, T]`` or a sequence of ``[bands, T, T]`` tiles (views into a strip: copied straight into
        the batch, converted on the way). The result is a buffer that the next call overwrites."""
        tiles = [raw] if isinstance(raw, torch.Tensor) else list(raw)
        count = sum(t.shape[0] if t.dim() == 4 else 1 for t in tiles)
        x = self._buffer("input", (count, *tiles[0].shape[-3:]))
        if tiles[0].dtype in _EXACT_IN_FLOAT32:
            # float(raw) - mean in the pass that converts (one pass less than copy_, then sub_; the same numbers:
            # these integers convert to float32 exactly).
            for j, tile in enumerate(tiles):
                torch.sub(tile.to(self.device, non_blocking=True), self.mean[0], out=x[j] if tile.dim() == 3 else x)
        else:
            for j, tile in enumerate(tiles):
                (x[j] if tile.dim() == 3 else x).copy_(tile)
            x.sub_(self.mean)
        x.div_(self.std)
        if nodata is not None:
            x.masked_fill_(nodata.to(self.device).unsqueeze(1), 0.0)
        return x

    @torch.inference_mode()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        count = x.shape[0]
        if self.compiled and count < self.batch_size:  # one batch shape, one compiled graph
            x = torch.cat([x, x.new_zeros((self.batch_size - count, *x.shape[1:]))])
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
            out = self._forward(x)
        self.forward_calls += 1
        out = out["out"] if isinstance(out, dict) else out
        out, x = out[:count], x[:count]
        if out.shape[0] != x.shape[0] or out.shape[1] != self.num_classes or out.shape[-2:] != x.shape[-2:]:
            raise ConfigError(
                f"the model returned {tuple(out.shape)} for input {tuple(x.shape)}; expected logits "
                f"[{x.shape[0]}, {self.num_classes}, {x.shape[-2]}, {x.shape[-1]}] (try a tile_size the model "
                f"accepts, e.g. a multiple of 32)"
            )
        return out

    def _forward(self, x: torch.Tensor):
        if not self.compiled:
            return self.network(x)
        # Freezing (constant weights, batch norm folded) is set while the graph is first compiled only.
        import torch._inductor.config as inductor

        with inductor.patch(freezing=True):
            return self.network(x)

    @torch.inference_mode()
    def probabilities(self, raw: torch.Tensor | Sequence[torch.Tensor],
                      nodata: torch.Tensor | None = None) -> torch.Tensor:
        """Class probabilities ``[B, K, T, T]`` float32 of raw tiles (as :meth:`normalise` takes them), averaged
        over the test-time augmentations. The result is a buffer that the next call overwrites."""
        x = self.normalise(raw, nodata)
        total = self._buffer("probabilities", (x.shape[0], self.num_classes, *x.shape[-2:]))
        for k, (forward, inverse) in enumerate(self.tta):
            logits = self.logits(forward(x)).float()
            if k == 0 and inverse is _identity:
                torch.softmax(logits, 1, out=total)
            elif k == 0:
                total.copy_(inverse(logits.softmax(1)))
            else:
                total.add_(inverse(logits.softmax(1)))
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
                         cfg.get("precision", "auto"), cfg.get("tta", "none"), int(cfg.get("batch_size", 8)),
                         channels_last=bool(cfg.get("channels_last", True)), compile=bool(cfg.get("compile", False)))
