"""The model zoo: every named config builds, keeps any input size and matches the papers' parameter counts."""

from __future__ import annotations

import json

import pytest
import torch
from hydra.utils import instantiate
from torch import nn

from rsseg.models.attention import AttentionFactory
from rsseg.models.base import pad_to_multiple
from rsseg.models.deeplab import DeepLabV3Plus
from rsseg.models.encoders import MobileNetV2Encoder, TimmEncoder
from rsseg.models.hub import NAMED_MODELS, build_model, compose_model_config
from rsseg.models.profile import count_gflops, model_size
from rsseg.models.upsample import SubPixelUpsample

# (classes to build with, exact parameter count or None, MiB figure or None).
# Exact counts: reference/MODELS_AND_DATA.md A.4-A.5; MiB: the MST-DeepLabv3+ paper, Tables 8-9. The two
# sub-pixel DeepLab counts are rsseg's own (seed 001 gives none).
PARITY = {
    "mst_deeplab": (6, 6_019_094, 22.96),
    "deeplabv3plus": (6, 54_709_702, 208.70),
    "deeplabv3plus_mobilenetv2": (6, 5_814_294, 22.18),
    "deeplab_subpixel": (6, 65_771_584, 250.90),
    "deeplab_subpixel_skip": (6, 63_756_592, 243.21),
    "unet": (6, 24_891_462, 94.95),
    "pspnet": (6, 68_062_156, 259.64),
    "segnet": (11, 29_449_355, None),
    "deconvnet": (21, 251_805_653, None),
    "deconvnet_skip": (2, None, None),
    "fcn32s": (6, None, None),
    "fcn8s": (6, None, None),
}
AUX_MODELS = {"pspnet"}
# A multiple of 32 and a size that is a multiple of neither 8 nor 32 (padding + cropping).
SIZES = [(64, 64), (45, 61)]


@pytest.fixture(scope="module", params=NAMED_MODELS)
def named_model(request):
    """Each named model built once (pytest groups the tests by this fixture), pretrained=null."""
    name = request.param
    torch.manual_seed(0)
    model = build_model(name, num_classes=PARITY[name][0], in_channels=3, pretrained=None)
    yield name, model
    del model


def test_every_named_config_is_covered():
    assert set(PARITY) == set(NAMED_MODELS)


def test_parameter_parity(named_model):
    name, model = named_model
    classes, params, mib = PARITY[name]
    count, size = model_size(model)
    if params is not None:
        # within 0.2 % in the brief; these layouts match exactly.
        assert count == params, f"{name}: {count:,} parameters, expected {params:,}"
    if mib is not None:
        assert abs(size - mib) < 0.05, f"{name}: {size:.2f} MiB, paper {mib}"
    assert model.num_classes == classes and model.in_channels == 3
    assert isinstance(model.encoder, nn.Module)
    assert sum(p.numel() for p in model.encoder.parameters()) > 0


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_forward_keeps_input_size(named_model, size, mode):
    name, model = named_model
    model.train(mode == "train")
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        out = model(x)
    classes = PARITY[name][0]
    if mode == "train" and name in AUX_MODELS:
        assert set(out) == {"out", "aux"}
        assert out["out"].shape == (1, classes, *size)
        assert out["aux"].shape[:2] == (1, classes)
        assert model.aux_weight == pytest.approx(0.4)
    else:
        assert isinstance(out, torch.Tensor)
        assert out.shape == (1, classes, *size)
        assert torch.isfinite(out).all()


def test_mst_se_sits_on_the_aspp_concatenation():
    model = build_model("mst_deeplab", num_classes=6)
    modules = dict(model.named_modules())
    se = modules["aspp.attention"]
    assert type(se).__name__ == "SqueezeExcitation"
    first, last = se.fc[0], se.fc[2]
    assert (first.in_features, first.out_features, last.out_features) == (1280, 80, 1280)
    assert first.bias is None and last.bias is None
    # before the 1x1 projection to 256 channels, and nowhere else.
    assert modules["aspp.project.0"].in_channels == 1280
    assert [n for n, m in modules.items() if type(m).__name__ == "SqueezeExcitation"] == ["aspp.attention"]
    assert model.attention_position == "aspp_concat"


def test_mobilenetv2_encoder_layout():
    encoder = MobileNetV2Encoder(output_stride=16)
    low, high = encoder(torch.randn(1, 3, 64, 64))
    assert low.shape == (1, 24, 16, 16) and high.shape == (1, 320, 4, 4)
    assert sum(p.numel() for p in encoder.parameters()) == 1_811_712
    depthwise = encoder.features[14].conv[1][0]
    assert depthwise.stride == (1, 1) and depthwise.dilation == (1, 1)
    for i in (15, 16, 17):
        assert encoder.features[i].conv[1][0].dilation == (2, 2)


def test_single_image_training_batch():
    """The ASPP image-pooling BatchNorm sees one value per channel: a batch of one must still train."""
    model = build_model("deeplabv3plus_mobilenetv2", num_classes=3)
    model.train()
    out = model(torch.randn(1, 3, 32, 32))
    out.mean().backward()
    assert model.aspp.pool.conv.weight.grad is not None


def test_composition_from_the_command_line_groups():
    cfg = compose_model_config(
        "deeplabv3plus",
        overrides=[
            "model/encoder=mobilenetv2",
            "model/attention=se",
            "model/upsample=subpixel",
            "model.pretrained=null",
        ],
    )
    assert cfg.model.encoder._target_.endswith("MobileNetV2Encoder")
    model = instantiate(cfg.model)
    assert isinstance(model, DeepLabV3Plus)
    assert isinstance(model.upsample, SubPixelUpsample)
    assert type(model.aspp.attention).__name__ == "SqueezeExcitation"
    # same parameters as MST-DeepLabv3+ apart from the sub-pixel head (3x3 conv 256 -> 6 * 16) vs 1x1 cls.
    assert model_size(model)[0] == 6_019_094 - (256 * 6 + 6) + (256 * 96 * 9 + 96)
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 45, 61)).shape == (1, 6, 45, 61)


@pytest.mark.parametrize("kind", ["se", "cbam", "scse", "eca"])
def test_attention_kinds_compose(kind):
    cfg = compose_model_config(
        "deeplabv3plus_mobilenetv2",
        num_classes=2,
        overrides=[f"model/attention={kind}", "model.attention.position=aspp_out"],
    )
    model = instantiate(cfg.model).eval()
    assert model.attention_position == "aspp_out"
    assert type(model.aspp_attention).__name__ != "Identity"
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 2, 32, 32)


@pytest.mark.parametrize(
    "position,attribute",
    [
        ("high", "high_attention"),
        ("aspp_concat", "aspp.attention"),
        ("aspp_out", "aspp_attention"),
        ("low", "decoder.low_attention"),
        ("decoder", "decoder_attention"),
    ],
)
def test_attention_positions(position, attribute):
    model = DeepLabV3Plus(
        TimmEncoder("test_resnet", output_stride=16),
        num_classes=2,
        decoder={},
        attention=AttentionFactory("eca", position=position),
    )
    assert type(model.get_submodule(attribute)).__name__ == "ECA"
    others = [n for n, m in model.named_modules() if type(m).__name__ == "ECA"]
    assert others == [attribute]
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 48)).shape == (1, 2, 32, 48)


def test_subpixel_upsampling_and_icnr():
    up = SubPixelUpsample(in_channels=8, num_classes=3, scale=4)
    x = torch.randn(2, 8, 5, 7)
    y = up(x)
    assert y.shape == (2, 3, 20, 28)
    # ICNR: all r^2 sub-pixels of each output cell come from identical kernels -> constant r x r blocks.
    blocks = y.unfold(2, 4, 4).unfold(3, 4, 4)  # [B, C, 5, 7, 4, 4]
    flat = blocks.reshape(*blocks.shape[:4], 16)
    assert torch.allclose(flat, flat[..., :1].expand_as(flat), atol=1e-6)
    assert not torch.allclose(y, torch.zeros_like(y))


def test_deeplab_subpixel_is_resnet101_spp_1_6_12_18():
    cfg = compose_model_config("deeplab_subpixel")
    assert list(cfg.model.aspp.rates) == [1, 6, 12, 18]
    assert cfg.model.encoder.depth == 101
    assert cfg.model.upsample._target_.endswith("SubPixelUpsample")
    # Seed 001, section 3.4 / figure 2: SPP -> one sub-pixel up-sampling by the output stride, no low-level skip.
    assert cfg.model.decoder is None
    torch.manual_seed(0)
    model = build_model("deeplab_subpixel", num_classes=6, in_channels=3, pretrained=None).eval()
    assert model.decoder is None and model.low_index is None
    assert isinstance(model.upsample, SubPixelUpsample) and model.upsample.scale == model.encoder.output_stride == 16
    assert model.upsample.conv.out_channels == 6 * 16**2
    assert model_size(model)[0] == 65_771_584
    with torch.no_grad():
        features = model.aspp(model.encoder(torch.randn(1, 3, 64, 64))[-1])
        assert features.shape[-2:] == (4, 4)
        # The pixel shuffle itself lands on 64 x 64: no bilinear resize after it.
        assert model.upsample.shuffle(model.upsample.conv(features)).shape == (1, 6, 64, 64)
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 6, 64, 64)
    del model


def test_deeplab_subpixel_skip_is_the_decoder_variant():
    cfg = compose_model_config("deeplab_subpixel_skip")
    base = compose_model_config("deeplab_subpixel")
    assert list(cfg.model.aspp.rates) == [1, 6, 12, 18] and cfg.model.encoder.depth == 101
    assert cfg.model.upsample._target_.endswith("SubPixelUpsample")
    assert dict(cfg.model.decoder) == {"low_projection": 48, "channels": 256, "dropouts": [0.5, 0.1]}
    assert cfg.model.low_level_reduction == 4
    def rest(model_cfg):  # everything but the decoder: the same ResNet-101, SPP and sub-pixel up-sampler
        return {k: v for k, v in model_cfg.items() if k not in ("decoder", "low_level_reduction")}

    assert rest(cfg.model) == rest(base.model)
    torch.manual_seed(0)
    model = build_model("deeplab_subpixel_skip", num_classes=6, in_channels=3, pretrained=None).eval()
    assert model.decoder is not None and model.upsample.scale == 4
    assert model_size(model)[0] == 63_756_592
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 6, 64, 64)
    del model


def test_padding_wrapper_reflects_and_falls_back_to_zeros():
    x = torch.arange(2 * 3 * 5.0).view(1, 2, 3, 5)
    padded, size = pad_to_multiple(x, 4)
    assert size == (3, 5) and padded.shape[-2:] == (4, 8)
    assert torch.equal(padded[..., :3, :5], x)
    tiny, _ = pad_to_multiple(x, 32, min_size=224)
    assert tiny.shape[-2:] == (224, 224) and tiny[..., 100:, 100:].abs().sum() == 0


@pytest.mark.parametrize(
    "name,kwargs",
    [("test_resnet", {"output_stride": 16}), ("test_vit", {"dynamic_img_size": True})],
)
def test_timm_encoders_any_band_count(name, kwargs):
    encoder = TimmEncoder(name, in_channels=4, **kwargs)
    assert encoder.first_conv_key.endswith("weight")
    model = DeepLabV3Plus(
        encoder, num_classes=3, in_channels=4, decoder={}, attention=AttentionFactory("se", reduction=16)
    )
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, 4, 45, 61)).shape == (1, 3, 45, 61)
    model.train()
    assert model(torch.randn(2, 4, 32, 32)).shape == (2, 3, 32, 32)


def test_timm_encoder_from_its_config_group():
    cfg = compose_model_config(
        "deeplabv3plus",
        num_classes=2,
        in_channels=5,
        overrides=["model/encoder=timm", "model.encoder.name=test_efficientnet"],
    )
    model = instantiate(cfg.model).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 5, 40, 40)).shape == (1, 2, 40, 40)


def test_build_model_inside_a_hydra_context():
    """Composing a model must not disturb an already initialised Hydra (e.g. inside train.py)."""
    from hydra import compose, initialize_config_dir

    from rsseg.models.hub import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        model = build_model("deeplabv3plus_mobilenetv2", num_classes=2)
        cfg = compose(config_name=None, overrides=["+model=mst_deeplab"])
    assert model.num_classes == 2 and cfg.model.attention.kind == "se"


def test_profile_functions():
    model = build_model("deeplabv3plus_mobilenetv2")
    params, mib = model_size(model)
    assert params == 5_814_294 and round(mib, 2) == 22.18
    with torch.device("meta"):
        meta = build_model("deeplabv3plus_mobilenetv2")
    gflops = count_gflops(meta, 512)
    assert gflops == pytest.approx(count_gflops(model, 512), rel=1e-9)
    # 26.25 GMACs at 512 x 512: the 52.5 GFLOPs of the MST-DeepLabv3+ family before its SE block.
    assert gflops == pytest.approx(52.496073, abs=1e-6)
    # SE on the 1280-channel ASPP concatenation, reduction 16, no bias: two 1280 x 80 matrices, 2 x 204,800 FLOPs.
    assert count_gflops(build_model("mst_deeplab"), 512) - gflops == pytest.approx(2 * 2 * 1280 * 80 / 1e9, abs=1e-9)
    assert model.training  # count_gflops restores the mode


def test_models_main_json(capsys):
    from rsseg.models.__main__ import main

    main(["--json", "mst_deeplab", "unet"])
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["mst_deeplab", "unet"]
    assert set(rows[0]) == {"name", "params", "mib", "gflops"}
    assert rows[0]["params"] == 6_019_094 and rows[0]["mib"] == 22.96
    assert rows[1]["mib"] == 94.95 and rows[1]["gflops"] > 0
