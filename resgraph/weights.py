"""The architecture weights were trained for, checked against the spec that reads them.

A run's checkpoint (``last.pt``) records its spec's architecture (everything but ``train:``)
and its hash. Every command that reads weights (``eval``, ``export --weights``,
``import-weights``, ``train --init-from`` and ``--resume``) compares that record with its
own spec through :func:`check_architecture`, so that weights of the same shapes but another
network (another stride, a dropout) are never used silently. The message names each field
that differs (``stages[1].stride: the run has 1, the spec 2``) and the ``--set`` flags
that give the run's network.
"""

from __future__ import annotations

import copy
import json
import shlex
from collections.abc import Callable
from typing import Any

import click
from pydantic import ValidationError

from resgraph.errors import TrainError
from resgraph.spec.schema import ModelSpec, StemSpec

MISSING = object()  # a field one side does not have
MAX_LISTED = 4  # fields named in a message; more are counted
MAX_FLAG = 100  # a suggested flag longer than this is not suggested


def architecture(spec: ModelSpec) -> dict[str, Any]:
    """The architecture part of a spec (everything but ``train``), as plain values."""
    return spec.model_dump(mode="json", exclude={"train"})


def differences(old: Any, new: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """The leaves where ``old`` and ``new`` differ, as (field path, old, new): mappings are
    compared key by key and lists of one length entry by entry; anything else whole."""
    if isinstance(old, dict) and isinstance(new, dict):
        keys = list(new) + [k for k in old if k not in new]
        return [
            d
            for k in keys
            for d in differences(old.get(k, MISSING), new.get(k, MISSING), _join(path, k))
        ]
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        pairs = enumerate(zip(old, new, strict=True))
        return [d for i, (a, b) in pairs for d in differences(a, b, f"{path}[{i}]")]
    return [] if old == new else [(path, old, new)]


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _shown(value: Any) -> str:
    if value is MISSING:
        return "no such field"
    text = json.dumps(value, separators=(", ", ": "))
    return text if len(text) <= 60 else text[:57] + "..."


def run_architecture(checkpoint: object) -> dict[str, Any] | None:
    """The run configuration a resgraph checkpoint records, if ``checkpoint`` is one."""
    config = checkpoint.get("config") if isinstance(checkpoint, dict) else None
    return config if isinstance(config, dict) and "arch_sha256" in config else None


def _recorded_spec(record: dict[str, Any]) -> ModelSpec | None:
    """The spec a run's architecture record describes, read by today's rules (with the keys
    renamed since), or None when it no longer validates."""
    data = copy.deepcopy(record)
    stem = data.get("stem")
    if isinstance(stem, dict):
        for old, new in StemSpec.RENAMED.items():
            if old in stem and new not in stem:
                stem[new] = stem.pop(old)
    try:
        return ModelSpec.model_validate(data)
    except ValidationError:
        return None


def architecture_mismatch(saved: dict[str, Any], spec: ModelSpec) -> str | None:
    """What differs between the architecture of the run ``saved`` describes and ``spec``
    (None: nothing): the fields, then the flags that give the run's network."""
    from resgraph.spec.digest import spec_hash

    if saved.get("arch_sha256") in (None, spec_hash(spec)):
        return None
    old = saved.get("architecture")
    if not isinstance(old, dict):  # a checkpoint from before architectures were recorded
        return "the architecture"
    recorded = _recorded_spec(old)
    if recorded is not None:  # read by today's rules: an older hash of the same network
        if spec_hash(recorded) == spec_hash(spec):
            return None
        old = architecture(recorded)
    found = differences(old, architecture(spec))
    if not found:
        return "the architecture"
    listed = [f"{p}: the run has {_shown(a)}, the spec {_shown(b)}" for p, a, b in found]
    text = "; ".join(listed[:MAX_LISTED])
    if len(listed) > MAX_LISTED:
        text += f"; and {len(listed) - MAX_LISTED} more"
    flags = [f"--set {shlex.quote(f'{p}={json.dumps(a)}')}" for p, a, _ in found]
    settable = all(MISSING not in (a, b) for _, a, b in found)  # --set adds no field
    if settable and all(len(f) <= MAX_FLAG for f in flags):
        text += f" (the run's network: {' '.join(flags)})"
    return text


def check_architecture(
    checkpoint: object,
    spec: ModelSpec,
    source: str,
    *,
    resume: bool = False,
    echo: Callable[[str], None] | None = None,
) -> None:
    """Compare ``spec`` with the architecture ``checkpoint`` (read from ``source``) was
    trained for, when it records one. Resuming refuses any difference; every other reader
    warns (``echo``, stderr by default)."""
    saved = run_architecture(checkpoint)
    what = architecture_mismatch(saved, spec) if saved is not None else None
    if what is None:
        return
    if resume:
        raise TrainError(
            f"{source} was trained from another architecture ({what}); a resumed run keeps "
            "its spec: resume with the run's own spec, or start a new run with another --out"
        )
    message = (
        f"warning: {source} was trained from another architecture ({what}): its weights "
        "are those of a different network"
    )
    (echo or (lambda line: click.echo(line, err=True)))(message)
