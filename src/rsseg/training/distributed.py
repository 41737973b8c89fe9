"""DDP under Hydra: how the processes of ranks above 0 are started.

Lightning's DDP launcher starts the other ranks by re-running the script with its original command line. Inside a
Hydra multirun that command is the whole sweep, so every rank launches every job again and makes its own output
folders (lightning-hydra-template #393, Lightning #11300); ``rsseg train`` cannot be re-run from ``sys.argv`` at
all. rsseg starts them as ``python -m rsseg.training.worker <job folder>/.rsseg/ddp_config.yaml`` instead: the job's
resolved config, written by rank 0, from which they build the same model and data without Hydra. They create no
folders, start no jobs and write nothing (checkpoints, logs and results.json are rank 0's); their metrics reach
rank 0 through the synchronised confusion matrices (:mod:`rsseg.training.worker` is their entry point). Multi-node runs under SLURM need none of this: srun starts
every rank itself (``hydra/launcher=submitit_slurm``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from omegaconf import OmegaConf

from rsseg.runtime.files import replaced_when_complete
from rsseg.runtime.results import jsonable

CONFIG_NAME = "ddp_config.yaml"
_resolved: dict | None = None


def start_workers_from(resolved: dict) -> None:
    """Have Lightning start ranks above 0 from this resolved config (called by rank 0 before the Trainer)."""
    global _resolved
    _resolved = resolved
    from lightning.pytorch.strategies.launchers import subprocess_script

    subprocess_script._hydra_subprocess_cmd = worker_command


@contextmanager
def job_scope() -> Iterator[None]:
    """One training job's distributed state, undone when it ends: the process group is destroyed and the
    environment variables Lightning's launcher set (MASTER_PORT, WORLD_SIZE, LOCAL_RANK ...) are restored, so that
    the next job of a multirun in the same process starts its own ranks on a fresh port instead of joining the
    finished job's group."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        os.environ.clear()
        os.environ.update(saved)


def trainer_arguments(trainer_cfg) -> dict:
    """Overrides of the Trainer config for this job: ``devices: job`` (trainer=gpu_per_job) becomes one GPU,
    the job number modulo the GPU count, so that parallel local sweep jobs spread over the GPUs; one CPU process
    when there is none or the CPU was asked for (``scale=smoke`` and ``scale=cpu`` train on the CPU)."""
    if str(trainer_cfg.get("devices")) != "job":
        return {}
    import torch

    count = torch.cuda.device_count()
    if count == 0 or str(trainer_cfg.get("accelerator")) == "cpu":
        return {"accelerator": "cpu", "devices": 1}
    from hydra.core.hydra_config import HydraConfig

    try:
        number = int(HydraConfig.get().job.num)
    except (ValueError, TypeError):
        number = 0
    return {"devices": [number % count]}


def worker_command(local_rank: int) -> tuple[list[str], str]:
    """The command and working folder of the process of ``local_rank`` (Lightning's launcher calls this)."""
    if _resolved is None:
        raise RuntimeError("rsseg.training.distributed.start_workers_from was not called before the DDP launch")
    path = Path(_resolved["paths"]["output_dir"]) / ".rsseg" / CONFIG_NAME
    if not path.is_file():
        with replaced_when_complete(path) as tmp:
            OmegaConf.save(OmegaConf.create(jsonable(_resolved)), tmp)
    return [sys.executable, "-m", "rsseg.training.worker", str(path)], os.getcwd()
