"""Training: the command, the Lightning task, losses, optimisers and schedules, resuming, sweeps, DDP ranks,
loggers and callbacks. May import config, runtime, metrics, data and models; nothing imports it but the API.
"""
