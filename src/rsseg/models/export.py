"""ONNX and TorchScript export of rsseg models (eval mode, fixed tile size, any batch size, logits out)."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn


def example_input(model: nn.Module, size: int | tuple[int, int], in_channels: int | None = None) -> torch.Tensor:
    """A zero ``[1, C, H, W]`` tensor on the model's device and in its dtype."""
    h, w = (size, size) if isinstance(size, int) else size
    channels = int(in_channels or getattr(model, "in_channels", 3))
    param = next(model.parameters())
    return torch.zeros(1, channels, h, w, device=param.device, dtype=param.dtype)


def export_onnx(
    model: nn.Module,
    path: str | Path,
    size: int | tuple[int, int] = 512,
    in_channels: int | None = None,
    opset: int = 17,
) -> Path:
    """Export ``model`` to ``path`` for a ``[N, C, H, W]`` input named ``image``, output ``logits``.

    The TorchScript-based exporter is used (``dynamo=False``): it needs no ``onnxscript`` and handles every
    rsseg model (max-unpooling and adaptive pooling are written in exportable form). The graph is specialised
    to ``size``, including the internal padding to the model's stride; the batch size is free.
    """
    x = example_input(model, size, in_channels)
    was_training = model.training
    model.eval()
    path = Path(path)
    try:
        with torch.no_grad():
            torch.onnx.export(
                model,
                (x,),
                str(path),
                input_names=["image"],
                output_names=["logits"],
                dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
                opset_version=opset,
                dynamo=False,
            )
    finally:
        model.train(was_training)
    return path


def export_torchscript(
    model: nn.Module,
    path: str | Path,
    size: int | tuple[int, int] = 512,
    in_channels: int | None = None,
    extra_files: dict[str, str] | None = None,
) -> Path:
    """Trace ``model`` in eval mode at ``size`` and save it with ``torch.jit.save`` (``extra_files`` go into the
    archive). Like the ONNX graph, the trace is specialised to ``size`` and free in the batch size; it loads with
    ``torch.jit.load`` alone, without rsseg or the model's code."""
    x = example_input(model, size, in_channels)
    was_training = model.training
    model.eval()
    path = Path(path)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TorchScript's deprecation notice and tracer warnings
            traced = torch.jit.trace(model, (x,), check_trace=False, strict=False)
            torch.jit.save(traced, str(path), _extra_files=extra_files or {})
    finally:
        model.train(was_training)
    return path
