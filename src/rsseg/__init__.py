"""rsseg: semantic segmentation of high-resolution remote sensing images with Lightning and Hydra."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("rsseg")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
