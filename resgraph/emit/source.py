"""The source emitter: IR -> standalone, readable PyTorch source through jinja2 templates.

Block classes come from ``templates/blocks/<kind>.py.j2`` (one class per distinct block
variant); the stem, head, stage containers and shortcut modules are written from the IR's
ops. Output depends only on the IR: the same spec gives byte-identical files everywhere.
Nothing from a spec reaches the source but validated names (pattern-checked) and numbers.
"""

from __future__ import annotations

import hashlib
import sys
import types
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2

import resgraph
from resgraph import ops
from resgraph.emit.pyformat import Call, Repeat, Tuple, render
from resgraph.errors import IRError
from resgraph.ir import IR, Block, Node, class_identifier
from resgraph.spec.schema import ModelSpec
from resgraph.summary import canonical_name

if TYPE_CHECKING:
    from torch import nn

# Constructor parameters with a default, omitted from calls when they have it.
DEFAULTS: dict[str, object] = {"stride": 1, "groups": 1, "downsample": None}
POSITIONAL = ("in_channels", "width", "out_channels")
CLASS_NAMES = {"basic": "BasicBlock", "bottleneck": "Bottleneck"}


def templates_dir() -> Path:
    """``resgraph/templates`` in an installed wheel, else the repository's ``templates/``."""
    here = Path(resgraph.__file__).resolve().parent
    for candidate in (here / "templates", here.parent / "templates"):
        if (candidate / "model.py.j2").is_file():
            return candidate
    raise IRError(f"resgraph's templates are missing (looked in {here} and {here.parent})")


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir()),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["pyfloat"] = lambda v: repr(float(v))

    def raise_error(message: str) -> None:
        raise IRError(message)

    env.globals["raise_error"] = raise_error
    return env


@dataclass
class _Class:
    """One emitted block class: what its template needs."""

    name: str
    kind: str
    options: dict[str, Any]
    residual: bool  # its join takes a shortcut (add, gate): the class takes `downsample`
    join: str  # the join op's kind ("add", "gate_mix", "concat"), or "none"
    plain: bool  # the spec asked for no shortcut (a plain network)
    drop_path: bool
    shortcut_input: str
    projection_input: str
    post_activation: bool
    gate_in: str
    gate_out: str
    signature: list[tuple[str, str]]
    zero_init: tuple[str, ...]


def _local(name: str, path: str) -> str:
    return name[len(path) + 1 :]


def _block_view(
    ir: IR, block: Block, members: list[Node]
) -> tuple[tuple[object, ...], _Class, Call]:
    """The class key, the class view, and the constructor call of one block (``members``:
    the block's nodes in execution order)."""
    shortcut = [n for n in members if n.role == "shortcut"]
    gate = next((n for n in members if n.role == "gate" and isinstance(n.op, ops.Conv)), None)
    join_op = ir.node(block.join).op if block.join is not None else None
    residual = isinstance(join_op, ops.RESIDUAL_JOINS)
    join = join_op.kind if join_op is not None else "none"

    def source_of(node: object) -> str:
        if node is None:
            return "x"
        return "x" if ir.inputs(node.name)[0] == block.input else "preact"  # type: ignore[attr-defined]

    args = dict(block.args)
    signature = [
        (k, f"{type(v).__name__} = {DEFAULTS[k]!r}" if k in DEFAULTS else type(v).__name__)
        for k, v in block.args
    ]
    if residual:
        signature.append(("downsample", "nn.Module | None = None"))
    signature.sort(key=lambda kv: "=" in kv[1])  # parameters with defaults last
    cls = _Class(
        name="",
        kind=block.kind,
        options=dict(block.options),
        residual=residual,
        join=join,
        plain=block.shortcut == "none",
        drop_path=any(isinstance(n.op, ops.DropPath) for n in members),
        # Without a shortcut module, name the input the block's option would feed one, so
        # identity blocks share the class of the stage's projecting first block.
        shortcut_input=source_of(shortcut[0])
        if shortcut
        else ("x" if block.projection_from == block.input or block.shortcut == "A" else "preact"),
        projection_input=source_of(gate),
        post_activation=_local(block.output, block.path) == "relu",
        gate_in="in_channels",
        gate_out="out_channels" if "out_channels" in args else "width",
        signature=signature,
        zero_init=tuple(
            _local(n.name, block.path)
            for n in members
            if isinstance(n.op, ops.BatchNorm) and n.op.zero_init
        ),
    )
    key = tuple(
        (k, tuple(v.items()) if isinstance(v, dict) else tuple(v) if isinstance(v, list) else v)
        for k, v in vars(cls).items()
        if k != "name"
    )

    positional = tuple(str(args[k]) for k in POSITIONAL if k in args)
    kwargs = [
        (k, _literal(v)) for k, v in block.args if k not in POSITIONAL and DEFAULTS.get(k, ...) != v
    ]
    if shortcut:
        modules = [_module(n.op) for n in shortcut]
        kwargs.append(
            (
                "downsample",
                modules[0] if len(modules) == 1 else Call("nn.Sequential", tuple(modules)),
            )
        )
    return key, cls, Call("", positional, tuple(kwargs))


def _literal(value: object) -> str:
    return repr(float(value)) if isinstance(value, float) else repr(value)


def _module(op: ops.Op) -> str:
    text = _env().get_template("macros.j2").module.module(op)
    return str(text)


def _call_op(op: ops.Op, var: str) -> str:
    return str(_env().get_template("macros.j2").module.call(op, var))


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


def emit_source(ir: IR, *, source: str = "<spec>") -> str:
    """Render the standalone PyTorch module for a checked IR."""
    nodes = ir.nodes()
    members: dict[str, list[Node]] = {path: [] for path in ir.blocks}
    for node in nodes:
        if node.scope in members:
            members[node.scope].append(node)
    classes: dict[tuple[object, ...], _Class] = {}
    calls: dict[str, Call] = {}
    taken: set[str] = set()
    for path, block in ir.blocks.items():
        key, cls, call = _block_view(ir, block, members[path])
        if key not in classes:
            cls.name = _class_name(cls, taken)
            taken.add(cls.name)
            classes[key] = cls
        calls[path] = Call(classes[key].name, call.args, call.kwargs)

    init_lines: list[str] = []
    forward_lines: list[str] = []
    stage_of_block = {b: s for s in ir.stages for b in s.blocks}
    previous = None
    for node in nodes:
        if node.scope:  # inside a stage: the stage's container runs it
            stage = stage_of_block.get(node.scope)
            if stage is None:
                raise IRError(f"node {node.name!r} lies outside any block the emitter knows")
            if node.name == ir.blocks[stage.blocks[-1]].output:
                seq = Call("nn.Sequential", tuple(_group([calls[b] for b in stage.blocks])))
                init_lines.append(f"self.{stage.path} = {render(seq, 8, len(stage.path) + 8)}")
                forward_lines.append(f"x = self.{stage.path}(x)")
                previous = node.name
            continue
        inputs = ir.inputs(node.name)
        if isinstance(node.op, ops.Input):
            previous = node.name
            continue
        if inputs != [previous]:
            raise IRError(f"top-level node {node.name!r} is not a chain step: inputs {inputs}")
        if node.op.is_module:
            init_lines.append(f"self.{node.name} = {_module(node.op)}")
            forward_lines.append(f"x = self.{node.name}(x)")
        else:
            forward_lines.append(f"x = {_call_op(node.op, 'x')}")
        previous = node.name

    helpers = [
        name
        for name, used in (
            ("PadShortcut", any(isinstance(n.op, ops.PadShortcut) for n in nodes)),
            ("DropPath", any(c.drop_path for c in classes.values())),
            ("gate_mix", any(c.join == "gate_mix" for c in classes.values())),
        )
        if used
    ]
    spec: ModelSpec = ir.spec
    text = (
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
            helpers=helpers,
            classes=list(classes.values()),
            model_class=class_identifier(spec.name),
            init_lines=init_lines,
            forward_lines=forward_lines,
            zero_init=[(c.name, c.zero_init) for c in classes.values() if c.zero_init],
        )
    )
    return text


def spec_hash(spec: ModelSpec) -> str:
    """First 16 hex digits of the sha256 of the validated architecture (the spec without its
    training recipe), independent of formatting and comments."""
    return hashlib.sha256(spec.model_dump_json(exclude={"train"}).encode()).hexdigest()[:16]


def _class_name(cls: _Class, taken: set[str]) -> str:
    base = CLASS_NAMES.get(cls.kind, class_identifier(cls.kind))
    if cls.options.get("preactivation"):
        base = "PreAct" + base
    if cls.plain:
        base = "Plain" + base
    elif cls.join == "gate_mix":
        base = "Gated" + base
    name, n = base, 2
    while name in taken:
        name, n = f"{base}{n}", n + 1
    return name


def build_generated(spec_or_ir: ModelSpec | IR, *, seed: int | None = None) -> nn.Module:
    """Render the source, load it as a module in memory, and return ``build_model()``."""
    import torch

    if isinstance(spec_or_ir, IR):
        ir = spec_or_ir
    else:
        from resgraph.passes import lower

        ir = lower(spec_or_ir)
    text = emit_source(ir)
    name = f"resgraph_generated_{hashlib.sha256(text.encode()).hexdigest()[:16]}"
    module = sys.modules.get(name)
    if module is None:
        module = types.ModuleType(name)
        module.__file__ = f"<{name}>"
        exec(compile(text, module.__file__, "exec"), module.__dict__)
        sys.modules[name] = module  # so its classes pickle by reference in this process
    if seed is not None:
        torch.manual_seed(seed)
    return module.build_model()
