"""Shape passes.

``infer_shapes`` sets every node's output shape and every edge's shape from the op rules;
the pipeline runs it again, as ``shortcut_shapes``, for the nodes insert_shortcuts added.
``check_joins`` re-checks that every join's inputs agree. Both report a :class:`ShapeError`
at the spec line of the node that failed.
"""

from __future__ import annotations

from resgraph.errors import Problem, ShapeError
from resgraph.ir import IR, Node
from resgraph.ops import JOINS, ShapeMismatch


def _fail(ir: IR, node: Node, message: str) -> ShapeError:
    where = f" ({node.scope or node.name})"
    path = node.loc.path if node.loc else ""
    return ShapeError(
        Problem(message, node.loc, (path or node.name) + where if path else node.name)
    )


def infer_shapes(ir: IR) -> IR:
    """Expects: an acyclic IR. Guarantees: ``Node.shape`` and edge ``shape`` everywhere."""
    for name in ir.order():
        node = ir.node(name)
        inputs = [ir.node(p).shape for p in ir.inputs(name)]
        try:
            shape = node.op.infer(inputs)  # type: ignore[arg-type]
        except ShapeMismatch as exc:
            raise _fail(ir, node, str(exc)) from None
        if node.shape != shape:
            ir.update(name, shape=shape)
        for edge in ir.graph._succ[name].values():  # plain dicts: this runs on every node
            edge["shape"] = shape
    return ir


def check_joins(ir: IR) -> IR:
    """Expects: shapes inferred. Guarantees: every join's inputs have compatible shapes
    (the op's own rule) and match the edges that carry them."""
    for node in ir.nodes():
        if isinstance(node.op, JOINS):
            shapes = [ir.graph.edges[p, node.name]["shape"] for p in ir.inputs(node.name)]
            try:
                node.op.check(shapes)
            except ShapeMismatch as exc:
                block = ir.blocks.get(node.scope)
                hint = ""
                if block is not None and block.shortcut == "identity":
                    hint = " (an identity shortcut cannot change shape: use shortcut A, B or C)"
                raise _fail(ir, node, f"{exc}{hint}") from None
    return ir
