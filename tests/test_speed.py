"""Speed settings change how fast a run computes, not what: channels_last and torch.compile agree with the plain
model on CPU to a stated tolerance, and the GPU trainers ask for bf16, cudnn.benchmark and channels_last."""

import pytest
import torch
from omegaconf import OmegaConf

from rsseg.errors import ConfigError
from rsseg.models.hub import build_model
from rsseg.training import speed
from tests.conftest import compose_config

# Convolutions in NHWC and NCHW sum in different orders: float32 rounding (about 1e-4 of the largest logit after
# one forward), which a training step through batch norm grows to at most 1e-3 of it.
TOLERANCE = 1e-4
STEP_TOLERANCE = 1e-3


def one_step(model: torch.nn.Module, image: torch.Tensor, mask: torch.Tensor, channels_last: bool):
    """The loss of a training step and the logits after it, as the task computes them."""
    speed.apply_to_model(model, channels_last, compile_model=False)
    for module in model.modules():  # dropout draws its mask in memory order, which the layout changes
        if isinstance(module, torch.nn.modules.dropout._DropoutNd):
            module.p = 0.0
    # SGD: Adam's first step is lr * sign(gradient), which turns rounding in near-zero gradients into lr-sized steps.
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = torch.nn.functional.cross_entropy(model(speed.input_layout(image, channels_last)), mask)
    loss.backward()
    optimiser.step()
    model.eval()
    with torch.no_grad():
        return model(speed.input_layout(image, channels_last)), float(loss)


def test_channels_last_trains_to_the_same_logits_as_the_default_layout():
    torch.manual_seed(0)
    image, mask = torch.randn(2, 3, 64, 64), torch.randint(0, 6, (2, 64, 64))
    torch.manual_seed(1)
    plain = build_model("deeplabv3plus_mobilenetv2", 6, 3)
    torch.manual_seed(1)
    nhwc = build_model("deeplabv3plus_mobilenetv2", 6, 3)
    logits, loss = one_step(plain, image, mask, channels_last=False)
    logits_nhwc, loss_nhwc = one_step(nhwc, image, mask, channels_last=True)
    assert any(p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
               for p in nhwc.parameters())  # the convolution weights really are NHWC
    assert loss_nhwc == pytest.approx(loss, rel=TOLERANCE)
    assert torch.allclose(logits_nhwc, logits, atol=STEP_TOLERANCE * logits.abs().max().item())


@pytest.mark.slow
def test_compiled_model_gives_the_plain_models_logits_and_keeps_its_checkpoint_keys():
    torch.manual_seed(1)
    model = build_model("deeplabv3plus_mobilenetv2", 6, 3).eval()
    keys = list(model.state_dict())
    image = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = model(image)
        speed.apply_to_model(model, channels_last=False, compile_model=True)
        compiled = model(image)
    assert list(model.state_dict()) == keys  # compiled in place: checkpoints load with or without it
    assert torch.allclose(compiled, expected, atol=TOLERANCE * expected.abs().max().item())


@pytest.mark.parametrize("trainer", ["gpu", "gpu_per_job", "ddp"])
def test_gpu_trainers_ask_for_bf16_benchmark_and_channels_last(trainer):
    cfg = compose_config("train", [f"trainer={trainer}"])
    assert cfg.trainer.precision == "bf16-mixed" and cfg.trainer.benchmark is True
    assert speed.on_gpu(cfg) and speed.use_channels_last(cfg)
    if not torch.cuda.is_available() and trainer == "gpu_per_job":
        assert speed.trainer_precision(cfg) == "32-true"  # the job falls back to the CPU, in fp32


def test_cpu_defaults_train_in_channels_last_and_refuse_unknown_settings():
    cfg = compose_config("train", ["trainer=cpu"])
    assert cfg.channels_last is True and cfg.compile is False and speed.use_channels_last(cfg)
    assert not speed.use_channels_last(compose_config("train", ["trainer=cpu", "channels_last=auto"]))
    assert not speed.use_channels_last(compose_config("train", ["trainer=cpu", "channels_last=false"]))
    with pytest.raises(ConfigError, match="channels_last=sometimes"):
        speed.use_channels_last(OmegaConf.create({"channels_last": "sometimes", "trainer": {"accelerator": "cpu"}}))


def _tile_predictor(**settings):
    from rsseg.inference.predictor import TilePredictor

    torch.manual_seed(1)
    model = build_model("deeplabv3plus_mobilenetv2", 6, 3).eval()
    return TilePredictor(model, [120.0] * 3, [50.0] * 3, 6, "cpu", "32", batch_size=4, **settings)


def test_prediction_in_channels_last_gives_the_plain_layouts_probabilities():
    raw = torch.randint(0, 256, (3, 3, 64, 64), dtype=torch.uint8)
    plain = _tile_predictor(channels_last=False)
    nhwc = _tile_predictor(channels_last=True)
    assert nhwc.channels_last and not plain.channels_last
    expected = plain.probabilities(raw).clone()
    probs = nhwc.probabilities(list(raw))  # tiles as views, the way the engine hands them over
    assert probs.shape == (3, 6, 64, 64)
    assert torch.allclose(probs, expected, atol=TOLERANCE)
    assert torch.equal(probs.argmax(1), expected.argmax(1))


@pytest.mark.slow
def test_compiled_prediction_pads_short_batches_and_gives_the_plain_probabilities():
    raw = torch.randint(0, 256, (3, 3, 64, 64), dtype=torch.uint8)
    expected = _tile_predictor(channels_last=False).probabilities(raw).clone()
    compiled = _tile_predictor(compile=True)
    full = compiled.probabilities(torch.cat([raw, raw[:1]])).clone()  # a whole batch of 4
    short = compiled.probabilities(raw)  # 3 tiles, padded to the compiled batch of 4
    assert short.shape == (3, 6, 64, 64)
    assert torch.allclose(short, expected, atol=TOLERANCE) and torch.allclose(full[:3], expected, atol=TOLERANCE)
