"""Shareable models: ``rsseg export ckpt=<file.ckpt> format=onnx|torchscript`` and reading such files back.

An exported file holds the trained network and what prediction needs to use it, so it can be handed to someone
without the training config or the model's code:

* the network in eval mode, specialised to square tiles of ``tile_size`` (the checkpoint's evaluation tile
  size unless given) and free in the batch size: input ``image [N, C, T, T]`` float32, already normalised
  (``(raw - mean) / std``), output ``logits [N, K, T, T]``;
* a JSON object under the key ``rsseg``: ``num_classes``, ``in_channels``, ``class_names``, ``palette``,
  ``bands`` (1-based bands to read, null: all), ``mean``, ``std``, ``nodata``, ``tile_size``, the model's class,
  the source checkpoint, the rsseg version and the resolved data config. ONNX keeps it in the model's
  ``metadata_props`` (``onnxruntime``: ``session.get_modelmeta().custom_metadata_map["rsseg"]``); TorchScript as
  the extra file ``rsseg.json`` (``torch.jit.load(path, _extra_files={"rsseg.json": ""})``).

``rsseg predict`` and ``rsseg eval`` take such a file wherever they take a checkpoint (``ckpt=model.onnx``): ONNX
runs in onnxruntime, TorchScript in PyTorch, both through the same tiled, blended prediction as a checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
import zipfile
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from rsseg.errors import ConfigError, DataError, RssegError

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
METADATA_KEY = "rsseg"
TORCHSCRIPT_METADATA = "rsseg.json"
FORMAT_VERSION = 1


# --------------------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------------------


def model_metadata(spec, stored: DictConfig, source: str | Path) -> dict:
    """The ``rsseg`` metadata of an exported model: the prediction spec, the data config and provenance."""
    import rsseg

    data = stored.get("data")
    return {
        "format_version": FORMAT_VERSION,
        "rsseg_version": rsseg.__version__,
        "model": OmegaConf.select(stored, "model._target_", default=None),
        "source_checkpoint": str(source),
        "input": "image [N, C, T, T] float32, normalised: (raw - mean) / std; T = tile_size",
        "output": "logits [N, num_classes, T, T]",
        **dataclasses.asdict(spec),
        "data": OmegaConf.to_container(data, resolve=True) if data is not None else None,
    }


def _require(module: str, what: str):
    try:
        return __import__(module)
    except ImportError:
        raise ConfigError(f"{what} needs the {module} package: pip install 'rsseg[onnx]'") from None


def _add_onnx_metadata(path: Path, metadata: dict) -> None:
    onnx = _require("onnx", "format=onnx")
    proto = onnx.load(str(path))
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(metadata)
    onnx.save(proto, str(path))


def largest_difference(model: nn.Module, exported: nn.Module, tile_size: int, in_channels: int) -> float:
    """The largest absolute logit difference between the network and its export on one random tile."""
    x = torch.randn(2, in_channels, tile_size, tile_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = model.eval()(x)
        reference = reference["out"] if isinstance(reference, dict) else reference
        return float((exported(x) - reference).abs().max())


def export_checkpoint(
    ckpt: str | Path,
    output: str | Path,
    format: str = "onnx",
    tile_size: int | None = None,
    opset: int = 17,
    check: bool = True,
    overwrite: bool = False,
) -> dict:
    """Export the network of ``ckpt`` (an rsseg checkpoint) to ``output``; returns what was written."""
    from rsseg.files import replaced_when_complete
    from rsseg.models.export import export_onnx, export_torchscript
    from rsseg.predict import load_checkpoint

    if format not in FORMATS:
        raise ConfigError(f"format={format!r}; expected one of {', '.join(FORMATS)}")
    if exported_format(ckpt):
        raise ConfigError(f"{ckpt}: already an exported model; export from the .ckpt it came from")
    output = Path(output).expanduser()
    if output.exists() and not overwrite:
        raise DataError(f"{output}: exists; pass overwrite=true to replace it")
    if format == "onnx":
        _require("onnx", "format=onnx")
    model, stored, spec = load_checkpoint(ckpt)
    spec = dataclasses.replace(spec, tile_size=int(tile_size or spec.tile_size))
    metadata = model_metadata(spec, stored, ckpt)
    difference = None
    with replaced_when_complete(output) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporters' tracer warnings say nothing a user can act on
        if format == "onnx":
            export_onnx(model, tmp, spec.tile_size, spec.in_channels, opset)
            _add_onnx_metadata(tmp, metadata)
        else:
            export_torchscript(model, tmp, spec.tile_size, spec.in_channels,
                               {TORCHSCRIPT_METADATA: json.dumps(metadata)})
        if check:
            exported, _, _ = load_exported(tmp, format)
            difference = largest_difference(model, exported, spec.tile_size, spec.in_channels)
    return {"output": str(output), "format": format, "tile_size": spec.tile_size, "class_names": spec.class_names,
            "bytes": output.stat().st_size, "max_logit_difference": difference}


def run_export(cfg: DictConfig) -> dict:
    """The ``rsseg export`` command: write the file, print one line about it."""
    from rsseg.predict import run_dir

    if cfg.get("ckpt") is None:
        raise ConfigError("ckpt= is required: the .ckpt of a trained rsseg model")
    format = str(cfg.get("format", "onnx"))
    if format not in FORMATS:
        raise ConfigError(f"format={format!r}; expected one of {', '.join(FORMATS)}")
    output = cfg.get("output") or run_dir(cfg) / f"{Path(str(cfg.ckpt)).stem}{FORMATS[format]}"
    report = export_checkpoint(cfg.ckpt, output, format, cfg.get("tile_size"), int(cfg.get("opset", 17)),
                               bool(cfg.get("check", True)), bool(cfg.get("overwrite", False)))
    line = (f"{report['output']}: {format}, {report['tile_size']} x {report['tile_size']} tiles, "
            f"{len(report['class_names'])} classes, {report['bytes'] / 2**20:.1f} MiB")
    if report["max_logit_difference"] is not None:
        line += f"; largest logit difference from the checkpoint on a random tile: {report['max_logit_difference']:.2g}"
    print(line)
    return report


# --------------------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------------------


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
        ort = _require("onnxruntime", f"{path}: an ONNX model")
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
            ort = _require("onnxruntime", f"{path}: an ONNX model")
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


def load_exported(path: str | Path, format: str | None = None):
    """``(network, stored config, ModelSpec)`` from an exported file, as :func:`rsseg.predict.load_checkpoint`
    returns them from a checkpoint."""
    from rsseg.predict import ModelSpec

    path = Path(str(path)).expanduser()
    format = format or exported_format(path)
    metadata, loaded = read_metadata(path, format)
    spec = ModelSpec(**{f.name: metadata[f.name] for f in dataclasses.fields(ModelSpec)})
    shape = (spec.tile_size, spec.num_classes, spec.in_channels)
    if format == "onnx":
        network: ExportedNetwork = OnnxNetwork(path, *shape)
    else:
        network = TorchScriptNetwork(path, loaded, *shape)
    stored = OmegaConf.create({"data": metadata.get("data"), "model": {"_target_": metadata.get("model")}})
    return network.eval(), stored, spec
