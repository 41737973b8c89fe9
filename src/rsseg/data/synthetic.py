"""The embedded default dataset: synthetic aerial scenes generated deterministically from a seed.

Each scene is a 3-band uint8 GeoTIFF in a real projected CRS (UTM zone 50N, 2 m pixels) with a colour-coded
label GeoTIFF beside it. Scenes hold built-up blocks with cast shadows, road lines, farmland parcels with row
texture, forest and meadow blobs and water bodies with smooth shores, under per-scene illumination gradients,
colour casts and sensor noise. Class colours overlap on purpose (grey roofs vs roads, green parcels vs meadow,
dark forest vs water), so a model has to use texture and shape, not colour alone, to do well.

The scenes are written on first use into a cache folder and reused afterwards; a manifest records the
generator's parameters so changing them regenerates the set.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin
from scipy import ndimage

from rsseg.data.datasets.base import Record, SceneSet
from rsseg.data.raster import Scene
from rsseg.runtime.files import folder_replaced_when_complete

CLASS_NAMES = ["built-up", "road", "farmland", "forest", "meadow", "water"]
PALETTE = [(255, 0, 0), (255, 255, 255), (0, 255, 0), (0, 255, 255), (255, 255, 0), (0, 0, 255)]
BUILT, ROAD, FARM, FOREST, MEADOW, WATER = range(6)
GENERATOR_VERSION = 2  # 2: written uncompressed
CRS = "EPSG:32650"
PIXEL_SIZE = 2.0


def _smooth_noise(rng: np.random.Generator, size: int, scale: int) -> np.ndarray:
    """Zero-mean, unit-variance noise whose features are about ``scale`` pixels across."""
    coarse = max(size // scale, 2) + 2
    grid = ndimage.gaussian_filter(rng.standard_normal((coarse, coarse)), 1.0, mode="wrap")
    field = ndimage.zoom(grid, size / (coarse - 2), order=3)[:size, :size]
    field = field[:size, :size]
    return (field - field.mean()) / (field.std() + 1e-9)


def _draw_line(label: np.ndarray, rng: np.random.Generator, width: float) -> np.ndarray:
    """Mask of a straight road crossing the scene at a random angle."""
    size = label.shape[0]
    angle = rng.uniform(0, np.pi)
    centre = rng.uniform(0.2 * size, 0.8 * size, 2)
    rows, cols = np.mgrid[0:size, 0:size]
    distance = np.abs((cols - centre[1]) * np.sin(angle) - (rows - centre[0]) * np.cos(angle))
    return distance < width / 2


def _cuts(rng: np.random.Generator, start: int, length: int) -> list[int]:
    """One to three parcel boundaries inside a district, none closer than a few pixels to its ends."""
    margin = min(30, length // 4)
    return sorted(rng.integers(start + margin, start + length - margin, rng.integers(1, 4)).tolist())


def generate_scene(seed: int, size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """One scene: (image [3, size, size] uint8, class map [size, size] uint8)."""
    rng = np.random.default_rng(seed)
    label = np.full((size, size), MEADOW, dtype=np.uint8)
    image = np.zeros((3, size, size), dtype=np.float32)

    # Forest blobs over the meadow.
    label[_smooth_noise(rng, size, 96) > rng.uniform(0.3, 0.8)] = FOREST

    # Farmland: a few rectangular districts cut into parcels, each with its own row direction and colour.
    farm_texture = np.zeros((size, size), dtype=np.float32)
    farm_colour = np.zeros((3, size, size), dtype=np.float32)
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32)
    for _ in range(rng.integers(1, 3)):
        h, w = rng.integers(size // 4, size // 2, 2)
        r0, c0 = rng.integers(0, size - h), rng.integers(0, size - w)
        r_edges = [r0, *_cuts(rng, r0, h), r0 + h]
        c_edges = [c0, *_cuts(rng, c0, w), c0 + w]
        for ra, rb in zip(r_edges[:-1], r_edges[1:]):
            for ca, cb in zip(c_edges[:-1], c_edges[1:]):
                ra2, rb2, ca2, cb2 = ra + 3, rb - 3, ca + 3, cb - 3  # grass margins between parcels
                if rb2 <= ra2 or cb2 <= ca2:
                    continue
                label[ra2:rb2, ca2:cb2] = FARM
                theta = rng.uniform(0, np.pi)
                period = rng.uniform(5, 11)
                phase = (cols[ra2:rb2, ca2:cb2] * np.cos(theta) + rows[ra2:rb2, ca2:cb2] * np.sin(theta)) / period
                farm_texture[ra2:rb2, ca2:cb2] = np.sin(2 * np.pi * phase)
                green, brown = np.array([105, 140, 70]), np.array([150, 128, 92])
                mix = rng.uniform(0, 1)
                farm_colour[:, ra2:rb2, ca2:cb2] = (mix * green + (1 - mix) * brown)[:, None, None]

    # Water: a lake or a meandering river with smooth shores.
    if rng.uniform() < 0.5:
        water = _smooth_noise(rng, size, 160) > rng.uniform(1.0, 1.5)
    else:
        amplitude, period, centre = rng.uniform(40, 120), rng.uniform(300, 700), rng.uniform(0.25, 0.75) * size
        width = rng.uniform(18, 40) + 8 * _smooth_noise(rng, size, 64)
        course = centre + amplitude * np.sin(2 * np.pi * cols / period + rng.uniform(0, 6))
        water = np.abs(rows - course) < width
        if rng.uniform() < 0.5:
            water = water.T
    label[water] = WATER

    # Built-up: a town of rectangular buildings around a centre, with streets between blocks.
    roofs = np.zeros((3, size, size), dtype=np.float32)
    shadow = np.zeros((size, size), dtype=bool)
    centre = rng.uniform(0.25, 0.75, 2) * size
    radius = rng.uniform(0.15, 0.3) * size
    roof_colours = np.array([[150, 92, 80], [168, 166, 160], [122, 122, 130], [188, 160, 140], [96, 100, 104]])
    for _ in range(int(rng.integers(60, 140))):
        r = int(np.clip(rng.normal(centre[0], radius / 2), 0, size - 1))
        c = int(np.clip(rng.normal(centre[1], radius / 2), 0, size - 1))
        h, w = rng.integers(8, 30, 2)
        r1, c1 = min(r + h, size), min(c + w, size)
        if (label[r:r1, c:c1] == WATER).mean() > 0.1:
            continue
        label[r:r1, c:c1] = BUILT
        roofs[:, r:r1, c:c1] = (roof_colours[rng.integers(len(roof_colours))] + rng.normal(0, 8, 3))[:, None, None]
        height = int(rng.integers(3, 8))  # shadows fall to the south-east, onto whatever lies there
        shadow[min(r + height, size) : min(r1 + height, size), min(c + height, size) : min(c1 + height, size)] = True
    shadow &= label != BUILT

    # Roads: straight roads across the scene and a few streets in town; they bridge over water.
    road = np.zeros((size, size), dtype=bool)
    for _ in range(int(rng.integers(2, 5))):
        road |= _draw_line(label, rng, rng.uniform(5, 10))
    label[road] = ROAD

    # Appearance: class colours that overlap, textures that tell them apart.
    fine = rng.standard_normal((size, size)).astype(np.float32)
    crowns = ndimage.gaussian_filter(rng.standard_normal((size, size)), 1.5).astype(np.float32)
    crowns /= crowns.std() + 1e-9
    grass = _smooth_noise(rng, size, 24).astype(np.float32)
    colours = {
        MEADOW: np.array([98, 132, 68]),
        FOREST: np.array([52, 84, 48]),
        WATER: np.array([44, 70, 78]),
        ROAD: np.array([126, 126, 120]),
    }
    for cls, colour in colours.items():
        image[:, label == cls] = colour[:, None]
    image[:, label == FARM] = farm_colour[:, label == FARM] + 14 * farm_texture[label == FARM]
    image[:, label == BUILT] = roofs[:, label == BUILT]
    image += np.where(label == FOREST, 18 * crowns, 0)[None]
    image += np.where(label == MEADOW, 10 * grass, 0)[None]
    image += np.where(label == WATER, 6 * _smooth_noise(rng, size, 48), 0)[None]
    image += np.where(label == ROAD, 4 * fine, 0)[None]
    shore = ndimage.binary_dilation(label == WATER, iterations=4) & (label != WATER)
    image[:, shore & (label != ROAD)] = 0.6 * image[:, shore & (label != ROAD)] + 0.4 * np.array([120, 112, 90])[:, None]
    image[:, shadow] *= 0.55

    illumination = 1 + 0.15 * _smooth_noise(rng, size, 512)
    cast = rng.uniform(0.9, 1.1, 3)
    image = image * illumination[None] * cast[:, None, None] + rng.normal(0, 5, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), label


def _write(path: Path, pixels: np.ndarray, origin: tuple[float, float]) -> None:
    # Uncompressed and tiled: windows are read straight from these files, which need no read-cache copy
    # (rsseg.data.cache.needs_cache); the default set is 8 x 3 MB.
    profile = {
        "driver": "GTiff", "height": pixels.shape[1], "width": pixels.shape[2], "count": pixels.shape[0],
        "dtype": "uint8", "crs": CRS, "transform": from_origin(*origin, PIXEL_SIZE, PIXEL_SIZE),
        "tiled": True, "blockxsize": 256, "blockysize": 256,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(pixels)


class SyntheticScenes(SceneSet):
    """The synthetic scene set. Its ``standard`` split is by position (the last scenes are held out: ``val_scenes``
    validate, then ``test_scenes`` test); every other protocol (``random`` tiles, a ``split_file``) works as on
    the real datasets."""

    dataset = "synthetic"

    def __init__(
        self,
        root: str | Path,
        seed: int = 0,
        num_scenes: int = 8,
        size: int = 1024,
        val_scenes: int = 2,
        test_scenes: int = 0,
        **protocol,
    ) -> None:
        if num_scenes - val_scenes - test_scenes < 1:
            raise ValueError(f"num_scenes={num_scenes} leaves no training scene after {val_scenes} val and {test_scenes} test")
        self.params = {"version": GENERATOR_VERSION, "seed": seed, "num_scenes": num_scenes, "size": size}
        self.val_scenes, self.test_scenes = val_scenes, test_scenes
        p = self.params
        # The scenes live in a folder named after what generated them: that folder is the dataset's root.
        self.folder = Path(root).expanduser() / f"v{p['version']}_seed{p['seed']}_n{p['num_scenes']}_s{p['size']}"
        super().__init__(self.folder, **protocol)

    def ensure(self) -> Path:
        """Generate the scenes unless an identical set is already cached; returns the folder."""
        folder = self.folder
        manifest = folder / "manifest.json"
        if manifest.exists() and json.loads(manifest.read_text()) == self.params:
            return folder
        try:
            with folder_replaced_when_complete(folder) as staging:
                for index in range(self.params["num_scenes"]):
                    image, label = generate_scene(self.params["seed"] * 1000 + index, self.params["size"])
                    origin = (500_000.0 + index * 4_000.0, 3_400_000.0)
                    _write(staging / f"scene_{index:02d}.tif", image, origin)
                    _write(staging / f"scene_{index:02d}_label.tif",
                           np.asarray(PALETTE, np.uint8)[label].transpose(2, 0, 1), origin)
                (staging / "manifest.json").write_text(json.dumps(self.params))
        except OSError:  # another process may have won the race: both sets are identical
            if not manifest.exists():
                raise
        return folder

    def records(self) -> list[Record]:
        folder = self.ensure()
        return [Record(f"scene_{i:02d}", folder / f"scene_{i:02d}.tif", folder / f"scene_{i:02d}_label.tif")
                for i in range(self.params["num_scenes"])]

    def split_ids(self, table: str) -> dict[str, list[str]]:
        ids = [f"scene_{i:02d}" for i in range(self.params["num_scenes"])]
        n_train = len(ids) - self.val_scenes - self.test_scenes
        return {"train": ids[:n_train], "val": ids[n_train : n_train + self.val_scenes],
                "test": ids[n_train + self.val_scenes :]}

    def split(self, name: str, strict: bool = True) -> list[Scene]:
        self.ensure()  # the scenes are generated on first use, before the folder is looked at
        return super().split(name, strict)

    def problems(self) -> list[str]:
        self.ensure()
        return super().problems()
