"""Scoring whole scenes: confusion matrices streamed over strips, pairing predictions with labels, the eval
command. May import config, runtime, metrics, data, models and inference.
"""
