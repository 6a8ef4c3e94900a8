"""Weight import: a state_dict from another implementation of the same architecture,
renamed to resgraph's (torchvision's) names.

Tensors are matched by their order in the forward computation and their shapes, not by
name, so ``linear`` vs ``fc``, ``shortcut`` vs ``downsample`` and ``module.`` prefixes do
not matter. BN's ``num_batches_tracked`` is optional on both sides.
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from resgraph.errors import WeightsError
from resgraph.ir import IR

WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "module", "weights")
OPTIONAL = "num_batches_tracked"


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Load a checkpoint safely (``weights_only=True``) and return the tensors of its
    state_dict, unwrapped from a training checkpoint dict and a DataParallel prefix."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such checkpoint file")
    with path.open("rb") as f:
        head = f.read(2)
    # torch.save writes a zip archive (or, before PyTorch 1.6, a pickle: protocol byte 0x80).
    if not zipfile.is_zipfile(path) and head[:1] != b"\x80":
        raise WeightsError(f"{path}: not a PyTorch checkpoint (neither a zip archive nor a pickle)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        what = f"Python objects such as {found.group(1)}" if found else "Python objects"
        raise WeightsError(
            f"{path}: cannot be read safely: it stores {what} besides tensors. If you trust "
            f"the file, re-save just its "
            f"weights: torch.save(torch.load(f, weights_only=False).state_dict(), 'weights.pt')"
        ) from None
    except Exception as exc:  # torch raises many kinds for damaged archives
        raise WeightsError(f"{path}: not a readable PyTorch checkpoint ({exc})") from None
    return unwrap_state_dict(obj, str(path))


def unwrap_state_dict(obj: object, where: str = "checkpoint") -> dict[str, Tensor]:
    for _ in range(3):  # a dict that wraps the state_dict under a well-known key
        if isinstance(obj, Mapping) and not _is_state_dict(obj):
            inner = next(
                (obj[k] for k in WRAPPER_KEYS if k in obj and isinstance(obj[k], Mapping)), None
            )
            if inner is None:
                break
            obj = inner
    if not isinstance(obj, Mapping) or not _is_state_dict(obj):
        raise WeightsError(f"{where}: holds no state_dict (a mapping of names to tensors)")
    tensors = {k: v for k, v in obj.items() if isinstance(v, Tensor)}
    prefix = "module."
    if tensors and all(k.startswith(prefix) for k in tensors):
        tensors = {k[len(prefix) :]: v for k, v in tensors.items()}
    return tensors


def _is_state_dict(obj: Mapping[object, object]) -> bool:
    return (
        bool(obj)
        and all(isinstance(k, str) for k in obj)
        and any(isinstance(v, Tensor) for v in obj.values())
    )


def convert_state_dict(
    ir: IR, source: Mapping[str, Tensor], where: str = "checkpoint"
) -> dict[str, Tensor]:
    """Rename ``source``'s tensors to the names of the network ``ir`` describes.

    Raises :class:`WeightsError` at the first place where the two disagree."""
    from resgraph.emit.graph_module import build_module

    target = build_module(ir).state_dict()
    ours = [k for k in target if not k.endswith(OPTIONAL)]
    theirs = [k for k in source if not k.endswith(OPTIONAL)]
    for i, (mine, other) in enumerate(zip(ours, theirs, strict=False)):
        if target[mine].shape != source[other].shape:
            raise WeightsError(
                f"{where}: tensor #{i} disagrees: resgraph's {mine} has shape "
                f"{_shape(target[mine])}, the checkpoint's {other} has shape "
                f"{_shape(source[other])}"
            )
    if len(ours) != len(theirs):
        longer, name, rest = (
            (ours, "resgraph", "the checkpoint")
            if len(ours) > len(theirs)
            else (theirs, "the checkpoint", "resgraph")
        )
        extra = longer[min(len(ours), len(theirs))]
        raise WeightsError(
            f"{where}: {name} has {len(longer)} tensors and {rest} {min(len(ours), len(theirs))}; "
            f"the first without a partner is {name}'s {extra}"
        )
    out: dict[str, Tensor] = {}
    mapping = dict(zip(ours, theirs, strict=True))
    for key, value in target.items():
        if key in mapping:
            out[key] = source[mapping[key]].detach().clone()
        else:  # num_batches_tracked: take theirs when the module's other tensors came from it
            module = key.rsplit(".", 1)[0]
            partner = mapping.get(f"{module}.running_mean", "").rsplit(".", 1)[0]
            out[key] = source.get(f"{partner}.{OPTIONAL}", value).detach().clone()
    return out


def _shape(t: Tensor) -> str:
    return "x".join(map(str, t.shape)) or "scalar"
