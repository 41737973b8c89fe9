"""Shareable models: ``rsseg export ckpt=<file.ckpt> format=onnx|torchscript`` (reading them back:
:mod:`rsseg.inference.exported`).

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
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from rsseg.errors import ConfigError, DataError
from rsseg.inference.exported import (
    FORMAT_VERSION,
    FORMATS,
    METADATA_KEY,
    TORCHSCRIPT_METADATA,
    exported_format,
    open_exported,
)
from rsseg.inference.model import TrainedModel
from rsseg.runtime.console import say
from rsseg.runtime.extras import require


def model_metadata(spec: TrainedModel, stored: DictConfig, source: str | Path) -> dict:
    """The ``rsseg`` metadata of an exported model: the prediction spec, the data config and provenance."""
    from rsseg._version import version_stamp

    data = stored.get("data")
    return {
        "format_version": FORMAT_VERSION,
        **version_stamp(),
        "model": OmegaConf.select(stored, "model._target_", default=None),
        "source_checkpoint": str(source),
        "input": "image [N, C, T, T] float32, normalised: (raw - mean) / std; T = tile_size",
        "output": "logits [N, num_classes, T, T]",
        **spec.prediction_fields(),
        "data": OmegaConf.to_container(data, resolve=True) if data is not None else None,
    }


def _add_onnx_metadata(path: Path, metadata: dict) -> None:
    onnx = require("onnx", "format=onnx", "onnx")
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
    from rsseg.inference.model import load_checkpoint
    from rsseg.models.export import export_onnx, export_torchscript
    from rsseg.runtime.files import replaced_when_complete

    if format not in FORMATS:
        raise ConfigError(f"format={format!r}; expected one of {', '.join(FORMATS)}")
    if exported_format(ckpt):
        raise ConfigError(f"{ckpt}: already an exported model; export from the .ckpt it came from")
    output = Path(output).expanduser()
    if output.exists() and not overwrite:
        raise DataError(f"{output}: exists; pass overwrite=true to replace it")
    if format == "onnx":
        require("onnx", "format=onnx", "onnx")
    spec = load_checkpoint(ckpt)
    spec = dataclasses.replace(spec, tile_size=int(tile_size or spec.tile_size))
    model = spec.network()
    metadata = model_metadata(spec, spec.config, ckpt)
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
            exported, _ = open_exported(tmp, format)
            difference = largest_difference(model, exported, spec.tile_size, spec.in_channels)
    return {"output": str(output), "format": format, "tile_size": spec.tile_size, "class_names": spec.class_names,
            "bytes": output.stat().st_size, "max_logit_difference": difference}


def run_export(cfg: DictConfig) -> dict:
    """The ``rsseg export`` command: write the file, print one line about it."""
    from rsseg.config.runs import run_dir

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
    say(line)
    return report
