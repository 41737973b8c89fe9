"""Every named model trains through the task: one fast_dev_run step per model on small synthetic windows."""

import pytest

from rsseg.models.hub import NAMED_MODELS
from rsseg.training.train import train

# The biggest models (over 60 M parameters) take 20-45 s each here: they run with `-m slow`.
HEAVY = {"deconvnet", "deconvnet_skip", "deeplab_subpixel", "deeplab_subpixel_skip", "fcn32s", "fcn8s", "pspnet"}


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in NAMED_MODELS]
)
def test_fast_dev_run_of_every_named_model(name, train_config):
    # pretrained=null: tests never download; ImageNet loading is covered in test_pretrained.py.
    cfg = train_config(f"model={name}", "model.pretrained=null", "trainer.fast_dev_run=true",
                       "data.batch_size=2", "data.eval_batch_size=1")
    results = train(cfg)
    assert results["steps"] == 1
    assert set(results["metrics"]["val"]["per_class"]) == set(cfg.data.class_names)
    assert results["params"] > 1_000_000 and results["gflops"] > 0
