"""Any folder of image rasters with label rasters beside them (GeoTiffScenes, the Taikang case)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rsseg.data.datasets.base import SPLITS, Record
from rsseg.data.datasets.folders import FolderSceneSet
from rsseg.errors import ConfigError, DataError


class GeoTiffScenes(FolderSceneSet):
    """Any folder of image rasters with label rasters beside them (the Taikang case).

    ``images`` is a glob relative to the root; ``labels`` a pattern giving each image's label path, relative to
    the root, from ``{stem}`` (file name without suffix), ``{name}`` (file name) and ``{dir}`` (the image's
    folder relative to the root). Rasters may have any band count and dtype; image and label must agree in size,
    CRS and transform.

    Splits: ``splits`` (explicit lists of scene ids, i.e. image paths relative to the root without suffix, or
    bare stems), a ``split_file`` manifest, or the random tile split (``split: random``; also what ``standard``
    means for a folder that names no lists).
    """

    dataset = "geotiff"
    split_tables = ("standard",)

    def __init__(
        self,
        root: str | Path,
        images: str = "images/*.tif",
        labels: str | None = "labels/{stem}.tif",
        splits: dict[str, Sequence[str]] | None = None,
        **protocol,
    ) -> None:
        super().__init__(root, **protocol)
        self.images, self.labels = images, labels
        self.splits = {k: list(v) for k, v in splits.items()} if splits else None
        unknown = set(self.splits or {}) - set(SPLITS)
        if unknown:
            raise ConfigError(f"geotiff: splits has unknown parts {sorted(unknown)}; expected train, val, test")

    def _discover(self) -> list[Record]:
        files = sorted(p for p in self.root.glob(self.images) if p.is_file()) if self.root.is_dir() else []
        if not self.root.is_dir():
            self._missing_dirs.add(f"{self.root}: folder not found")
        elif not files:
            self._missing_dirs.add(f"{self.root}: no images matching {self.images!r}")
        records = []
        for path in files:
            relative = path.relative_to(self.root)
            label = None
            if self.labels:
                try:
                    label = self.root / self.labels.format(
                        stem=path.stem, name=path.name, dir=str(relative.parent), suffix=path.suffix
                    )
                except (KeyError, IndexError) as error:
                    raise ConfigError(
                        f"geotiff: labels pattern {self.labels!r} uses unknown field {error}; "
                        f"use {{stem}}, {{name}}, {{dir}}, {{suffix}}"
                    ) from None
            records.append(Record(str(relative.with_suffix("")), path, label))
        return records

    def split_ids(self, table: str) -> dict[str, list[str]]:
        records = self._by_id()

        def resolve(entry: str) -> str:
            scene_id = self.resolve_id(str(entry), records)
            if scene_id is None:
                raise DataError(f"geotiff: data.scenes.splits names {entry!r}, which matches no image under {self.root}")
            return scene_id

        return {name: [resolve(e) for e in self.splits.get(name, [])] for name in SPLITS}

    def tiles_by_default(self) -> bool:
        # A folder without explicit lists or a split file has no "standard" split: use the random tile split.
        return self.split_name == "standard" and not self.splits

    def split_origin(self) -> str:
        return "data.scenes.splits" if self.splits and self.split_file is None else super().split_origin()
