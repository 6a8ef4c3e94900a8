"""Emitters: they only read the checked IR."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from torch import nn

    from resgraph.ir import IR
    from resgraph.spec.schema import ModelSpec

Engine = Literal["graph", "generated"]
ENGINES: tuple[Engine, ...] = ("graph", "generated")


def build_model(
    spec_or_ir: ModelSpec | IR, engine: Engine = "graph", *, seed: int | None = None
) -> nn.Module:
    """The network as an ``nn.Module``: the executed graph, or the generated source loaded
    in memory. Both have the same module tree, state_dict keys and outputs."""
    if engine not in ENGINES:
        from resgraph.errors import ArgumentError

        raise ArgumentError(f"unknown engine {engine!r}: expected 'graph' or 'generated'")
    if engine == "graph":
        from resgraph.emit.graph_module import build_module

        return build_module(spec_or_ir, seed=seed)
    from resgraph.emit.source import build_generated

    return build_generated(spec_or_ir, seed=seed)
