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
        elif group == "aug" and node:
            from rsseg.data.augment import steps

            assert steps(instantiate(node))  # augmentations the device batch can run
        elif node:
            assert callable(instantiate(node))


def test_optimizer_and_scheduler_options_follow_their_formulas(tmp_path):
    """Every optimiser x schedule over 400 steps: the learning rate at warm-up end, mid-run and the last step is
    the schedule's formula (cosine warms up over its 100 steps from 0.1 x lr, then decays to 0.01 x lr)."""
    import math

    import torch

    total = 400
    params = [torch.nn.Parameter(torch.zeros(1))]
    for optimizer in options("optimizer"):
        for scheduler in options("scheduler"):
            cfg = compose_config("train", [f"optimizer={optimizer}", f"scheduler={scheduler}"])
            opt = instantiate(cfg.optimizer)(params=params)
            sched = instantiate(cfg.scheduler)(opt, total_steps=total)
            lrs = []
            for _ in range(total):
                lrs.append(opt.param_groups[0]["lr"])
                opt.step()
                sched.step()
            lr = cfg.optimizer.lr
            if scheduler == "constant":
                expected = {0: lr, 200: lr, 399: lr}
            elif scheduler == "cosine":
                def cosine(step: int, lr: float = lr) -> float:
                    progress = (step - 100) / 300
                    return lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress)))

                expected = {0: 0.1 * lr, 50: lr * (0.1 + 0.9 * 50 / 100), 100: lr, 250: cosine(250), 399: cosine(399)}
            elif scheduler == "poly":
                expected = {0: lr, 200: lr * 0.5**0.9, 399: lr * (1 / 400) ** 0.9}
            else:  # step: x 0.1 at 50 % and again at 75 % of the run
                expected = {199: lr, 200: lr * 0.1, 299: lr * 0.1, 300: lr * 0.01, 399: lr * 0.01}
            for step, value in expected.items():
                assert lrs[step] == pytest.approx(value, rel=1e-9), (optimizer, scheduler, step)


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


def test_the_cpu_scale_lets_xception_batch_norm_statistics_settle_within_its_run(tmp_path):
    """At momentum m a BN running statistic keeps (1 - m) ** steps of its initial value after ``steps`` steps."""
    def xception(scale):
        return compose_config("train", ["experiment=mst_ablation", "row=mst/xception", f"scale={scale}",
                                        f"paths.output_dir={tmp_path}"])

    cpu, full = xception("cpu"), xception("full")
    steps = cpu.trainer.max_epochs * cpu.data.train_samples_per_epoch // cpu.data.batch_size
    assert steps == 192
    assert full.model.encoder.momentum == 0.0003  # the reference code's, for paper-length runs
    assert (1 - full.model.encoder.momentum) ** steps > 0.94  # what scale=cpu ran with before: barely moved
    assert cpu.model.encoder.momentum == 0.1 and (1 - cpu.model.encoder.momentum) ** steps < 1e-8
    encoder = instantiate(cpu.model.encoder)
    assert {m.momentum for m in encoder.modules() if m.__class__.__name__ == "BatchNorm2d"} == {0.1}


@pytest.mark.parametrize("scale", ["full", "cpu", "smoke"])
def test_a_scale_leaves_the_process_count_to_the_trainer(scale):
    def trainer(name: str):
        return compose_config("train", [f"trainer={name}", f"scale={scale}"]).trainer

    assert (trainer("ddp_sim").devices, trainer("ddp_sim").strategy) == (2, "ddp")
    assert trainer("ddp").devices == 4 and trainer("default").devices == 1
    assert trainer("default").accelerator == ("auto" if scale == "full" else "cpu")
