"""resgraph: a graph-spec compiler for residual networks.

``load_spec``, ``lower`` and ``summarize`` never import torch; ``build_module`` (the executed
graph) and ``build_model`` import it when first called, and take a ModelSpec, an IR, a spec
file path or YAML text. ``emit_source`` needs only jinja2. Wrong arguments raise
:class:`ArgumentError` (a :class:`ResgraphError` and a ``ValueError``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from resgraph.errors import ArgumentError, ResgraphError, ShapeError, SpecError
from resgraph.passes import lower
from resgraph.plugins import load_plugin
from resgraph.spec import ModelSpec, load_spec
from resgraph.summary import summarize

__version__ = "0.1.0"

if TYPE_CHECKING:
    from torch import nn

    from resgraph.ir import IR

_LAZY = {"emit_source": "resgraph.emit.source", "ENGINES": "resgraph.emit"}


def _spec_or_ir(source: Any, function: str, outputs: Any = None) -> ModelSpec | IR:
    """A ModelSpec or an IR as given, or the spec that a path or YAML text describes; with
    ``outputs``, the IR of that spec as a backbone returning those feature maps."""
    from resgraph.ir import IR

    if isinstance(source, IR):
        if outputs is not None:
            raise ArgumentError(
                f"{function}() takes outputs with a spec, not with an already lowered IR: "
                f"pass outputs to lower()"
            )
        return source
    if isinstance(source, (str, os.PathLike)):
        source = load_spec(source)
    if not isinstance(source, ModelSpec):
        raise ArgumentError(
            f"{function}() takes a ModelSpec, an IR, a spec file path or YAML text, "
            f"not {type(source).__name__}"
        )
    return source if outputs is None else lower(source, outputs=outputs)


def build_module(
    spec: ModelSpec | IR | str | os.PathLike[str],
    *,
    seed: int | None = None,
    outputs: Sequence[str] | None = None,
) -> nn.Module:
    """The executed graph: an ``nn.Module`` that runs the IR (imports torch when called).
    ``spec`` is a ModelSpec, an IR, or anything :func:`load_spec` reads. ``outputs``
    (feature map names: ``"stem"``, ``"layer1"``, ...) makes it a backbone whose forward
    returns a dict of those maps, as the spec key ``outputs:`` does."""
    from resgraph.emit.graph_module import build_module as build

    return build(_spec_or_ir(spec, "build_module", outputs), seed=seed)


def build_model(
    spec: ModelSpec | IR | str | os.PathLike[str],
    engine: str = "graph",
    *,
    seed: int | None = None,
    outputs: Sequence[str] | None = None,
) -> nn.Module:
    """The network as an ``nn.Module``: ``engine`` 'graph' (the executed graph) or
    'generated' (the generated source, loaded in memory). Both have the same module tree,
    state_dict keys and outputs. ``spec`` is a ModelSpec, an IR, or anything
    :func:`load_spec` reads; ``outputs`` as for :func:`build_module`."""
    from resgraph.emit import build_model as build

    return build(_spec_or_ir(spec, "build_model", outputs), engine, seed=seed)  # type: ignore[arg-type]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'resgraph' has no attribute {name!r}")


__all__ = [
    "ENGINES",
    "ArgumentError",
    "ModelSpec",
    "ResgraphError",
    "ShapeError",
    "SpecError",
    "build_model",
    "build_module",
    "emit_source",
    "load_plugin",
    "load_spec",
    "lower",
    "summarize",
]
