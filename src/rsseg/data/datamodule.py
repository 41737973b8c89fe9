"""The LightningDataModule around windowed GeoTIFF scenes."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Protocol

import lightning as L
from torch.utils.data import DataLoader

from rsseg.data.cache import ReadCache
from rsseg.data.dataset import (
    EvenShardSampler,
    GridWindowDataset,
    RandomWindowDataset,
    RandomWindowSampler,
    SceneReader,
)
from rsseg.data.device import DeviceBatch
from rsseg.data.labels import build_decoder
from rsseg.data.raster import RasterPool, Scene, check_pair, scene_size
from rsseg.data.resumable import resume_sampler, seed_batch, training_position
from rsseg.data.transforms import Normalize
from rsseg.errors import ConfigError, DataError


def worker_start_method():
    """The platform's own start method for DataLoader workers, asked for explicitly: the worker processes of
    joblib (hydra/launcher=parallel) make loky's the default, which DataLoader workers fail with (hydra #964)."""
    import multiprocessing

    return multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")


def windows_covering(sizes: Sequence[tuple[int, int]], tile_size: int) -> int:
    """How many ``tile_size`` windows tile scenes of these sizes once (partial windows at the edges count)."""
    return sum(-(-int(h) // tile_size) * -(-int(w) // tile_size) for h, w in sizes)


class SceneSource(Protocol):
    """Anything that lists the scenes of a split: synthetic scenes, a dataset folder, a manifest."""

    def split(self, name: str) -> list[Scene]: ...


class SegmentationDataModule(L.LightningDataModule):
    """Random training windows and grid evaluation windows read with rasterio from a ``SceneSource``.

    Every scene is checked up front (files exist, image and label agree in size, CRS and transform, band count
    matches ``in_channels``) so that bad data stops the run before the first step, with the file named.

    ``root`` and ``stats_file`` are recorded for reports (the data configs pass ``root`` on to their scene source
    and read ``mean``/``std`` from ``stats_file`` through the ``rsseg.stats`` resolver). ``sampling:
    class_balanced`` draws training windows centred on rare classes more often (``rsseg.data.sampling``).
    ``eval_stride`` below ``eval_tile_size`` makes the evaluation grid overlap. ``train_samples_per_epoch: null``
    makes an epoch as many windows as tile the training split once (the papers' epochs over their tiles).

    Workers only read: batches leave them as raw pixels and uint8 masks, and ``on_after_batch_transfer``
    normalises them on the device and augments training batches there (:class:`rsseg.data.device.DeviceBatch`).
    ``pin_memory`` (page-locked host buffers, for asynchronous copies to a GPU) is on where a GPU trains unless
    set; ``prefetch_factor`` batches per worker are read ahead.
    Labels decode as :func:`rsseg.data.labels.build_decoder` says: ``reduce_zero_label`` is mmsegmentation's
    (index labels: 0 ignored, value v the class v - 1); ``ignore_index`` marks the ignored pixels after decoding.
    ``cache`` reads rasters that are slow to read in windows (JPEG, PNG, striped or compressed GeoTIFF) from
    decoded copies under ``<cache_dir>/rasters`` (:mod:`rsseg.data.cache`; ``cache_dir`` null: ``$RSSEG_CACHE`` or
    ``~/.cache/rsseg``), built in this process when a split is first checked, so DataLoader workers only open
    finished files.
    """

    def __init__(
        self,
        scenes: SceneSource,
        num_classes: int,
        in_channels: int,
        class_names: Sequence[str],
        mean: Sequence[float],
        std: Sequence[float],
        palette: Sequence[Sequence[int]] | None = None,
        label_format: str = "colour",
        ignore_colours: Sequence[Sequence[int]] = (),
        label_offset: int = 0,
        ignore_values: Sequence[int] = (),
        ignore_index: int = 255,
        label_values: Sequence[int] | None = None,
        reduce_zero_label: bool = False,
        bands: Sequence[int] | None = None,
        nodata: float | None = None,
        exclude_from_mean: Sequence[str] = (),
        tile_size: int = 256,
        eval_tile_size: int | None = None,
        train_samples_per_epoch: int | None = 1000,
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        seed: int = 0,
        augment: Callable | None = None,
        root: str | None = None,
        stats_file: str | None = None,
        eval_stride: int | None = None,
        sampling: str = "uniform",
        class_balance: float = 0.5,
        class_balance_cell: int | None = None,
        pin_memory: bool | None = None,
        prefetch_factor: int = 2,
        cache: bool = True,
        cache_dir: str | None = None,
    ) -> None:
        super().__init__()
        if sampling not in ("uniform", "class_balanced"):
            raise ConfigError(f"data.sampling={sampling!r}; expected 'uniform' or 'class_balanced'")
        if len(class_names) != num_classes:
            raise ConfigError(f"data.class_names has {len(class_names)} names but data.num_classes={num_classes}")
        if len(mean) != in_channels or len(std) != in_channels:
            raise ConfigError(
                f"data.mean/data.std need one value per input band (in_channels={in_channels}), "
                f"got {len(mean)} and {len(std)}"
            )
        self.decode_labels = build_decoder(
            label_format, num_classes, palette, ignore_colours, label_offset, ignore_values, ignore_index, label_values,
            reduce_zero_label,
        )
        self.scenes = scenes
        self.num_classes, self.in_channels = num_classes, in_channels
        self.class_names = list(class_names)
        self.ignore_index = ignore_index
        self.bands = list(bands) if bands else None
        self.tile_size = tile_size
        self.eval_tile_size = eval_tile_size or tile_size
        self.train_samples_per_epoch = train_samples_per_epoch
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.device_batch = DeviceBatch(Normalize(mean, std), augment, seed)
        self.pin_memory, self.prefetch_factor = pin_memory, prefetch_factor
        self.root, self.stats_file = root, stats_file
        self.eval_stride = eval_stride
        self.sampling, self.class_balance, self.class_balance_cell = sampling, class_balance, class_balance_cell
        self.read_cache = ReadCache(cache_dir) if cache else None
        self.reader = SceneReader(self.decode_labels, self.bands, nodata, ignore_index, pool=RasterPool(self.read_cache))
        self._splits: dict[str, tuple[list[Scene], list[tuple[int, int]]]] = {}
        self._resume_position: dict | None = None

    def split_scenes(self, name: str) -> tuple[list[Scene], list[tuple[int, int]]]:
        """The checked scenes of a split and their sizes (cached)."""
        if name not in self._splits:
            scenes = self.scenes.split(name)
            needed = getattr(self.decode_labels, "bands_needed", None)
            checked: dict[tuple, tuple[int, int]] = {}  # tile scenes of one raster pair are checked once
            sizes = []
            for scene in scenes:
                key = (scene.image, scene.label)
                if key not in checked:
                    checked[key] = check_pair(Scene(scene.image, scene.label, scene.name), self.in_channels, self.bands, needed)
                sizes.append(scene_size(scene, checked[key]))
            if self.read_cache is not None:  # built here, once, so that DataLoader workers only open finished files
                self.read_cache.ensure_all(path for scene in scenes for path in (scene.image, scene.label))
            self._splits[name] = (scenes, sizes)
        return self._splits[name]

    def prepare_data(self) -> None:
        # Synthetic scenes are generated here, once, on rank 0 before workers start.
        self.scenes.split("train")

    def setup(self, stage: str | None = None) -> None:
        if stage in ("fit", None):
            train, train_sizes = self.split_scenes("train")
            if not train:
                raise DataError("the training split is empty: no scenes found")
            if self.train_samples_per_epoch is None:
                self.train_samples_per_epoch = windows_covering(train_sizes, self.tile_size)
            if self.sampling == "class_balanced":
                from rsseg.data.sampling import ClassBalancedWindowDataset

                self.train_set = ClassBalancedWindowDataset(
                    train, train_sizes, self.reader, self.tile_size, self.train_samples_per_epoch, self.seed,
                    num_classes=self.num_classes, alpha=self.class_balance, cell=self.class_balance_cell,
                )
            else:
                self.train_set = RandomWindowDataset(
                    train, train_sizes, self.reader, self.tile_size, self.train_samples_per_epoch, self.seed
                )
        if stage in ("fit", "validate", None):
            val, val_sizes = self.split_scenes("val")
            if not val:
                raise DataError("the validation split is empty: no scenes found")
            self.val_set = GridWindowDataset(val, val_sizes, self.reader, self.eval_tile_size, self.eval_stride,
                                             self.in_channels)
        if stage in ("test", None):
            test, test_sizes = self.split_scenes("test")
            self.test_set = GridWindowDataset(test, test_sizes, self.reader, self.eval_tile_size, self.eval_stride,
                                              self.in_channels)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        # Every batch is normalised here, on the device it now lives on; training batches are augmented too.
        batch = self.device_batch.prepare(batch)
        trainer = getattr(self, "trainer", None)
        if trainer is not None and trainer.training:
            seed_batch(self.seed, trainer)  # RICAP and dropout draw the same for this batch in a resumed run
            batch = self.device_batch.augment(batch)
        return batch

    def _pin_memory(self) -> bool:
        if self.pin_memory is not None:
            return bool(self.pin_memory)
        trainer = getattr(self, "trainer", None)
        return trainer is not None and getattr(trainer.strategy.root_device, "type", "cpu") == "cuda"

    def _loader(self, dataset, batch_size: int, **kwargs) -> DataLoader:
        workers = self.num_workers > 0
        return DataLoader(
            dataset,
            batch_size=batch_size,
            num_workers=self.num_workers,
            persistent_workers=workers,
            prefetch_factor=self.prefetch_factor if workers else None,
            pin_memory=self._pin_memory(),
            multiprocessing_context=worker_start_method() if workers else None,
            **kwargs,
        )

    def train_dataloader(self) -> DataLoader:
        # drop_last: BatchNorm after image pooling (ASPP) cannot train on a last batch of one window.
        trainer = getattr(self, "trainer", None)
        sampler = RandomWindowSampler(len(self.train_set), epoch=trainer.current_epoch if trainer else 0)
        resume_sampler(sampler, self._resume_position, self.batch_size)  # a run resumed mid-epoch
        self._resume_position = None
        return self._loader(self.train_set, self.batch_size, sampler=sampler, drop_last=True)

    def _eval_loader(self, dataset: GridWindowDataset) -> DataLoader:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            sampler = EvenShardSampler(dataset, dist.get_world_size(), dist.get_rank())
            return self._loader(dataset, self.eval_batch_size, sampler=sampler)
        return self._loader(dataset, self.eval_batch_size, shuffle=False)

    def state_dict(self) -> dict:
        trainer = getattr(self, "trainer", None)
        fitting = trainer is not None and trainer.state.fn == "fit"
        return {"training_position": training_position(trainer)} if fitting else {}

    def load_state_dict(self, state_dict: dict) -> None:
        self._resume_position = state_dict.get("training_position")

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.val_set)

    def test_dataloader(self) -> DataLoader:
        if not len(self.test_set):
            raise DataError("the test split is empty: no scenes found")
        return self._eval_loader(self.test_set)
