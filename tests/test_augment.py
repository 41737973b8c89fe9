"""Joint augmentations: image and mask stay aligned pixel for pixel; RICAP stitches masks exactly as images."""

from types import SimpleNamespace

import pytest
import torch
from hydra.utils import instantiate

import rsseg.config  # noqa: F401 - registers ${rsseg.stats:...}
from rsseg.data.augment import RICAP, Chain, FlipRotate, Photometric, ScaleCrop, split_augment
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


def test_flip_rotate_draws_every_dihedral_map_and_keeps_image_and_mask_aligned():
    torch.manual_seed(0)
    batch = identity_batch(1, 16, 16)
    image0, mask0 = batch["image"][0].float(), batch["mask"][0]
    maps = {}
    for mirrored in (False, True):
        for k in range(4):
            maps[(mirrored, k)] = torch.rot90(mask0.flip(-1) if mirrored else mask0, k, (-2, -1))
    seen = set()
    for _ in range(64):
        image, mask = FlipRotate()(image0, mask0)
        source, row, col = decode(image[0].double())
        assert torch.equal(mask, mask_of(source, row, col))  # aligned
        drawn = [key for key, mapped in maps.items() if torch.equal(mask, mapped)]
        assert len(drawn) == 1  # one of the eight flips and rotations, nothing else
        seen.add(drawn[0])
    assert seen == set(maps)  # every one of them is drawn (an identity transform would give one)


def test_scale_crop_keeps_size_scales_mask_nearest_and_pads_with_ignore():
    torch.manual_seed(0)
    blocks = torch.arange(16).view(4, 4).repeat_interleave(16, 0).repeat_interleave(16, 1)  # 64 x 64, 16 px blocks
    image = blocks[None].float().repeat(3, 1, 1)
    for scale in [(0.5, 0.5), (2.0, 2.0), (0.5, 2.0)]:
        for _ in range(5):
            out_image, out_mask = ScaleCrop(scale=scale)(image, blocks)
            assert out_image.shape == (3, 64, 64) and out_mask.shape == (64, 64) and out_mask.dtype == torch.int64
            labelled = out_mask != IGNORE
            assert set(out_mask[labelled].unique().tolist()) <= set(range(16))
            # Aligned: away from block edges the bilinear image equals the nearest mask.
            agree = (out_image[0][labelled] - out_mask[labelled].float()).abs() < 0.5
            assert agree.float().mean() > 0.8
    _, half = ScaleCrop(scale=(0.5, 0.5))(image, blocks)
    assert (half == IGNORE).sum() == 64 * 64 - 32 * 32  # the window shrank to a quarter; the rest is padding
    _, same = ScaleCrop(scale=(1.0, 1.0))(image, blocks)
    assert torch.equal(same, blocks)


def test_photometric_jitters_only_the_first_three_bands():
    torch.manual_seed(0)
    mean, std = [100.0, 90.0, 80.0, 120.0], [30.0, 30.0, 30.0, 40.0]
    raw = torch.rand(4, 16, 16) * 200 + 20
    image = (raw - torch.tensor(mean).view(-1, 1, 1)) / torch.tensor(std).view(-1, 1, 1)
    mask = torch.zeros(16, 16, dtype=torch.long)
    out, out_mask = Photometric(0.4, 0.4, 0.4, 0.1, mean=mean, std=std)(image, mask)
    assert torch.equal(out[3], image[3]) and torch.equal(out_mask, mask)
    assert not torch.allclose(out[:3], image[:3])
    same, _ = Photometric(0, 0, 0, 0, mean=mean, std=std)(image, mask)
    assert torch.allclose(same, image, atol=1e-4)  # no jitter: the raw round trip is exact
    two_band, _ = Photometric(0.4, 0.4, 0.4, 0.1, mean=mean[:2], std=std[:2])(image[:2], mask)
    assert two_band.shape == (2, 16, 16)


def test_chain_splits_window_and_batch_augmentations():
    chain = Chain([FlipRotate(), RICAP()])
    window, batch = split_augment(chain)
    assert window is chain and batch == chain.apply_batch
    assert split_augment(RICAP())[0] is None and split_augment(FlipRotate())[1] is None
    assert split_augment(None) == (None, None)


@pytest.mark.parametrize("option", ["scale_crop", "photometric", "ricap", "flip_rotate_photometric",
                                    "scale_flip_rotate", "flip_rotate_ricap", "mmseg"])
def test_aug_configs_build(option):
    cfg = compose_config("train", [f"aug={option}"])
    augment = instantiate(cfg.aug)
    window, batch = split_augment(augment)
    if window is not None:
        image, mask = window(torch.randn(3, 32, 32), torch.randint(0, 6, (32, 32)))
        assert image.shape == (3, 32, 32) and mask.shape == (32, 32) and type(mask) is torch.Tensor
    if batch is not None:
        out = batch({"image": torch.randn(2, 3, 32, 32), "mask": torch.randint(0, 6, (2, 32, 32))})
        assert out["image"].shape == (2, 3, 32, 32)


def test_datamodule_applies_ricap_to_training_batches_only(tmp_path):
    cfg = compose_config("train", [
        "data.scenes.size=64", "data.scenes.num_scenes=2", "data.scenes.val_scenes=1", f"paths.cache_dir={tmp_path}",
        "data.num_workers=0",
    ])
    dm = instantiate(cfg.data, augment=Chain([RICAP()]))
    assert dm.augment is None and dm.batch_augment is not None
    torch.manual_seed(1)
    batch = identity_batch()
    dm.trainer = SimpleNamespace(training=False)
    assert dm.on_after_batch_transfer(batch, 0) is batch
    dm.trainer = SimpleNamespace(training=True)
    out = dm.on_after_batch_transfer(identity_batch(), 0)
    source, row, col = decode(out["image"][:, 0])
    assert torch.equal(out["mask"], mask_of(source, row, col))
