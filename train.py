"""Train a segmentation model: ``python train.py model=mst_deeplab data=gid`` (see README)."""

import hydra
from omegaconf import DictConfig

from rsseg.config import CONF_DIR
from rsseg.runtime.app import run_app
from rsseg.training.command import main as train


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(cfg: DictConfig) -> float:
    # Sweepers (Optuna) optimise the returned validation mIoU.
    return train(cfg)


if __name__ == "__main__":
    run_app(main)
