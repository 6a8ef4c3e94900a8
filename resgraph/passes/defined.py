"""Lowering of every block type, each a definition (:mod:`resgraph.spec.blocks`): the spec's
own, or a built-in type's shipped in ``resgraph/blocks/`` (:mod:`resgraph.spec.builtin`). Its
ops are written out for one block, each built from its registry entry with its fields
evaluated for that block, at the definition's line (a built-in's: the stage's). A field
written as a plain expression of the block's names (``width // 2``) is bound to them, so the
emitted class takes those names as constructor parameters; others (``make_divisible(...)``)
and the definition's constants are written as their values.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

from resgraph.errors import Problem, SourceLoc, SpecError
from resgraph.ir import BlockArg, Role
from resgraph.ops import CONVS, Conv, Op, ShapeMismatch
from resgraph.passes.scope import Bind, BlockCtx, Lowered, Scope, norm_op
from resgraph.spec.blocks import (
    BRACED,
    INFERRED_FIELDS,
    INPUT,
    NORM,
    BlockDef,
    DefinedBlockSpec,
    DefinitionError,
    RepeatEntry,
    Variant,
    Written,
    block_ops,
    expand,
    field_problem,
    fill,
    op_fields,
    remembered,
)
from resgraph.spec.builtin import builtin_library, builtin_options
from resgraph.spec.expr import Expr, ExprError, Number, evaluate, parse, python_text, substitute
from resgraph.spec.schema import AnyBlockSpec, ModelSpec


@dataclass(frozen=True)
class Definition:
    """A block type as a definition, with the options one stage gives it."""

    kind: str  # the IR block's kind: the type's name
    bdef: BlockDef
    values: dict[str, Number]  # the options' values
    params: dict[str, Number | None]  # the options, in order, with their constructor defaults
    at: tuple[str, ...] | None  # where the spec writes it; None: shipped with resgraph


def definitions(spec: ModelSpec, block: AnyBlockSpec) -> tuple[Definition, Definition | None]:
    """The definition a stage of ``block`` repeats, and the one that opens a stage with a
    stride above 1, if its type has one: the spec's own, or a built-in type's (whose options
    are constructor parameters without defaults)."""
    if isinstance(block, DefinedBlockSpec):
        library = spec.blocks or {}

        def one(kind: str) -> Definition:
            bdef = library[kind]
            given = {k: v for k, v in block.options.items() if k in bdef.params}
            return Definition(
                kind, bdef, {**bdef.params, **given}, dict(bdef.params), ("blocks", kind)
            )

        opener = library[block.type].stage_opener
        return one(block.type), one(opener) if opener else None
    shipped, values = builtin_library(type(block)), builtin_options(block)

    def builtin(kind: str) -> Definition:
        return Definition(kind, shipped.blocks[kind], values, dict.fromkeys(values), None)

    opener = shipped.blocks[shipped.block].stage_opener
    return builtin(shipped.block), builtin(opener) if opener else None


def lower_defined(s: Scope, x: str, c: BlockCtx, *, definition: Definition) -> Lowered:
    """A block type as a definition (:mod:`resgraph.spec.blocks`): its ops in order, each
    built from its registry entry with its fields evaluated for this block, at the
    definition's line. A field written as a plain expression of the block's names (``width //
    2``) is bound to them, so the emitted class takes those names as constructor parameters;
    others (``make_divisible(...)``) and the definition's constants are written as values."""
    plan = _plan(s, definition, c)
    made = {INPUT: x}
    for step in plan.steps:
        scope = replace(s, loc=_locate(s, definition.at, step.where))
        inputs = (made[i] for i in step.inputs)
        made[step.name] = scope.add(step.name, step.op, *inputs, role=step.role, bind=step.bind)
    join = None if plan.chosen.join == "none" else plan.chosen.join
    return Lowered(
        kind=definition.kind,
        args=plan.args,
        branch=made[plan.last],
        out_channels=c.in_channels + plan.out if join == "concat" else plan.out,
        projection_from=made[plan.shortcut],
        post_activation=bool(plan.chosen.post_activation),
        join=join,  # type: ignore[arg-type]
        out_arg=plan.out_expr or str(plan.out),
    )


@dataclass(frozen=True)
class _Step:
    """One op of a block, to be added under the block's path."""

    name: str
    op: Op
    inputs: tuple[str, ...]  # earlier steps' names, or INPUT
    role: Role | None
    bind: Bind
    where: tuple[str | int, ...]  # its place in the definition


@dataclass(frozen=True)
class _Plan:
    """A block's ops and what lowering hands on about it, before any node is added."""

    steps: tuple[_Step, ...]
    last: str
    shortcut: str
    out: int  # the branch's channels
    out_expr: str | None  # and their expression over the constructor's parameters
    chosen: Variant
    args: tuple[BlockArg, ...]


def _plan(s: Scope, d: Definition, c: BlockCtx) -> _Plan:
    """The ops of one block, remembered for the values of every name the definition reads
    (a network's blocks mostly share them: a stage's differ in their index alone)."""
    names = _Names(s, d, c)
    values, memo = names.values, remembered(d.bdef)
    if ("reading", tuple(values)) not in memo:
        memo["reading", tuple(values)] = _reading(d.bdef, values)
    key = ("plan", tuple(values), c.zero_init, s.ir.spec.norm, s.ir.spec.conv)
    key += tuple((n, type(values[n]), values[n]) for n in memo["reading", tuple(values)])
    if key not in memo:
        memo[key] = _new_plan(names, d.bdef, c)
    return memo[key]  # type: ignore[no-any-return]


def _new_plan(names: _Names, bdef: BlockDef, c: BlockCtx) -> _Plan:
    """The block's widths, its ops written out and built, and its constructor parameters."""
    for name, text in bdef.widths.items():
        where = ("widths", name)
        names.define(name, names.value(names.read(text, {}, where), where, whole=True))
    try:
        written, last, shortcut = expand(bdef, names.values)
        chosen = bdef.chosen(names.values)
    except DefinitionError as exc:
        raise names.fail(exc.where, str(exc)) from None
    made: dict[str, tuple[int, str | None]] = {INPUT: (c.in_channels, "in_channels")}
    steps = []
    for w in written:
        inputs = [(n, *made[n]) for n in w.inputs]
        op, bind = _defined_op(names, w, inputs, c)
        role: Role | None = "attention" if w.entry.role == "attention" else None
        steps.append(_Step(w.name, op, w.inputs, role, bind, w.where))
        made[w.name] = _channels_out(op, bind, inputs)
    out, out_expr = made[last]
    return _Plan(tuple(steps), last, shortcut, out, out_expr, chosen, names.args())


def _reading(bdef: BlockDef, values: dict[str, Number]) -> tuple[str, ...]:
    """The names of ``values`` that the definition reads anywhere (with ``in_channels``,
    which its first op reads): in expressions, conditions and templates, including the
    names a template makes (``width{i + 1}``: width1, width2, ...)."""
    texts: list[object] = [*bdef.widths.values(), *bdef.constants]
    texts += [v.when for v in bdef.variants]
    texts += [e.repeat for e in bdef.ops if isinstance(e, RepeatEntry)]
    for entry, _, _ in bdef.entries():
        texts += [entry.when, entry.name, *(entry.inputs or []), *entry.args.values()]
    read = {"in_channels"}
    for text in texts:
        if isinstance(text, str):
            for prefix in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\{", text):
                read.update(n for n in values if re.fullmatch(re.escape(prefix) + "[0-9]+", n))
            text = text.replace("{*}", "")
            for part in BRACED.findall(text):
                read |= _names_in(part)
            read |= _names_in(BRACED.sub("0", text))
    return tuple(sorted(read & values.keys()))


def _names_in(text: str) -> set[str]:
    """The names an expression, or an op's name or input, reads (a dotted op name: none)."""
    try:
        return set(parse(text).names)
    except ExprError:
        return set()


def _locate(s: Scope, at: tuple[str, ...] | None, where: tuple[str | int, ...]) -> SourceLoc | None:
    """Where a definition writes ``where``; a shipped one's: the stage's location."""
    smap = s.ir.spec._source
    return smap.locate((*at, *where)) if smap and at else s.loc


class _Names:
    """A defined block's names (in_channels, width, stride, its params and widths): their
    values, which of them the emitted class takes as constructor parameters, and where the
    definition is written."""

    def __init__(self, s: Scope, d: Definition, c: BlockCtx) -> None:
        self.s, self.at = s, d.at
        self.values: dict[str, Number] = {
            "in_channels": c.in_channels,
            "stride": c.stride,
            "index": c.index,
            "norm_activates": int(norm_op(s.ir.spec, 1).activates),
        }
        if c.width is not None:
            self.values["width"] = c.width
        if c.widths:  # a built-in type's conv widths, listed by the stage or computed
            self.values.update({f"width{k}": w for k, w in enumerate(c.widths, start=1)})
            self.values["listed"] = int(c.listed)
        self.values.update(d.values)
        self.params = d.params
        self.bdef = d.bdef
        self.constants = {n: self.values[n] for n in d.bdef.constants if n in self.values}
        self.widths: list[str] = []
        self.used: set[str] = {"in_channels"}

    def define(self, name: str, value: Number) -> None:
        self.values[name] = value
        if name not in self.widths:
            self.widths.append(name)
        if name in self.bdef.constants:
            self.constants[name] = value

    def read(self, text: str | Number, loop: dict[str, int], where: tuple[str | int, ...]) -> Expr:
        """Expression ``text`` with its ``{EXPR}`` parts filled in and the constants and a
        repeat's index put in."""
        try:
            if isinstance(text, str) and "{" in text:
                text = fill(text, {**self.values, **loop})
            return substitute(parse(text), {**self.constants, **loop})
        except ExprError as exc:
            raise self.fail(where, str(exc)) from None

    def value(self, expr: Expr, where: tuple[str | int, ...], whole: bool) -> Number:
        """``expr``'s value here; ``whole``: it must be an integer."""
        try:
            value = evaluate(expr, self.values)
        except ExprError as exc:
            raise self.fail(where, str(exc)) from None
        if whole and isinstance(value, bool):  # a condition: 1 or 0
            value = int(value)
        if isinstance(value, bool) or not math.isfinite(value):
            raise self.fail(where, f"{expr} is {value} here, not a number")
        if whole:
            if value != int(value):
                raise self.fail(
                    where,
                    f"{expr} is {value:g} here, not a whole number: round it (//, round, "
                    f"floor, make_divisible)",
                )
            return int(value)
        return value

    def fail(self, where: tuple[str | int, ...], message: str) -> SpecError:
        """A mistake in the definition that shows for this block, at the definition's key."""
        loc = _locate(self.s, self.at, where)
        path = loc.path if loc is not None else ""
        return SpecError(Problem(f"{message} (in {self.s.prefix})", loc, path or None))

    def args(self) -> tuple[BlockArg, ...]:
        """The constructor parameters: in_channels, then the names the ops read, in the
        order they were defined."""
        defaults = {"stride": 1, **{n: v for n, v in self.params.items() if v is not None}}
        defaults.update(self.bdef.defaults)
        usual = ["in_channels", "width", *self.widths, "stride", *self.params]
        numbered = [n for n in self.values if re.fullmatch(r"width[0-9]+", n)]
        numbered.sort(key=lambda n: int(n[5:]))  # width1, width2, ..., width10
        order = [
            n for p in self.bdef.parameters or [] for n in (numbered if p == "width{*}" else [p])
        ]
        order += [n for n in dict.fromkeys([*usual, *numbered]) if n not in order]
        return tuple(
            BlockArg(n, self.values[n], defaults.get(n))
            for n in order
            if n in self.used and n in self.values
        )


def _defined_op(
    names: _Names, w: Written, inputs: list[tuple[str, int, str | None]], c: BlockCtx
) -> tuple[Op, Bind]:
    """The op of one written-out entry, and the fields it binds to the block's names (a
    repeat's index is a number by then)."""
    entry = w.entry
    if entry.op == NORM:
        zero = bool(entry.args.get("zero_init")) and c.zero_init
        op: Op = norm_op(names.s.ir.spec, inputs[0][1], zero)
        return op, {"channels": inputs[0][2]} if inputs[0][2] else {}
    cls, fields = block_ops()[entry.op], op_fields(entry.op)
    if cls is Conv:  # a definition's conv is the spec's conv (plain or standardised)
        cls = CONVS[names.s.ir.spec.conv]
    values: dict[str, object] = {}
    bind: Bind = {}
    for name, field in fields.items():
        if name in entry.args:
            raw = entry.args[name]
            if isinstance(raw, bool):
                values[name] = raw and (name != "zero_init" or c.zero_init)
                continue
            expr = names.read(raw, w.loop, (*w.where, name))
            whole = str(field.type) == "int"
            values[name] = names.value(expr, (*w.where, name), whole)
            problem = field_problem(name, str(field.type), values[name])  # type: ignore[arg-type]
            if problem:
                raise names.fail((*w.where, name), problem)
            if expr.names and expr.simple:
                bind[name] = python_text(expr)
                names.used.update(expr.names)
        elif name in INFERRED_FIELDS:
            values[name] = inputs[0][1]
            if inputs[0][2]:
                bind[name] = inputs[0][2]
    return cls(**values), bind  # type: ignore[arg-type]


def _channels_out(
    op: Op, bind: Bind, inputs: list[tuple[str, int, str | None]]
) -> tuple[int, str | None]:
    """The channels an op puts out (its shape rule on a large map; the shape pass checks
    the real sizes later), and their expression over the block's names (the op's rule)."""
    try:
        channels = op.infer([(ch, _PROBE, _PROBE) for _, ch, _ in inputs])[0]
    except ShapeMismatch:
        channels = inputs[0][1]  # the shape pass reports it, at the op
    exprs = [e for _, _, e in inputs]
    text = op.channels_text(bind, exprs)
    if text == exprs[0] and channels != inputs[0][1]:
        text = None  # the op changed the channels after all (a shape error follows)
    return channels, text


_PROBE = 1024  # the height and width of the map an op's channels are worked out on
