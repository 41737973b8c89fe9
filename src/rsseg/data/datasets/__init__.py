"""Dataset sources: split protocols (base), ISPRS (isprs), folder datasets (folders), GeoTIFF folders (geotiff),
mmsegmentation's img_dir / ann_dir layout (mmseg).
May import rsseg.errors, rsseg.runtime and rsseg.data.raster; nothing of training, models or inference.
"""

from rsseg.data.datasets.base import LABEL_CHOICES, SPLITS, Record, SceneSet, all_scenes
from rsseg.data.datasets.folders import GID, DubaiAerial, FolderSceneSet, LoveDA, Massachusetts
from rsseg.data.datasets.geotiff import GeoTiffScenes
from rsseg.data.datasets.isprs import Potsdam, Vaihingen
from rsseg.data.datasets.mmseg import MMSegFolders

__all__ = [
    "DubaiAerial", "GID", "GeoTiffScenes", "LoveDA", "Massachusetts", "MMSegFolders", "Potsdam", "Record", "SceneSet",
    "Vaihingen", "all_scenes",
    # also importable from here, as from the single module before:
    "FolderSceneSet", "LABEL_CHOICES", "SPLITS",
]
