"""Prediction: opening a trained model in any format, tiling and blending, the tile predictor, streaming reads,
the engine, the GeoTIFF writer, the predict command, a region's catalogue, shards, records, index and mosaic, and
export. May import config, runtime, metrics, data, models.
"""
