"""Pretrained encoder weights (local files, never downloads) and the frozen-encoder transfer schedule."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
import torchvision
from torch import nn

from rsseg.models.encoders import ResNetEncoder, TimmEncoder, VGGEncoder
from rsseg.models.hub import build_model
from rsseg.models.pretrained import (
    PretrainedWeightsError,
    adapt_conv_weight,
    load_pretrained,
    read_state_dict,
)
from rsseg.training.callbacks.freeze import FreezeEncoder


@pytest.fixture(scope="module")
def mobilenet_file(tmp_path_factory) -> tuple[Path, dict]:
    """A randomly initialised torchvision MobileNetV2 state dict, as torchvision saves it."""
    torch.manual_seed(1)
    state = torchvision.models.mobilenet_v2().state_dict()
    path = tmp_path_factory.mktemp("weights") / "mobilenet_v2_random.pth"
    torch.save(state, path)
    return path, state


def _assert_encoder_equals_file(model: nn.Module, state: dict) -> None:
    own = model.encoder.state_dict()
    compared = 0
    for key, value in state.items():
        if key.startswith(("classifier.", "features.18.")):
            assert key not in own
            continue
        assert torch.equal(own[key], value), key
        compared += 1
    assert compared == len(own) == 306  # every encoder tensor, BN statistics included


def test_local_torchvision_file_sets_encoder_weights_exactly(mobilenet_file):
    path, state = mobilenet_file
    before = build_model("mst_deeplab", num_classes=6)
    model = build_model("mst_deeplab", num_classes=6, pretrained=str(path))
    assert not torch.equal(
        before.encoder.features[3].conv[1][0].weight, model.encoder.features[3].conv[1][0].weight
    )
    _assert_encoder_equals_file(model, state)


def test_shared_imagenet_mobilenet_v2_loads_into_mst(shared):
    weights = shared / "weights" / "mobilenet_v2_imagenet.pth"
    if not weights.is_file():
        pytest.skip(f"{weights} is not present")
    state = torch.load(weights, map_location="cpu", weights_only=True)
    model = build_model("mst_deeplab", num_classes=6, pretrained=str(weights))
    _assert_encoder_equals_file(model, state)
    # ImageNet statistics, not the fresh-BN defaults.
    assert not torch.allclose(model.encoder.features[1].conv[0][1].running_var, torch.ones(32))


@pytest.mark.parametrize("wrapper", ["state_dict", "model"])
def test_wrapped_and_prefixed_state_dicts(mobilenet_file, tmp_path, wrapper):
    _, state = mobilenet_file
    path = tmp_path / "wrapped.pth"
    torch.save({wrapper: {f"module.backbone.{k}": v for k, v in state.items()}, "epoch": 3}, path)
    assert set(read_state_dict(path)) == {f"module.backbone.{k}" for k in state}
    model = build_model("deeplabv3plus_mobilenetv2", num_classes=2, pretrained=str(path))
    _assert_encoder_equals_file(model, state)


def test_shape_mismatch_is_refused_naming_the_key(mobilenet_file, tmp_path):
    _, state = mobilenet_file
    bad = dict(state)
    bad["features.5.conv.0.0.weight"] = torch.zeros(7, 32, 1, 1)
    path = tmp_path / "bad.pth"
    torch.save(bad, path)
    with pytest.raises(
        ValueError, match=r"features\.5\.conv\.0\.0\.weight.*\(7, 32, 1, 1\).*\(192, 32, 1, 1\)"
    ):
        build_model("deeplabv3plus_mobilenetv2", num_classes=2, pretrained=str(path))


def test_missing_and_unexpected_keys_are_reported_by_name(mobilenet_file, tmp_path):
    _, state = mobilenet_file
    partial = {k: v for k, v in state.items() if not k.startswith("features.17.")}
    partial["extra.layer.weight"] = torch.zeros(3)
    path = tmp_path / "partial.pth"
    torch.save(partial, path)
    model = build_model("deeplabv3plus_mobilenetv2", num_classes=2)
    with pytest.warns(UserWarning) as record:
        report = load_pretrained(model.encoder, path)
    messages = " ".join(str(w.message) for w in record)
    assert "features.17.conv.0.0.weight" in messages and "extra.layer.weight" in messages
    assert "features.17.conv.0.0.weight" in report.missing
    assert report.unexpected == ["extra.layer.weight"]
    assert "classifier.1.weight" in report.skipped_head


def test_extra_bands_adapt_the_rgb_kernel(mobilenet_file):
    path, state = mobilenet_file
    model = build_model("mst_deeplab", num_classes=6, in_channels=4, pretrained=str(path))
    weight = model.encoder.features[0][0].weight
    rgb = state["features.0.0.weight"]
    assert weight.shape == (32, 4, 3, 3)
    assert torch.allclose(weight[:, :3], rgb * 0.75)
    assert torch.allclose(weight[:, 3], rgb.mean(dim=1) * 0.75)
    # an input whose bands are equal sees the RGB kernel summed, whatever the band count.
    for bands in (1, 2, 5):
        assert torch.allclose(adapt_conv_weight(rgb, bands).sum(dim=1), rgb.sum(dim=1), atol=1e-6)


def test_resnet_and_vgg_torchvision_files(tmp_path):
    torch.manual_seed(2)
    resnet = torchvision.models.resnet50().state_dict()
    torch.save(resnet, tmp_path / "r50.pth")
    encoder = ResNetEncoder(depth=50, output_stride=16)
    report = load_pretrained(encoder, tmp_path / "r50.pth")
    assert (
        report.missing == [] and report.unexpected == [] and report.skipped_head == ["fc.weight", "fc.bias"]
    )
    assert torch.equal(encoder.layer4[0].conv2.weight, resnet["layer4.0.conv2.weight"])
    assert encoder.layer4[0].conv2.stride == (1, 1) and encoder.layer4[1].conv2.dilation == (2, 2)
    # torchvision's VGG16-BN layout: features.* plus the (large, here tiny) classifier.* head.
    vgg = {f"features.{k}": v for k, v in torchvision.models.vgg16_bn().features.state_dict().items()}
    vgg["classifier.6.bias"] = torch.zeros(1000)
    torch.save(vgg, tmp_path / "vgg.pth")
    encoder = VGGEncoder(batch_norm=True)
    report = load_pretrained(encoder, tmp_path / "vgg.pth")
    assert report.missing == [] and report.unexpected == [] and report.skipped_head == ["classifier.6.bias"]
    assert torch.equal(encoder.features[40].weight, vgg["features.40.weight"])


def test_timm_format_file_maps_onto_the_feature_extractor(tmp_path):
    import timm

    full = timm.create_model("test_efficientnet", pretrained=False)
    torch.save({"state_dict": full.state_dict()}, tmp_path / "timm.pth")
    encoder = TimmEncoder("test_efficientnet", in_channels=3, output_stride=16)
    report = load_pretrained(encoder, tmp_path / "timm.pth")
    assert report.missing == [] and report.unexpected == []
    own = encoder.state_dict()
    assert torch.equal(own[encoder.first_conv_key], full.state_dict()["conv_stem.weight"])


def test_imagenet_without_network_is_one_clear_line(monkeypatch):
    model = build_model("deeplabv3plus_mobilenetv2", num_classes=2)

    def offline():
        raise OSError("[Errno -2] Name or service not known")

    monkeypatch.setattr(model.encoder, "imagenet_state_dict", offline)
    with pytest.raises(PretrainedWeightsError) as info:
        load_pretrained(model.encoder, "imagenet")
    message = str(info.value)
    assert "\n" not in message and "model.pretrained=/path/file.pth" in message


def test_xception_has_no_imagenet_download():
    from rsseg.models.encoders import XceptionEncoder

    with pytest.raises(PretrainedWeightsError, match="model.pretrained=/path/file.pth"):
        load_pretrained(XceptionEncoder(), "imagenet")


def test_missing_file_is_reported():
    with pytest.raises(PretrainedWeightsError, match="no such file"):
        read_state_dict("/nonexistent/weights.pth")


class _TinySegmenter(nn.Module):
    """A two-layer model with the contract's ``.encoder`` (conv + BN) and a head."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        return self.head(self.encoder(x))


class _Task(L.LightningModule):
    """The least a LightningModule needs for the callback: a ``.model`` with an ``.encoder``."""

    def __init__(self) -> None:
        super().__init__()
        self.model = _TinySegmenter()
        self.seen: dict[int, dict] = {}

    def training_step(self, batch, batch_idx):
        x, y = batch
        encoder = self.model.encoder
        bns = [m for m in encoder.modules() if isinstance(m, nn.BatchNorm2d)]
        self.seen.setdefault(
            self.current_epoch,
            {
                "trainable": any(p.requires_grad for p in encoder.parameters()),
                "bn_training": any(bn.training for bn in bns),
                "head_trainable": all(p.requires_grad for p in self.model.head.parameters()),
                "lr": self.trainer.optimizers[0].param_groups[0]["lr"],
            },
        )
        return nn.functional.cross_entropy(self.model(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/loss", nn.functional.cross_entropy(self.model(x), y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def test_freeze_encoder_callback_freezes_then_unfreezes(tmp_path):
    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(4, 3, 16, 16), torch.randint(0, 2, (4, 16, 16)))
    loader = torch.utils.data.DataLoader(data, batch_size=2)
    task = _Task()
    frozen_before = task.model.encoder[0].weight.detach().clone()
    stats_before = task.model.encoder[1].running_mean.clone()
    trainer = L.Trainer(
        max_epochs=2,
        callbacks=[FreezeEncoder(epochs=1, unfreeze_lr=5e-4)],
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        num_sanity_val_steps=1,
    )
    trainer.fit(task, loader, loader)
    assert task.seen[0] == {"trainable": False, "bn_training": False, "head_trainable": True, "lr": 1e-3}
    assert task.seen[1] == {"trainable": True, "bn_training": True, "head_trainable": True, "lr": 5e-4}
    # the encoder learned (and its BN statistics moved) only in epoch 1.
    assert not torch.equal(frozen_before, task.model.encoder[0].weight)
    assert not torch.equal(stats_before, task.model.encoder[1].running_mean)


def test_freeze_encoder_keeps_weights_and_statistics_while_frozen(tmp_path):
    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(4, 3, 16, 16) * 3 + 1, torch.randint(0, 2, (4, 16, 16)))
    loader = torch.utils.data.DataLoader(data, batch_size=2)
    task = _Task()
    weight = task.model.encoder[0].weight.detach().clone()
    stats = task.model.encoder[1].running_mean.clone()
    head = task.model.head.weight.detach().clone()
    trainer = L.Trainer(
        max_epochs=1,
        callbacks=[FreezeEncoder(epochs=5)],
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(task, loader, loader)
    assert torch.equal(weight, task.model.encoder[0].weight)
    assert torch.equal(stats, task.model.encoder[1].running_mean)
    assert not torch.equal(head, task.model.head.weight)
