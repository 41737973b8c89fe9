"""rsseg: semantic segmentation of high-resolution remote sensing images with Lightning and Hydra.

The Python API (see :mod:`rsseg.api`) is loaded on first use, so ``import rsseg`` stays cheap:
``rsseg.load_checkpoint``, ``rsseg.predict_scene``, ``rsseg.evaluate``, ``rsseg.export_model``,
``rsseg.TrainedModel`` and ``rsseg.models.build``.
"""

from importlib import import_module

from rsseg._version import __version__
from rsseg.runtime import moved

# Checkpoints and configs written before the subpackages name modules such as rsseg.losses: they still import.
moved.install()

_API = ("TrainedModel", "evaluate", "export_model", "load_checkpoint", "predict_scene")

__all__ = [*_API, "models", "__version__"]


def __getattr__(name: str):
    if name in _API:
        return getattr(import_module("rsseg.api"), name)
    if name == "models":
        return import_module("rsseg.models")
    raise AttributeError(f"module 'rsseg' has no attribute {name!r}")
