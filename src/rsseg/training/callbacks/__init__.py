"""Lightning callbacks of rsseg: freezing the encoder, checkpoints for resuming, non-finite losses, samples
and throughput. May import errors, runtime and data (palettes); never training's own modules above them.
"""
