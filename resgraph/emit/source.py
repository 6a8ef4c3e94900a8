"""The source emitter: IR -> standalone, readable PyTorch source.

Every line of code comes from the IR: a block class's ``__init__`` builds its nodes' modules
(from each op's registry entry, with the fields the block takes from its constructor written
as those parameters), and its ``forward`` runs its nodes in IR order; the network class does
the same for the stem, the stages (one ``nn.Sequential`` of block instances each) and the
head. Helper modules are copied from :mod:`resgraph.nn`. jinja2 templates hold only the file
skeleton, the class frame and the docstrings. Blocks of one structure share one class, so a
1,202-layer network is as short as its 20-layer sibling. Output depends only on the IR: the
same spec gives byte-identical files everywhere.

Text never becomes code. Every value a template writes goes through one rule
(:func:`docstring_text`, the environment's ``finalize``): it is escaped for the inside of a
triple-quoted string literal, so a spec path or a ``--set`` flag in a docstring reads back as
the same text. Only :class:`Code` passes unchanged: the lines the emitter itself wrote from
the IR.
"""

from __future__ import annotations

import ast
import hashlib
import linecache
import re
import sys
import textwrap
import types
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2

import resgraph
from resgraph import ops
from resgraph.emit.pyformat import WIDTH, Call, Commented, Dict, Repeat, Tuple, render
from resgraph.errors import IRError
from resgraph.ir import (
    IR,
    Block,
    Node,
    block_class_names,
    block_members,
    model_class_name,
)
from resgraph.spec.blocks import DefinedBlockSpec
from resgraph.spec.digest import spec_hash
from resgraph.spec.expr import parse, python_text
from resgraph.spec.schema import ModelSpec
from resgraph.summary import canonical_name

if TYPE_CHECKING:
    from torch import nn

# Block constructor parameters passed by position in calls (the input width, as torchvision
# passes inplanes); the others go by keyword, so a call reads as what each number is.
POSITIONAL = ("in_channels",)
MAX_NESTED_CALLS = 3  # a forward line nests at most this many module calls


def templates_dir() -> Path:
    """``resgraph/templates`` in an installed wheel, else the repository's ``templates/``."""
    here = Path(resgraph.__file__).resolve().parent
    for candidate in (here / "templates", here.parent / "templates"):
        if (candidate / "model.py.j2").is_file():
            return candidate
    raise IRError(f"resgraph's templates are missing (looked in {here} and {here.parent})")


class Code(str):
    """Python source the emitter wrote from the IR: the only text a template writes as is."""


def docstring_text(value: object) -> str:
    """``value`` as text inside a triple-quoted string literal that reads back as ``str(value)``:
    backslashes and double quotes are escaped, and so is every character that is not
    printable (newlines, other line breaks, controls, lone surrogates). :class:`Code` is
    returned as it is."""
    if isinstance(value, Code):
        return value
    return "".join(_escape(c) for c in str(value))


def _escape(c: str) -> str:
    if c in '\\"':
        return "\\" + c
    return c if c.isprintable() else repr(c)[1:-1]


def _wrap(value: object, width: int, wrapstring: str = "\n", column: int = 0) -> Code:
    """The escaped text wrapped at spaces into lines of at most ``width`` columns (a word
    longer than that stays whole), joined by ``wrapstring``; the first line starts at
    ``column``, after what the template wrote before it."""
    lines = textwrap.wrap(
        docstring_text(value),
        width,
        initial_indent=" " * column,
        break_long_words=False,
        break_on_hyphens=False,
    )
    return Code(wrapstring.join(lines)[column:])


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir()),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
        finalize=docstring_text,
    )
    env.filters["wrap"] = _wrap
    return env


@cache
def helper_sources(module: str = "resgraph.nn") -> dict[str, str]:
    """The source of every helper of ``module`` (:mod:`resgraph.nn`, or a plugin's module),
    in the order it defines them: what a generated file copies. Read from the file, so
    building source never imports torch for resgraph's own."""
    if module == "resgraph.nn":
        path = Path(resgraph.__file__).resolve().parent / "nn.py"
    else:  # a plugin's: it was imported when it was loaded
        path = Path(sys.modules[module].__file__ or "")
    text = path.read_text(encoding="utf-8")
    return {
        node.name: ast.get_source_segment(text, node) or ""
        for node in ast.parse(text).body
        if isinstance(node, ast.ClassDef | ast.FunctionDef)
    }


def _ctor(op: ops.Op, bound: dict[str, str] | None = None) -> Call | Commented:
    """An op's constructor call (its registry entry's ``ctor`` and ``module_args``); fields in
    ``bound`` are written as the given expressions (a block's constructor parameters)."""
    bound = bound or {}
    args, kwargs = op.module_args(bound)
    call = Call(
        op.ctor,
        tuple(bound.get(f, ops.literal(v)) for f, v in args),
        tuple((k, bound.get(f, ops.literal(v))) for f, k, v in kwargs),
    )
    return Commented(call, op.note) if op.note else call


# -- module trees: module paths -> constructor expressions in containers ---------------------
def _tree(entries: list[tuple[str, object]]) -> dict[str, object]:
    """Nest ``(path, constructor)`` pairs by path component, in order."""
    root: dict[str, object] = {}
    for path, ctor in entries:
        *parents, leaf = path.split(".")
        node = root
        for part in parents:
            node = node.setdefault(part, {})  # type: ignore[assignment]
            if not isinstance(node, dict):
                raise IRError(f"module {path!r} lies inside module {part!r}")
        node[leaf] = ctor
    return root


def _sequential(children: dict[str, object]) -> bool:
    return list(children) == [str(i) for i in range(len(children))]


def _container(children: dict[str, object]) -> object:
    """An ``nn.Sequential`` for children ``0..n-1``, else an ``nn.ModuleDict``."""
    items = [_container(c) if isinstance(c, dict) else c for c in children.values()]
    if _sequential(children):
        return Call("nn.Sequential", tuple(items))
    return Call("nn.ModuleDict", (Dict(tuple(zip(children, items, strict=True))),))


def _chain(children: dict[str, object]) -> object:
    """A run of modules called in order: an ``nn.Sequential``, of an ``OrderedDict`` where
    the modules have names (a shortcut's ``downsample.conv``, ``downsample.bn``)."""
    if _sequential(children):
        return _container(children)
    items = tuple((k, _container(c) if isinstance(c, dict) else c) for k, c in children.items())
    return Call("nn.Sequential", (Call("OrderedDict", (), items),))


def _access(path: str, tree: dict[str, object]) -> str:
    """``self.conv1``, ``self.conv1[0]`` (in a Sequential), ``self.se["fc1"]`` (a dict)."""
    first, *rest = path.split(".")
    expr, node = f"self.{first}", tree[first]
    for part in rest:
        assert isinstance(node, dict)
        expr += f"[{part}]" if _sequential(node) else f'["{part}"]'
        node = node[part]
    return expr


def _init_lines(tree: dict[str, object]) -> list[str]:
    lines = []
    for name, ctor in tree.items():
        value = _container(ctor) if isinstance(ctor, dict) else ctor
        lines.append(f"self.{name} = {render(value, 8, len(name) + 8, tail=0)}")
    return lines


# -- forward code: IR nodes -> lines ----------------------------------------------------------
@dataclass
class _Step:
    """One value of a forward function."""

    name: str  # the IR node (or pseudo-node) it defines
    inputs: list[str]
    text: Callable[[list[str]], str]  # its expression, from its inputs' expressions
    prefer: str  # the variable it would like
    nests: bool  # a module call: may be written inside its consumer's call
    takes_nested: bool  # a call (module or function) that may hold its input's call


def _forward(
    steps: list[_Step],
    entry: str,
    forced: set[str],
    nest: bool,
    returns: list[tuple[str | None, str]] | None = None,
) -> list[str]:
    """Lines computing ``steps`` in order (``entry`` arrives as ``x``); the last line is
    ``return``: of the last step's value, or with ``returns`` (a backbone's ``(key, node)``
    pairs) a dict of those values by key. Single-use module calls nest into the next call (up
    to MAX_NESTED_CALLS); a variable is reused once its value is dead, so names stay ``out``,
    ``identity``, ..."""
    returns = returns or [(None, steps[-1].name)]
    last_use, users = _uses(steps, returns)
    var = {entry: "x"}
    holder: dict[str, str] = {"x": entry}  # variable -> the value it holds
    lines: list[str] = []
    pending: tuple[str, str, int] | None = None  # (node, expression, nested calls)

    def assign(i: int, step: _Step, expr: str) -> None:
        name, n = step.prefer, 2
        while name in holder and holder[name] != step.name and last_use.get(holder[name], -1) > i:
            name, n = f"{step.prefer}{n}", n + 1
        holder[name], var[step.name] = step.name, name
        lines.append(f"{name} = {expr}")

    for i, step in enumerate(steps):
        args, depth = [], 1
        for p in step.inputs:
            if pending is not None and pending[0] == p:
                args.append(pending[1])
                depth = pending[2] + 1
            else:
                args.append(var[p])
        expr = step.text(args)
        if pending is not None and 8 + len(step.prefer) + 3 + len(expr) > WIDTH:
            assign(i - 1, steps[i - 1], pending[1])  # too long to nest: its own line
            depth, expr = 1, step.text([var[p] for p in step.inputs])
        pending = None
        nxt = steps[i + 1] if i + 1 < len(steps) else None
        if nest and depth < MAX_NESTED_CALLS and _nests_into(step, nxt, users, forced):
            pending = (step.name, expr, depth)
            continue
        assign(i, step, expr)
    return lines + _return_lines(returns, var)


def _uses(
    steps: list[_Step], returns: list[tuple[str | None, str]]
) -> tuple[dict[str, int], dict[str, int]]:
    """Each value's last reader (a step index; returned values live past the end) and its
    number of readers."""
    last_use: dict[str, int] = {}
    users: dict[str, int] = {}
    for i, step in enumerate(steps):
        for p in step.inputs:
            last_use[p] = i
            users[p] = users.get(p, 0) + 1
    for _, name in returns:
        last_use[name] = len(steps)
        users[name] = users.get(name, 0) + 1
    return last_use, users


def _nests_into(step: _Step, nxt: _Step | None, users: dict[str, int], forced: set[str]) -> bool:
    """``step``'s call may be written inside ``nxt``'s: a single-use module call that is
    ``nxt``'s first input, and not a value that must keep a name (``forced``)."""
    return (
        step.nests
        and nxt is not None
        and nxt.takes_nested
        and nxt.inputs[:1] == [step.name]
        and users.get(step.name) == 1
        and step.name not in forced
    )


def _return_lines(returns: list[tuple[str | None, str]], var: dict[str, str]) -> list[str]:
    """``return out``, or a backbone's dict of feature maps by key."""
    if returns[0][0] is None:
        return [f"return {var[returns[0][1]]}"]
    items = [f'"{key}": {var[name]}' for key, name in returns]
    line = f"return {{{', '.join(items)}}}"
    if 8 + len(line) <= WIDTH:
        return [line]
    return ["return {", *(f"    {item}," for item in items), "}"]  # as a formatter would


def _op_step(ir: IR, node: Node, access: str, prefer: str, inputs: list[str]) -> _Step:
    op = node.op
    if op.is_module:
        return _Step(node.name, inputs, lambda a: f"{access}({', '.join(a)})", prefer, True, True)
    single = op.arity == 1
    fields = {f: python_text(parse(text), "self.") for f, text in node.bind}
    return _Step(node.name, inputs, lambda a: op.call_text(a, fields), prefer, False, single)


def _kept(own: list[Node], block: Block) -> list[str]:
    """The constructor parameters forward reads (bound fields of function ops): the
    constructor keeps them as attributes of the same name, in the order it takes them."""
    read = {
        n for node in own if not node.op.is_module for _, t in node.bind for n in parse(t).names
    }
    return [a.name for a in block.args if a.name in read]


# -- block classes ----------------------------------------------------------------------------
def _block_class(ir: IR, block: Block, members: list[Node], name: str) -> tuple[str, list[str]]:
    """The class's source, and the BNs (as attribute paths) it zero-initialises."""
    prefix = block.path + "."
    own = [n for n in members if n.role != "shortcut"]
    tree = _tree(
        [(n.name.removeprefix(prefix), _ctor(n.op, dict(n.bind))) for n in own if n.op.is_module]
    )
    init = [f"self.{n} = {n}" for n in _kept(own, block)] + _init_lines(tree)
    signature = [
        (a.name, type(a.value).__name__ + ("" if a.default is None else f" = {a.default!r}"))
        for a in block.args
    ]
    if block.residual:  # registered first or last: where its state comes in the state_dict
        line = "self.downsample = downsample"
        init = [line, *init] if ir.spec.names.shortcut_first else [*init, line]
        signature.append(("downsample", "nn.Module | None = None"))
    signature.sort(key=lambda kv: "=" in kv[1])  # parameters with defaults last
    forced = {block.shortcut_input} if block.residual else set()
    forward = _forward(_block_steps(ir, block, own, tree), block.input, forced, nest=True)
    zero_init = [
        _access(n.name.removeprefix(prefix), tree).removeprefix("self.")
        for n in own
        if isinstance(n.op, ops.NORMS) and n.op.zero_init
    ]
    defined = isinstance(block.spec, DefinedBlockSpec)
    doc = (
        _env()
        .get_template(f"blocks/{'defined' if defined else block.kind}.py.j2")
        .render(
            spec=block.spec,
            definition=ir.spec.blocks[block.kind] if defined else None,  # type: ignore[index]
            residual=block.residual,
            plain=block.shortcut == "none",
            anti_aliased=block.anti_aliased,
        )
    )
    text = (
        _env()
        .get_template("block.py.j2")
        .render(
            name=name,
            doc=Code(doc.rstrip("\n")),
            residual=block.residual,
            signature=[(arg, Code(type_)) for arg, type_ in signature],
            init_lines=list(map(Code, init)),
            forward_lines=list(map(Code, forward)),
        )
    )
    return text.rstrip("\n"), zero_init


def _block_steps(ir: IR, block: Block, own: list[Node], tree: dict[str, object]) -> list[_Step]:
    """The forward steps of a block's own nodes; a residual join reads the shortcut module
    the constructor got (``self.downsample``), or the input itself."""
    prefix = block.path + "."
    steps: list[_Step] = []
    for n in own:
        inputs = ir.inputs(n.name)
        if n.name == block.join and block.residual:
            steps.append(
                _Step(
                    "~identity",
                    [block.shortcut_input],
                    lambda a: f"x if self.downsample is None else self.downsample({a[0]})",
                    "identity",
                    False,
                    False,
                )
            )
            inputs = [inputs[0], "~identity", *inputs[2:]]
        local = n.name.removeprefix(prefix)
        # a value computed inside a submodule's namespace (``se.fc1``) is named after it
        prefer = "gate" if n.role == "gate" else local.split(".")[0] if "." in local else "out"
        if n.name == block.shortcut_input and n.name != block.input:
            prefer = "preact"
        access = _access(local, tree) if n.op.is_module else ""
        steps.append(_op_step(ir, n, access, prefer, inputs))
    return steps


def _block_call(ir: IR, block: Block, members: list[Node], name: str) -> Call:
    args = tuple(ops.literal(a.value) for a in block.args if a.name in POSITIONAL)
    kwargs = [
        (a.name, ops.literal(a.value))
        for a in block.args
        if a.name not in POSITIONAL and a.value != a.default
    ]
    prefix = block.path + "."
    shortcut = [
        (n.name.removeprefix(prefix + "downsample").lstrip("."), _ctor(n.op))
        for n in members
        if n.role == "shortcut"
    ]
    if shortcut:
        if shortcut[0][0] == "":
            kwargs.append(("downsample", shortcut[0][1]))
        else:
            kwargs.append(("downsample", _chain(_tree(shortcut))))
    return Call(name, args, tuple(kwargs))


def _group(calls: list[Call]) -> list[object]:
    """Fold runs of equal constructor calls into ``*(... for _ in range(n))`` and runs that
    differ in one keyword only into ``*(... for name in (values))``."""
    out: list[object] = []
    i = 0
    while i < len(calls):
        j = i + 1
        while j < len(calls) and calls[j] == calls[i]:
            j += 1
        if j - i > 1:
            out.append(Repeat(calls[i], count=j - i))
            i = j
            continue
        varying = _varying_kwarg(calls[i], calls[i + 1]) if i + 1 < len(calls) else None
        if varying is not None:
            j = i + 1
            while j < len(calls) and _varying_kwarg(calls[i], calls[j]) == varying:
                j += 1
            if j - i > 2:
                values = Tuple(tuple(dict(c.kwargs)[varying] for c in calls[i:j]))
                template = Call(
                    calls[i].func,
                    calls[i].args,
                    tuple((k, varying if k == varying else v) for k, v in calls[i].kwargs),
                )
                out.append(Repeat(template, var=varying, values=values))
                i = j
                continue
        out.append(calls[i])
        i += 1
    return out


def _varying_kwarg(a: Call, b: Call) -> str | None:
    if a.func != b.func or a.args != b.args or [k for k, _ in a.kwargs] != [k for k, _ in b.kwargs]:
        return None
    diff = [k for (k, x), (_, y) in zip(a.kwargs, b.kwargs, strict=True) if x != y]
    return diff[0] if len(diff) == 1 else None


# -- the file ---------------------------------------------------------------------------------
def emit_source(ir: IR, *, source: str = "<spec>") -> str:
    """Render the standalone PyTorch module for a checked IR."""
    nodes = ir.nodes()
    members = block_members(ir)
    used = {(n.op.helper_module, n.op.helper) for n in nodes if n.op.helper}
    modules = sorted({m for m, _ in used}, key=lambda m: (m != "resgraph.nn", m))
    copied = [  # resgraph.nn's helpers first, each module's in the order it defines them
        (h, text) for m in modules for h, text in helper_sources(m).items() if (m, h) in used
    ]
    helpers = [h for h, _ in copied]
    names = block_class_names(ir, members, set(helpers))
    classes: dict[str, tuple[str, list[str]]] = {}  # name -> text, zero-init BNs
    calls: dict[str, Call] = {}
    for path, block in ir.blocks.items():
        name = names[path]
        if name not in classes:
            classes[name] = _block_class(ir, block, members[path], name)
        calls[path] = _block_call(ir, block, members[path], name)
    entries, items = _network_modules(ir, nodes, calls)
    tree = _tree(entries)
    init_lines = _init_lines(tree)
    results = ir.results
    spec: ModelSpec = ir.spec
    model_class = model_class_name(ir, set(helpers) | set(classes))
    forward = _network_forward(ir, items, tree)
    texts = [*(t for _, t in copied), *(t for t, _ in classes.values()), *init_lines, *forward]
    return (
        _env()
        .get_template("model.py.j2")
        .render(
            name=spec.name,
            canonical_name=canonical_name(ir),
            version=resgraph.__version__,
            source=source,
            spec_hash=spec_hash(spec),
            params=sum(n.params for n in nodes),
            macs=sum(n.macs for n in nodes),
            input_shape="x".join(map(str, ir.node(ir.input).shape or ())),
            num_classes=spec.num_classes,
            features=[
                (key, ops.fmt_shape(ir.node(name).shape))
                for key, name in results
                if key is not None
            ],
            helpers=[Code(text) for _, text in copied],
            ordered=any("OrderedDict(" in line for line in init_lines),
            classes=[Code(text) for text, _ in classes.values()],
            model_class=model_class,
            args=[(a.name, type(a.value).__name__, a.value) for a in ir.args],
            init_lines=list(map(Code, init_lines)),
            forward_lines=list(map(Code, forward)),
            functional=any(re.search(r"\bF\.", text) for text in texts),  # else no import
            zero_init=[(name, [Code(b) for b in bns]) for name, (_, bns) in classes.items() if bns],
        )
    )


_Item = Node | tuple[str, str, str]  # a top-level node, or (stage path, input, output)


def _network_modules(
    ir: IR, nodes: list[Node], calls: dict[str, Call]
) -> tuple[list[tuple[str, object]], list[_Item]]:
    """The network's modules (top-level nodes, and one Sequential of block calls per stage
    in place of its blocks) and what its forward runs, in order."""
    stage_of = ir.block_stages()
    entries: list[tuple[str, object]] = []
    items: list[_Item] = []
    for node in nodes:
        if node.scope:
            stage = stage_of.get(node.scope)
            if stage is None:
                raise IRError(f"node {node.name!r} lies outside any block the emitter knows")
            if node.name == ir.blocks[stage.blocks[-1]].output:
                one = stage.blocks == (stage.path,)  # a stage that is one module: its block
                call = calls[stage.path] if one else _stage_call(stage.blocks, calls)
                entries.append((stage.path, call))
                items.append((stage.path, ir.blocks[stage.blocks[0]].input, node.name))
        elif not isinstance(node.op, (ops.Input, ops.Output)):
            if node.op.is_module:
                entries.append((node.name, _ctor(node.op, dict(node.bind))))
            items.append(node)
    return entries, items


def _stage_call(blocks: tuple[str, ...], calls: dict[str, Call]) -> Call:
    """A stage's ``nn.Sequential`` of block calls; blocks the spec names (``b1``, ``b2``,
    ...) keep their names through an ``OrderedDict``, as torch's documentation does."""
    names = [path.rsplit(".", 1)[1] for path in blocks]
    if names == [str(i) for i in range(len(names))]:
        return Call("nn.Sequential", tuple(_group([calls[b] for b in blocks])))
    named = Call(
        "OrderedDict", (), tuple((n, calls[b]) for n, b in zip(names, blocks, strict=True))
    )
    return Call("nn.Sequential", (named,))


def _network_forward(ir: IR, items: list[_Item], tree: dict[str, object]) -> list[str]:
    """The network's forward lines: each value is ``x``, except a backbone's returned
    values, named after their keys (``layer2 = self.layer2(x)``)."""
    results = ir.results
    prefer = {name: key for key, name in results if key is not None}
    steps = []
    for item in _fold_sequentials(ir, items, tree):
        if isinstance(item, Node):
            access = _access(item.name, tree) if item.op.is_module else ""
            var = prefer.get(item.name, "x")
            steps.append(_op_step(ir, item, access, var, ir.inputs(item.name)))
        else:  # a stage, or another nn.Sequential run whole
            path, first, last = item
            access = _access(path, tree)  # a stage path may hold indices: stages.0.blocks
            text: Callable[[list[str]], str] = lambda a, p=access: f"{p}({a[0]})"  # noqa: E731
            steps.append(_Step(last, [first], text, prefer.get(last, "x"), True, True))
    return _forward(steps, ir.input, set(), nest=False, returns=results)


def _fold_sequentials(
    ir: IR, items: list[Node | tuple[str, str, str]], tree: dict[str, object]
) -> list[Node | tuple[str, str, str]]:
    """Replace the nodes of a top-level ``nn.Sequential`` (a deep stem's ``conv1``) by one
    call ``(path, input, last node)`` where they run one after another, each on the previous
    one's output, in the order of its indices; anything else stays node by node."""
    out: list[Node | tuple[str, str, str]] = []
    i = 0
    while i < len(items):
        item = items[i]
        head = item.name.split(".")[0] if isinstance(item, Node) else ""
        children = tree.get(head)
        if isinstance(children, dict) and _sequential(children) and "." in item.name:
            run = items[i : i + len(children)]
            names = [f"{head}.{k}" for k in children]
            if [n.name if isinstance(n, Node) else "" for n in run] == names and all(
                ir.inputs(b.name) == [a.name]
                for a, b in zip(run, run[1:], strict=False)
                if isinstance(a, Node) and isinstance(b, Node)
            ):
                assert isinstance(item, Node)
                out.append((head, ir.inputs(item.name)[0], names[-1]))
                i += len(children)
                continue
        out.append(item)
        i += 1
    return out


# -- the in-memory engine ---------------------------------------------------------------------
def _load(text: str) -> types.ModuleType:
    """The generated source as a module of this process, one per distinct text. Its classes
    pickle by their source text: unpickling in a fresh process runs it again."""
    name = f"resgraph_generated_{hashlib.sha256(text.encode()).hexdigest()[:16]}"
    module = sys.modules.get(name)
    if module is None:
        module = types.ModuleType(name)
        module.__file__ = f"<{name}>"
        # inspect (and so torch.jit.script) finds the source of exec'd code through linecache
        linecache.cache[module.__file__] = (len(text), None, text.splitlines(True), name)
        exec(compile(text, module.__file__, "exec"), module.__dict__)
        for value in list(vars(module).values()):
            if isinstance(value, type) and value.__module__ == name:
                value.__reduce__ = _reducer(text)  # type: ignore[method-assign]
        sys.modules[name] = module
    return module


def _reducer(text: str) -> Callable[[object], tuple[object, ...]]:
    def __reduce__(self: object) -> tuple[object, ...]:
        return (_restore, (text, type(self).__qualname__), self.__getstate__())  # type: ignore[attr-defined]

    return __reduce__


def _restore(text: str, name: str) -> object:
    cls = getattr(_load(text), name)
    return cls.__new__(cls)


def build_generated(spec_or_ir: ModelSpec | IR, *, seed: int | None = None) -> nn.Module:
    """Render the source, load it as a module in memory, and return ``build_model()``."""
    import torch

    if isinstance(spec_or_ir, IR):
        ir = spec_or_ir
    else:
        from resgraph.passes import lower

        ir = lower(spec_or_ir)
    module = _load(emit_source(ir))
    if seed is not None:
        torch.manual_seed(seed)
    return module.build_model()
