"""Continuing a training run: ``resume=auto`` (the latest run of the same config), ``resume=<ckpt>``, ``ckpt_path``.

``python train.py <overrides> resume=auto`` looks for the latest earlier run of the same resolved config (the
config stored in its checkpoints, keys that do not change the result aside: :data:`VOLATILE`) among the run
folders of this command's Hydra pattern (``outputs/train/<date>/<time>``; a fixed ``hydra.run.dir`` or a
sweep's job folder is its own only candidate) and continues it from its checkpoint with the most steps, in its
folder: the same ``checkpoints/``, ``results.json``, logger runs (CSV and TensorBoard versions, the W&B run id)
and step counter. Without an earlier run it starts one (so job scripts can always pass ``resume=auto``).
``resume=<path>`` continues that checkpoint in its run folder. ``ckpt_path=<path>`` (Lightning's) starts a new
run folder from a checkpoint's full training state. Each checkpoint is checked before any model is built.

:func:`find_resume_checkpoint` is the piece a sweep uses to continue a job whose folder has no results.json.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from rsseg.errors import DataError
from rsseg.models.checkpoint import EXPECTED, read_checkpoint, stored_config
from rsseg.runtime.console import warn
from rsseg.runtime.moved import current_target
from rsseg.training.callbacks.resume import LAST

log = logging.getLogger(__name__)

# Keys whose value does not change what a run computes: where it writes, how it resumes, what it logs.
VOLATILE = (
    "paths", "resume", "ckpt_path", "logger", "data.root", "data.scenes.root", "data.num_workers", "data.cache",
    "data.cache_dir",
    # The memory layout and compilation change the order of float32 sums, not what is computed (tests/test_speed.py).
    "channels_last", "compile",
    "trainer.enable_progress_bar", "trainer.enable_model_summary", "callbacks.rich_progress_bar",
    "callbacks.model_summary", "callbacks.model_checkpoint.filename", "plots", "trainer.log_every_n_steps",
)
# Keys newer than some stored configs, with the values under which a run computes what a run stored without them
# computed: the split keys the synthetic scenes and the protocols gained when validation stopped being the test
# split (the synthetic scenes have no eroded labels, so either label choice reads the same files), and the
# synthetic data's stats_file, and last.ckpt's weights-only switch. A stored config
# without such a key compares as if it held this value; one that holds another value (an ISPRS run stored with
# val_fraction 0.0, which validated on the test tiles) stays a different config.
ADDED_KEYS = {
    "protocol.val_fraction": 0.1, "protocol.select_on": "val", "protocol.split_seed": 0,
    "data.scenes.split": "standard", "data.scenes.train_labels": "full", "data.scenes.eval_labels": "eroded",
    "data.scenes.split_file": None, "data.scenes.split_seed": 0, "data.scenes.split_tile_size": 512,
    "data.scenes.train_fraction": 0.8, "data.scenes.val_fraction": 0.1, "data.scenes.select_on": "val",
    "data.stats_file": None, "callbacks.last_checkpoint.save_weights_only": False,
}
# Model keys that only say where initial weights came from; a checkpoint's weights replace them.
WEIGHT_SOURCES = ("pretrained", "encoder_weights")


def comparable(resolved: dict) -> dict:
    """``resolved`` without the :data:`VOLATILE` keys, with the run's own paths (``paths.output_dir`` ...)
    written back as ``${paths.<key>}`` wherever they were interpolated (checkpoint folders, logger folders),
    with every ``_target_`` under its module's current name (:mod:`rsseg.runtime.moved`), and with the
    :data:`ADDED_KEYS` a stored config predates filled in."""
    paths = {k: str(v) for k, v in (resolved.get("paths") or {}).items() if isinstance(v, str) and v}

    def unresolve(value):
        if isinstance(value, dict):
            # a run from before the subpackages names rsseg.losses.CrossEntropy where today's names its new home
            return {k: current_target(v) if k == "_target_" and isinstance(v, str) else unresolve(v)
                    for k, v in value.items()}
        if isinstance(value, list):
            return [unresolve(v) for v in value]
        if isinstance(value, str):
            for key, path in sorted(paths.items(), key=lambda item: -len(item[1])):
                if value == path or value.startswith(path.rstrip("/") + "/"):
                    return "${paths." + key + "}" + value[len(path):]
        return value

    out = unresolve(json.loads(json.dumps(resolved, default=str)))
    for key in VOLATILE:
        node, *path = key.split(".")
        parent, name = out, node
        for part in path:
            parent = parent.get(name) if isinstance(parent, dict) else None
            name = part
        if isinstance(parent, dict):
            parent.pop(name, None)
    for key, value in ADDED_KEYS.items():
        *path, name = key.split(".")
        parent = out
        for part in path:
            parent = parent.get(part) if isinstance(parent, dict) else None
        if isinstance(parent, dict) and name not in parent:
            parent[name] = value
    return out


def config_differences(first: dict, second: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two (comparable) configs."""
    if isinstance(first, dict) and isinstance(second, dict):
        keys = sorted(set(first) | set(second), key=str)
        return [d for k in keys for d in config_differences(first.get(k), second.get(k), f"{prefix}{k}.")]
    return [] if first == second else [prefix.rstrip(".")]


def training_state(path: Path, key: str) -> dict:
    """A checkpoint Lightning can continue training from (weights, optimiser, loop state), read lazily."""
    checkpoint = read_checkpoint(path, key=key, mmap=True)
    stored_config(checkpoint, f"{key}={path}")
    missing = [k for k in ("optimizer_states", "loops") if k not in checkpoint]
    if missing:
        raise DataError(f"{key}={path}: holds weights but no training state ({', '.join(missing)}); {EXPECTED}")
    return checkpoint


def find_resume_checkpoint(output_dir: str | Path, resolved_config: dict) -> Path | None:
    """The checkpoint a run of ``resolved_config`` should continue from in ``output_dir``: among the ``.ckpt``
    files under it that hold training state and store the same config (:data:`VOLATILE` keys aside), the one
    with the most optimiser steps (``last.ckpt``, then the newest, on a tie); None when there is none.
    Unreadable files are skipped.

    ``resolved_config`` is the run's config as ``OmegaConf.to_container(cfg, resolve=True)`` gives it, which is
    what training stores in its checkpoints (``hyper_parameters.cfg``).
    """
    folder = Path(output_dir)
    if not folder.is_dir():
        return None
    wanted = comparable(resolved_config)
    best: tuple[int, bool, float, Path] | None = None
    for path in folder.glob("**/*.ckpt"):
        try:
            checkpoint = training_state(path, "resume")
        except DataError:
            continue
        if comparable(checkpoint["hyper_parameters"]["cfg"]) != wanted:
            continue
        rank = (int(checkpoint.get("global_step", 0)), path.name == LAST, path.stat().st_mtime, path)
        if best is None or rank[:3] > best[:3]:
            best = rank
    return best[3] if best else None


def run_folders(current: Path) -> list[Path]:
    """Folders of earlier runs made by the same Hydra run-folder pattern as ``current``, newest first
    (``current`` itself is among them). A fixed run folder or a sweep job has only itself."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hydra = HydraConfig.get()
        pattern = str(hydra.run._get_node("dir")._value()) if hydra.mode == RunMode.RUN else ""
    except (ImportError, ValueError):  # outside a Hydra run (tests, notebooks)
        pattern = ""
    parts = Path(pattern).parts
    dated = next((i for i, part in enumerate(parts) if "${now:" in part), None)
    if dated is None:
        return [current]
    depth = len(parts) - dated
    root = current.parents[depth - 1]
    found = [p for p in root.glob("/".join(["*"] * depth)) if p.is_dir()]
    return sorted({*found, current}, key=lambda p: p.stat().st_mtime if p.exists() else 0, reverse=True)


@dataclass
class ResumePlan:
    """Where training continues from (``checkpoint``, None for a fresh start) and in which run folder."""

    checkpoint: Path | None = None
    output_dir: Path | None = None
    step: int = 0

    def continue_loggers(self, loggers: list) -> None:
        """Point the instantiated loggers at the resumed run's logger runs (same version folder / W&B run)."""
        if self.checkpoint is None or self.output_dir is None:
            return
        for logger in loggers:
            _continue_logger(logger)


def prepare_resume(cfg: DictConfig) -> ResumePlan:
    """Resolve ``resume`` / ``ckpt_path`` before anything is built: check the checkpoint, and for ``resume``
    move ``paths.output_dir`` to the run folder being continued. Returns what ``Trainer.fit`` resumes from."""
    resume, ckpt_path = cfg.get("resume"), cfg.get("ckpt_path")
    if ckpt_path is not None:
        path = Path(str(ckpt_path)).expanduser()
        checkpoint = training_state(path, "ckpt_path")
        _check_same_model(checkpoint, cfg, "ckpt_path", path)
        return ResumePlan(path, None, int(checkpoint.get("global_step", 0)))
    if resume is None:
        return ResumePlan()
    current = Path(str(cfg.paths.output_dir))
    resolved = OmegaConf.to_container(cfg, resolve=True)
    if str(resume) == "auto":
        path = next((p for folder in run_folders(current) if (p := find_resume_checkpoint(folder, resolved))), None)
        if path is None:
            print(f"resume=auto: no earlier run of this config with a checkpoint; starting one in {current}")
            return ResumePlan()
        folder = _run_folder(path)
    else:
        path = Path(str(resume)).expanduser()
        checkpoint = training_state(path, "resume")
        _check_same_model(checkpoint, cfg, "resume", path)
        changed = config_differences(comparable(checkpoint["hyper_parameters"]["cfg"]), comparable(resolved))
        if changed:
            warn(f"resume={path}: continuing with a config that differs from the checkpoint's in "
                 f"{', '.join(changed[:4])}{' ...' if len(changed) > 4 else ''}")
        folder = _run_folder(path)
    step = int(read_checkpoint(path, key="resume", mmap=True).get("global_step", 0))
    if folder.resolve() != current.resolve():
        _move_run(cfg, current, folder)
    print(f"resuming {folder} from {path} (step {step})")
    return ResumePlan(path, folder, step)


def _run_folder(checkpoint: Path) -> Path:
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent


def _check_same_model(checkpoint: dict, cfg: DictConfig, key: str, path: Path) -> None:
    stored = checkpoint["hyper_parameters"]["cfg"]
    current = OmegaConf.to_container(cfg, resolve=True)

    def shape(config: dict) -> tuple:
        model = {k: v for k, v in (config.get("model") or {}).items() if k not in WEIGHT_SOURCES}
        data = config.get("data") or {}
        return json.dumps(model, sort_keys=True, default=str), data.get("num_classes"), data.get("in_channels")

    if shape(stored) != shape(current):
        what = (stored.get("model") or {}).get("_target_", "?")
        raise DataError(f"{key}={path}: a checkpoint of another model ({what}, {stored.get('data', {}).get('num_classes')} "
                        f"classes, {stored.get('data', {}).get('in_channels')} bands) than this run builds; expected a "
                        f"checkpoint of the same model and data config")


def _move_run(cfg: DictConfig, current: Path, folder: Path) -> None:
    """Write into ``folder`` from now on: ``paths.output_dir`` (which checkpoints, loggers and results follow),
    the job log; the new, still empty Hydra folder is removed."""
    from rsseg.runtime.app import remove_run_dir_if_empty

    OmegaConf.update(cfg, "paths.output_dir", str(folder), force_add=True)
    for handler in logging.root.handlers[:]:
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename).parent == current:
            name = Path(handler.baseFilename).name
            replacement = logging.FileHandler(folder / name, mode="a")
            replacement.setFormatter(handler.formatter)
            replacement.setLevel(handler.level)
            logging.root.addHandler(replacement)
            logging.root.removeHandler(handler)
            handler.close()
    remove_run_dir_if_empty(current)


def _continue_logger(logger) -> None:
    name = type(logger).__name__
    if name in ("CSVLogger", "TensorBoardLogger"):
        root = Path(logger.root_dir)
        versions = [int(p.name.split("_", 1)[1]) for p in root.glob("version_*") if p.name.split("_", 1)[1].isdigit()]
        if not versions:
            return
        logger._version = max(versions)
        if name == "CSVLogger":
            _keep_csv_rows(logger)
    elif name == "WandbLogger":
        latest = Path(logger.save_dir or ".") / "wandb" / "latest-run"
        if latest.exists():
            run_id = latest.resolve().name.rsplit("-", 1)[-1]
            logger._wandb_init.update(id=run_id, resume="allow")
            logger._id = run_id


def _keep_csv_rows(logger) -> None:
    """Lightning's CSV writer deletes an existing metrics.csv when it opens a version folder; keep its rows and
    header so the resumed run appends to them."""
    metrics = Path(logger.log_dir) / "metrics.csv"
    saved = metrics.read_bytes() if metrics.exists() else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        writer = logger.experiment
    if saved:
        metrics.write_bytes(saved)
        writer.metrics_keys = next(csv.reader(io.StringIO(saved.decode())), [])
