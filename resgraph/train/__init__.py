"""Training: ``resgraph train`` and ``resgraph eval`` (this package imports torch).

Modules, in the order a run meets them: ``cli`` (the commands); ``config`` (the spec's recipe
with the flags, the resolved run configuration, the run folder's state); ``inputs``, ``data``,
``folder``, ``shards``, ``stream``, ``dali`` and ``batches`` (the images and the input
pipeline); ``model`` (the network built, started from ``--init-from``, placed and wrapped),
``device`` (precision, compile, activation checkpointing, memory plan) and ``distributed``
(torchrun/DDP); ``loop`` (the run), ``schedule`` (lr schedule, statistics) and ``stop``
(signals); ``checkpoint`` (what ``last.pt`` holds, saved and restored), ``runfolder`` (the
files a run writes), ``plots`` (metrics.csv, curves.png) and ``report`` (progress output);
``evaluate`` (test error, ``resgraph eval``).
"""
