"""Where a run writes and what Hydra chose for it: the one answer every command uses."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf


def run_dir(cfg: DictConfig, key: str | None = None) -> Path:
    """The folder a run writes into: ``cfg[key]`` when the user set it (``out_dir`` of eval and prepare), else
    ``paths.output_dir``, else Hydra's run folder, else the working folder (outside a Hydra run)."""
    if key and cfg.get(key):
        return Path(str(cfg[key])).expanduser()
    try:
        value = OmegaConf.select(cfg, "paths.output_dir")
    except Exception:  # noqa: BLE001 - ${hydra:...} outside a Hydra run
        value = None
    if value:
        return Path(str(value))
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    return Path.cwd()


def hydra_choice(group: str) -> str | None:
    """The option chosen for a config group in this run (``model`` -> ``mst_deeplab``), when run by Hydra."""
    from hydra.core.hydra_config import HydraConfig

    try:
        return HydraConfig.get().runtime.choices.get(group)
    except ValueError:
        return None
