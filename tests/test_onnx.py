"""ONNX export: the exported graph computes what the PyTorch model computes (onnxruntime, CPU)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from rsseg.models.export import export_onnx
from rsseg.models.hub import build_model
from rsseg.models.layers import max_unpool2d
from rsseg.models.pspnet import PyramidPooling

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


def _run(model: nn.Module, path, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_onnx(model, path, tuple(x.shape[-2:]), in_channels=x.shape[1])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (onnx_out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        torch_out = model.eval()(x).numpy()
    return onnx_out, torch_out


@pytest.mark.parametrize(
    "name,size",
    [
        ("mst_deeplab", (64, 64)),
        ("deeplab_subpixel", (64, 64)),
        ("mst_deeplab", (45, 61)),
        ("segnet", (48, 40)),
    ],
    ids=lambda v: v if isinstance(v, str) else f"{v[0]}x{v[1]}",
)
def test_export_matches_pytorch(name, size, tmp_path):
    torch.manual_seed(0)
    model = build_model(name, num_classes=4, pretrained=None)
    # Give BatchNorm running statistics from data, as a trained model has: with the initial ones an untrained
    # ResNet-101 produces logits in the hundreds, which no trained model does.
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(2, 3, *size))
    model.eval()
    x = torch.randn(1, 3, *size)
    onnx_out, torch_out = _run(model, tmp_path / f"{name}.onnx", x)
    assert onnx_out.shape == torch_out.shape == (1, 4, *size)
    assert np.abs(onnx_out - torch_out).max() <= 1e-4


def test_pyramid_pooling_exports_at_sizes_the_bins_do_not_divide(tmp_path):
    torch.manual_seed(0)
    module = nn.Sequential(PyramidPooling(16, (1, 2, 3, 6))).eval()
    module.in_channels = 16
    x = torch.randn(1, 16, 10, 13)
    onnx_out, torch_out = _run(module, tmp_path / "ppm.onnx", x)
    np.testing.assert_allclose(onnx_out, torch_out, atol=1e-5)


def test_scatter_unpooling_equals_max_unpool():
    x = torch.randn(2, 3, 8, 10)
    pooled, indices = nn.functional.max_pool2d(x, 2, 2, return_indices=True)
    expected = nn.functional.max_unpool2d(pooled, indices, 2, 2, output_size=(8, 10))
    assert torch.equal(max_unpool2d(pooled, indices, (8, 10)), expected)
