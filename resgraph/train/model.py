"""The network a run trains: built from the IR, started from ``--init-from``'s weights when
given, then placed and wrapped for the run's settings (sync-bn, device, memory format,
activation checkpointing, compile, DDP)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import click
import torch
from torch import nn

from resgraph.errors import WeightsError
from resgraph.ir import IR
from resgraph.spec.schema import ModelSpec
from resgraph.train import checkpoint as ckpt_io
from resgraph.train import device as dev
from resgraph.train import distributed
from resgraph.train.config import TrainOptions
from resgraph.weights import check_architecture


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


@contextlib.contextmanager
def _weights_error_on_rank0(d: distributed.Dist) -> Iterator[None]:
    """A WeightsError inside is reported by rank 0; the other processes just exit 1."""
    try:
        yield
    except WeightsError:
        if not d.is_main:
            raise click.exceptions.Exit(1) from None
        raise


def read_init(
    path: Path, spec: ModelSpec, d: distributed.Dist, echo: Callable[[str], None]
) -> dict[str, torch.Tensor]:
    """The weights ``--init-from`` names, read before the data. Every process reads them
    (and finds a bad file itself); DDP would broadcast rank 0's anyway when it wraps the
    model."""
    with _weights_error_on_rank0(d):
        state, ckpt = ckpt_io.read_weights(path)
        ckpt_io.check_finite(state, str(path))
    check_architecture(ckpt, spec, str(path), echo=echo)
    return state


def load_init(
    raw: nn.Module, state: dict[str, torch.Tensor], path: Path, d: distributed.Dist
) -> None:
    """Load the weights a new run starts from, strictly."""
    with _weights_error_on_rank0(d):
        ckpt_io.load_model_state(
            raw,
            state,
            str(path),
            hint="'resgraph import-weights --partial' converts weights for a changed network",
        )
