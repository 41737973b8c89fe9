"""Loading ImageNet or local pretrained weights into an rsseg encoder.

``model.pretrained`` takes three forms:

* ``null``: no weights are loaded (the default of every config but ``mst_deeplab``; nothing is downloaded);
* ``imagenet``: the encoder's torchvision weight enum or timm checkpoint, downloaded into the torch / Hugging
  Face cache as those libraries do;
* ``/path/file.pth``: a local torchvision- or timm-format state dict, optionally wrapped in
  ``{"state_dict": ...}`` or ``{"model": ...}`` and with a ``module.`` / ``backbone.`` / ``encoder.`` prefix.

Keys are mapped to the encoder's layout by the encoder itself (:meth:`Encoder.map_source_key`). Keys of a
classification head are skipped, other unknown keys and encoder keys the file lacks are reported by name,
and a shape mismatch is refused with the key and both shapes, except for the input convolution, which is
adapted to the number of input bands (:func:`adapt_conv_weight`).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from rsseg.errors import PretrainedWeightsError  # noqa: F401 - also importable from here, as before

if TYPE_CHECKING:
    from rsseg.models.encoders.base import Encoder

log = logging.getLogger(__name__)

WRAPPER_KEYS = ("state_dict", "model", "model_state", "model_state_dict", "net", "weights")
PREFIXES = ("module.", "model.", "backbone.", "encoder.", "features_extractor.")


@dataclass
class LoadReport:
    """What a pretrained load did, by key name."""

    source: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    skipped_head: list[str] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)


def adapt_conv_weight(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Adapt an RGB input-convolution kernel ``[out, 3, kh, kw]`` to ``in_channels`` bands.

    The RGB kernels are kept for the first three bands and every extra band gets the mean RGB kernel; with
    fewer than three bands every band gets the mean. The result is scaled by ``3 / in_channels`` (as timm and
    segmentation_models_pytorch scale), so an input whose bands are all equal gives the same response as the
    RGB kernel on a grey image.
    """
    if weight.shape[1] == in_channels:
        return weight
    if weight.shape[1] != 3:
        raise PretrainedWeightsError(
            f"cannot adapt an input convolution of {weight.shape[1]} bands to {in_channels}: "
            "only RGB (3) kernels are adapted"
        )
    mean = weight.mean(dim=1, keepdim=True)
    if in_channels < 3:
        new = mean.repeat(1, in_channels, 1, 1)
    else:
        new = torch.cat([weight, mean.repeat(1, in_channels - 3, 1, 1)], dim=1)
    return new * (3.0 / in_channels)


def adapt_input_conv(module: nn.Module, in_channels: int) -> str:
    """Give the first RGB ``Conv2d`` of ``module`` ``in_channels`` input bands in place; return its key.

    The convolution object is kept (timm's same-padding or weight-standardised subclasses keep working);
    only its weight is swapped for :func:`adapt_conv_weight` of the current one.
    """
    for name, conv in module.named_modules():
        if isinstance(conv, nn.Conv2d) and conv.in_channels == 3 and conv.groups == 1:
            if in_channels != 3:
                with torch.no_grad():
                    conv.weight = nn.Parameter(adapt_conv_weight(conv.weight.detach(), in_channels))
                conv.in_channels = in_channels
            return f"{name}.weight" if name else "weight"
    raise ValueError(f"{type(module).__name__} has no 3-band input convolution to adapt")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a local state dict (``weights_only=True``), unwrapping ``{"state_dict": ...}`` and similar."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise PretrainedWeightsError(
            f"model.pretrained={path}: no such file (use null, imagenet or the path of a .pth state dict)"
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a pickle with code objects, a truncated file...
        raise PretrainedWeightsError(
            f"{path}: not a loadable state dict ({type(exc).__name__}: {exc})"
        ) from exc
    for _ in range(3):
        if isinstance(obj, dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
            inner = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), dict)), None)
            if inner is None:
                break
            obj = inner
    if not isinstance(obj, dict) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise PretrainedWeightsError(f"{path}: holds no tensors keyed by name (a state dict is expected)")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def _candidates(key: str):
    yield key
    stripped = key
    changed = True
    while changed:
        changed = False
        for prefix in PREFIXES:
            if stripped.startswith(prefix):
                stripped = stripped[len(prefix) :]
                changed = True
                yield stripped


def load_state_dict_into_encoder(
    encoder: Encoder, state_dict: dict[str, torch.Tensor], source: str
) -> LoadReport:
    """Map ``state_dict`` onto ``encoder`` and copy it in; see the module docstring for the rules."""
    own = encoder.state_dict()
    report = LoadReport(source=source)
    mapped: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        target = None
        head = False
        for candidate in _candidates(key):
            mapped_key = encoder.map_source_key(candidate)
            if mapped_key is None:
                head = True
                continue
            if mapped_key in own:
                target = mapped_key
                break
        if target is None:
            (report.skipped_head if head else report.unexpected).append(key)
            continue
        expected = own[target].shape
        if value.shape != expected:
            adaptable = (
                target == encoder.first_conv_key
                and value.dim() == 4
                and value.shape[0] == expected[0]
                and value.shape[2:] == expected[2:]
                and value.shape[1] == 3
            )
            if not adaptable:
                raise ValueError(
                    f"{source}: key {key!r} (model key {target!r}) has shape {tuple(value.shape)} "
                    "in the file "
                    f"but {tuple(expected)} in the model"
                )
            value = adapt_conv_weight(value, expected[1])
            report.adapted.append(target)
        mapped[target] = value.to(own[target].dtype)
    report.loaded = sorted(mapped)
    report.missing = sorted(k for k in own if k not in mapped and not k.endswith("num_batches_tracked"))
    encoder.load_state_dict(mapped, strict=False)
    if report.missing:
        warnings.warn(
            f"{source}: encoder keys missing from the weights: {', '.join(report.missing)}", stacklevel=2
        )
    if report.unexpected:
        warnings.warn(f"{source}: keys not used by the encoder: {', '.join(report.unexpected)}", stacklevel=2)
    log.info(
        "loaded %d encoder tensors from %s (%d head tensors skipped, adapted: %s)",
        len(mapped),
        source,
        len(report.skipped_head),
        ", ".join(report.adapted) or "none",
    )
    return report


def load_pretrained(encoder: Encoder, pretrained: str | Path | None) -> LoadReport | None:
    """Apply ``model.pretrained`` (``null`` | ``imagenet`` | a path) to ``encoder``."""
    if pretrained is None or pretrained is False or str(pretrained).lower() in ("", "none", "null", "false"):
        return None
    if str(pretrained).lower() == "imagenet":
        try:
            state_dict = encoder.imagenet_state_dict()
        except PretrainedWeightsError:
            raise
        except Exception as exc:  # no network, a proxy, a corrupt cache...
            raise PretrainedWeightsError(
                f"could not download the ImageNet weights of {encoder.describe()} "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no detail'}); "
                "without network access pass a local file with model.pretrained=/path/file.pth"
            ) from exc
        return load_state_dict_into_encoder(encoder, state_dict, f"ImageNet weights of {encoder.describe()}")
    return load_state_dict_into_encoder(encoder, read_state_dict(pretrained), str(pretrained))
