"""The executed graph: an ``nn.Module`` that runs the IR directly.

The IR is turned into a ``torch.fx`` graph whose modules sit at the IR's node names, so
the module tree and state_dict keys are those of the generated source and of torchvision
(``layer1.0.conv1.weight``). fx compiles the graph to straight-line Python, so running it
costs no more than hand-written code (benchmarks/emitters.py measures it), and the result
works with ``torch.compile`` and ``torch.export``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable

import torch
from torch import fx, nn

from resgraph import nn as rnn
from resgraph import ops
from resgraph.ir import IR, Node
from resgraph.spec.schema import ModelSpec

MODULES: dict[type[ops.Op], Callable[..., nn.Module]] = {
    ops.Conv: lambda o: nn.Conv2d(
        o.in_channels, o.out_channels, o.kernel, o.stride, o.padding, groups=o.groups, bias=o.bias
    ),
    ops.BatchNorm: lambda o: nn.BatchNorm2d(o.channels),
    ops.MaxPool: lambda o: nn.MaxPool2d(o.kernel, o.stride, o.padding),
    ops.AvgPool: lambda o: nn.AvgPool2d(o.kernel, o.stride),
    ops.Dropout: lambda o: nn.Dropout(o.p),
    ops.DropPath: lambda o: rnn.DropPath(o.survival),
    ops.Linear: lambda o: nn.Linear(o.in_features, o.out_features, bias=o.bias),
    ops.PadShortcut: lambda o: rnn.PadShortcut(o.in_channels, o.out_channels, o.stride),
}

FUNCTIONS: dict[type[ops.Op], Callable[..., torch.Tensor]] = {
    ops.ReLU: torch.relu,
    ops.Sigmoid: torch.sigmoid,
    ops.Add: operator.add,
    ops.GateMix: rnn.gate_mix,
    ops.GlobalAvgPool: rnn.global_avg_pool,
}


def _attach(root: nn.Module, path: str, module: nn.Module) -> None:
    *parents, leaf = path.split(".")
    owner = root
    for part in parents:
        if not hasattr(owner, part):
            owner.add_module(part, nn.Module())
        owner = getattr(owner, part)
    owner.add_module(leaf, module)


def build_module(spec_or_ir: ModelSpec | IR, *, seed: int | None = None) -> fx.GraphModule:
    """An ``nn.Module`` executing the IR, initialised like the generated source.

    Each block becomes its own fx module at the block's path (``layer1.0``), so the module
    tree matches the generated source: blocks can be wrapped (activation checkpointing) the
    same way in both. With ``seed``, ``torch.manual_seed(seed)`` is called first, so a seed
    gives the same weights as the generated module built under it.
    """
    if isinstance(spec_or_ir, IR):
        ir = spec_or_ir
    else:
        from resgraph.passes import lower

        ir = lower(spec_or_ir)
    if seed is not None:
        torch.manual_seed(seed)
    root = nn.Module()
    graph = fx.Graph()
    values: dict[str, fx.Node] = {}
    order = ir.nodes()
    members: dict[str, list[Node]] = {path: [] for path in ir.blocks}
    for node in order:
        if node.scope in members:
            members[node.scope].append(node)
    for node in order:
        block = ir.blocks.get(node.scope)
        if block is not None:
            if node.name == block.output:
                _attach(root, block.path, _block_module(ir, block.path, members[block.path]))
                values[node.name] = graph.call_module(block.path, (values[block.input],))
            continue
        _emit_node(ir, graph, values, node, root, prefix="")
    graph.output(values[ir.output])
    module = fx.GraphModule(root, graph, class_name=_class_name(ir.spec.name))
    zero = [n.name for n in order if isinstance(n.op, ops.BatchNorm) and n.op.zero_init]
    init_weights(module, zero)
    return module


def _block_module(ir: IR, path: str, nodes: list[Node]) -> fx.GraphModule:
    block = ir.blocks[path]
    root = nn.Module()
    graph = fx.Graph()
    values = {block.input: graph.placeholder("x")}
    for node in nodes:
        _emit_node(ir, graph, values, node, root, prefix=path + ".")
    graph.output(values[block.output])
    return fx.GraphModule(root, graph, class_name=f"{block.kind.title()}Block")


def _emit_node(
    ir: IR, graph: fx.Graph, values: dict[str, fx.Node], node: Node, root: nn.Module,
    prefix: str,
) -> None:
    op = node.op
    args = tuple(values[p] for p in ir.inputs(node.name))
    if isinstance(op, ops.Input):
        values[node.name] = graph.placeholder("x")
    elif op.is_module:
        local = node.name.removeprefix(prefix)
        _attach(root, local, MODULES[type(op)](op))
        values[node.name] = graph.call_module(local, args)
    elif isinstance(op, ops.Concat):
        values[node.name] = graph.call_function(torch.cat, (list(args), 1))
    else:
        values[node.name] = graph.call_function(FUNCTIONS[type(op)], args)


def init_weights(model: nn.Module, zero_init_bns: list[str]) -> None:
    """He et al. 2015's initialisation, as the generated source does it: He normal (fan_out)
    for convs, BN weight 1 and bias 0, PyTorch's default for fc; then the listed BNs
    (the last of each residual branch, when the spec asks) get weight 0."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            m.reset_parameters()
    for name in zero_init_bns:
        nn.init.zeros_(model.get_submodule(name).weight)


def _class_name(name: str) -> str:
    words = "".join(c if c.isalnum() else " " for c in name).split()
    ident = "".join(w[:1].upper() + w[1:] for w in words) or "Model"
    return ident if ident[0].isalpha() else f"Net{ident}"
