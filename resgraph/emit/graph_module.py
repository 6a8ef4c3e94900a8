"""The executed graph: an ``nn.Module`` that runs the IR directly.

Each block, and the network around the blocks, becomes a module whose ``forward`` is
straight-line Python compiled from the IR (one ``v = op(args)`` line per node, each value
dropped after its last use). Blocks of the same structure share one compiled class, so
compiling cifar_resnet1202 costs a handful of compilations, not 600. The module tree is
the generated source's (``layer1.0.conv1``; blocks are modules at their IR paths), so
state_dicts move freely between the two, and blocks can be wrapped (activation
checkpointing) the same way. Measured against torch.fx GraphModules in
benchmarks/RESULTS.md: fx's per-module call wrapper and per-instance recompilation cost
2x on forward at batch 1 and 4x on instantiation for cifar_resnet1202.
"""

from __future__ import annotations

import hashlib
import linecache
import sys
from collections.abc import Callable
from functools import cache, lru_cache
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from resgraph import nn as rnn
from resgraph import ops
from resgraph.ir import IR, Node, block_class_names, block_members, model_class_name
from resgraph.spec.schema import ModelSpec

# What compiled forward code and op constructors see: the names a generated file binds.
_GLOBALS: dict[str, Any] = {"torch": torch, "F": F, "nn": nn, "Tensor": torch.Tensor}
_GLOBALS.update({name: getattr(rnn, name) for name in rnn.__all__})


@cache
def _constructor(name: str) -> Callable[..., nn.Module]:
    """``nn.Conv2d`` -> the class, looked up as generated code would."""
    first, *rest = name.split(".")
    obj = _GLOBALS[first]
    for part in rest:
        obj = getattr(obj, part)
    return obj  # type: ignore[no-any-return]


def module_of(op: ops.Op) -> nn.Module:
    """The module an op's registry entry describes (what the generated source constructs)."""
    args, kwargs = op.module_args()
    return _constructor(op.ctor)(*(v for _, v in args), **{k: v for _, k, v in kwargs})


class CompiledModule(nn.Module):
    """A module whose forward was compiled from IR nodes; pickles by its source."""

    _source: str = ""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (self._source, type(self).__name__), self.__getstate__())


def _restore(source: str, name: str) -> CompiledModule:
    cls = _compiled_class(source, name)
    return cls.__new__(cls)


@lru_cache(maxsize=256)
def _compiled_class(source: str, name: str) -> type[CompiledModule]:
    namespace = dict(_GLOBALS)
    filename = f"<resgraph {name} {hashlib.sha256(source.encode()).hexdigest()[:12]}>"
    # inspect (and so torch.jit.script) finds the source of exec'd code through linecache
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), namespace)
    return type(
        name,
        (CompiledModule,),
        {"forward": namespace["forward"], "_source": source, "__module__": __name__},
    )


def _attr(path: str) -> str:
    """``self.a.b`` for a module path, with getattr for parts like ``0``."""
    expr = "self"
    for part in path.split("."):
        expr = f"{expr}.{part}" if not part.isdigit() else f'getattr({expr}, "{part}")'
    return expr


def _compile(
    ir: IR,
    nodes: list[Node],
    entry: str,
    exits: list[tuple[str | None, str]],
    prefix: str,
    calls: dict[str, str],
    name: str,
) -> type[CompiledModule]:
    """Straight-line forward code for ``nodes`` (``entry`` feeds them); it returns the value
    of ``exits``' one node when its key is None, else a dict of them by key (a backbone's
    feature maps, :attr:`IR.results`). ``calls`` maps nodes to module paths to call instead
    (whole blocks)."""

    def inputs(node: Node) -> list[str]:
        target = calls.get(node.name)
        return [ir.blocks[target].input] if target is not None else ir.inputs(node.name)

    var = {entry: "x"}
    last_use: dict[str, int] = {}
    for i, node in enumerate(nodes):
        for p in inputs(node):
            last_use[p] = i
    for _, node_name in exits:  # returned values live to the end
        last_use[node_name] = len(nodes)
    lines = ["def forward(self, x):"]
    for i, node in enumerate(nodes):
        args = [var[p] for p in inputs(node)]
        target = calls.get(node.name)
        if target is not None:
            expr = f"{_attr(target)}({args[0]})"
        elif node.op.is_module:
            expr = f"{_attr(node.name.removeprefix(prefix))}({', '.join(args)})"
        else:
            expr = node.op.call_text(args)
        var[node.name] = f"v{i}"
        lines.append(f"    v{i} = {expr}")
        dead = sorted({var[p] for p in inputs(node) if last_use[p] == i})
        if dead:  # free each value after its last use, as hand-written code would
            lines.append(f"    del {', '.join(dead)}")
    if exits[0][0] is None:
        lines.append(f"    return {var[exits[0][1]]}")
    else:
        items = ", ".join(f'"{key}": {var[node_name]}' for key, node_name in exits)
        lines.append(f"    return {{{items}}}")
    return _compiled_class("\n".join(lines) + "\n", name)


def _attach(root: nn.Module, path: str, module: nn.Module) -> None:
    *parents, leaf = path.split(".")
    owner = root
    for part in parents:
        if not hasattr(owner, part):
            owner.add_module(part, nn.Module())
        owner = getattr(owner, part)
    owner.add_module(leaf, module)


def build_module(spec_or_ir: ModelSpec | IR, *, seed: int | None = None) -> nn.Module:
    """An ``nn.Module`` executing the IR, initialised like the generated source.

    With ``seed``, ``torch.manual_seed(seed)`` is called first, so a seed gives the same
    weights as the generated module built under it.
    """
    if isinstance(spec_or_ir, IR):
        ir = spec_or_ir
    else:
        from resgraph.passes import lower

        ir = lower(spec_or_ir)
    if seed is not None:
        torch.manual_seed(seed)
    order = ir.nodes()
    members = block_members(ir)
    helpers = {n.op.helper for n in order if n.op.helper}
    for node in order:  # a plugin's helpers, from the module that defines them
        op = node.op
        if op.helper and op.helper_module != "resgraph.nn":
            _GLOBALS[op.helper] = getattr(sys.modules[op.helper_module], op.helper)
    names = block_class_names(ir, members, helpers)  # the generated source's class names
    top = [n for n in order if n.scope not in members or n.name == ir.blocks[n.scope].output]
    calls = {n.name: n.scope for n in top if n.scope in members}
    modules: list[tuple[str, nn.Module]] = []
    for node in top:
        if node.name in calls:
            block = ir.blocks[calls[node.name]]
            module = _block_module(ir, block.path, members[block.path], names[block.path])
            modules.append((block.path, module))
        elif node.op.is_module:
            modules.append((node.name, module_of(node.op)))
    nodes = [n for n in top if not isinstance(n.op, (ops.Input, ops.Output))]
    root_name = model_class_name(ir, helpers | set(names.values()))
    cls = _compile(ir, nodes, ir.input, ir.results, "", calls, root_name)
    root = cls()
    for path, module in modules:
        _attach(root, path, module)
    zero = [n.name for n in order if isinstance(n.op, ops.NORMS) and n.op.zero_init]
    init_weights(root, zero)
    return root


def _block_module(ir: IR, path: str, nodes: list[Node], name: str) -> nn.Module:
    block = ir.blocks[path]
    prefix = path + "."
    cls = _compile(ir, nodes, block.input, [(None, block.output)], prefix, {}, name)
    module = cls()
    first = ir.spec.names.shortcut_first  # the shortcut's modules registered first (timm's)
    for node in sorted(nodes, key=lambda n: first and n.role != "shortcut"):
        if node.op.is_module:
            _attach(module, node.name.removeprefix(prefix), module_of(node.op))
    return module


def init_weights(model: nn.Module, zero_init_bns: list[str]) -> None:
    """He et al. 2015's initialisation, as the generated source does it: He normal (fan_out)
    for convs (BN weight 1 and bias 0, and fc's default, come from PyTorch's constructors);
    then the listed BNs (the last of each residual branch, when the spec asks) get weight 0."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    for name in zero_init_bns:
        nn.init.zeros_(model.get_submodule(name).weight)
