"""Training: ``resgraph train`` and ``resgraph eval`` (this package imports torch).

Modules: ``cli`` (the commands), ``config`` (recipe, overrides, run folder), ``data`` (CIFAR-10
and digits as arrays, download), ``batches`` (the on-device input pipeline), ``loop`` (the
run), ``schedule`` (lr schedule, statistics), ``checkpoint``, ``device`` (precision, compile,
activation checkpointing, memory check), ``distributed`` (torchrun/DDP), ``evaluate``,
``plots`` (metrics.csv, curves.png), ``report`` (progress output).
"""
