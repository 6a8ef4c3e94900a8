"""The one IR: a networkx DiGraph of typed op nodes, plus the block and stage structure.

Node names are the module paths of the emitted model (torchvision's naming: ``conv1``,
``layer1.0.bn1``, ``layer2.0.downsample.0``, ``fc``); for ops that are not modules (ReLU,
add, ...) they are unique names in the same namespace. Each graph node holds a frozen
:class:`Node` under the attribute ``"node"``; each edge holds its input ``port`` on the
target and, once shapes are inferred, the ``shape`` it carries.
"""

from __future__ import annotations

import builtins
import heapq
import keyword
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Literal

import networkx as nx

from resgraph import names
from resgraph.errors import IRError, SourceLoc
from resgraph.ops import FILE_NAMES, Op, Output, Shape
from resgraph.spec.blocks import DefinedBlockSpec
from resgraph.spec.schema import DenseBlockSpec, ShortcutOption

if TYPE_CHECKING:
    from resgraph.spec.schema import AnyBlockSpec, ModelSpec

Role = Literal["main", "shortcut", "gate", "attention"]
Section = Literal["stem", "stage", "head", "output"]  # output: a backbone's Output markers
# "basic", "bottleneck", "dense_layer", "transition", or the name of a type defined in the spec
BlockKind = str
JoinKind = Literal["add", "gate", "concat"]
# What insert_shortcuts made of a block's shortcut: nothing to do (identity), option A's
# parameter-free zero-pad, a projection conv (options B and C), an average pool then a 1x1
# projection (option D), or none (no shortcut: a plain block whose join was removed, or a
# block built without a residual join).
ShortcutKind = Literal["identity", "zero-pad", "projection", "avg-projection", "none"]
ArgValue = int | float


@dataclass(frozen=True)
class Node:
    name: str
    op: Op
    scope: str = ""  # the block ("layer1.0") or stage ("layer1") it belongs to; "" at top level
    role: Role = "main"  # main path, shortcut path, gate path or channel attention of a block
    section: Section = "stem"  # the part of the network it belongs to
    # op fields a block class takes from its constructor: (field, Python expression over
    # the block's BlockArg names), e.g. (("out_channels", "width"), ("stride", "stride"))
    bind: tuple[tuple[str, str], ...] = ()
    loc: SourceLoc | None = None  # where in the spec it came from
    shape: Shape | None = None  # output shape, set by infer_shapes
    params: int = 0  # set by analyze
    macs: int = 0  # multiply-adds for one example, set by analyze


_NODE_FIELDS = frozenset(f.name for f in fields(Node))


@dataclass(frozen=True)
class BlockArg:
    """One constructor parameter of a block's emitted class."""

    name: str  # "in_channels", "width", "stride", ...
    value: ArgValue
    default: ArgValue | None = None  # left out of calls that pass the default


@dataclass(frozen=True)
class Block:
    """One residual (or plain) block: the unit both emitters turn into a class."""

    path: str  # "layer2.0"
    stage: int
    index: int
    kind: BlockKind
    spec: AnyBlockSpec  # the block's validated spec
    args: tuple[BlockArg, ...]  # constructor parameters of the emitted class
    stride: int
    shortcut: ShortcutOption  # the spec's shortcut option for the block's stage
    input: str  # node feeding the block
    output: str  # last node of the block
    join: str | None  # where branch and shortcut meet; None once a plain block lost it
    join_kind: JoinKind | None  # how the branch meets the input (None: the branch is all)
    shortcut_input: str  # the node a shortcut module reads (the block input, or preact)
    shortcut_kind: ShortcutKind | None = None  # set by insert_shortcuts
    loc: SourceLoc | None = None

    @property
    def preactivation(self) -> bool:
        return bool(getattr(self.spec, "preactivation", False))

    @property
    def anti_aliased(self) -> bool:
        """A low-pass filter (module ``aa``) downsamples after the strided conv (where the
        spec's ``anti_aliased_at`` says so for the block's stride)."""
        if isinstance(self.spec, DenseBlockSpec | DefinedBlockSpec):
            return False
        return self.spec.anti_aliased_at(self.stride)

    @property
    def residual(self) -> bool:
        """The join takes a shortcut (an add or a highway gate): the class takes one."""
        return self.join is not None and self.join_kind in ("add", "gate")


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
    # the network's own constructor parameters (a classifier's num_classes), which its nodes
    # name in ``Node.bind`` as blocks' nodes name their block's
    args: tuple[BlockArg, ...] = ()
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
        """A copy of node ``name`` with ``changes``, put in its place. Built without
        ``dataclasses.replace``, 5x slower: passes update every node of every network
        (``resgraph sample`` lowers thousands)."""
        old = self.node(name)
        unknown = changes.keys() - _NODE_FIELDS
        if unknown:
            raise IRError(f"a node has no field {sorted(unknown)[0]!r}")
        node = object.__new__(Node)
        node.__dict__.update(old.__dict__, **changes)
        self.graph.nodes[name]["node"] = node
        return node

    def set_block(self, block: Block) -> None:
        self.blocks[block.path] = block

    # -- reading --------------------------------------------------------------------------
    def node(self, name: str) -> Node:
        return self.graph._node[name]["node"]

    def block_stages(self) -> dict[str, Stage]:
        """Each block's path -> the stage that holds it."""
        return {block: stage for stage in self.stages for block in stage.blocks}

    def parts(self) -> dict[str, str]:
        """The part of the network each node is in, by node name: ``stem``, ``head``, a
        backbone's ``output`` markers, or for a block's nodes its stage's path (``layer1``,
        ``stages.0.blocks``: a path may hold dots)."""
        stages = self.block_stages()
        return {
            n.name: stages[n.scope].path if n.section == "stage" else n.section
            for n in self.nodes()
        }

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
        """The node a classifier returns, its one sink (see :attr:`results` for backbones)."""
        (key, name), *rest = self.results
        if key is not None or rest:
            raise IRError("a backbone returns several feature maps: read IR.results")
        return name

    @property
    def results(self) -> list[tuple[str | None, str]]:
        """What the network's forward returns, as ``(key, node)`` pairs. A backbone (a spec
        with ``outputs``) ends in one :class:`~resgraph.ops.Output` marker per feature map:
        each gives its key and the node it reads, in execution order (network order), and
        forward returns them as a dict. A classifier has no marker: ``[(None, its sink)]``,
        returned as a tensor."""
        marked = [
            (n.op.key, self.inputs(n.name)[0]) for n in self.nodes() if isinstance(n.op, Output)
        ]
        if marked:
            return marked  # type: ignore[return-value]
        return [(None, next(n for n in self.graph if not self.graph._succ[n]))]

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
        for b in self.blocks.values():
            args = ", ".join(f"{a.name}={a.value}" for a in b.args)
            lines.append(
                f"block {b.path}: {b.kind}({args}) join={b.join_kind} "
                f"shortcut={b.shortcut}->{b.shortcut_kind} reads {b.shortcut_input}"
            )
        return "\n".join(lines)


# Words of lower-case model names (timm's spelling) as the papers write them.
_WORDS = {
    "resnet": "ResNet",
    "resnext": "ResNeXt",
    "senet": "SENet",
    "densenet": "DenseNet",
    "preact": "PreAct",
    "wide": "Wide",
    "blur": "Blur",
    "se": "SE",
    "eca": "ECA",
    "aa": "AA",
    "rs": "RS",
    "gn": "GN",
    "resnest": "ResNeSt",
    "skresnet": "SKResNet",
    "skresnext": "SKResNeXt",
}


def _word_case(word: str) -> str:
    """A word of a name in CamelCase: a word written with capitals stays as written; an
    all-lower-case one has its leading letters spelled out from ``_WORDS`` where they are
    made of them ('seresnext50' -> 'SEResNeXt50', 'light' -> 'Light')."""
    if not word.islower():
        return word[:1].upper() + word[1:]
    letters = len(word) - len(word.lstrip("abcdefghijklmnopqrstuvwxyz"))
    out, i = "", 0
    while i < letters:
        known = [w for w in _WORDS if word.startswith(w, i) and i + len(w) <= letters]
        if not known:
            return out + word[i:].capitalize()
        longest = max(known, key=len)
        out, i = out + _WORDS[longest], i + len(longest)
    return out + word[letters:]


def class_identifier(name: str) -> str:
    """A Python identifier in CamelCase for a spec or block name, e.g. 'CIFAR ResNet-20' ->
    CIFARResNet20, 'seresnext50_32x4d' -> SEResNeXt50_32x4d: numbers that follow a number
    keep an underscore between them (WRN-28-10 -> WRN28_10)."""
    words = "".join(c if c.isascii() and c.isalnum() else " " for c in name).split()
    ident, previous = "", ""
    for word in map(_word_case, words):
        numbers = word[0].isdigit() and any(c.isdigit() for c in previous)
        ident, previous = ident + ("_" if numbers else "") + word, word
    ident = ident or "Model"
    return ident if ident[0].isalpha() else f"Net{ident}"


BLOCK_CLASS_NAMES = {"basic": "BasicBlock", "bottleneck": "Bottleneck"}


def _free(base: str, taken: set[str]) -> str:
    name, n = base, 2
    while name in taken or keyword.iskeyword(name) or hasattr(builtins, name):
        name, n = f"{base}{n}", n + 1
    return name


def block_signature(
    ir: IR, block: Block, members: list[Node], specs: dict[int, str] | None = None
) -> tuple[object, ...]:
    """What makes two blocks instances of one class: their nodes (shortcut modules aside,
    they are constructor arguments) with op fields taken from the constructor replaced by
    their expressions, the wiring, and the spec that documents them."""
    prefix = block.path + "."

    def local(name: str) -> str:
        return name.removeprefix(prefix) if name != block.input else ""

    specs = {} if specs is None else specs  # spec JSON by id: blocks of a stage share one
    spec = specs.get(id(block.spec))
    if spec is None:  # a defined type's options only change its numbers: one class for all
        dump = "" if isinstance(block.spec, DefinedBlockSpec) else block.spec.model_dump_json()
        spec = specs[id(block.spec)] = dump
    items: list[object] = [block.kind, spec, block.residual, local(block.shortcut_input)]
    for n in members:
        if n.role == "shortcut":
            continue
        bound = dict(n.bind)
        inputs = [local(i) for i in ir.inputs(n.name)]
        if n.name == block.join and block.residual:
            inputs[1] = "~"  # the shortcut: a constructor argument, whatever it is
        values = tuple(bound.get(f.name) or getattr(n.op, f.name) for f in fields(n.op))
        items.append((local(n.name), type(n.op), values, n.role, tuple(inputs)))
    return tuple(items)


def block_members(ir: IR) -> dict[str, list[Node]]:
    """Each block's nodes in execution order."""
    members: dict[str, list[Node]] = {path: [] for path in ir.blocks}
    for node in ir.nodes():
        if node.scope in members:
            members[node.scope].append(node)
    return members


def block_class_names(ir: IR, members: dict[str, list[Node]], helpers: set[str]) -> dict[str, str]:
    """The class name of every block, one per distinct :func:`block_signature`: both emitters
    name their block classes with it (``BasicBlock``, ``PreActBottleneck``, ``DenseLayer``;
    ``BasicBlock2`` for a second structure of one kind). ``helpers``: names already taken."""
    names: dict[tuple[object, ...], str] = {}
    taken = set(FILE_NAMES) | helpers
    out: dict[str, str] = {}
    specs: dict[int, str] = {}
    for path, block in ir.blocks.items():
        key = block_signature(ir, block, members[path], specs)
        if key not in names:
            names[key] = _free(_block_class_base(block, ir.spec), taken)
            taken.add(names[key])
        out[path] = names[key]
    return out


def _block_class_base(block: Block, spec: ModelSpec) -> str:
    """``BasicBlock``, ``Bottleneck``, ..., after the prefixes of the options it uses, e.g.
    ``PreActSEBottleneck`` (names.py's ``cls``); a defined type's own class name."""
    if isinstance(block.spec, DefinedBlockSpec):
        own = spec.blocks[block.kind].class_name  # type: ignore[index]
        base = own or class_identifier(block.kind)
        return names.SHORTCUT["none"].cls + base if block.shortcut == "none" else base
    base = BLOCK_CLASS_NAMES.get(block.kind) or class_identifier(block.kind)
    attention = getattr(block.spec, "attention", None)
    if attention is not None:
        base = names.ATTENTION[attention.type].cls + base
    if block.anti_aliased:
        base = names.ANTI_ALIAS.cls + base
    if block.preactivation:
        base = names.PREACTIVATION.cls + base
    if block.shortcut == "none":
        return names.SHORTCUT["none"].cls + base
    if block.join_kind == "gate":
        return names.GATED.cls + base
    return base


def model_class_name(ir: IR, taken: set[str]) -> str:
    """The model's class name, from the spec's name, clear of keywords, builtins, the
    file's imports and ``taken`` (its helper and block classes): both emitters use it."""
    base, taken = class_identifier(ir.spec.name), set(FILE_NAMES) | taken
    if base in taken or keyword.iskeyword(base) or hasattr(builtins, base):
        base += "Net"  # "None" -> NoneNet, "F" -> FNet, "BasicBlock" -> BasicBlockNet
    return _free(base, taken)


def valid_component(part: str) -> bool:
    """A module path component: an identifier that is no keyword, or a list index."""
    return part.isdigit() or (part.isidentifier() and not keyword.iskeyword(part))
