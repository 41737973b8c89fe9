"""Predict whole georeferenced scenes: ``python predict.py ckpt=best.ckpt input=scene.tif output=classes.tif``.

``input`` may be a GeoTIFF, a folder or a quoted glob; see conf/predict.yaml for tiling, blending, TTA and outputs.
"""

import hydra
from omegaconf import DictConfig

from rsseg.config import CONF_DIR
from rsseg.inference.predict import main as predict
from rsseg.runtime.app import run_app


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="predict")
def main(cfg: DictConfig) -> None:
    predict(cfg)


if __name__ == "__main__":
    run_app(main)
