"""rsseg export: ONNX and TorchScript files that carry their classes and normalisation and predict what the
checkpoint predicts, through rsseg predict or on their own."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import rasterio
import torch
from omegaconf import OmegaConf
from torch import nn

import rsseg
from rsseg.errors import ConfigError, DataError
from rsseg.models.hub import build_model, compose_model_config
from tests.readme import run_rsseg
from tests.test_inference import MEAN, STD, smooth_image, write_geotiff
from tests.test_predict_cli import CLASSES, PALETTE, data_config

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


def fitted_mst_deeplab(image: np.ndarray) -> nn.Module:
    """MST-DeepLabv3+ with BatchNorm statistics from ``image`` and its 1x1 classifier fitted to four brightness
    levels of band 1 on the network's own features, so that its classes follow the scene (an untrained network
    predicts one class everywhere, which any export would reproduce)."""
    torch.manual_seed(0)
    model = build_model("mst_deeplab", num_classes=4, pretrained=None)
    x = (torch.from_numpy(image).float() - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)
    with torch.no_grad():
        model.train()(torch.stack([x[:, :128, :128], x[:, 100:228, 100:228], x[:, 150:278, :128]]))
    model.eval()
    head = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.out_channels == 4][-1]
    features = {}
    hook = head.register_forward_hook(lambda module, inputs, output: features.update(x=inputs[0].detach()))
    with torch.no_grad():
        model(x[None, :, :256, :256])
    hook.remove()
    step = 256 // features["x"].shape[-1]
    target = torch.from_numpy(np.digitize(image[0, :256:step, :256:step], [100, 120, 140])).long()[None]
    optimiser = torch.optim.Adam(head.parameters(), 0.05)
    for _ in range(100):
        loss = nn.functional.cross_entropy(head(features["x"]), target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A checkpoint as rsseg's training writes it (MST-DeepLabv3+, four classes, 128 px tiles), a scene and the
    checkpoint's prediction of it (ckpt_classes.tif)."""
    folder = tmp_path_factory.mktemp("export")
    pixels = smooth_image(300, 260)
    scene = write_geotiff(folder / "scene.tif", pixels)
    model_cfg = compose_model_config("mst_deeplab", num_classes=4).model
    model_cfg.pretrained = None
    model = fitted_mst_deeplab(pixels)
    cfg = {"model": OmegaConf.to_container(model_cfg, resolve=True), "data": data_config(eval_tile_size=128)}
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    ckpt = folder / "best.ckpt"
    torch.save({"hyper_parameters": {"cfg": cfg}, "state_dict": state}, ckpt)
    rsseg.predict_scene(ckpt, scene, folder / "ckpt_classes.tif", progress=False)
    return folder, scene, ckpt


def predicted(path) -> np.ndarray:
    with rasterio.open(path) as handle:
        return handle.read(1)


def test_onnx_export_predicts_the_checkpoints_classes(trained):
    folder, scene, ckpt = trained
    run = run_rsseg(["rsseg", "export", f"ckpt={ckpt}", "format=onnx", "output=fields.onnx"], folder)
    assert run.returncode == 0, run.stderr[-3000:]
    difference = float(re.search(r"largest logit difference from the checkpoint on a random tile: (\S+)",
                                 run.stdout).group(1))
    assert difference < 1e-3

    # The metadata, read the way someone without rsseg reads it.
    session = ort.InferenceSession(str(folder / "fields.onnx"), providers=["CPUExecutionProvider"])
    meta = json.loads(session.get_modelmeta().custom_metadata_map["rsseg"])
    assert meta["class_names"] == CLASSES and meta["palette"] == PALETTE
    assert (meta["mean"], meta["std"], meta["bands"]) == ([120.0, 110.0, 100.0], [50.0, 45.0, 40.0], None)
    assert (meta["num_classes"], meta["in_channels"], meta["tile_size"]) == (4, 3, 128)
    assert meta["model"] == "rsseg.models.deeplab.DeepLabV3Plus" and meta["source_checkpoint"] == str(ckpt)
    (image,) = session.get_inputs()
    assert image.name == "image" and image.shape[1:] == [3, 128, 128]
    assert session.get_outputs()[0].name == "logits"

    rsseg.predict_scene(folder / "fields.onnx", scene, folder / "onnx_classes.tif", progress=False)
    reference, exported = predicted(folder / "ckpt_classes.tif"), predicted(folder / "onnx_classes.tif")
    counts = np.bincount(reference.ravel(), minlength=4)
    assert (counts > 0.05 * reference.size).sum() >= 2  # the classes follow the scene
    assert (reference == exported).mean() >= 0.999
    # The same through the command a user hands the file to.
    run = run_rsseg(["rsseg", "predict", "ckpt=fields.onnx", f"input={scene}", "output=cli_onnx_classes.tif",
                     "progress=false"], folder)
    assert run.returncode == 0, run.stderr[-3000:]
    assert (reference == predicted(folder / "cli_onnx_classes.tif")).mean() >= 0.999
    with rasterio.open(scene) as src, rasterio.open(folder / "onnx_classes.tif") as dst:
        assert (dst.crs, dst.transform, dst.shape) == (src.crs, src.transform, src.shape)
        assert json.loads(dst.tags()["CLASS_NAMES"]) == CLASSES and dst.colormap(1)[1][:3] == tuple(PALETTE[1])


def test_torchscript_export_loads_with_torch_alone(trained):
    folder, scene, ckpt = trained
    report = rsseg.export_model(ckpt, folder / "fields.pt", format="torchscript")
    assert report["tile_size"] == 128 and report["max_logit_difference"] < 1e-4
    extra = {"rsseg.json": ""}
    network = torch.jit.load(str(folder / "fields.pt"), _extra_files=extra)
    meta = json.loads(extra["rsseg.json"])
    assert meta["class_names"] == CLASSES and meta["data"]["eval_tile_size"] == 128
    x = (torch.from_numpy(smooth_image(128, 128, seed=3)).float()[None] - torch.tensor(meta["mean"]).view(1, 3, 1, 1)
         ) / torch.tensor(meta["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = rsseg.load_checkpoint(ckpt).model(x)
        assert torch.allclose(network(x), expected, atol=1e-4)
        assert network(x.repeat(3, 1, 1, 1)).shape == (3, 4, 128, 128)  # any batch size

    rsseg.predict_scene(folder / "fields.pt", scene, folder / "pt_classes.tif", progress=False)
    # TorchScript runs the network's own PyTorch kernels: the classes are the checkpoint's, pixel for pixel.
    assert np.array_equal(predicted(folder / "pt_classes.tif"), predicted(folder / "ckpt_classes.tif"))


def test_export_refusals(trained):
    folder, scene, ckpt = trained
    with pytest.raises(ConfigError, match="format='tflite'; expected one of onnx, torchscript"):
        rsseg.export_model(ckpt, folder / "x.tflite", format="tflite")
    (folder / "taken.onnx").write_text("someone's file")
    with pytest.raises(DataError, match="taken.onnx: exists; pass overwrite=true"):
        rsseg.export_model(ckpt, folder / "taken.onnx")
    assert (folder / "taken.onnx").read_text() == "someone's file"
    exported = folder / "small.onnx"
    rsseg.export_model(ckpt, exported, tile_size=64, check=False)
    assert rsseg.load_checkpoint(exported).tile_size == 64
    with pytest.raises(ConfigError, match=r"small.onnx: exported for \[N, 3, 64, 64\] input, got \[\d+, 3, 128, 128\]"):
        rsseg.predict_scene(exported, scene, folder / "wrong.tif", tile_size=128, progress=False)
    assert not (folder / "wrong.tif").exists() and not list(folder.glob(".wrong*"))
    with pytest.raises(ConfigError, match="already an exported model"):
        rsseg.export_model(exported, folder / "again.onnx")
    not_rsseg = folder / "plain.onnx"
    torch.onnx.export(nn.Conv2d(3, 2, 1), (torch.zeros(1, 3, 8, 8),), str(not_rsseg), dynamo=False)
    with pytest.raises(DataError, match="plain.onnx: no rsseg metadata"):
        rsseg.load_checkpoint(not_rsseg)
