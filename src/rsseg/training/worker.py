"""The entry point of a DDP rank above 0: ``python -m rsseg.training.worker <job folder>/.rsseg/ddp_config.yaml``.

Rank 0 writes the job's resolved config there and Lightning's launcher starts this module once per other rank
(:mod:`rsseg.training.distributed`); the rank trains from that config without Hydra, with the rank Lightning's
environment variables give it.
"""

from __future__ import annotations

import sys

from omegaconf import OmegaConf

from rsseg.training.train import train


def run_worker(config_path: str) -> None:
    """Train from the stored config as one rank of the job's process group."""
    train(OmegaConf.load(config_path))


if __name__ == "__main__":
    run_worker(sys.argv[1])
