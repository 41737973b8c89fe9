"""The streaming sliding-window engine (rsseg.inference.engine) on generated GeoTIFFs, with plain nn.Modules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from torch import nn

from rsseg.errors import ConfigError, DataError
from rsseg.inference.engine import ArraySink, predict_raster
from rsseg.inference.predictor import TilePredictor
from rsseg.inference.tiling import blend_window, resolve_overlap, tile_starts

CRS = "EPSG:32650"  # UTM 50N, 2 m pixels
MEAN, STD = [120.0, 110.0, 100.0], [50.0, 45.0, 40.0]


def write_geotiff(path: Path, pixels: np.ndarray, nodata=None, crs: str | None = CRS, mask: np.ndarray | None = None,
                  tiled: bool = False) -> Path:
    """A GeoTIFF of ``pixels [bands, h, w]`` at 2 m in UTM 50N (``mask``: an internal mask, 0 = nodata)."""
    pixels = pixels[None] if pixels.ndim == 2 else pixels
    bands, height, width = pixels.shape
    profile = {"driver": "GTiff", "width": width, "height": height, "count": bands, "dtype": pixels.dtype.name,
               "crs": crs, "transform": Affine(2, 0, 500_000, 0, -2, 4_000_000), "nodata": nodata}
    if tiled:
        profile.update(tiled=True, blockxsize=256, blockysize=256, compress="deflate")
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(pixels)
            if mask is not None:
                dst.write_mask(mask.astype(np.uint8) * 255)
    return path


def smooth_image(height: int, width: int, bands: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    layers = [120 + 60 * np.sin(xx / 17.0 + b) * np.cos(yy / 23.0 - b) + rng.normal(0, 3, (height, width))
              for b in range(bands)]
    return np.stack(layers).clip(0, 255).astype(np.uint8)


def pointwise_model(classes: int = 5, bands: int = 3, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Conv2d(bands, classes, 1)


def conv_net(classes: int = 4, bands: int = 3, seed: int = 0) -> nn.Module:
    """Three 3x3 convolutions (a 7 px receptive field); zero padding and biases make tile edges differ."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(bands, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                        nn.Conv2d(8, classes, 3, padding=1))
    with torch.no_grad():
        for layer in net:
            if isinstance(layer, nn.Conv2d):
                layer.bias.fill_(0.5)
    return net


def whole_image_probabilities(model: nn.Module, pixels: np.ndarray) -> np.ndarray:
    x = (torch.from_numpy(pixels).float() - torch.tensor(MEAN).view(-1, 1, 1)) / torch.tensor(STD).view(-1, 1, 1)
    with torch.no_grad():
        return model(x[None]).softmax(1)[0].numpy()


def run(path: Path, model: nn.Module, classes: int, **kwargs):
    predictor = TilePredictor(model, MEAN, STD, classes, device="cpu", precision="32",
                              tta=kwargs.pop("tta", "none"), batch_size=kwargs.pop("batch_size", 4))
    with rasterio.open(path) as handle:
        region = kwargs.get("region")
        height, width = (region[2], region[3]) if region else (handle.height, handle.width)
        sink = ArraySink(height, width, classes)
        stats = predict_raster(handle, predictor, sink, **kwargs)
    return sink, stats


@pytest.fixture(scope="module")
def odd_scene(tmp_path_factory) -> tuple[Path, np.ndarray]:
    pixels = np.random.default_rng(1).integers(0, 256, (3, 1001, 777), dtype=np.uint8)
    return write_geotiff(tmp_path_factory.mktemp("odd") / "odd.tif", pixels), pixels


def test_tile_grid_covers_any_length_and_shifts_the_last_tile_inside():
    assert tile_starts(100, 128, 96) == [0]
    assert tile_starts(128, 128, 96) == [0]
    starts = tile_starts(1001, 256, 192)
    assert starts[0] == 0 and starts[-1] == 1001 - 256
    assert all(0 < b - a <= 192 for a, b in zip(starts, starts[1:]))
    assert resolve_overlap(0.25, 512) == 128 and resolve_overlap(64, 512) == 64
    with pytest.raises(ConfigError, match="smaller than tile_size"):
        resolve_overlap(512, 512)


def test_blend_windows_are_positive_and_cosine_ramps_sum_to_one():
    for kind in ("uniform", "gaussian", "cosine"):
        window = blend_window(64, 16, kind)
        assert window.shape == (64, 64) and window.min() > 0 and window.max() == pytest.approx(1.0)
    line = blend_window(64, 16, "cosine")[32]
    # two tiles overlapping by exactly the overlap: the falling and rising ramps add up to one
    assert np.allclose(line[48:] + line[:16], 1.0)
    with pytest.raises(ConfigError, match="blend="):
        blend_window(64, 16, "hann")


@pytest.mark.parametrize(
    ("tile_size", "overlap", "blend"),
    [(256, 0.25, "cosine"), (128, 0, "uniform"), (100, 37, "gaussian"), (300, 0.5, "cosine"), (64, 0.25, "uniform")],
)
def test_a_pointwise_model_gives_the_whole_image_result_whatever_the_grid(odd_scene, tile_size, overlap, blend):
    path, pixels = odd_scene
    model = pointwise_model()
    expected = whole_image_probabilities(model, pixels)
    sink, stats = run(path, model, 5, tile_size=tile_size, overlap=overlap, blend=blend)
    assert sink.rows_written == 1001
    np.testing.assert_allclose(sink.probs, expected, atol=2e-6)
    assert np.array_equal(sink.classes, expected.argmax(0))
    assert stats.tiles == len(tile_starts(1001, tile_size, tile_size - resolve_overlap(overlap, tile_size))) * len(
        tile_starts(777, tile_size, tile_size - resolve_overlap(overlap, tile_size)))


def test_scene_smaller_than_a_tile_is_padded(tmp_path):
    pixels = smooth_image(37, 53)
    path = write_geotiff(tmp_path / "small.tif", pixels)
    model = pointwise_model()
    sink, stats = run(path, model, 5, tile_size=128, overlap=0.25)
    assert stats.tiles == 1 and sink.classes.shape == (37, 53)
    np.testing.assert_allclose(sink.probs, whole_image_probabilities(model, pixels), atol=2e-6)
    # narrower (or shorter) than a tile along one axis only: padded along that axis, streamed along the other
    for shape in ((300, 50), (45, 290)):
        band = smooth_image(*shape, seed=shape[0])
        path = write_geotiff(tmp_path / f"strip{shape[0]}.tif", band)
        sink, stats = run(path, model, 5, tile_size=128, overlap=0.25)
        assert sink.classes.shape == shape and stats.tiles == 3
        np.testing.assert_allclose(sink.probs, whole_image_probabilities(model, band), atol=2e-6)
    # one row and one column of pixels also work
    thin = write_geotiff(tmp_path / "thin.tif", pixels[:, :1, :])
    sink, _ = run(thin, model, 5, tile_size=64)
    assert sink.classes.shape == (1, 53) and (sink.classes < 5).all()


def test_flip_and_d4_tta_average_the_transformed_predictions(odd_scene):
    """On one tile of a network that flips and rotations change (3x3 kernels), TTA is the mean of the
    back-transformed softmax over the identity and the flips (flip), or the eight dihedral maps (d4)."""
    path, pixels = odd_scene
    model = conv_net(classes=5)
    x = (torch.from_numpy(pixels[:, :128, :128]).float() - torch.tensor(MEAN).view(-1, 1, 1)) / torch.tensor(STD).view(-1, 1, 1)
    x = x[None]

    def probs(t: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(t).softmax(1)

    flips = [probs(x), probs(x.flip(-1)).flip(-1), probs(x.flip(-2)).flip(-2)]
    dihedral = []
    for mirrored in (x, x.flip(-1)):
        for k in range(4):
            back = torch.rot90(probs(torch.rot90(mirrored, k, (-2, -1))), -k, (-2, -1))
            dihedral.append(back.flip(-1) if mirrored is not x else back)
    expected = {"flip": torch.stack(flips).mean(0)[0].numpy(), "d4": torch.stack(dihedral).mean(0)[0].numpy()}
    plain = flips[0][0].numpy()
    for tta in ("flip", "d4"):
        assert np.abs(expected[tta] - plain).max() > 1e-3  # a TTA that did nothing would fail below
        sink, _ = run(path, model, 5, tile_size=128, overlap=0.25, tta=tta, region=(0, 0, 128, 128))
        np.testing.assert_allclose(sink.probs, expected[tta], atol=2e-6)


def test_a_region_is_predicted_as_if_it_were_the_scene(odd_scene):
    path, pixels = odd_scene
    model = pointwise_model()
    sink, stats = run(path, model, 5, tile_size=128, overlap=0.25, region=(100, 200, 300, 250))
    assert sink.classes.shape == (300, 250) and (stats.height, stats.width) == (300, 250)
    np.testing.assert_allclose(sink.probs, whole_image_probabilities(model, pixels[:, 100:400, 200:450]), atol=2e-6)


def _seams(probs: np.ndarray, width: int, tile_size: int, overlap_px: int) -> tuple[float, float]:
    """Mean |p(x) - p(x-1)| at tile edges and elsewhere."""
    step = np.abs(np.diff(probs, axis=2)).mean(axis=(0, 1))  # step[x - 1] between columns x - 1 and x
    edges = set()
    for c in tile_starts(width, tile_size, tile_size - overlap_px):
        edges.update((c, c + tile_size))
    border = sorted(x - 1 for x in edges if 0 < x < width)
    inside = [i for i in range(width - 1) if i not in set(border)]
    return float(step[border].mean()), float(step[inside].mean())


def test_blending_removes_tile_seams_of_a_real_model(tmp_path):
    pixels = smooth_image(288, 384)
    path = write_geotiff(tmp_path / "smooth.tif", pixels)
    model = conv_net()
    sink, _ = run(path, model, 4, tile_size=96, overlap=0, blend="uniform")
    border, inside = _seams(sink.probs, 384, 96, 0)
    assert border > 3 * inside  # without overlap the tile edges show
    for blend in ("cosine", "gaussian"):
        sink, _ = run(path, model, 4, tile_size=96, overlap=0.25, blend=blend)
        border, inside = _seams(sink.probs, 384, 96, 24)
        assert border <= inside, (blend, border, inside)


def test_nodata_value_and_mask_become_255(tmp_path):
    pixels = smooth_image(200, 240)
    pixels[:, 50:90, 60:140] = 0
    pixels[0, 150, 150] = 0  # one band at the nodata value is not nodata
    path = write_geotiff(tmp_path / "nodata.tif", pixels, nodata=0)
    sink, _ = run(path, pointwise_model(), 5, tile_size=96, overlap=0.25)
    nodata = (pixels == 0).all(0)
    assert (sink.classes[nodata] == 255).all() and (sink.classes[~nodata] < 5).all()
    assert np.isnan(sink.probs[:, nodata]).all()
    # a raster without a nodata value but with an internal mask
    mask = np.ones((200, 240), dtype=bool)
    mask[10:30, 10:200] = False
    masked = write_geotiff(tmp_path / "masked.tif", smooth_image(200, 240), mask=mask)
    sink, _ = run(masked, pointwise_model(), 5, tile_size=96, overlap=0.25)
    assert (sink.classes[~mask] == 255).all() and (sink.classes[mask] < 5).all()


def test_memory_is_one_strip_whatever_the_scene_height(tmp_path):
    shapes = []
    for height in (200, 1400):
        path = write_geotiff(tmp_path / f"h{height}.tif", np.zeros((3, height, 300), dtype=np.uint8) + 100)
        sink, stats = run(path, pointwise_model(), 5, tile_size=128, overlap=0.25)
        assert sink.rows_written == height
        shapes.append((stats.accumulator_shape, stats.accumulator_bytes, stats.strip_shape))
        assert stats.strips == len(tile_starts(height, 128, 96))
    assert shapes[0] == shapes[1]
    assert shapes[0][0] == (5, 128, 300)  # classes x tile rows x width: never the scene height


def test_the_writer_holds_one_block_row_whatever_the_height(tmp_path):
    """What the GeoTIFF writer keeps between writes (pending block rows, preview samples, counting the whole
    buffer a view keeps alive) must not grow with the scene: a view kept on every strip once made it grow."""
    from rsseg.inference.geotiff import GeoTiffSink, OutputPaths

    held = []
    for height in (700, 2800):
        path = write_geotiff(tmp_path / f"t{height}.tif", np.full((3, height, 640), 100, dtype=np.uint8))
        outputs = OutputPaths(tmp_path / f"t{height}_classes.tif", tmp_path / f"t{height}_confidence.tif",
                              preview=tmp_path / f"t{height}_preview.png")
        with rasterio.open(path) as handle:
            sink = GeoTiffSink(outputs, handle, list("abcde"), preview_size=64)
            predict_raster(handle, TilePredictor(pointwise_model(), MEAN, STD, 5), sink, tile_size=64, overlap=0.25,
                           threaded_sink=False)
            held.append(sink.buffered_bytes())
            sink.commit()
        with rasterio.open(outputs.classes) as dst:
            assert dst.shape == (height, 640)
    assert max(held) <= 2 * 256 * 640 + 65 * 65, held  # two block rows and a preview of at most 64 x 64


def test_band_count_mismatch_and_model_errors_are_reported(tmp_path):
    path = write_geotiff(tmp_path / "four.tif", np.zeros((4, 64, 64), dtype=np.uint8))
    with pytest.raises(DataError, match="4 bands read but the model expects in_channels=3"):
        run(path, pointwise_model(), 5, tile_size=32)
    sink, _ = run(path, pointwise_model(), 5, tile_size=32, bands=[1, 2, 3])
    assert sink.rows_written == 64

    class Shrinks(nn.Module):
        def forward(self, x):
            return torch.zeros(x.shape[0], 5, x.shape[2] // 2, x.shape[3] // 2)

    with pytest.raises(ConfigError, match="expected logits"):
        run(path, Shrinks(), 5, tile_size=32, bands=[1, 2, 3])


def test_a_failing_sink_stops_the_prediction(tmp_path):
    path = write_geotiff(tmp_path / "s.tif", smooth_image(300, 100))

    class Broken(ArraySink):
        def write(self, row, *args):
            if row > 0:
                raise OSError("disk full")
            super().write(row, *args)

    predictor = TilePredictor(pointwise_model(), MEAN, STD, 5)
    with rasterio.open(path) as handle, pytest.raises(OSError, match="disk full"):
        predict_raster(handle, predictor, Broken(300, 100, 5), tile_size=64, overlap=0.25)
