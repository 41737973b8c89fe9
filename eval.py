"""Evaluate on full scenes: ``python eval.py ckpt=best.ckpt [data=potsdam protocol=geoseg]`` or score saved
predictions: ``python eval.py pred=pred/ label=labels/``. See conf/eval.yaml."""

import hydra
from omegaconf import DictConfig

from rsseg.config import CONF_DIR
from rsseg.evaluation.evaluate import main as evaluate
from rsseg.runtime.app import run_app


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="eval")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    run_app(main)
