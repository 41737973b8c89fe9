"""Module names of rsseg before its subpackages (``rsseg.losses`` is now ``rsseg.training.losses``, ...).

Checkpoints, ``results.json`` files and configs written before the move name classes by their old modules in
``_target_`` (``rsseg.losses.CrossEntropy``, ``rsseg.callbacks.resume.LastCheckpoint``). :func:`install` makes
those names import the module at its new home (the same module object, not a copy), so instantiating an old
config works, and :func:`current_target` rewrites an old name so that an old run's config compares equal to
today's (``resume=auto``, sweeps that skip finished jobs). It does the same for a class rsseg replaced by its
own subclass that computes the same run (:data:`REPLACED`).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

# Old module -> new module; a submodule of an old name moves with it (rsseg.callbacks.resume ->
# rsseg.training.callbacks.resume). rsseg.evaluate is not listed: that name is the API function now.
MOVED = {
    "rsseg.app": "rsseg.runtime.app",
    "rsseg.callbacks": "rsseg.training.callbacks",
    "rsseg.checkpoints": "rsseg.models.checkpoint",
    "rsseg.console": "rsseg.runtime.console",
    "rsseg.distributed": "rsseg.training.distributed",
    "rsseg.export": "rsseg.inference.export",
    "rsseg.figures": "rsseg.tables.figures",
    "rsseg.files": "rsseg.runtime.files",
    "rsseg.loggers": "rsseg.training.loggers",
    "rsseg.losses": "rsseg.training.losses",
    "rsseg.optim": "rsseg.training.optim",
    "rsseg.predict": "rsseg.inference.predict",
    "rsseg.preflight": "rsseg.runtime.preflight",
    "rsseg.prepare": "rsseg.data.prepare",
    "rsseg.results": "rsseg.runtime.results",
    "rsseg.resume": "rsseg.training.resume",
    "rsseg.schema": "rsseg.config.schema",
    "rsseg.sweep": "rsseg.training.sweep",
    "rsseg.task": "rsseg.training.task",
    "rsseg.train": "rsseg.training.train",
}

# Old class -> the subclass configs name now: Lightning's ModelCheckpoint became BestCheckpoint, which keeps
# checkpoints/best.ckpt beside the files Lightning writes.
REPLACED = {"lightning.pytorch.callbacks.ModelCheckpoint": "rsseg.training.callbacks.best.BestCheckpoint"}


def current_module(name: str) -> str | None:
    """The new name of module ``name`` when it moved, else None."""
    for old, new in MOVED.items():
        if name == old or name.startswith(old + "."):
            return new + name[len(old):]
    return None


def current_target(target: str) -> str:
    """``target`` (``module.Class``) with its module's new name (``rsseg.losses.CrossEntropy`` ->
    ``rsseg.training.losses.CrossEntropy``) or the class that replaced it (:data:`REPLACED`); any other name
    unchanged."""
    if target in REPLACED:
        return REPLACED[target]
    module, _, attribute = target.rpartition(".")
    new = current_module(module) if module else None
    return f"{new}.{attribute}" if new else target


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers an import of an old name with the module at its new home."""

    def find_spec(self, name, path=None, target=None):
        new = current_module(name)
        if new is None:
            return None
        found = importlib.util.find_spec(new)
        if found is None:
            return None
        return importlib.util.spec_from_loader(name, self, is_package=found.submodule_search_locations is not None)

    def create_module(self, spec):
        module = importlib.import_module(current_module(spec.name))
        spec.loader_state = module.__spec__
        return module

    def exec_module(self, module) -> None:
        # The import system stamps the old name's spec on the module; it keeps its own.
        module.__spec__ = module.__spec__.loader_state


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (before the path finder, which would load a second copy of a
    moved package's submodule under its old name), once per process."""
    if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _MovedModuleFinder())
