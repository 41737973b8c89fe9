"""The ``rsseg`` command: ``rsseg train|eval|predict|prepare [hydra overrides...]``.

Each sub-command runs the same Hydra app as the matching script at the repository root, with the same
config groups and overrides, so ``rsseg train model=unet`` and ``python train.py model=unet`` are one thing.
"""

from __future__ import annotations

import importlib
import sys

import hydra
from omegaconf import DictConfig

from rsseg.app import run_app, run_guarded
from rsseg.config import CONF_DIR

# sub-command -> (primary config, module, function taking the composed config). A module's ``main`` is its
# guarded body (one-line errors, SIGTERM cleaning up like Ctrl-C), the same one its root script runs.
COMMANDS = {
    "train": ("train", "rsseg.train", "train"),
    "eval": ("eval", "rsseg.evaluate", "main"),
    "predict": ("predict", "rsseg.predict", "main"),
    "prepare": ("prepare", "rsseg.prepare", "main"),
}


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: rsseg {{{'|'.join(COMMANDS)}}} [key=value ...]", file=sys.stderr)
        sys.exit(2)
    command = argv.pop(0)
    config_name, module_name, function_name = COMMANDS[command]

    @hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=config_name)
    def app(cfg: DictConfig) -> None:
        if function_name == "main":
            return importlib.import_module(module_name).main(cfg)
        return run_guarded(f"{module_name}:{function_name}", cfg)

    # Hydra reads its overrides from sys.argv, as if the root script had been called.
    sys.argv = [f"rsseg-{command}", *argv]
    run_app(app)


if __name__ == "__main__":
    main()
