"""Reading and writing torch files: the one place resgraph calls ``torch.load``/``torch.save``.

:func:`load` reads with ``weights_only=True`` (tensors and plain values: no code runs) and
turns every failure into one :class:`WeightsError` line that says what the file is (missing,
empty, text, damaged, pickled Python objects). :func:`save` writes atomically through
:mod:`resgraph.fsutil`. :func:`read_state_dict` finds the state_dict inside the checkpoints
people actually have: a plain state_dict, a training dict (``state_dict``,
``model_state_dict``, ``model``, ... beside an epoch or a best accuracy), resgraph's own
``last.pt``, with ``module.`` (DataParallel) and ``_orig_mod.`` (torch.compile) prefixes.
"""

from __future__ import annotations

import io
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from resgraph.errors import WeightsError
from resgraph.fsutil import atomic_write_bytes

# Keys under which training scripts keep the weights, most specific first.
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "module", "weights", "params")
PREFIXES = ("module.", "_orig_mod.")  # added by (Distributed)DataParallel and torch.compile
MAX_NESTING = 4  # wrapper levels searched for the state_dict


def save(obj: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save`` written atomically: a reader, or a run resumed after a crash, sees the
    old file or the new one. Failures raise :class:`resgraph.errors.OutputError`."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load(path: str | os.PathLike[str], map_location: Any = "cpu") -> Any:
    """Read a file written by ``torch.save`` safely (``weights_only=True``).

    Raises :class:`WeightsError` with one line saying what is wrong with the file."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            head = f.read(64)
    except FileNotFoundError:
        raise WeightsError(f"{path}: no such checkpoint file") from None
    except IsADirectoryError:
        raise WeightsError(f"{path}: is a folder, not a checkpoint file") from None
    except OSError as exc:
        raise WeightsError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if not head:
        raise WeightsError(f"{path}: the file is empty (0 bytes), not a PyTorch checkpoint")
    # torch.save writes a zip archive (before PyTorch 1.6 a pickle: protocol byte 0x80).
    if not head.startswith(b"PK") and head[:1] != b"\x80":
        raise WeightsError(f"{path}: not a PyTorch checkpoint ({_what_is(head)})")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        if found is None:
            raise WeightsError(
                f"{path}: not a readable PyTorch checkpoint (damaged or truncated)"
            ) from None
        raise WeightsError(
            f"{path}: cannot be read safely: besides tensors it stores Python objects "
            f"({found.group(1)}), which could run code when loaded; if you trust the file, "
            "save just its state_dict with torch.save and pass that"
        ) from None
    except Exception:  # torch raises many kinds for damaged files; its text is not for users
        raise WeightsError(
            f"{path}: not a readable PyTorch checkpoint (damaged or truncated)"
        ) from None


def _what_is(head: bytes) -> str:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "neither a zip archive nor a pickle"
    return "it is a text file" + (", a YAML spec?" if b":" in head else "")


def read_state_dict(path: str | os.PathLike[str]) -> tuple[dict[str, Tensor], Any]:
    """The state_dict inside the checkpoint at ``path`` (see :func:`unwrap_state_dict`),
    and the whole object read (for a training checkpoint's other entries)."""
    obj = load(path)
    return unwrap_state_dict(obj, str(path)), obj


def unwrap_state_dict(obj: object, where: str = "checkpoint") -> dict[str, Tensor]:
    """Find the mapping of names to tensors in ``obj``: ``obj`` itself when all its values
    are tensors, else the one that :data:`WRAPPER_KEYS` lead to (at most
    :data:`MAX_NESTING` levels down). Two different ones are refused rather than one picked.
    Prefixes in :data:`PREFIXES` shared by every key are removed."""
    found = _state_dicts(obj, "", 0)
    if not found:
        if isinstance(obj, Mapping) and obj:
            keys = ", ".join(map(str, list(obj)[:6])) + (", ..." if len(obj) > 6 else "")
            what = f"; its keys are {keys}"
        else:
            what = f"; it holds {type(obj).__name__}"
        raise WeightsError(f"{where}: holds no state_dict (a mapping of names to tensors){what}")
    first = found[0][1]
    others = [path for path, state in found[1:] if not _same(state, first)]
    if others:
        paths = " and ".join(p for p, s in found if p == found[0][0] or p in others)
        raise WeightsError(
            f"{where}: holds different state_dicts under {paths}; save the one you mean "
            f"on its own (torch.save(checkpoint{found[0][0]}, 'weights.pt')) and pass that"
        )
    return strip_prefixes(dict(first))


def _state_dicts(obj: object, path: str, depth: int) -> list[tuple[str, Mapping[str, Tensor]]]:
    """Every state_dict in ``obj`` that wrapper keys lead to, with its path (``['model']``)."""
    if _is_state_dict(obj):
        return [(path, obj)]  # type: ignore[list-item]
    if depth == MAX_NESTING or not isinstance(obj, Mapping):
        return []
    return [
        found
        for key in WRAPPER_KEYS
        if isinstance(obj.get(key), Mapping)
        for found in _state_dicts(obj[key], f"{path}[{key!r}]", depth + 1)
    ]


def _same(a: Mapping[str, Tensor], b: Mapping[str, Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _is_state_dict(obj: object) -> bool:
    return (
        isinstance(obj, Mapping)
        and bool(obj)
        and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())
    )


def strip_prefixes(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Remove ``module.`` and ``_orig_mod.`` (in any order, repeated) when every key has it."""
    changed = True
    while changed and state:
        changed = False
        for prefix in PREFIXES:
            if all(k.startswith(prefix) for k in state):
                state = {k.removeprefix(prefix): v for k, v in state.items()}
                changed = True
    return state
