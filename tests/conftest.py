"""Shared fixtures: the repository, the optional ../shared folder, small synthetic scenes and composed configs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rsseg.config import compose_config  # noqa: F401 - re-exported for the tests

REPO = Path(__file__).resolve().parents[1]

# Under pytest-xdist (`make test` runs two workers) each worker gets one of the two cores: torch's intra-op threads
# of two workers would otherwise wait on each other at the end of every operation, and a test's subprocesses
# inherit the setting.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)
SHARED = REPO.parent / "shared"

# Small scenes so the whole pipeline runs in seconds on two cores.
SMALL_DATA = [
    "data.scenes.size=256",
    "data.scenes.num_scenes=3",
    "data.scenes.val_scenes=1",
    "data.tile_size=64",
    "data.eval_tile_size=128",
    "data.train_samples_per_epoch=8",
    "data.batch_size=4",
    "data.num_workers=0",
]


def pytest_itemcollected(item):
    """Groups for ``--dist loadgroup``, given as each test is collected (before xdist turns them into test ids): a
    module's tests run on one worker (its module-scoped fixtures are built once), and the bad-input corpus runs
    whole on one worker (its session fixture runs every case two at a time, and tests/bad_inputs/test_world.py
    checks the inputs after all of them)."""
    if item.get_closest_marker("xdist_group") is None:
        path = Path(str(item.fspath))
        corpus = REPO / "tests" / "bad_inputs"
        group = "bad_inputs" if corpus in path.parents else path.relative_to(REPO).as_posix()
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="session")
def shared() -> Path:
    """The team's shared data folder beside the checkout; tests that need it skip cleanly without it."""
    if not SHARED.is_dir():
        pytest.skip("../shared is not present beside the checkout")
    return SHARED


@pytest.fixture(scope="session", autouse=True)
def cache_dir(tmp_path_factory) -> Path:
    """One synthetic-data and read cache for the whole session, outside the user's real cache (every test gets
    it: a datamodule built without ``paths.cache_dir`` would otherwise write its read cache under ~/.cache)."""
    path = tmp_path_factory.mktemp("rsseg-cache")
    os.environ["RSSEG_CACHE"] = str(path)
    return path


@pytest.fixture(autouse=True)
def torch_threads():
    """Each test starts with the process's torch thread count: a prediction run in-process with ``num_threads``
    sets it for the whole process, and float sums over another thread count differ in their last bits (a resumed
    run compared with one trained in-process would then differ for a reason that is not rsseg's)."""
    import torch

    threads = torch.get_num_threads()
    yield
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


@pytest.fixture
def train_config(tmp_path, cache_dir):
    """A factory of small training configs writing into ``tmp_path``."""

    def make(*overrides: str):
        return compose_config(
            "train",
            [
                f"paths.output_dir={tmp_path}",
                f"paths.cache_dir={cache_dir}",
                *SMALL_DATA,
                "logger=none",
                "trainer.max_epochs=1",
                "trainer.enable_progress_bar=false",
                "trainer.enable_model_summary=false",
                "callbacks.rich_progress_bar=null",
                "callbacks.model_summary=null",
                *overrides,
            ],
        )

    return make
