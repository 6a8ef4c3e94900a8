"""The one IR: a networkx DiGraph of typed op nodes, plus the block and stage structure.

Node names are the module paths of the emitted model (torchvision's naming: ``conv1``,
``layer1.0.bn1``, ``layer2.0.downsample.0``, ``fc``); for ops that are not modules (ReLU,
add, ...) they are unique names in the same namespace. Each graph node holds a frozen
:class:`Node` under the attribute ``"node"``; each edge holds its input ``port`` on the
target and, once shapes are inferred, the ``shape`` it carries.
"""

from __future__ import annotations

import heapq
import keyword
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

import networkx as nx

from resgraph.errors import IRError, SourceLoc
from resgraph.ops import Op, Shape

if TYPE_CHECKING:
    from resgraph.spec.schema import ModelSpec

Role = Literal["main", "shortcut", "gate"]
ArgValue = int | float | bool | str


@dataclass(frozen=True)
class Node:
    name: str
    op: Op
    scope: str = ""  # the block ("layer1.0") or stage ("layer1") it belongs to; "" at top level
    role: Role = "main"  # main path, shortcut path, or gate path of a block
    loc: SourceLoc | None = None  # where in the spec it came from
    shape: Shape | None = None  # output shape, set by infer_shapes
    params: int = 0  # set by analyze
    macs: int = 0  # multiply-adds for one example, set by analyze


@dataclass(frozen=True)
class Block:
    """One residual (or plain) block: the unit the source emitter turns into a class."""

    path: str  # "layer2.0"
    stage: int
    index: int
    kind: str  # block template name: "basic", "bottleneck"
    args: tuple[tuple[str, ArgValue], ...]  # constructor arguments of the emitted class
    options: tuple[tuple[str, ArgValue], ...]  # fixed per emitted class (template variables)
    shortcut: str  # option in force: "A", "B", "C", "identity", "none"
    input: str  # node feeding the block
    output: str  # last node of the block
    join: str | None  # where branch and shortcut meet; None once a plain block lost it
    shortcut_from: str  # node an identity or option-A shortcut starts from
    projection_from: str  # node a projection shortcut starts from (pre-activated input)
    loc: SourceLoc | None = None

    def arg(self, name: str) -> ArgValue:
        return dict(self.args)[name]

    def option(self, name: str) -> ArgValue:
        return dict(self.options)[name]


@dataclass(frozen=True)
class Stage:
    path: str  # "layer1"
    index: int
    blocks: tuple[str, ...]
    loc: SourceLoc | None = None


@dataclass
class IR:
    """The graph plus its block/stage structure and the spec it came from."""

    spec: ModelSpec
    graph: nx.DiGraph = field(default_factory=nx.DiGraph)
    blocks: dict[str, Block] = field(default_factory=dict)
    stages: list[Stage] = field(default_factory=list)
    _order: tuple[int, list[str]] | None = field(default=None, repr=False)

    # -- building: passes change the structure through these, which keep order() cached ---
    def add(self, node: Node, *inputs: str) -> str:
        if node.name in self.graph:
            raise IRError(f"duplicate node name {node.name!r}")
        self.graph.add_node(node.name, node=node)
        for port, src in enumerate(inputs):
            self.graph.add_edge(src, node.name, port=port)
        self._order = None
        return node.name

    def connect(self, src: str, dst: str, port: int) -> None:
        self.graph.add_edge(src, dst, port=port)
        self._order = None

    def disconnect(self, src: str, dst: str) -> None:
        self.graph.remove_edge(src, dst)
        self._order = None

    def remove(self, name: str) -> None:
        self.graph.remove_node(name)
        self._order = None

    def invalidate(self) -> None:
        """Forget the cached order after editing ``graph`` directly."""
        self._order = None

    def update(self, name: str, **changes: object) -> Node:
        node = replace(self.node(name), **changes)
        self.graph.nodes[name]["node"] = node
        return node

    def set_block(self, block: Block) -> None:
        self.blocks[block.path] = block

    # -- reading --------------------------------------------------------------------------
    def node(self, name: str) -> Node:
        return self.graph._node[name]["node"]

    def nodes(self) -> list[Node]:
        """All nodes in execution order (see :meth:`order`)."""
        return [self.node(n) for n in self.order()]

    def inputs(self, name: str) -> list[str]:
        """Producers of ``name``'s inputs, in port order."""
        preds = self.graph._pred[name]
        return sorted(preds, key=lambda p: preds[p]["port"])

    def outputs(self, name: str) -> list[str]:
        return list(self.graph.succ[name])

    def order(self) -> list[str]:
        """Topological order that breaks ties by insertion order.

        Both emitters run ops in this order, so ops that draw random numbers (dropout,
        stochastic depth) draw them in the same sequence. Cached until the structure changes
        through the methods above (code that edits ``graph`` directly calls ``invalidate``).
        """
        key = len(self.graph)
        if self._order is not None and self._order[0] == key:
            return list(self._order[1])
        succ = self.graph._succ  # plain dicts: this runs after every pass on 5,000 nodes
        rank = {n: i for i, n in enumerate(self.graph)}
        indeg = {n: len(p) for n, p in self.graph._pred.items()}
        ready = [(rank[n], n) for n, d in indeg.items() if d == 0]
        heapq.heapify(ready)
        out: list[str] = []
        while ready:
            _, n = heapq.heappop(ready)
            out.append(n)
            for s in succ[n]:
                indeg[s] -= 1
                if indeg[s] == 0:
                    heapq.heappush(ready, (rank[s], s))
        if len(out) != len(self.graph):
            raise IRError("the graph has a cycle")
        self._order = (key, out)
        return list(out)

    @property
    def input(self) -> str:
        return next(n for n in self.graph if self.graph.in_degree(n) == 0)

    @property
    def output(self) -> str:
        return next(n for n in self.graph if self.graph.out_degree(n) == 0)

    def copy(self) -> IR:
        return IR(self.spec, self.graph.copy(), dict(self.blocks), list(self.stages), self._order)

    def module_nodes(self) -> list[Node]:
        return [n for n in self.nodes() if n.op.is_module]

    def dump(self) -> str:
        """A readable listing of the IR, one node per line (``resgraph lower --dump``)."""
        from resgraph.ops import fmt_shape

        lines = []
        for n in self.nodes():
            ins = ", ".join(self.inputs(n.name))
            role = "" if n.role == "main" else f" [{n.role}]"
            lines.append(f"{n.name:32} {n.op.label():28} {fmt_shape(n.shape):>12}  <- {ins}{role}")
        return "\n".join(lines)


def class_identifier(name: str) -> str:
    """A Python class name for a spec or block name, e.g. 'CIFAR ResNet-20' -> CIFARResNet20.
    Both emitters name their classes with it."""
    words = "".join(c if c.isalnum() else " " for c in name).split()
    ident = "".join(w[:1].upper() + w[1:] for w in words) or "Model"
    return ident if ident[0].isalpha() else f"Net{ident}"


def valid_component(part: str) -> bool:
    """A module path component: an identifier that is no keyword, or a list index."""
    return part.isdigit() or (part.isidentifier() and not keyword.iskeyword(part))
