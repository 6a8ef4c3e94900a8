"""The network a run trains: built from the IR, then placed and wrapped for the run's
settings (sync-bn, device, memory format, activation checkpointing, compile, DDP)."""

from __future__ import annotations

import torch
from torch import nn

from resgraph.ir import IR
from resgraph.train import device as dev
from resgraph.train import distributed
from resgraph.train.config import TrainOptions


def place(
    raw: nn.Module, ir: IR, opts: TrainOptions, device: torch.device, d: distributed.Dist
) -> tuple[nn.Module, nn.Module]:
    """``(raw, net)``: the module whose weights are saved and evaluated, and the one the
    training steps call (compiled and wrapped in DDP when asked)."""
    if opts.sync_bn and d.enabled:
        # Convert before wrapping: batch statistics over the global mini-batch.
        raw = nn.SyncBatchNorm.convert_sync_batchnorm(raw)
    raw.to(device)
    if opts.channels_last:
        raw.to(memory_format=torch.channels_last)
    if opts.checkpoint_activations:
        dev.checkpoint_blocks(raw, ir)
    # Compile the inner module, then wrap it (PyTorch's advice for DDP); evaluation
    # uses raw, off the compiled path.
    net: nn.Module = dev.compile_module(raw, opts.compile_mode) if opts.compile else raw
    if d.enabled:
        ids = [device.index] if device.type == "cuda" else None
        net = nn.parallel.DistributedDataParallel(net, device_ids=ids)
    return raw, net
