"""Checkpoints: written atomically, read without unpickling code, RNG states included.

``last.pt`` is a dict: ``model``, ``optimizer``, ``scheduler``, ``scaler`` (fp16 only),
``rng`` (per process: torch CPU, CUDA when used, Python and numpy), ``data`` (iteration,
epoch, step within the epoch, seed, the epoch's permutation), ``meter`` (running
training statistics), ``history`` (the rows of metrics.csv), ``data_mean``, ``elapsed_s``,
``config`` (the resolved run configuration) and ``complete``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from resgraph import torchio
from resgraph.errors import TrainError, WeightsError
from resgraph.spec.schema import ModelSpec
from resgraph.weights import check_architecture

FORMAT = "resgraph-train/1"
PREFIXES = torchio.PREFIXES  # added by DistributedDataParallel and torch.compile


def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` written atomically (:func:`resgraph.torchio.save`): a reader, or a run
    resumed after a crash, sees the old checkpoint or the new one."""
    torchio.save(obj, path)


def remove_stale_temporaries(folder: Path) -> None:
    """Delete half-written checkpoints left by a process killed while saving."""
    for tmp in Path(folder).glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


def load(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Read a training checkpoint (``weights_only``: tensors and plain values only)."""
    ckpt = torchio.load(path, map_location=device)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise TrainError(f"{path}: not a resgraph training checkpoint")
    return ckpt


def load_run(path: Path, spec: ModelSpec, device: torch.device) -> dict[str, Any]:
    """The checkpoint a run resumes from, for the same network as ``spec`` (resuming refuses
    any difference in the architecture)."""
    ckpt = load(path, device)
    check_architecture(ckpt, spec, str(path), resume=True)
    return ckpt


def snapshot(
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: Any,
    scaler: torch.amp.GradScaler,
    rngs: list[dict[str, Any]],
    position: dict[str, Any],
    meter: Any,
    history: list[dict[str, Any]],
    data_mean: torch.Tensor,
    elapsed_s: float,
    config: dict[str, Any],
    complete: bool,
) -> dict[str, Any]:
    """The contents of ``last.pt`` (the keys above)."""
    return {
        "format": FORMAT,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": schedule.state_dict(),
        "scaler": scaler.state_dict() if scaler.is_enabled() else None,
        "rng": rngs,
        "data": position,
        "meter": meter.state_dict(),
        "history": history,
        "data_mean": data_mean.cpu(),
        "elapsed_s": elapsed_s,
        "config": config,
        "complete": complete,
    }


def restore(
    ckpt: dict[str, Any],
    *,
    optimizer: torch.optim.Optimizer,
    schedule: Any,
    scaler: torch.amp.GradScaler,
    meter: Any,
    data: Any,
) -> None:
    """Give the optimizer, schedule, scaler (fp16), statistics and data order their saved
    state (the model's is loaded when it is built)."""
    optimizer.load_state_dict(ckpt["optimizer"])
    schedule.load_state_dict(ckpt["scheduler"])
    if ckpt.get("scaler") and scaler.is_enabled():
        scaler.load_state_dict(ckpt["scaler"])
    meter.load_state_dict(ckpt["meter"])
    data.restore(ckpt["data"])


def restore_rng(ckpt: dict[str, Any], rank: int, world: int, device: torch.device) -> bool:
    """This process's saved random states, when the run had as many processes as now;
    returns whether they were restored."""
    rngs = ckpt["rng"]
    if len(rngs) != world:
        return False
    set_rng_state(rngs[rank], device)
    return True


def read_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """A state_dict from a run's ``last.pt`` or any file :func:`resgraph.torchio.read_state_dict`
    unwraps; also the checkpoint itself when it is a run's (for its data mean and config)."""
    state, obj = torchio.read_state_dict(path)
    ckpt = obj if isinstance(obj, dict) and obj.get("format") == FORMAT else None
    return state, ckpt


strip_prefixes = torchio.strip_prefixes


def check_finite(state: dict[str, torch.Tensor], source: str) -> None:
    """Refuse weights holding NaN or infinite values: a run cannot start from them."""
    bad = [
        k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())
    ]
    if bad:
        more = f" (+{len(bad) - 3} more)" if len(bad) > 3 else ""
        raise WeightsError(
            f"{source}: the weights hold NaN or infinite values in {', '.join(bad[:3])}{more}; "
            "a run cannot start from them (were they saved after training diverged?)"
        )


def load_model_state(
    model: torch.nn.Module, state: dict[str, torch.Tensor], source: str, hint: str = ""
) -> None:
    """``load_state_dict`` with a readable error when keys or shapes do not fit (``hint``,
    what to do about it, ends the message)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    wrong = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or extra or wrong:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", extra), ("wrong shape", wrong)):
            if keys:
                more = f" (+{len(keys) - 3} more)" if len(keys) > 3 else ""
                parts.append(f"{label}: {', '.join(keys[:3])}{more}")
        raise WeightsError(
            f"{source}: the weights do not fit this spec; "
            + "; ".join(parts)
            + (f"; {hint}" if hint else "")
        )
    model.load_state_dict(state)


def rng_state(device: torch.device) -> dict[str, Any]:
    """This process's random number generator states, as plain values and tensors."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"].cpu())
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.cpu().numpy().astype(np.uint32), pos, has_gauss, cached))
    if device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)
