"""The IR verifier, run after every pass: a failure is a bug in a pass, never in the spec,
and says which node broke which invariant (and the spec line it came from)."""

from __future__ import annotations

from functools import lru_cache

from resgraph.errors import IRError
from resgraph.ir import IR, valid_component
from resgraph.ops import Output


@lru_cache(maxsize=65536)
def _valid_path(name: str) -> bool:
    return all(valid_component(p) for p in name.split("."))


def verify(ir: IR, *, after: str, shapes: bool) -> None:
    g = ir.graph

    def fail(name: str, message: str) -> IRError:
        node = ir.node(name) if name in g else None
        where = f" (from {node.loc})" if node is not None and node.loc else ""
        return IRError(f"after {after}: node {name!r}: {message}{where}")

    ir.order()  # raises IRError on a cycle
    sources = [n for n, p in g._pred.items() if not p]
    sinks = [n for n, s in g._succ.items() if not s]
    markers = [n for n, d in g._node.items() if isinstance(d["node"].op, Output)]
    if len(sources) != 1:
        raise IRError(f"after {after}: expected one input, got {sources}")
    if markers:  # a backbone: the sinks are exactly its Output markers, one per key
        if sorted(sinks) != sorted(markers):
            stray = sorted(set(sinks) - set(markers)) or sorted(set(markers) - set(sinks))
            raise fail(stray[0], "the sinks of a backbone must be exactly its Output markers")
    elif len(sinks) != 1:
        raise IRError(f"after {after}: expected one output, got {sinks}")
    keys = [g._node[n]["node"].op.key for n in markers]
    if sorted(keys) != sorted(ir.spec.outputs or ()):
        raise IRError(
            f"after {after}: Output markers {keys} do not match the spec's outputs "
            f"{ir.spec.outputs}"
        )
    # Acyclic with a single source: every node is reachable from the input.
    modules = set()
    for name, data in g._node.items():
        node = data["node"]
        if node.name != name:
            raise fail(name, f"payload is named {node.name!r}")
        if not _valid_path(name):
            raise fail(name, "is not a valid module path")
        ports = [d["port"] for d in g._pred[name].values()]
        arity, n = node.op.arity, len(ports)
        if (n != arity if arity is not None else n < 2) or (
            ports != [0] if n == 1 else sorted(ports) != list(range(n))
        ):
            raise fail(name, f"{node.op.kind} has input ports {sorted(ports)}")
        if shapes and node.shape is None:
            raise fail(name, "has no shape")
        if node.op.is_module:
            modules.add(name)
    for name in modules:  # a module cannot also be a container of other modules
        prefix = name
        while (cut := prefix.rfind(".")) > 0:
            prefix = prefix[:cut]
            if prefix in modules:
                raise fail(name, f"lies inside module {prefix!r}")
