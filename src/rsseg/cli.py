"""The ``rsseg`` command: ``rsseg <command> [arguments]``; ``rsseg --help`` lists the commands.

The Hydra commands (train, eval, predict, prepare, export) run the same Hydra apps as the scripts at the root of
a clone, with the same config groups and overrides, so ``rsseg train model=unet`` and ``python train.py
model=unet`` are one thing; they take Hydra's flags too (``-m``, ``--config-dir DIR``, ``--cfg job``, ``--help``).
The other commands are ordinary programs with ``--help`` of their own.

Like ``python -m``, rsseg imports from the folder it is run in first, so the ``_target_`` of a config of your own
(``my_models.TinyUNet``) is found when you run rsseg from your project's folder.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any


@dataclass(frozen=True)
class Command:
    """One sub-command: a Hydra app (``config`` names its primary config) or an argparse program."""

    name: str
    summary: str
    module: str
    config: str | None = None
    # Hydra commands run ``module.main(cfg)`` (the guarded task body); where a module has none yet, this
    # function, guarded by rsseg.runtime.app.run_guarded.
    unguarded: str | None = None

    def load(self) -> Any:
        try:
            return importlib.import_module(self.module)
        except ModuleNotFoundError as error:
            if error.name != self.module:
                raise
            from rsseg.runtime.console import print_error

            print_error(f"rsseg {self.name} is not part of this rsseg installation ({self.module} is missing)")
            sys.exit(2)

    def task(self) -> Callable[[Any], Any]:
        module = self.load()
        if hasattr(module, "main"):
            return module.main
        from rsseg.runtime.app import run_guarded

        return partial(run_guarded, getattr(module, self.unguarded))


COMMANDS = {
    command.name: command
    for command in (
        Command("train", "train a model on a dataset; results.json, checkpoints and logs per run (or sweep job)",
                "rsseg.training.command", "train"),
        Command("eval", "score a model on whole scenes of a dataset split or your own, or saved predictions",
                "rsseg.evaluation.evaluate", "eval"),
        Command("predict", "turn whole georeferenced scenes into class rasters with a checkpoint or export",
                "rsseg.inference.predict", "predict"),
        Command("prepare", "check a dataset folder, compute band statistics and class counts, write splits/tiles",
                "rsseg.data.prepare", "prepare", "run_prepare"),
        Command("export", "write a checkpoint's network as ONNX or TorchScript, with classes and normalisation",
                "rsseg.inference.export", "export", "run_export"),
        Command("models", "the named models: parameters, MiB and GFLOPs", "rsseg.models.__main__"),
        Command("datasets", "the named datasets: classes, bands and the folder layout each expects",
                "rsseg.data.__main__"),
        Command("tables", "paper-style tables from training runs and sweeps (markdown, CSV, LaTeX)", "rsseg.tables.command"),
    )
}


def usage() -> str:
    return f"usage: rsseg {{{'|'.join(COMMANDS)}}} [arguments]  (rsseg --help lists what each does)"


def full_help() -> str:
    from rsseg._version import __version__

    width = max(map(len, COMMANDS))
    lines = [
        f"rsseg {__version__}: semantic segmentation of remote sensing images (Lightning + Hydra)",
        "",
        usage(),
        "",
        "commands:",
        *(f"  {c.name:<{width}}  {c.summary}" for c in COMMANDS.values()),
        "",
        "rsseg <command> --help shows a command's options; for train, eval, predict, prepare and export that is",
        "every config group with its options, and the config that key=value overrides change.",
        "Your own models and datasets: rsseg train --config-dir DIR model=NAME (or RSSEG_CONFIG_PATH=DIR).",
    ]
    return "\n".join(lines)


def import_from_working_folder() -> None:
    """Put the current folder first on the import path of rsseg and of the processes it starts (DataLoader
    workers, DDP ranks, sweep launchers), as ``python -m`` does for itself."""
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if cwd not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([cwd, *paths])


# Hydra's flags after which it prints and exits without running the task.
PRINT_ONLY_FLAGS = frozenset({"--help", "-h", "--hydra-help", "--cfg", "-c", "--info", "-i", "--shell-completion", "-sc"})


def sweep_value(result: Any) -> Any:
    """What a Hydra sweeper (Optuna) optimises: a run's validation mIoU when it returns its results."""
    if isinstance(result, dict) and isinstance(result.get("metrics"), dict):
        return result["metrics"].get("val", {}).get("miou")
    return result


def run_hydra(command: Command, argv: list[str]) -> None:
    import hydra

    from rsseg.config import CONF_DIR
    from rsseg.runtime.app import run_app

    # Loaded before Hydra configures logging, as the root scripts do: Lightning sets up its loggers on import
    # according to what it finds. Flags that only print (--help, --cfg, --info) answer without loading it.
    task = None if PRINT_ONLY_FLAGS.intersection(argv) else command.task()

    @hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=command.config)
    def app(cfg) -> Any:
        return sweep_value((task or command.task())(cfg))

    # Hydra reads its arguments from sys.argv; the job is named after the command, as the root scripts are.
    # results.json records the command as typed, without that addition.
    typed = ["rsseg", command.name, *argv]
    if not any(arg.startswith("hydra.job.name=") for arg in argv):
        argv = [*argv, f"hydra.job.name={command.name}"]
    sys.argv = [sys.argv[0], *argv]
    run_app(app, typed)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print(usage(), file=sys.stderr)
        return 2
    name = argv.pop(0)
    if name in ("-h", "--help", "help"):
        if name == "help" and argv and argv[0] in COMMANDS:
            return main([argv[0], "--help"])
        print(full_help())
        return 0
    if name == "--version":
        from rsseg._version import __version__

        print(f"rsseg {__version__}")
        return 0
    command = COMMANDS.get(name)
    if command is None:
        print(f"rsseg: unknown command {name!r}\n{usage()}", file=sys.stderr)
        return 2
    import_from_working_folder()
    if command.config is not None:
        run_hydra(command, argv)
        return 0
    from rsseg.runtime.app import run_guarded

    return int(run_guarded(command.load().main, argv) or 0)


if __name__ == "__main__":
    sys.exit(main())
