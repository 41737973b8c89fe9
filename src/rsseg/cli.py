"""The ``rsseg`` command: ``rsseg train|eval|predict|prepare [hydra overrides...]`` and ``rsseg tables PATH...``.

Each Hydra sub-command runs the same Hydra app as the matching script at the repository root, with the same
config groups and overrides, so ``rsseg train model=unet`` and ``python train.py model=unet`` are one thing.
``rsseg tables`` is the plain program of :mod:`rsseg.tables`.
"""

from __future__ import annotations

import importlib
import sys

import hydra
from omegaconf import DictConfig

from rsseg.app import run_guarded
from rsseg.config import CONF_DIR

# sub-command -> (primary config, module, function taking the composed config)
COMMANDS = {
    "train": ("train", "rsseg.train", "main"),
    "eval": ("eval", "rsseg.evaluate", "run_eval"),
    "predict": ("predict", "rsseg.predict", "run_predict"),
    "prepare": ("prepare", "rsseg.prepare", "run_prepare"),
}


# sub-command -> module whose main(argv) is the whole program
PROGRAMS = {"tables": "rsseg.tables"}


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in {**COMMANDS, **PROGRAMS}:
        print(f"usage: rsseg {{{'|'.join([*COMMANDS, *PROGRAMS])}}} [key=value ...]", file=sys.stderr)
        sys.exit(2)
    command = argv.pop(0)
    if command in PROGRAMS:
        sys.exit(importlib.import_module(PROGRAMS[command]).main(argv))
    config_name, module_name, function_name = COMMANDS[command]
    function = getattr(importlib.import_module(module_name), function_name)

    @hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=config_name)
    def app(cfg: DictConfig):
        if function_name == "main":  # the module's own guarded task body
            return function(cfg)
        return run_guarded(function, cfg)

    # Hydra reads its overrides from sys.argv, as if the root script had been called.
    sys.argv = [f"rsseg-{command}", *argv]
    app()


if __name__ == "__main__":
    main()
