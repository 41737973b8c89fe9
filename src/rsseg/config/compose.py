"""Where rsseg's Hydra configs live, the user folders searched beside them, and composing outside a Hydra app.

The configs ship inside the package (``rsseg/conf``: one folder per config group, one YAML per option), so an
installed rsseg finds them wherever it runs. Users add their own groups and options from folders of their own:

* ``rsseg train --config-dir ./my_conf model=my_unet`` (Hydra's flag) for one command;
* ``RSSEG_CONFIG_PATH=/home/me/my_conf:/lab/conf`` for every command: the primary configs put these folders on
  Hydra's search path (``hydra.searchpath: ${rsseg.searchpath:}``, :mod:`rsseg.config.resolvers`).

rsseg's own folder comes first on the search path, so a user option with the name of one of rsseg's is shadowed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from importlib.resources import files
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

import rsseg.config.schema  # noqa: F401 - registers the configs' schemas (train_schema ...) in Hydra's ConfigStore
from rsseg.config.checks import check_config
from rsseg.config.resolvers import register_resolvers, search_path, user_config_dirs

register_resolvers()

# A real folder for a normal (unzipped) install, which is what Hydra's file:// config source needs.
CONF_DIR = Path(str(files("rsseg") / "conf"))
PRIMARY_CONFIGS = ("train", "eval", "predict", "prepare", "export")


def config_folders(extra: Iterable[str | os.PathLike] = ()) -> list[Path]:
    """rsseg's config folder, then the user folders (the order Hydra searches them)."""
    return [CONF_DIR, *(d for d in user_config_dirs(extra) if d.is_dir())]


def config_groups(folders: Sequence[Path] | None = None) -> dict[str, list[str]]:
    """Every config group (``model``, ``model/encoder``, ...) and its options, over ``folders`` (default: rsseg's
    own), sorted. Hydra's own group ``hydra`` is left out."""
    groups: dict[str, set[str]] = {}
    for folder in folders or [CONF_DIR]:
        for path in Path(folder).rglob("*.yaml"):
            group = path.parent.relative_to(folder).as_posix()
            if group != "." and group.split("/")[0] != "hydra":
                groups.setdefault(group, set()).add(path.stem)
    return {group: sorted(options) for group, options in sorted(groups.items())}


def compose_config(
    config_name: str | None = "train",
    overrides: list[str] | None = None,
    config_dirs: Iterable[str | os.PathLike] = (),
) -> DictConfig:
    """The config ``rsseg <config_name> <overrides>`` would run with (``paths.output_dir`` must be given
    in the overrides to resolve it, since no Hydra run folder exists here); ``config_name=None`` composes the
    overrides alone (``+model=unet``).

    ``config_dirs`` are searched after rsseg's own folder, like ``--config-dir``, and so are the folders of
    ``$RSSEG_CONFIG_PATH``. Works outside and inside a running Hydra application: the global Hydra state is
    restored afterwards. The result is checked against its schema as the command checks it
    (:func:`rsseg.config.checks.check_config`).
    """
    overrides = list(overrides or [])
    extra = search_path(config_dirs)
    if extra and not any(o.startswith("hydra.searchpath=") for o in overrides):
        overrides.append("hydra.searchpath=[" + ",".join(f"'{entry}'" for entry in extra) + "]")
    global_hydra = GlobalHydra.instance()
    saved = global_hydra.hydra if global_hydra.is_initialized() else None
    global_hydra.clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name=config_name, overrides=overrides)
    finally:
        # initialize_config_dir swaps the singleton on exit: fetch the current instance again.
        GlobalHydra.instance().clear()
        if saved is not None:
            GlobalHydra.instance().initialize(saved)
    check_config(cfg)
    return cfg
