"""Reading the files ``rsseg export`` writes: which format a file is, its ``rsseg`` metadata, and its network
behind the ``nn.Module`` interface that tiled prediction uses (ONNX in onnxruntime, TorchScript in PyTorch).
:mod:`rsseg.inference.model` turns what this returns into a :class:`~rsseg.inference.model.TrainedModel`.
"""

from __future__ import annotations

import json
import warnings
import zipfile
from pathlib import Path

import torch
from torch import nn

from rsseg.errors import ConfigError, DataError, RssegError
from rsseg.runtime.extras import require

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
METADATA_KEY = "rsseg"
TORCHSCRIPT_METADATA = "rsseg.json"
FORMAT_VERSION = 1


def exported_format(path: str | Path) -> str | None:
    """``"onnx"`` or ``"torchscript"`` for a file ``rsseg export`` wrote, None for anything else."""
    path = Path(str(path)).expanduser()
    if not path.is_file():
        return None
    if path.suffix.lower() == ".onnx":
        return "onnx"
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            if any(name.endswith(f"/extra/{TORCHSCRIPT_METADATA}") for name in archive.namelist()):
                return "torchscript"
    return None


class ExportedNetwork(nn.Module):
    """An exported network behind the ``nn.Module`` interface rsseg's tiled prediction uses; refuses tiles of a
    size other than the one it was exported for, which would otherwise give wrong classes silently."""

    def __init__(self, path: Path, tile_size: int, num_classes: int, in_channels: int) -> None:
        super().__init__()
        self.path = path
        self.tile_size, self.num_classes, self.in_channels = int(tile_size), int(num_classes), int(in_channels)

    def check_input(self, x: torch.Tensor) -> None:
        if tuple(x.shape[-2:]) != (self.tile_size, self.tile_size) or x.shape[1] != self.in_channels:
            raise ConfigError(
                f"{self.path}: exported for [N, {self.in_channels}, {self.tile_size}, {self.tile_size}] input, "
                f"got {list(x.shape)}; leave tile_size unset (or set tile_size={self.tile_size}), or export "
                f"again with tile_size={x.shape[-1]}"
            )


class OnnxNetwork(ExportedNetwork):
    """An ONNX export run by onnxruntime (CUDA when the input is on a GPU and onnxruntime has it)."""

    def __init__(self, path: Path, tile_size: int, num_classes: int, in_channels: int) -> None:
        super().__init__(path, tile_size, num_classes, in_channels)
        ort = require("onnxruntime", f"{path}: an ONNX model", "onnx")
        available = ort.get_available_providers()
        self.sessions = {
            kind: ort.InferenceSession(str(path), providers=providers)
            for kind, providers in (("cpu", ["CPUExecutionProvider"]),
                                    ("cuda", ["CUDAExecutionProvider", "CPUExecutionProvider"]))
            if providers[0] in available
        }
        self.input_name = self.sessions["cpu"].get_inputs()[0].name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        session = self.sessions.get(x.device.type, self.sessions["cpu"])
        (logits,) = session.run(None, {self.input_name: x.detach().float().cpu().numpy()})
        return torch.from_numpy(logits).to(x.device)


class TorchScriptNetwork(ExportedNetwork):
    """A TorchScript export, run by PyTorch."""

    def __init__(self, path: Path, module: torch.jit.ScriptModule, tile_size: int, num_classes: int,
                 in_channels: int) -> None:
        super().__init__(path, tile_size, num_classes, in_channels)
        self.network = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.network(x)


def read_metadata(path: str | Path, format: str | None = None) -> tuple[dict, object]:
    """``(metadata, loaded)`` of an exported file: ``loaded`` is the onnxruntime session or the ScriptModule."""
    path = Path(str(path)).expanduser()
    format = format or exported_format(path)
    try:
        if format == "onnx":
            ort = require("onnxruntime", f"{path}: an ONNX model", "onnx")
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            text, loaded = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY), session
        elif format == "torchscript":
            extra = {TORCHSCRIPT_METADATA: ""}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # TorchScript's deprecation notice
                loaded = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
            text = extra[TORCHSCRIPT_METADATA]
        else:
            raise DataError(f"{path}: not a model exported by rsseg export (.onnx, or TorchScript with rsseg.json)")
    except RssegError:
        raise
    except Exception as error:  # noqa: BLE001 - onnxruntime and torch.jit raise many types for a bad file
        raise DataError(f"{path}: not a readable {format} model ({str(error).splitlines()[0]})") from None
    if not text:
        raise DataError(f"{path}: no rsseg metadata (classes, normalisation); export it with rsseg export")
    return json.loads(text), loaded


def open_exported(path: str | Path, format: str | None = None) -> tuple[ExportedNetwork, dict]:
    """``(network in eval mode, metadata)`` of an exported file."""
    path = Path(str(path)).expanduser()
    format = format or exported_format(path)
    metadata, loaded = read_metadata(path, format)
    shape = (int(metadata["tile_size"]), int(metadata["num_classes"]), int(metadata["in_channels"]))
    if format == "onnx":
        network: ExportedNetwork = OnnxNetwork(path, *shape)
    else:
        network = TorchScriptNetwork(path, loaded, *shape)
    return network.eval(), metadata
