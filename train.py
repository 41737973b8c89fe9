"""Train a segmentation model: ``python train.py model=mst_deeplab data=gid`` (see README)."""

import hydra
from omegaconf import DictConfig

from rsseg.app import run_app, run_guarded
from rsseg.config import CONF_DIR


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    results = run_guarded("rsseg.train:train", cfg)  # imported once the config passed its checks
    # Sweepers (Optuna) optimise the returned value.
    return results["metrics"].get("val", {}).get("miou")


if __name__ == "__main__":
    run_app(main)
