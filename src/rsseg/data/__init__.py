"""Rasters, palettes, scenes, windowed datasets and datamodules."""
