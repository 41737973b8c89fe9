"""Composing rsseg's Hydra configs outside a running Hydra app (tests, benchmarks, notebooks)."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

import rsseg.data.stats  # noqa: F401 - registers the ${rsseg.stats:...} resolver the data configs use
import rsseg.schema  # noqa: F401 - registers the configs' schemas (train_schema ...) in Hydra's ConfigStore

# The configs ship inside the package, so an installed rsseg finds them wherever it runs.
CONF_DIR = Path(__file__).resolve().parent / "conf"


def compose_config(config_name: str = "train", overrides: list[str] | None = None) -> DictConfig:
    """The config ``python <config_name>.py <overrides>`` would run with (``paths.output_dir`` must be given
    in the overrides to resolve it, since no Hydra run folder exists here), checked against its schema as the
    command checks it (:func:`rsseg.schema.check_config`)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=list(overrides or []))
    rsseg.schema.check_config(cfg)
    return cfg
