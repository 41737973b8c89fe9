"""rsseg: semantic segmentation of high-resolution remote sensing images with Lightning and Hydra.

The Python API (see :mod:`rsseg.api`) is loaded on first use, so ``import rsseg`` stays cheap:
``rsseg.load_checkpoint``, ``rsseg.predict_scene``, ``rsseg.evaluate``, ``rsseg.export_model``,
``rsseg.TrainedModel``
and ``rsseg.models.build``.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("rsseg")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

_API = ("TrainedModel", "export_model", "load_checkpoint", "predict_scene")
# Submodules that are also API names: rsseg.evaluate is callable (rsseg.api.evaluate), rsseg.models has build().
_MODULES = ("evaluate", "models")

__all__ = [*_API, *_MODULES, "__version__"]


def __getattr__(name: str):
    if name in _API:
        return getattr(import_module("rsseg.api"), name)
    if name in _MODULES:
        return import_module(f"rsseg.{name}")
    raise AttributeError(f"module 'rsseg' has no attribute {name!r}")
