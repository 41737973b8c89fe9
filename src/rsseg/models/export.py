"""ONNX export of rsseg models (fixed input size, eval mode, logits out)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


def export_onnx(
    model: nn.Module,
    path: str | Path,
    size: int | tuple[int, int] = 512,
    in_channels: int | None = None,
    opset: int = 17,
) -> Path:
    """Export ``model`` to ``path`` for a ``[1, C, H, W]`` input named ``image``, output ``logits``.

    The TorchScript-based exporter is used (``dynamo=False``): it needs no ``onnxscript`` and handles every
    rsseg model (max-unpooling and adaptive pooling are written in exportable form). The graph is specialised
    to ``size``, including the internal padding to the model's stride.
    """
    h, w = (size, size) if isinstance(size, int) else size
    channels = int(in_channels or getattr(model, "in_channels", 3))
    param = next(model.parameters())
    x = torch.zeros(1, channels, h, w, device=param.device, dtype=param.dtype)
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
                opset_version=opset,
                dynamo=False,
            )
    finally:
        model.train(was_training)
    return path
