"""Data-parallel training across processes started by ``torchrun``.

``torchrun --nproc_per_node N -m resgraph train SPEC ...`` sets RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR and MASTER_PORT; each process then joins one process group (NCCL on
GPUs, gloo on CPUs). Each global mini-batch of ``batch_size`` examples is split into
``batch_size / N`` per process, so the recipe and the data order do not depend on N.
Rank 0 alone evaluates and writes logs and checkpoints.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from resgraph.errors import TrainError


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """The sum over processes of ``values`` (a copy; ``values`` is left alone)."""
        out = values.clone()
        if self.enabled:
            dist.all_reduce(out)
        return out

    def gather(self, obj: Any) -> list[Any]:
        """Every process's ``obj``, in rank order (on every process)."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def from_main(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every process."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


def from_env() -> Dist:
    """The process's place in a torchrun job (rank 0 of 1 when not started by torchrun)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise TrainError("RANK, WORLD_SIZE and LOCAL_RANK must be integers") from None
    if world < 1 or not 0 <= rank < world:
        raise TrainError(f"bad torchrun environment: RANK={rank} WORLD_SIZE={world}")
    return Dist(rank=rank, world=world, local_rank=local)


def init(d: Dist, device: torch.device) -> None:
    """Join the process group: NCCL for CUDA devices, gloo otherwise."""
    if not d.enabled:
        return
    if not dist.is_available():
        raise TrainError("this PyTorch build has no torch.distributed")
    for var in ("MASTER_ADDR", "MASTER_PORT"):
        if var not in os.environ:
            raise TrainError(f"{var} is not set: start distributed runs with torchrun")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, rank=d.rank, world_size=d.world,
                            timeout=timedelta(minutes=30))


def param_digest(model: torch.nn.Module) -> str:
    """sha256 of every parameter's name, dtype, shape and bytes."""
    digest = hashlib.sha256()
    for name, p in model.named_parameters():
        t = p.detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
