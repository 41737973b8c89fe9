"""The resolvers rsseg's configs call: ``${rsseg.searchpath:}``, ``${rsseg.stats:...}`` and
``${rsseg.job_folder:...}`` (a sweep job's folder name, :mod:`rsseg.config.names`).

``${rsseg.searchpath:}`` puts the user's config folders (``$RSSEG_CONFIG_PATH``) on Hydra's search path. The data
configs read their normalisation through ``${rsseg.stats:...}``::

    stats_file: null
    mean: ${rsseg.stats:${.stats_file},mean,[123.675, 116.28, 103.53]}

When ``stats_file`` names a file that exists, the resolver returns the file's ``mean`` (or ``std``); otherwise the
default given in the config. Because the numbers are resolved into the config, the resolved config that every run
stores (results.json, checkpoints) holds the statistics the model was really trained with, and prediction from a
checkpoint normalises the same way.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from omegaconf import OmegaConf

from rsseg.config.names import JOB_FOLDER, job_folder
from rsseg.errors import ConfigError

log = logging.getLogger(__name__)

STATS = "rsseg.stats"
SEARCH_PATH = "rsseg.searchpath"
CONFIG_PATH_ENV = "RSSEG_CONFIG_PATH"


def user_config_dirs(extra: Iterable[str | os.PathLike] = ()) -> list[Path]:
    """``extra`` folders, then those of ``$RSSEG_CONFIG_PATH`` (``os.pathsep``-separated), as absolute paths."""
    listed = [*extra, *os.environ.get(CONFIG_PATH_ENV, "").split(os.pathsep)]
    dirs: list[Path] = []
    for entry in listed:
        if str(entry).strip():
            path = Path(entry).expanduser().absolute()
            if path not in dirs:
                dirs.append(path)
    return dirs


def search_path(extra: Iterable[str | os.PathLike] = ()) -> list[str]:
    """The user folders as Hydra search path entries (``file:///...``)."""
    return [f"file://{path}" for path in user_config_dirs(extra)]


def load_stats(path: str | Path) -> dict:
    path = Path(path)
    try:
        stats = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigError(f"{path}: not a readable stats file ({error})") from None
    for key in ("mean", "std"):
        if not isinstance(stats.get(key), list) or not stats[key]:
            raise ConfigError(f"{path}: stats file has no '{key}' list; expected one that `rsseg prepare` writes "
                              f"without check_pixels=false")
    return stats


def stats_or_default(stats_file: str | None, key: str, default: Sequence[float]) -> list[float]:
    """The ``key`` (mean or std) of ``stats_file`` when it is set and exists, else ``default``."""
    if key not in ("mean", "std"):
        raise ConfigError(f"${{{STATS}:...}} reads 'mean' or 'std', not {key!r}")
    default = list(default) if default is not None else None
    if not stats_file:
        return default
    path = Path(str(stats_file)).expanduser()
    if not path.exists():
        log.warning("data.stats_file %s does not exist (yet): using the mean/std of the data config", path)
        return default
    # The datamodule checks the band count against in_channels, naming data.mean / data.std.
    return [float(v) for v in load_stats(path)[key]]


def register_resolvers() -> None:
    """Make the resolvers known to OmegaConf (once per process)."""
    if not OmegaConf.has_resolver(SEARCH_PATH):
        OmegaConf.register_new_resolver(SEARCH_PATH, lambda: search_path())
    if not OmegaConf.has_resolver(STATS):
        OmegaConf.register_new_resolver(
            STATS, lambda path, key, default=None: stats_or_default(path, key, default), use_cache=False
        )
    if not OmegaConf.has_resolver(JOB_FOLDER):
        OmegaConf.register_new_resolver(JOB_FOLDER, job_folder)
