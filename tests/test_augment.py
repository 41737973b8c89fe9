"""Joint augmentations: image and mask stay aligned pixel for pixel; RICAP stitches masks exactly as images."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from torchvision.transforms.v2 import functional as TF

import rsseg.config  # noqa: F401 - registers ${rsseg.stats:...}
from rsseg.data.augment import RICAP, Chain, FlipRotate, Photometric, ScaleCrop, steps
from rsseg.data.device import DeviceBatch, window_generators
from rsseg.data.transforms import Normalize
from tests.conftest import compose_config

IGNORE = 255


def identity_batch(batch: int = 4, height: int = 24, width: int = 20):
    """Image channel 0 = source * 1e6 + row * 1e3 + col (float64: exact); mask = a function of the same triple."""
    s = torch.arange(batch, dtype=torch.float64).view(-1, 1, 1)
    r = torch.arange(height, dtype=torch.float64).view(1, -1, 1)
    c = torch.arange(width, dtype=torch.float64).view(1, 1, -1)
    code = s * 1e6 + r * 1e3 + c
    mask = ((s * 31 + r * 7 + c * 3) % 250).long()
    return {"image": code[:, None].clone(), "mask": mask.clone()}


def decode(code: torch.Tensor):
    source = torch.div(code, 1e6, rounding_mode="floor")
    rest = code - source * 1e6
    row = torch.div(rest, 1e3, rounding_mode="floor")
    return source.long(), row.long(), (rest - row * 1e3).long()


def mask_of(source, row, col):
    return (source * 31 + row * 7 + col * 3) % 250


@pytest.mark.parametrize("seed", range(12))
def test_ricap_every_stitched_mask_pixel_equals_its_source_pixel(seed):
    torch.manual_seed(seed)
    batch = identity_batch()
    ricap = RICAP(beta=0.3, stitched_fraction=1.0)  # every window stitched
    out = ricap(batch)
    assert out["image"].shape == batch["image"].shape and out["mask"].shape == batch["mask"].shape
    assert torch.equal(ricap.last["stitched"], torch.arange(4))
    source, row, col = decode(out["image"][:, 0])
    assert torch.equal(out["mask"], mask_of(source, row, col))
    # Four crops: each quadrant of each output window is one contiguous crop of one source window.
    h, w = ricap.last["cut"]
    quadrants = [(slice(0, h), slice(0, w)), (slice(0, h), slice(w, None)),
                 (slice(h, None), slice(0, w)), (slice(h, None), slice(w, None))]
    for k, (rows, cols) in enumerate(quadrants):
        order, y, x = ricap.last["sources"][k]
        part_s, part_r, part_c = source[:, rows, cols], row[:, rows, cols], col[:, rows, cols]
        if part_s.numel() == 0:
            continue
        assert torch.equal(part_s, order.view(-1, 1, 1).expand_as(part_s))
        assert torch.equal(part_r[:, :, 0], (torch.arange(part_r.shape[1]) + y).expand(part_r.shape[0], -1))
        assert torch.equal(part_c[:, 0, :], (torch.arange(part_c.shape[2]) + x).expand(part_c.shape[0], -1))


def test_ricap_mixes_several_sources_and_keeps_other_keys():
    torch.manual_seed(0)
    sources = set()
    for _ in range(20):
        batch = identity_batch()
        batch["name"] = "kept"
        out = RICAP(beta=0.3, stitched_fraction=1.0)(batch)
        sources.add(len(decode(out["image"][0, 0])[0].unique()))
        assert out["name"] == "kept"
    assert max(sources) >= 2


@pytest.mark.parametrize("seed", range(12))
def test_ricap_default_stitches_half_of_the_batch_and_keeps_the_rest(seed):
    """Seed 001, eq. 5: originals and stitched images 1:1. B=8 -> 4 stitched windows, 4 untouched originals."""
    torch.manual_seed(seed)
    batch = identity_batch(8)
    ricap = RICAP()
    assert ricap.stitched_fraction == 0.5
    out = ricap(batch)
    assert out["image"].shape == batch["image"].shape and out["mask"].shape == batch["mask"].shape
    stitched = ricap.last["stitched"]
    assert len(stitched) == 4 and len(set(stitched.tolist())) == 4
    kept = sorted(set(range(8)) - set(stitched.tolist()))
    assert torch.equal(out["image"][kept], batch["image"][kept])  # bit-identical originals
    assert torch.equal(out["mask"][kept], batch["mask"][kept])
    assert out["image"][kept].dtype == batch["image"].dtype and out["mask"].dtype == batch["mask"].dtype
    source, row, col = decode(out["image"][:, 0])
    assert torch.equal(out["mask"], mask_of(source, row, col))  # every pixel, stitched or kept, is its source's
    h, w = ricap.last["cut"]
    quadrants = [(slice(0, h), slice(0, w)), (slice(0, h), slice(w, None)),
                 (slice(h, None), slice(0, w)), (slice(h, None), slice(w, None))]
    for k, (rows, cols) in enumerate(quadrants):
        order, y, x = ricap.last["sources"][k]
        assert len(order) == 4
        part_s, part_r, part_c = source[stitched, rows, cols], row[stitched, rows, cols], col[stitched, rows, cols]
        if part_s.numel() == 0:
            continue
        assert torch.equal(part_s, order.view(-1, 1, 1).expand_as(part_s))
        assert torch.equal(part_r[:, :, 0], (torch.arange(part_r.shape[1]) + y).expand(part_r.shape[0], -1))
        assert torch.equal(part_c[:, 0, :], (torch.arange(part_c.shape[2]) + x).expand(part_c.shape[0], -1))
    assert batch["image"].equal(identity_batch(8)["image"])  # the input batch itself is not modified


def test_ricap_stitched_count_rounds_and_is_validated():
    assert [RICAP().num_stitched(b) for b in (1, 2, 3, 8, 10)] == [1, 1, 2, 4, 5]
    assert RICAP(stitched_fraction=0.1).num_stitched(4) == 1  # at least one
    assert RICAP(stitched_fraction=1.0).num_stitched(7) == 7
    for bad in (0, -0.5, 1.5):
        with pytest.raises(ValueError, match="stitched_fraction"):
            RICAP(stitched_fraction=bad)
    with pytest.raises(TypeError):
        RICAP(p=1.0)  # the old all-or-nothing probability is gone
    ricap = instantiate(compose_config("train", ["aug=ricap"]).aug)
    assert (ricap.beta, ricap.stitched_fraction) == (0.3, 0.5)


DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def generators(indices, seed: int = 0):
    return window_generators(seed, indices)


def test_flip_rotate_on_a_batch_equals_each_window_flipped_by_numpy_with_the_same_draws():
    batch = identity_batch(64, 16, 16)
    flip = FlipRotate()
    draws = [flip.draw(g, 16, 16) for g in generators(range(64))]
    image, mask = flip.apply(batch["image"].to(DEVICE), batch["mask"].to(DEVICE), draws)
    for position, (horizontal, vertical, turns) in enumerate(draws):
        expected = batch["mask"][position].numpy()
        expected = expected[:, ::-1] if horizontal else expected
        expected = expected[::-1] if vertical else expected
        expected = np.rot90(expected, turns)
        assert np.array_equal(mask[position].cpu().numpy(), expected)
        source, row, col = decode(image[position, 0].cpu())
        assert torch.equal(mask[position].cpu(), mask_of(source, row, col))  # image and mask aligned
    assert len(set(draws)) == 16  # 2 x 2 x 4 draws, every one of them taken (an identity would give one)
    source_free = {tuple(FlipRotate.transform(batch["mask"][0], draw).flatten().tolist()) for draw in draws}
    assert len(source_free) == 8  # the 16 draws give the 8 distinct flips and rotations of a window


def test_scale_crop_on_a_batch_equals_each_window_alone_and_pads_with_ignore():
    blocks = torch.arange(16).view(4, 4).repeat_interleave(16, 0).repeat_interleave(16, 1)  # 64 x 64, 16 px blocks
    image = blocks[None, None].float().repeat(8, 3, 1, 1)
    mask = blocks[None].repeat(8, 1, 1)
    crop = ScaleCrop(scale=(0.5, 2.0))
    draws = [crop.draw(g, 64, 64) for g in generators(range(8))]
    out_image, out_mask = crop.apply(image.to(DEVICE), mask.to(DEVICE), draws)
    assert out_image.shape == (8, 3, 64, 64) and out_mask.shape == (8, 64, 64) and out_mask.dtype == torch.int64
    for position, draw in enumerate(draws):
        alone_image, alone_mask = crop.apply(image[position : position + 1], mask[position : position + 1], [draw])
        assert torch.allclose(out_image[position].cpu(), alone_image[0], atol=1e-5)
        assert torch.equal(out_mask[position].cpu(), alone_mask[0])
        labelled = alone_mask[0] != IGNORE
        assert set(alone_mask[0][labelled].unique().tolist()) <= set(range(16))
        agree = (alone_image[0, 0][labelled] - alone_mask[0][labelled].float()).abs() < 0.5  # aligned
        assert agree.float().mean() > 0.8
    half = ScaleCrop(scale=(0.5, 0.5))
    _, shrunk = half.apply(image[:1], mask[:1], [half.draw(torch.Generator().manual_seed(0), 64, 64)])
    assert (shrunk == IGNORE).sum() == 64 * 64 - 32 * 32  # the window shrank to a quarter; the rest is padding
    same = ScaleCrop(scale=(1.0, 1.0))
    _, kept = same.apply(image[:1], mask[:1], [same.draw(torch.Generator().manual_seed(0), 64, 64)])
    assert torch.equal(kept[0], blocks)


def test_photometric_on_a_batch_equals_torchvision_colour_ops_window_by_window():
    mean, std = [100.0, 90.0, 80.0, 120.0], [30.0, 30.0, 30.0, 40.0]
    raw = torch.rand(6, 4, 16, 16, generator=torch.Generator().manual_seed(0)) * 200 + 20
    image = (raw - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)
    mask = torch.zeros(6, 16, 16, dtype=torch.long)
    jitter = Photometric(0.4, 0.4, 0.4, 0.1, mean=mean, std=std)
    draws = [jitter.draw(g, 16, 16) for g in generators(range(6))]
    out, out_mask = jitter.apply(image.to(DEVICE), mask.to(DEVICE), draws)
    for position, (brightness, contrast, saturation, hue) in enumerate(draws):
        unit = (raw[position, :3] / 255).clamp(0, 1)
        unit = TF.adjust_hue(TF.adjust_saturation(TF.adjust_contrast(TF.adjust_brightness(unit, brightness), contrast),
                                                  saturation), hue)
        expected = (unit * 255 - torch.tensor(mean[:3]).view(-1, 1, 1)) / torch.tensor(std[:3]).view(-1, 1, 1)
        assert torch.allclose(out[position, :3].cpu(), expected, atol=1e-4)
    assert torch.equal(out[:, 3].cpu(), image[:, 3]) and torch.equal(out_mask.cpu(), mask)  # NIR and masks untouched
    assert len({d[0] for d in draws}) == 6  # a factor of its own per window
    none = Photometric(0, 0, 0, 0, mean=mean, std=std)
    same, _ = none.apply(image, mask, [none.draw(g, 16, 16) for g in generators(range(6))])
    assert torch.allclose(same, image, atol=1e-4)  # no jitter: the raw round trip is exact
    two = Photometric(0.4, 0.4, 0.4, 0.1, mean=mean[:2], std=std[:2])
    two_band, _ = two.apply(image[:, :2], mask, [two.draw(g, 16, 16) for g in generators(range(6))])
    assert two_band.shape == (6, 2, 16, 16) and not torch.allclose(two_band, image[:, :2])


def test_device_batch_draws_depend_on_the_window_index_and_seed_only():
    normalize = Normalize([0.0], [1.0])
    pipeline = DeviceBatch(normalize, Chain([FlipRotate(), ScaleCrop((0.5, 2.0))]), seed=3)
    batch = identity_batch(6, 16, 16)
    batch["index"] = torch.tensor([40, 41, 42, 43, 44, 45])
    whole = pipeline.augment(pipeline.prepare(batch))
    reordered = {key: value[[5, 4, 3, 2, 1, 0]] for key, value in batch.items()}
    other = pipeline.augment(pipeline.prepare(reordered))
    assert torch.equal(whole["mask"], other["mask"].flip(0))  # same window, same draws, whatever its position
    reseeded = DeviceBatch(normalize, Chain([FlipRotate(), ScaleCrop((0.5, 2.0))]), seed=4).augment(pipeline.prepare(batch))
    assert not torch.equal(whole["mask"], reseeded["mask"])


def test_device_batch_normalises_raw_pixels_and_zeroes_non_finite_ones():
    pipeline = DeviceBatch(Normalize([100.0, 50.0], [10.0, 5.0]))
    raw = torch.tensor([[[[0, 255]], [[50, 100]]]], dtype=torch.uint8)
    out = pipeline.prepare({"image": raw, "mask": torch.tensor([[[1, 255]]], dtype=torch.uint8)})
    assert out["image"].dtype == torch.float32 and out["mask"].dtype == torch.int64
    assert out["image"].flatten().tolist() == [-10.0, 15.5, 0.0, 10.0]
    floats = torch.tensor([[[[float("nan"), 120.0]], [[float("inf"), 55.0]]]])
    assert pipeline.prepare({"image": floats, "mask": torch.zeros(1, 1, 2)})["image"].flatten().tolist() == [0.0, 2.0, 0.0, 1.0]


def test_chain_runs_window_and_batch_augmentations_in_order():
    chain = Chain([FlipRotate(), Chain([RICAP()]), None])
    assert [type(step) for step in steps(chain)] == [FlipRotate, RICAP]
    assert steps(None) == []
    with pytest.raises(TypeError, match="draw"):
        steps(lambda image, mask: (image, mask))


@pytest.mark.parametrize("option", ["scale_crop", "photometric", "ricap", "flip_rotate_photometric",
                                    "scale_flip_rotate", "flip_rotate_ricap", "mmseg", "flip_rotate", "none"])
def test_aug_configs_build_and_run_on_a_raw_batch(option):
    cfg = compose_config("train", [f"aug={option}"])
    augment = instantiate(cfg.aug) if cfg.get("aug") else None
    pipeline = DeviceBatch(Normalize(list(cfg.data.mean), list(cfg.data.std)), augment)
    raw = {"image": torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8), "mask": torch.randint(0, 6, (4, 32, 32)).byte(),
           "index": torch.arange(4)}
    out = pipeline.augment(pipeline.prepare(raw))
    assert out["image"].shape == (4, 3, 32, 32) and out["image"].dtype == torch.float32
    assert out["mask"].shape == (4, 32, 32) and out["mask"].dtype == torch.int64
    assert type(out["mask"]) is torch.Tensor and type(out["image"]) is torch.Tensor
    assert pipeline.augments == (option != "none")


def test_datamodule_workers_send_raw_windows_that_are_normalised_and_augmented_on_the_device(tmp_path):
    cfg = compose_config("train", [
        "data.scenes.size=64", "data.scenes.num_scenes=3", "data.scenes.val_scenes=1", f"paths.cache_dir={tmp_path}",
        "data.num_workers=0", "data.tile_size=32", "data.batch_size=4",
    ])
    dm = instantiate(cfg.data, augment=Chain([FlipRotate(), RICAP()]))
    dm.setup("fit")
    raw = next(iter(dm.train_dataloader()))
    assert raw["image"].dtype == torch.uint8 and raw["mask"].dtype == torch.uint8  # workers only read
    mean, std = torch.tensor(list(cfg.data.mean)).view(1, -1, 1, 1), torch.tensor(list(cfg.data.std)).view(1, -1, 1, 1)
    normalised = (raw["image"].float() - mean) / std
    dm.trainer = SimpleNamespace(training=False)
    evaluated = dm.on_after_batch_transfer(dict(raw), 0)
    assert torch.allclose(evaluated["image"], normalised) and torch.equal(evaluated["mask"], raw["mask"].long())
    dm.trainer = SimpleNamespace(training=True)
    torch.manual_seed(1)
    trained = dm.on_after_batch_transfer(dict(raw), 0)
    stitched = dm.device_batch.steps[1].last["stitched"].tolist()
    draws = [FlipRotate().draw(g, 32, 32) for g in window_generators(cfg.seed, raw["index"].tolist())]
    for position in sorted(set(range(4)) - set(stitched)):  # windows RICAP left as they were: flipped only
        assert torch.allclose(trained["image"][position], FlipRotate.transform(normalised[position], draws[position]))
        assert torch.equal(trained["mask"][position], FlipRotate.transform(raw["mask"][position].long(), draws[position]))
    assert len(stitched) == 2
