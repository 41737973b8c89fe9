"""Every option of every config group composes with Hydra's compose API, and the light ones instantiate."""

from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from tests.conftest import REPO, compose_config

GROUPS = ["data", "model", "aug", "loss", "optimizer", "scheduler", "trainer", "callbacks", "logger"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (REPO / "src" / "rsseg" / "conf" / group).glob("*.yaml"))


CASES = [(group, option) for group in GROUPS for option in options(group)]


@pytest.mark.parametrize(("group", "option"), CASES, ids=[f"{g}={o}" for g, o in CASES])
def test_every_option_composes(group, option, tmp_path):
    cfg = compose_config("train", [f"{group}={option}", f"paths.output_dir={tmp_path}", f"paths.cache_dir={tmp_path}"])
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert resolved["data"]["num_classes"] == len(resolved["data"]["class_names"])
    if group in ("loss", "aug", "callbacks", "logger"):
        node = cfg[group]
        if group in ("callbacks", "logger"):
            built = [instantiate(item) for item in node.values() if item is not None] if node else []
            assert all(b is not None for b in built)
        elif node:
            assert callable(instantiate(node))


def test_optimizer_and_scheduler_options_build_a_working_schedule(tmp_path):
    import torch

    params = [torch.nn.Parameter(torch.zeros(1))]
    for optimizer in options("optimizer"):
        for scheduler in options("scheduler"):
            cfg = compose_config("train", [f"optimizer={optimizer}", f"scheduler={scheduler}"])
            opt = instantiate(cfg.optimizer)(params=params)
            sched = instantiate(cfg.scheduler)(opt, total_steps=100)
            lrs = []
            for _ in range(100):
                lrs.append(opt.param_groups[0]["lr"])
                opt.step()
                sched.step()
            assert lrs[-1] <= max(lrs), (optimizer, scheduler)
            if scheduler == "poly":
                assert lrs[0] == pytest.approx(cfg.optimizer.lr) and lrs[50] == pytest.approx(cfg.optimizer.lr * 0.5**0.9)


def test_unknown_option_is_refused_with_the_group_named():
    from hydra.errors import MissingConfigException

    with pytest.raises(MissingConfigException, match="optimizer"):
        compose_config("train", ["optimizer=adagrad_typo"])


def test_config_folders_mirror_the_code():
    # One YAML per option; no stray files that Hydra would silently ignore.
    for path in (REPO / "src" / "rsseg" / "conf").rglob("*"):
        if path.is_file():
            assert path.suffix == ".yaml", path
    assert Path(REPO / "train.py").is_file() and Path(REPO / "eval.py").is_file() and Path(REPO / "predict.py").is_file()
