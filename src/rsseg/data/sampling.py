"""Class-balanced random windows: training windows centred on rare classes (cars, clutter) more often.

Before training, every training scene's label raster is read once, decimated by ``cell`` pixels with nearest
neighbour sampling (GDAL reads only the rows it samples), and decoded into a coarse class map. A cell of class
``c`` is then drawn with a weight proportional to ``n_c ** -alpha`` (``n_c``: the number of cells of class ``c``
over all training scenes), i.e. the class at the window centre is drawn with probability proportional to
``n_c ** (1 - alpha)``: ``alpha = 0`` follows the data (like uniform windows, but never centred on ignored
pixels), ``alpha = 1`` makes every present class equally likely at the centre. The window is centred on a random
point of the drawn cell and shifted to lie inside the scene.

As for uniform windows, window ``i`` is a pure function of ``(seed, i)``: every DataLoader worker and every DDP
rank computes the same coarse maps from the same files and so draws the same window for the same index, and
ranks, which take different indices, read different windows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import numpy as np
from rasterio.windows import Window

from rsseg.data.dataset import RandomWindowDataset, SceneReader
from rsseg.data.labels import reads_index
from rsseg.data.raster import Scene, open_raster, read_label_decimated

log = logging.getLogger(__name__)


def coarse_class_map(
    scene: Scene,
    decode_labels: Callable[[np.ndarray, str], np.ndarray],
    cell: int,
    cache: dict | None = None,
) -> np.ndarray:
    """The scene's label decimated by ``cell`` (nearest neighbour) as class indices, ``[ceil(h/cell), ceil(w/cell)]``.

    ``cache`` holds whole-raster maps keyed by label path, so many tile scenes of one raster read it once.
    """
    if scene.label is None:
        raise ValueError(f"{scene.name}: class-balanced sampling needs labelled training scenes")
    key = (str(scene.label), cell)
    if cache is not None and key in cache:
        full = cache[key]
    else:
        with open_raster(scene.label) as handle:
            shape = (max(1, -(-handle.height // cell)), max(1, -(-handle.width // cell)))
            raw = read_label_decimated(handle, shape, index=reads_index(decode_labels))
        full = decode_labels(raw, str(scene.label))
        if cache is not None:
            cache[key] = full
    if scene.window is None:
        return full
    row, col, height, width = scene.window
    r0, c0 = row // cell, col // cell
    r1, c1 = -(-(row + height) // cell), -(-(col + width) // cell)
    return full[r0:r1, c0:c1]


class ClassBalancedWindowDataset(RandomWindowDataset):
    """Random training windows whose centres favour rare classes (see the module docstring)."""

    def __init__(
        self,
        scenes: Sequence[Scene],
        sizes: Sequence[tuple[int, int]],
        reader: SceneReader,
        tile_size: int,
        samples_per_epoch: int,
        seed: int = 0,
        num_classes: int | None = None,
        alpha: float = 0.5,
        cell: int | None = None,
    ) -> None:
        super().__init__(scenes, sizes, reader, tile_size, samples_per_epoch, seed)
        if reader.decode_labels is None:
            raise ValueError("class-balanced sampling needs a label decoder")
        self.alpha = float(alpha)
        self.cell = int(cell or max(self.tile_size // 8, 1))
        started = time.perf_counter()
        cache: dict = {}
        maps = [coarse_class_map(s, reader.decode_labels, self.cell, cache) for s in self.scenes]
        self.map_shapes = [m.shape for m in maps]
        sizes_flat = np.array([m.size for m in maps], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(sizes_flat)])
        flat = np.concatenate([m.reshape(-1) for m in maps]) if maps else np.zeros(0, np.uint8)
        num_classes = int(num_classes if num_classes is not None else (flat[flat != reader.ignore_index].max(initial=0) + 1))
        self.num_classes = num_classes
        valid = flat < num_classes
        order = np.argsort(flat, kind="stable")
        self.cell_counts = np.bincount(flat[valid], minlength=num_classes)[:num_classes].astype(np.int64)
        starts = np.concatenate([[0], np.cumsum(self.cell_counts)])
        sorted_valid = order[: int(valid.sum())] if flat.size else order
        # cells of class c: sorted_valid[starts[c]:starts[c+1]] (global cell ids; stable order is reproducible)
        self.cells_by_class = [sorted_valid[starts[c] : starts[c + 1]].astype(np.int64) for c in range(num_classes)]
        present = self.cell_counts > 0
        if not present.any():
            raise ValueError("class-balanced sampling found no labelled pixel in the training scenes")
        weights = np.zeros(num_classes, dtype=np.float64)
        weights[present] = self.cell_counts[present].astype(np.float64) ** (1.0 - self.alpha)
        self.class_probabilities = weights / weights.sum()
        log.info(
            "class-balanced windows: %d cells of %d px over %d scenes in %.1f s; centre-class probabilities %s",
            flat.size, self.cell, len(maps), time.perf_counter() - started, np.round(self.class_probabilities, 3).tolist(),
        )

    def window(self, index: int) -> tuple[int, Window]:
        rng = np.random.default_rng([self.seed, int(index)])
        cls = int(rng.choice(self.num_classes, p=self.class_probabilities))
        cells = self.cells_by_class[cls]
        global_cell = int(cells[int(rng.integers(0, len(cells)))])
        scene = int(np.searchsorted(self.offsets, global_cell, side="right") - 1)
        local = global_cell - int(self.offsets[scene])
        map_width = self.map_shapes[scene][1]
        cell_row, cell_col = divmod(local, map_width)
        height, width = self.sizes[scene]
        centre_row = min(cell_row * self.cell + int(rng.integers(0, self.cell)), height - 1)
        centre_col = min(cell_col * self.cell + int(rng.integers(0, self.cell)), width - 1)
        # Window coordinates are relative to the scene; a tile scene's coarse map starts at its own cell grid.
        if self.scenes[scene].window is not None:
            row_off, col_off = self.scenes[scene].window[:2]
            centre_row = min(max(centre_row - row_off % self.cell, 0), height - 1)
            centre_col = min(max(centre_col - col_off % self.cell, 0), width - 1)
        row = int(np.clip(centre_row - self.tile_size // 2, 0, max(height - self.tile_size, 0)))
        col = int(np.clip(centre_col - self.tile_size // 2, 0, max(width - self.tile_size, 0)))
        return scene, Window(col, row, self.tile_size, self.tile_size)


__all__ = ["ClassBalancedWindowDataset", "coarse_class_map"]
