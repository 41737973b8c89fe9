"""Datasets of windows read on the fly from GeoTIFF scenes.

Training draws random windows (``RandomWindowDataset`` with ``RandomWindowSampler``); evaluation covers each
scene with a regular grid of windows (``GridWindowDataset``) padded past the edges with the ignore index, so
every labelled pixel is counted exactly once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from rasterio.errors import RasterioError
from rasterio.windows import Window
from torch.utils.data import Dataset, DistributedSampler, Sampler

from rsseg.data.labels import reads_index
from rsseg.data.raster import RasterPool, Scene, nodata_mask, read_label_window, read_window
from rsseg.errors import DataError
from rsseg.runtime.console import warn

# Raster dtypes torch cannot collate or convert everywhere travel in the next wider type it can.
_TRANSPORT_DTYPES = {np.dtype("uint16"): np.int32, np.dtype("uint32"): np.int64, np.dtype("int8"): np.int16,
                     np.dtype("float64"): np.float32, np.dtype("float16"): np.float32}


def transport_dtype(dtype) -> np.dtype:
    """The dtype a raster's pixels travel in from the workers to the device: their own where torch has it."""
    return np.dtype(_TRANSPORT_DTYPES.get(np.dtype(dtype), dtype))


class SceneReader:
    """Reads an image window (raw pixels, in the raster's own dtype) and its label window (class indices, uint8)
    from a scene. Normalisation and augmentation happen later, on the device (:mod:`rsseg.data.device`).

    Pixels that are nodata in the image (or outside the scene, or NaN or infinite in any band) get ``ignore_index``
    in the label, so the loss and the metrics never see them; NaN and inf become 0 (the band mean) on the device.
    """

    def __init__(
        self,
        decode_labels: Callable[[np.ndarray, str], np.ndarray] | None,
        bands: Sequence[int] | None = None,
        nodata: float | None = None,
        ignore_index: int = 255,
        pool: RasterPool | None = None,
    ) -> None:
        self.decode_labels = decode_labels
        self.bands = list(bands) if bands else None
        self.nodata = nodata
        self.ignore_index = ignore_index
        self.pool = pool if pool is not None else RasterPool()  # a pool with a read cache reads decoded copies

    def read(self, scene: Scene, window: Window) -> tuple[torch.Tensor, torch.Tensor]:
        """``window`` is in the scene's pixels: for a scene that is a part of a raster, relative to that part."""
        handle = self.pool.get(scene.image)
        bounds = scene_bounds(scene, handle.height, handle.width)
        window = Window(window.col_off + bounds[1], window.row_off + bounds[0], window.width, window.height)
        pixels = _read_or_fail(scene.image, window, lambda: read_window(handle, window, self.bands, bounds=bounds))
        label = np.full(pixels.shape[1:], self.ignore_index, dtype=np.uint8)
        if scene.label is not None and self.decode_labels is not None:
            label_handle = self.pool.get(scene.label)
            raw = _read_or_fail(scene.label, window, lambda: read_label_window(
                label_handle, window, bounds, index=reads_index(self.decode_labels)))
            inside = _inside_mask(window, bounds)
            decoded = self.decode_labels(raw[:, inside.any(1)][:, :, inside.any(0)], str(scene.label))
            label[inside] = decoded.reshape(-1)
        missing = nodata_mask(handle, pixels, self.nodata)
        if missing is not None:
            label[missing] = self.ignore_index
        if pixels.dtype.kind == "f" and not np.isfinite(pixels).all():
            warn(f"{scene.image}: NaN or infinite pixels; treated as nodata (ignored by the loss and the metrics)")
        return torch.from_numpy(pixels.astype(transport_dtype(pixels.dtype), copy=False)), torch.from_numpy(label)

    def pixel_dtype(self, scene: Scene) -> torch.dtype:
        """The torch dtype :meth:`read` returns for this scene's image."""
        handle = self.pool.get(scene.image)
        index = (self.bands or [1])[0] - 1
        return torch.from_numpy(np.zeros(0, transport_dtype(handle.dtypes[index]))).dtype


def _read_or_fail(path, window: Window, read: Callable[[], np.ndarray]) -> np.ndarray:
    """Run a raster read; a truncated or corrupt file (which fails here, not when opened) becomes one line."""
    try:
        return read()
    except RasterioError as error:
        raise DataError(
            f"{path}: reading window (row {int(window.row_off)}, col {int(window.col_off)}, "
            f"{int(window.height)}x{int(window.width)}) failed, the file looks corrupt or truncated "
            f"({str(error).splitlines()[0]})"
        ) from None


def scene_bounds(scene: Scene, height: int, width: int) -> tuple[int, int, int, int]:
    """``row0, col0, row1, col1`` of the part of the raster a scene covers (all of it unless it has a window)."""
    if scene.window is None:
        return 0, 0, height, width
    row, col, h, w = scene.window
    return row, col, row + h, col + w


def _inside_mask(window: Window, bounds: tuple[int, int, int, int]) -> np.ndarray:
    row0, col0, row1, col1 = bounds
    rows = np.arange(int(window.row_off), int(window.row_off + window.height))
    cols = np.arange(int(window.col_off), int(window.col_off + window.width))
    return ((rows >= row0) & (rows < row1))[:, None] & ((cols >= col0) & (cols < col1))[None, :]


class RandomWindowSampler(Sampler[int]):
    """Yields ``num_samples`` indices per epoch, distinct from one epoch to the next.

    Index ``epoch * num_samples + i`` seeds the ``i``-th window of an epoch, so windows are reproducible from the
    seed, change every epoch, and under DDP each rank (which takes its own share of the indices) reads different
    windows. The epoch advances each time the sampler is iterated; ``set_epoch`` pins it when resuming, and
    ``skip_next`` makes the next iteration start part-way into its epoch (a run resumed mid-epoch).
    """

    def __init__(self, num_samples: int, epoch: int = 0) -> None:
        self.num_samples = int(num_samples)
        self.epoch = int(epoch)
        self.skip = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def skip_next(self, count: int) -> None:
        self.skip = max(0, min(int(count), self.num_samples))

    def __iter__(self) -> Iterator[int]:
        start = self.epoch * self.num_samples
        skip, self.skip = self.skip, 0
        self.epoch += 1
        return iter(range(start + skip, start + self.num_samples))

    def __len__(self) -> int:
        return self.num_samples


class RandomWindowDataset(Dataset):
    """Random ``tile_size`` windows from a list of scenes, scenes chosen in proportion to their area."""

    def __init__(
        self,
        scenes: Sequence[Scene],
        sizes: Sequence[tuple[int, int]],
        reader: SceneReader,
        tile_size: int,
        samples_per_epoch: int,
        seed: int = 0,
    ) -> None:
        if not scenes:
            raise ValueError("no scenes to sample training windows from")
        self.scenes = list(scenes)
        self.sizes = [tuple(s) for s in sizes]
        self.reader = reader
        self.tile_size = int(tile_size)
        self.samples_per_epoch = int(samples_per_epoch)
        self.seed = int(seed)
        areas = np.array([h * w for h, w in self.sizes], dtype=np.float64)
        self.scene_weights = areas / areas.sum()

    def __len__(self) -> int:
        return self.samples_per_epoch

    def window(self, index: int) -> tuple[int, Window]:
        """The scene and window drawn for ``index`` (a pure function of seed and index)."""
        rng = np.random.default_rng([self.seed, int(index)])
        scene = int(rng.choice(len(self.scenes), p=self.scene_weights))
        height, width = self.sizes[scene]
        row = int(rng.integers(0, max(height - self.tile_size, 0) + 1))
        col = int(rng.integers(0, max(width - self.tile_size, 0) + 1))
        return scene, Window(col, row, self.tile_size, self.tile_size)

    def __getitem__(self, index: int) -> dict:
        scene, window = self.window(index)
        image, mask = self.reader.read(self.scenes[scene], window)
        return {"image": image, "mask": mask, "index": int(index)}


def grid_windows(height: int, width: int, tile_size: int, stride: int | None = None) -> list[Window]:
    """Windows of ``tile_size`` every ``stride`` pixels covering the whole scene (the last ones reach past it)."""
    stride = stride or tile_size
    rows = range(0, max(height - tile_size, 0) + stride, stride) if height > tile_size else [0]
    cols = range(0, max(width - tile_size, 0) + stride, stride) if width > tile_size else [0]
    return [Window(c, r, tile_size, tile_size) for r in rows for c in cols if r < height and c < width]


class GridWindowDataset(Dataset):
    """A regular grid of windows over every scene, padded past the edges with the ignore index.

    Non-overlapping by default (every labelled pixel counted once); a ``stride`` below ``tile_size`` gives
    overlapping windows, whose shared pixels are then counted once per window, as mmsegmentation's evaluation
    on stride-256 patches does. Each item carries the index of its scene (``"scene"``) so that per-scene
    confusion matrices can be kept. Index ``len(dataset)`` is a padding window (every label ignored, scene -1)
    that :class:`EvenShardSampler` hands to DDP ranks left one window short.
    """

    def __init__(
        self,
        scenes: Sequence[Scene],
        sizes: Sequence[tuple[int, int]],
        reader: SceneReader,
        tile_size: int,
        stride: int | None = None,
        in_channels: int | None = None,
    ) -> None:
        self.scenes = list(scenes)
        self.reader = reader
        self.tile_size = int(tile_size)
        self.in_channels = in_channels
        self.items = [
            (index, window)
            for index, (height, width) in enumerate(sizes)
            for window in grid_windows(height, width, tile_size, stride)
        ]

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self):
        # Without this, Python's fallback iteration would run on into the padding index.
        return (self[index] for index in range(len(self)))

    def __getitem__(self, index: int) -> dict:
        if index == len(self.items):
            return self.padding()
        scene, window = self.items[index]
        image, mask = self.reader.read(self.scenes[scene], window)
        return {"image": image, "mask": mask, "scene": scene}

    def padding(self) -> dict:
        if self.in_channels is None:
            raise ValueError("a padding window needs in_channels")
        size = self.tile_size
        return {
            "image": torch.zeros(self.in_channels, size, size, dtype=self.reader.pixel_dtype(self.scenes[0])),
            "mask": torch.full((size, size), self.reader.ignore_index, dtype=torch.uint8),
            "scene": -1,
        }


class EvenShardSampler(DistributedSampler):
    """Evaluation windows shared among DDP ranks without repeating any.

    Rank ``r`` of ``W`` takes windows ``r, r + W, ...``; a rank left one window short gets the dataset's padding
    index instead, whose labels are all ignored. Every rank then runs the same number of batches (a collective
    never waits on a rank that has finished) and every labelled pixel is counted exactly once across ranks, so
    the synchronised confusion matrix equals a single process's. torch's own ``DistributedSampler`` evens the
    ranks out by repeating windows, which would count them twice.
    """

    def __init__(self, dataset: GridWindowDataset, num_replicas: int, rank: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False)
        self.per_rank = -(-len(dataset) // num_replicas)

    def __iter__(self) -> Iterator[int]:
        total = len(self.dataset)
        mine = list(range(self.rank, total, self.num_replicas))
        return iter(mine + [total] * (self.per_rank - len(mine)))

    def __len__(self) -> int:
        return self.per_rank
