"""Composing rsseg's Hydra configs outside a running Hydra app (tests, benchmarks, notebooks)."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

import rsseg.data.stats  # noqa: F401 - registers the ${rsseg.stats:...} resolver the data configs use

# The configs ship inside the package, so an installed rsseg finds them wherever it runs.
CONF_DIR = Path(__file__).resolve().parent / "conf"


def compose_config(config_name: str = "train", overrides: list[str] | None = None) -> DictConfig:
    """The config ``python <config_name>.py <overrides>`` would run with (``paths.output_dir`` must be given
    in the overrides to resolve it, since no Hydra run folder exists here)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name=config_name, overrides=list(overrides or []))
