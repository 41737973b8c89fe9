"""Data: rasters, labels and palettes, windows and augmentation, sampling, the datamodule, the datasets' layouts and
split protocols (datasets/), and ``rsseg prepare``. May import errors, config and runtime; never models or above.
"""
