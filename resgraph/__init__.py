"""resgraph: a graph-spec compiler for residual networks.

``load_spec``, ``lower`` and ``summarize`` never import torch; ``build_module`` (the executed
graph) and ``build_model`` import it when first used. ``emit_source`` needs only jinja2.
"""

from __future__ import annotations

from typing import Any

from resgraph.errors import ResgraphError, ShapeError, SpecError
from resgraph.passes import lower
from resgraph.spec import ModelSpec, load_spec
from resgraph.summary import summarize

__version__ = "0.1.0"

_LAZY = {
    "build_module": "resgraph.emit.graph_module",
    "build_model": "resgraph.emit",
    "emit_source": "resgraph.emit.source",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'resgraph' has no attribute {name!r}")


__all__ = [
    "ModelSpec",
    "ResgraphError",
    "ShapeError",
    "SpecError",
    "build_model",
    "build_module",
    "emit_source",
    "load_spec",
    "lower",
    "summarize",
]
