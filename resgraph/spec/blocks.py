"""Block types as data: a block is a small graph of registry ops written in the spec.

```yaml
blocks:
  fire:
    description: Squeeze, then 1x1 and 3x3 expands side by side (Iandola et al. 2016).
    params: {squeeze: 0.25}
    widths: {mid: "make_divisible(width * squeeze, 8)"}
    ops:
      - conv1: {op: conv, out_channels: mid, kernel: 1}
      - bn1: norm
      - relu1: relu
      - expand1: {op: conv, out_channels: width // 2, kernel: 1, stride: stride}
      - expand3: {op: conv, in: relu1, out_channels: width // 2, kernel: 3, stride: stride,
                  padding: 1}
      - cat: {op: concat, in: [expand1, expand3]}
      - bn2: {op: norm, zero_init: true}
```

Each op is one registry entry of :mod:`resgraph.ops` named by its ``kind`` (``norm`` is the
spec's normalisation layer), with its fields as keys; ``in`` names its inputs (the op
before it by default; ``input`` is the block's input). A field that describes the input
(``in_channels``, ``channels``, ``in_features``) is taken from it unless written. Values
are numbers or expressions (:mod:`resgraph.spec.expr`) over the block's names: ``in_channels``
(the block input's channels), ``width`` (the stage's width), ``stride`` (the stage's stride on
its first block, else 1), the ``params`` (set per stage as ``block: {type: fire, squeeze:
0.5}``) and the ``widths``, each computed from the names before it. The last op is the
branch; ``join`` says how it meets the block's input (``add``, a highway ``gate``,
``concat``, or ``none``), where the shortcut option of the stage applies as for every block.

Nothing here runs code: op names come from the registry, expressions from a small grammar.
"""

from __future__ import annotations

import builtins
import dataclasses
import difflib
import keyword
import re
from collections.abc import Mapping
from functools import cache
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails

from resgraph import ops
from resgraph.spec.base import StrictModel
from resgraph.spec.expr import FUNCTIONS, ExprError, Number, evaluate, parse

BUILTIN_TYPES = ("basic", "bottleneck", "dense")
RESERVED_TYPES = (*BUILTIN_TYPES, "dense_layer", "transition", "defined")
# every block's own names; norm_activates: 1 where the spec's norm brings its own
# nonlinearity (EvoNorm-S0, FRN), so that a definition leaves its ReLUs out there
STANDARD_NAMES = ("in_channels", "width", "stride", "index", "norm_activates")
INPUT = "input"  # the block input, as an op's `in`
NORM = "norm"  # the spec's norm layer, as an op's `op`
INFERRED_FIELDS = ("in_channels", "channels", "in_features")  # taken from the op's input
SET_BY_LOWERING = ("zero_init",)  # norm fields a definition sets only through `zero_init`
MAX_OPS = 256
# the names lowering gives the ops it adds around a defined block's branch
WRAPPER_NAMES = ("add", "relu", "concat", "drop_path", "gate", "gate_sigmoid", "gate_mix")
NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
COMPONENT = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,39}|[0-9]{1,4}")
# What an attribute of a generated block (``self.NAME``) may not be called: torch.nn.Module's
# own attributes and methods (a test keeps the list complete).
MODULE_ATTRIBUTES = frozenset(
    """T_destination add_module apply bfloat16 buffers call_super_init children compile cpu
    cuda double dump_patches eval extra_repr float forward get_buffer get_extra_state
    get_parameter get_submodule half ipu load_state_dict modules mtia named_buffers
    named_children named_modules named_parameters parameters register_backward_hook
    register_buffer register_forward_hook register_forward_pre_hook
    register_full_backward_hook register_full_backward_pre_hook
    register_load_state_dict_post_hook register_load_state_dict_pre_hook register_module
    register_parameter register_state_dict_post_hook register_state_dict_pre_hook
    requires_grad_ set_extra_state set_submodule share_memory state_dict to to_empty train
    training type xpu zero_grad""".split()
)


@cache
def reserved_names() -> frozenset[str]:
    """What a parameter (a constructor argument of the generated class) may not be called:
    the names the class's code reads besides its parameters (the file's imports, resgraph's
    helpers, Python's builtins), the block's own names, and the attributes above. Read from
    the op registry when first asked (``resgraph.ops`` imports this package)."""
    return frozenset(
        {*STANDARD_NAMES, *FUNCTIONS, "x", "self", "downsample", "survival", "repeat"}
        | ops.FILE_NAMES
        | {c.helper for c in ops.op_classes() if c.helper and c.__module__ == ops.__name__}
        | set(dir(builtins))
        | MODULE_ATTRIBUTES
    )


OpValue = bool | int | float | str


def block_ops() -> dict[str, type[ops.Op]]:
    """The ops a definition may name, by kind: every registry entry of :mod:`resgraph.ops`
    but the network's own ends and the shortcut options' modules, which the compiler places.
    Worked out once per set of op classes (lowering asks for every op of every block; a
    plugin adds classes)."""
    return _block_ops(tuple(ops.op_classes()))


@cache
def _block_ops(classes: tuple[type[ops.Op], ...]) -> dict[str, type[ops.Op]]:
    found: dict[str, type[ops.Op]] = {}
    for cls in classes:
        kind = cls.__dict__.get("kind")
        if isinstance(kind, str) and kind not in ("input", "output", "pad_shortcut"):
            found.setdefault(kind, cls)  # the first op of a kind keeps it
    return dict(sorted(found.items()))


def op_fields(kind: str) -> dict[str, dataclasses.Field[Any]]:
    """The fields an op entry of ``kind`` may set (``norm``: only ``zero_init``)."""
    if kind == NORM:
        return {f.name: f for f in dataclasses.fields(ops.BatchNorm) if f.name == "zero_init"}
    return {f.name: f for f in dataclasses.fields(block_ops()[kind])}


def required_fields(kind: str) -> list[str]:
    """The fields an entry of ``kind`` must write: no default and not taken from the input."""
    return [
        name
        for name, f in op_fields(kind).items()
        if f.default is dataclasses.MISSING and name not in INFERRED_FIELDS
    ]


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


class OpEntry(StrictModel):
    """One op of a block: ``- NAME: KIND`` or ``- NAME: {op: KIND, in: INPUTS, when:
    CONDITION, FIELD: VALUE, ...}``, NAME its module path in the block, KIND a registry op
    (docs/blocks.md lists them) or ``norm``, ``in`` the ops it reads (by default the one
    before it; ``input`` is the block's input), ``when`` a condition for it to exist, and
    its fields numbers or expressions."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True, populate_by_name=True)

    name: str = Field(description="Module path of the op inside the block, e.g. 'conv1'.")
    op: str = Field(description="The op's registry kind ('conv', 'relu', ...) or 'norm'.")
    inputs: list[str] | None = Field(
        None, alias="in", description="Names of its inputs (default: the op before it)."
    )
    when: bool | int | str | None = Field(
        None,
        description="A condition (e.g. 'index == 0', 'stride > 1'): where it is false the op "
        "is left out and its name stands for its first input.",
    )
    role: Literal["main", "attention"] = Field(
        "main", description="'attention': drawn as channel attention (SE, ECA) in pictures."
    )

    @model_validator(mode="before")
    @classmethod
    def _from_mapping(cls, value: Any) -> Any:
        """``{conv1: conv}`` / ``{conv1: {op: conv, ...}}`` -> one mapping with its name."""
        if isinstance(value, dict) and len(value) == 1 and "op" not in value:
            ((name, body),) = value.items()
            body = {"op": body} if isinstance(body, str) else body
            if isinstance(body, dict):
                return {"name": name, **body}
        return value

    @field_validator("inputs", mode="before")
    @classmethod
    def _one_input(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @classmethod
    def __get_pydantic_json_schema__(cls, core: Any, handler: Any) -> dict[str, Any]:
        """The form a file writes: one key, the op's name, whose value is its kind or a
        mapping of ``op``, ``in``, ``when`` and the op's fields."""
        own = [k for k, cls in block_ops().items() if cls.__module__ == ops.__name__]
        # any name: a plugin may add ops; resgraph's own are offered to editors as examples
        names = {"type": "string", "examples": [*own, NORM]}
        body = {
            "type": "object",
            "properties": {
                "op": {**names, "description": cls.model_fields["op"].description},
                "in": {
                    "description": cls.model_fields["inputs"].description,
                    "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
                },
                "when": {
                    "description": cls.model_fields["when"].description,
                    "type": ["string", "boolean", "integer"],
                },
                "role": {
                    "description": cls.model_fields["role"].description,
                    "enum": ["main", "attention"],
                },
            },
            "required": ["op"],
            "additionalProperties": {"type": ["string", "number", "boolean"]},
        }
        return {
            "title": cls.__name__,
            "description": " ".join((cls.__doc__ or "").split()),
            "type": "object",
            "properties": {},  # its one key is the op's name, which the file chooses
            "minProperties": 1,
            "maxProperties": 1,
            "additionalProperties": {"anyOf": [names, body]},
        }

    @property
    def args(self) -> dict[str, OpValue]:
        """The op fields the entry writes."""
        return dict(self.model_extra or {})


class RepeatEntry(StrictModel):
    """``- {repeat: COUNT, index: i, ops: [...]}``: the ops written once per ``i`` in 0 ..
    COUNT-1, with ``{EXPR}`` in their names and inputs filled in (``convs.{i}``, ``sum{i -
    1}``); an input ``NAME{*}`` is every op made from that name, in order."""

    repeat: int | str = Field(description="How many times: a number or an expression.")
    index: str = Field("i", description="The name that counts the repetitions, from 0.")
    ops: list[OpEntry] = Field(min_length=1, max_length=MAX_OPS, description="The ops repeated.")


def _entry_tag(value: Any) -> str:
    return (
        "repeat"
        if isinstance(value, dict | RepeatEntry)
        and ("repeat" in value if isinstance(value, dict) else True)
        else "op"
    )


Entry = Annotated[
    Annotated[OpEntry, Tag("op")] | Annotated[RepeatEntry, Tag("repeat")],
    Discriminator(_entry_tag),
]


class Variant(StrictModel):
    """Keys of a definition that change for the blocks where ``when`` holds."""

    when: bool | int | str = Field(description="The condition, over the block's names.")
    join: Literal["add", "gate", "concat", "none"] | None = None
    post_activation: bool | None = None
    shortcut_from: str | None = None


class BlockDef(StrictModel):
    """A block type written as a graph of registry ops (see the module text)."""

    description: str = Field("", max_length=2000, description="What the block is, for readers.")
    class_name: str | None = Field(
        None,
        pattern=r"^[A-Z][A-Za-z0-9_]{0,39}$",
        description="The name of its class in generated source (default: from the type's "
        "name, e.g. 'res2net' -> 'Res2net').",
    )
    params: dict[str, int | float] = Field(
        default_factory=dict,
        description="The type's options and their defaults; a stage sets them beside 'type'.",
    )
    widths: dict[str, int | str] = Field(
        default_factory=dict,
        description="Named expressions, in order, over in_channels, width, stride, index, the "
        "params and the widths before them; the ops use them by name.",
    )
    join: Literal["add", "gate", "concat", "none"] = Field(
        "add",
        description="How the branch (the last op) meets the block input: 'add' (ResNet), "
        "'gate' (highway), 'concat' (input first, as DenseNet), 'none' (the branch is the "
        "block: it may join a shortcut of its own, named 'downsample', and the head adds no "
        "BN-ReLU after it).",
    )
    post_activation: bool = Field(
        True, description="A ReLU after the join (He et al. 2015); false for pre-activation."
    )
    shortcut_from: str = Field(
        INPUT,
        description="Where a projection shortcut reads: 'input', or an op (a pre-activation "
        "block's first ReLU, He et al. 2016).",
    )
    ops: list[Entry] = Field(
        min_length=1, max_length=MAX_OPS, description="The ops in order; the last is the branch."
    )
    constants: list[str] = Field(
        default_factory=list,
        description="Names whose values generated code writes as numbers instead of taking "
        "them as constructor parameters (a dropout's p); a choice 'A if C else B' whose "
        "condition reads only constants and a repeat's index is made when the block is built.",
    )
    variants: list[Variant] = Field(
        default_factory=list,
        description="Changes of join, post_activation and shortcut_from for the blocks where "
        "a condition holds, in order: '- {when: preactivation, post_activation: false}'.",
    )
    parameters: list[str] | None = Field(
        None,
        description="The order of the generated class's constructor parameters ('width{*}': "
        "width1, width2, ...); those not listed follow in the usual order.",
    )
    defaults: dict[str, int | float] = Field(
        default_factory=dict,
        description="Defaults of constructor parameters (besides stride's 1 and the params').",
    )
    stage_opener: str | None = Field(
        None,
        description="A type defined beside this one whose block opens every stage with a "
        "stride above 1 and takes the stride; the stage's own blocks then run at stride 1 "
        "(DenseNet's transition, Huang et al. 2017).",
    )

    @field_validator("params", "widths")
    @classmethod
    def _names(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        for name in value:
            if not (info.field_name == "widths" and name == "width"):  # it may be redefined
                _check_param_name(name)
        return value

    def chosen(self, values: Mapping[str, Number]) -> Variant:
        """join, post_activation and shortcut_from for a block with these names' values:
        the definition's, changed by every variant whose condition holds."""
        out = Variant(
            when=True,
            join=self.join,
            post_activation=self.post_activation,
            shortcut_from=self.shortcut_from,
        )
        for i, variant in enumerate(self.variants):
            if _holds(variant.when, dict(values), ("variants", i)):
                changes = variant.model_dump(exclude={"when"}, exclude_none=True)
                out = out.model_copy(update=changes)
        return out

    @model_validator(mode="after")
    def _well_formed(self, info: ValidationInfo) -> BlockDef:
        """Op kinds, fields and expressions; raises the first problem with its place inside
        the definition (``ops[2].conv1.kernel``) for the caller to locate. Names and inputs
        are checked once the ops are written out for a block (:func:`expand`). A validation
        context's ``names`` are options the definition reads besides its params (a built-in
        type's)."""
        try:
            check_definition(self, (info.context or {}).get("names", ()))
        except DefinitionError as exc:
            detail = InitErrorDetails(
                type="value_error", loc=exc.where, input=None, ctx={"error": str(exc)}
            )
            raise ValidationError.from_exception_data(type(self).__name__, [detail]) from None
        return self

    def entries(self) -> list[tuple[OpEntry, tuple[str | int, ...], str | None]]:
        """Every op entry with its place in the definition and its repeat's index name."""
        out: list[tuple[OpEntry, tuple[str | int, ...], str | None]] = []
        for i, entry in enumerate(self.ops):
            if isinstance(entry, RepeatEntry):
                for j, inner in enumerate(entry.ops):
                    out.append((inner, ("ops", i, "ops", j, inner.name), entry.index))
            else:
                out.append((entry, ("ops", i, entry.name), None))
        return out

    def zero_inits(self) -> bool:
        """Whether an op of the branch asks to be zeroed by zero_init_residual."""
        return any(entry.args.get("zero_init") is True for entry, _, _ in self.entries())


class DefinitionError(ValueError):
    """A problem inside one block definition, at ``where`` (a path below the definition)."""

    def __init__(self, where: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.where = where


def _check_param_name(name: str) -> None:
    if not NAME.fullmatch(name) or keyword.iskeyword(name):
        raise ValueError(
            f"{name!r} cannot name a parameter: use lower-case letters, digits and _, starting "
            f"with a letter, and no Python keyword"
        )
    if name in reserved_names():
        raise ValueError(
            f"{name!r} cannot name a parameter: generated code already means something by it "
            f"(a block's own name, an import, a Python builtin or a torch.nn.Module attribute)"
        )


def check_definition(bdef: BlockDef, given: tuple[str, ...] = ()) -> None:
    """Everything about a definition that needs no numbers: raises :class:`DefinitionError`.
    ``given``: names of options it reads besides its params."""
    known = set(STANDARD_NAMES) | set(bdef.params) | set(given)
    for name, text in bdef.widths.items():
        _check_value(("widths", name), text, known)
        known.add(name)
    for i, name in enumerate(bdef.constants):
        if name not in known:
            raise DefinitionError(
                ("constants", i),
                f"{name!r} is not a name of the block{_suggest(name, sorted(known))} (known "
                f"here: {', '.join(sorted(known))})",
            )
    kinds = list(block_ops()) + [NORM]
    for i, entry in enumerate(bdef.ops):
        if isinstance(entry, RepeatEntry):
            try:
                _check_param_name(entry.index)
            except ValueError as exc:
                raise DefinitionError(("ops", i, "index"), str(exc)) from None
            _check_expression(("ops", i, "repeat"), entry.repeat, known)
    for entry, at, index in bdef.entries():
        scope = known | ({index} if index else set())
        for template in [entry.name, *(entry.inputs or [])]:
            _check_template(at, template, scope)
        if entry.op not in kinds:
            hint = _suggest(entry.op, kinds) or " (an op written in Python loads with --plugin)"
            raise DefinitionError((*at, "op"), f"unknown op {entry.op!r}{hint}")
        if entry.when is not None and not isinstance(entry.when, bool):
            _check_expression((*at, "when"), entry.when, scope)
        _check_fields(at, entry, scope)
    _check_shortcut(bdef, ("shortcut_from",), bdef.shortcut_from)
    for i, variant in enumerate(bdef.variants):
        if not isinstance(variant.when, bool):
            _check_expression(("variants", i, "when"), variant.when, known)
        if variant.shortcut_from is not None:
            _check_shortcut(bdef, ("variants", i, "shortcut_from"), variant.shortcut_from)
    unknown = [(("parameters", i), n) for i, n in enumerate(bdef.parameters or [])]
    unknown += [(("defaults", n), n) for n in bdef.defaults]
    for at, name in unknown:
        if name not in known and not name.endswith("{*}"):  # width{*}: width1, width2, ...
            raise DefinitionError(
                at, f"{name!r} is not a name of the block{_suggest(name, sorted(known))}"
            )


def _check_shortcut(bdef: BlockDef, at: tuple[str | int, ...], op: str) -> None:
    """``op`` is the input or an op's name, or one a name with ``{EXPR}`` parts can make."""
    names = [e.name for e, _, _ in bdef.entries()]
    made = [re.compile("[0-9]+".join(re.escape(p) for p in _BRACED.split(n)[::2])) for n in names]
    if op != INPUT and not any(m.fullmatch(op) for m in made):
        raise DefinitionError(at, f"{op!r} is not an op{_suggest(op, names)}")


def _check_value(at: tuple[str | int, ...], text: OpValue, known: set[str]) -> None:
    """An expression, or one with ``{EXPR}`` parts (filled in for each block: only they
    can be checked before)."""
    if isinstance(text, str) and _BRACED.search(text):
        _check_template(at, text, known)
    else:
        _check_expression(at, text, known)


BRACED = re.compile(r"\{([^{}]*)\}")  # an {EXPR} part of a template
_BRACED = BRACED


def _check_template(at: tuple[str | int, ...], template: str, known: set[str]) -> None:
    for part in _BRACED.findall(template):
        if part.strip() != "*":
            _check_expression(at, part, known)


def _check_fields(at: tuple[str | int, ...], entry: OpEntry, known: set[str]) -> None:
    fields = op_fields(entry.op)
    for key, value in entry.args.items():
        if key not in fields:
            raise DefinitionError(
                (*at, key),
                f"op {entry.op!r} has no field {key!r}{_suggest(key, list(fields))} "
                f"(its fields: {', '.join(fields) or 'none'})",
            )
        kind = str(fields[key].type)
        if kind == "bool" or key in SET_BY_LOWERING:
            if not isinstance(value, bool):
                raise DefinitionError((*at, key), f"must be true or false, got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, int | float | str):
            raise DefinitionError((*at, key), f"must be a number or an expression, got {value!r}")
        else:
            _check_value((*at, key), value, known)
    missing = [name for name in required_fields(entry.op) if name not in entry.args]
    if missing:
        raise DefinitionError(at, f"op {entry.op!r} needs {', '.join(map(repr, missing))}")


def _check_expression(at: tuple[str | int, ...], text: OpValue, known: set[str]) -> None:
    try:
        expr = parse(text)  # type: ignore[arg-type]
    except ExprError as exc:
        raise DefinitionError(at, str(exc)) from None
    unknown = sorted(expr.names - known)
    if unknown:
        raise DefinitionError(
            at,
            f"unknown name {unknown[0]!r}{_suggest(unknown[0], sorted(known))} (known here: "
            f"{', '.join(sorted(known))})",
        )


# -- writing the ops out for one block ---------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Written:
    """One op of one block: its entry, its name and inputs with the templates filled in
    (inputs resolved past left-out ops), the repeat's index value, and its place."""

    entry: OpEntry
    name: str
    inputs: tuple[str, ...]
    loop: dict[str, int]
    where: tuple[str | int, ...]


Expanded = tuple[list[Written], str, str]
# definitions lowered lately (by id, held so that the id stays theirs) and what lowering
# remembers about them: their ops written out, by the values that decide them, and more
_REMEMBERED: dict[int, tuple[BlockDef, dict[object, Any]]] = {}
MAX_REMEMBERED = 64
MAX_REMEMBERED_EACH = 4096


def remembered(bdef: BlockDef) -> dict[object, Any]:
    """What lowering remembers about definition ``bdef`` (the blocks of a network mostly
    repeat one definition with the same values): kept for the last few definitions."""
    held = _REMEMBERED.get(id(bdef))
    if held is None or held[0] is not bdef:
        if len(_REMEMBERED) >= MAX_REMEMBERED:
            _REMEMBERED.pop(next(iter(_REMEMBERED)))
        held = _REMEMBERED[id(bdef)] = (bdef, {})
    if len(held[1]) > MAX_REMEMBERED_EACH:  # a shipped definition serves every spec
        held[1].clear()
    return held[1]


def expand(bdef: BlockDef, values: dict[str, Number]) -> Expanded:
    """The ops of one block with these names' values: repeats written out, conditions
    applied. Returns them, the name of the branch's last value, and where the shortcut
    reads. Raises :class:`DefinitionError` (names, inputs, unused ops). Remembered for the
    values of the names that decide it."""
    memo = remembered(bdef)
    if "deciding" not in memo:
        memo["deciding"] = _deciding_names(bdef)
    key = (
        "expand",
        tuple(values),
        *((n, type(values[n]), values[n]) for n in memo["deciding"] if n in values),
    )
    if key not in memo:
        memo[key] = _expand(bdef, values)
    return memo[key]  # type: ignore[no-any-return]


def _deciding_names(bdef: BlockDef) -> tuple[str, ...]:
    """The names that the ops' names, inputs and conditions, the repeat counts and the
    variants' conditions read: all that writing the ops out depends on."""
    texts: list[OpValue | None] = [v.when for v in bdef.variants]
    texts += [e.repeat for e in bdef.ops if isinstance(e, RepeatEntry)]
    for entry, _, _ in bdef.entries():
        texts.append(entry.when)
        for template in [entry.name, *(entry.inputs or [])]:
            texts += [part for part in _BRACED.findall(template) if part.strip() != "*"]
    read: set[str] = set()
    for text in texts:
        if text is not None and not isinstance(text, bool):
            read |= parse(text).names
    return tuple(sorted(read))


def _expand(bdef: BlockDef, values: dict[str, Number]) -> Expanded:
    made: list[Written] = []
    alias: dict[str, str] = {INPUT: INPUT}  # every name so far -> the value it stands for
    skeletons: dict[str, list[str]] = {}  # "act{}" -> "act0", "act1", ...
    taken: set[str] = set()  # the names of ops kept (a left-out op's may be taken again)
    last, scope = INPUT, set(values)
    for entry, at, loop in _instances(bdef, values):
        env = {**values, **loop} if loop else values
        name = _fill(entry.name, env, at)
        kept = entry.when is None or _holds(entry.when, env, at)
        own = bdef.join == "none"
        _check_name(at, name, taken if kept else set(), scope, own_shortcut=own)
        wanted = (entry.inputs or [last])[: None if kept else 1]  # left out: its first input
        sources = tuple(
            s for template in wanted for s in _sources(template, env, alias, skeletons, made, at)
        )
        if kept:
            _check_arity(at, entry, sources)
        skeletons.setdefault(_BRACED.sub("{}", entry.name), []).append(name)
        if kept:
            made.append(Written(entry, name, sources, loop, at))
            taken.add(name)
        elif name in taken:  # never in place of an op that was kept: the next op reads
            name = f"{name} ({len(alias)})"  # its input through a name no entry can write
        alias[name] = name if kept else sources[0]
        last = name
    branch = alias[last]
    chosen = bdef.chosen(values).shortcut_from or INPUT
    shortcut = alias.get(chosen, chosen)
    _check_used(made, branch, shortcut)
    return made, branch, shortcut


def _instances(
    bdef: BlockDef, values: dict[str, Number]
) -> list[tuple[OpEntry, tuple[str | int, ...], dict[str, int]]]:
    out: list[tuple[OpEntry, tuple[str | int, ...], dict[str, int]]] = []
    for i, entry in enumerate(bdef.ops):
        if isinstance(entry, OpEntry):
            out.append((entry, ("ops", i, entry.name), {}))
            continue
        count = _integer(entry.repeat, values, ("ops", i, "repeat"))
        if not 0 <= count <= MAX_OPS:
            raise DefinitionError(
                ("ops", i, "repeat"), f"repeats {count} times: 0 to {MAX_OPS} allowed"
            )
        for k in range(count):
            for j, inner in enumerate(entry.ops):
                out.append((inner, ("ops", i, "ops", j, inner.name), {entry.index: k}))
    if len(out) > MAX_OPS:
        raise DefinitionError(("ops",), f"{len(out)} ops in one block: at most {MAX_OPS}")
    return out


def whole(text: OpValue, values: Mapping[str, Number]) -> int:
    """The value of expression ``text``, which must be a whole number; raises ExprError."""
    value = evaluate(parse(text), values)  # type: ignore[arg-type]
    if isinstance(value, bool) or value != int(value):
        raise ExprError(f"{text} is {value:g} here, not a whole number")
    return int(value)


def fill(template: str, values: Mapping[str, Number]) -> str:
    """A name template with each ``{EXPR}`` replaced by its whole value: ``convs.{i}`` ->
    ``convs.2`` (a repeat's op names here, the stage and block names of ``names:``)."""
    return _BRACED.sub(lambda m: str(whole(m.group(1), values)), template)


def _integer(text: OpValue, values: dict[str, Number], at: tuple[str | int, ...]) -> int:
    try:
        return whole(text, values)
    except ExprError as exc:
        raise DefinitionError(at, str(exc)) from None


def _holds(
    condition: bool | int | str, values: dict[str, Number], at: tuple[str | int, ...]
) -> bool:
    if isinstance(condition, bool):
        return condition
    try:
        return bool(evaluate(parse(condition), values))
    except ExprError as exc:
        raise DefinitionError((*at, "when"), str(exc)) from None


def _fill(template: str, values: dict[str, Number], at: tuple[str | int, ...]) -> str:
    if "{" not in template:
        return template
    try:
        return fill(template, values)
    except ExprError as exc:
        raise DefinitionError(at, str(exc)) from None


def _sources(
    template: str,
    values: dict[str, Number],
    alias: dict[str, str],
    skeletons: dict[str, list[str]],
    made: list[Written],
    at: tuple[str | int, ...],
) -> list[str]:
    """The values an input names: one op, or with ``{*}`` every op made from that name."""
    if "{*}" in template.replace(" ", ""):
        names = skeletons.get(_BRACED.sub("{}", template), [])
        if not names:
            raise DefinitionError((*at, "in"), f"no op was made from {template!r} before this one")
        return [alias[n] for n in names]
    name = _fill(template, values, at)
    if name not in alias:
        why = "is not an op before this one: ops run in the order written"
        raise DefinitionError((*at, "in"), f"input {name!r} {why}{_suggest(name, sorted(alias))}")
    return [alias[name]]


def _check_name(
    at: tuple[str | int, ...],
    name: str,
    defined: set[str],
    scope: set[str],
    own_shortcut: bool = False,
) -> None:
    """``own_shortcut``: the compiler adds no shortcut (join 'none'), so an op may take the
    shortcut's name, 'downsample' (a block that joins its own shortcut, as timm's)."""
    parts = name.split(".")
    bad = [p for p in parts if not COMPONENT.fullmatch(p) or keyword.iskeyword(p)]
    if parts[0] in MODULE_ATTRIBUTES or parts[0] in scope:
        raise DefinitionError(
            at,
            f"{name!r} cannot name an op: the block's class already has an attribute "
            f"{parts[0]!r} (a torch.nn.Module attribute, or one of the block's names)",
        )
    taken = (INPUT,) if own_shortcut else ("downsample", INPUT)
    if bad or parts[0] in taken or parts[0].isdigit():
        raise DefinitionError(
            at,
            f"{name!r} cannot name an op: use dotted identifiers ('conv1', 'se.fc1', "
            f"'convs.0') that do not start with 'downsample' (unless the join is 'none'), "
            f"'input' or a number",
        )
    if name in WRAPPER_NAMES:
        raise DefinitionError(
            at,
            f"{name!r} names what every block gets around its branch (the join, the ReLU "
            f"after it, stochastic depth, a highway gate: {', '.join(WRAPPER_NAMES)}): "
            f"choose another name",
        )
    if name in defined:
        raise DefinitionError(at, f"two ops are called {name!r}")
    if any(d.startswith(name + ".") or name.startswith(d + ".") for d in defined):
        raise DefinitionError(at, f"{name!r} and another op would be one module inside another")


MAX_FIELD = 1 << 16  # the largest whole number an op field may hold
MAY_BE_ZERO = ("padding", "start")  # whole fields that may be 0; the others start at 1


def field_problem(name: str, kind: str, value: Number) -> str | None:
    """Why ``value`` cannot be op field ``name`` of type ``kind`` ("int" or "float"), if it
    cannot: whole numbers from 1 (0 for padding and a slice's start) to 65,536, fractions
    (a dropout's p) from 0 to 1."""
    if kind == "int":
        least = 0 if name in MAY_BE_ZERO else 1
        if not least <= value <= MAX_FIELD:
            return f"{name} is {value} here: it must be from {least} to {MAX_FIELD:,}"
    elif not 0 <= value <= 1:
        return f"{name} is {value:g} here: it must be from 0 to 1"
    return None


def _check_arity(at: tuple[str | int, ...], entry: OpEntry, sources: tuple[str, ...]) -> None:
    """As many inputs as the op takes, each once (the IR has one edge per pair of ops)."""
    arity = 1 if entry.op == NORM else block_ops()[entry.op].arity
    twice = sorted({s for s in sources if sources.count(s) > 1})
    if twice:
        raise DefinitionError((*at, "in"), f"reads {twice[0]!r} twice: an op takes a value once")
    if arity is None and len(sources) < 2:
        raise DefinitionError((*at, "in"), f"op {entry.op!r} joins two or more inputs, got 1")
    if arity is not None and len(sources) != arity:
        raise DefinitionError(
            (*at, "in"),
            f"op {entry.op!r} takes {arity} input{'s' if arity != 1 else ''}, got {len(sources)}",
        )


def _check_used(made: list[Written], branch: str, shortcut: str) -> None:
    """Every op but the branch's last feeds another (or the shortcut)."""
    read = {branch, shortcut}
    for w in made:
        read.update(w.inputs)
    for w in made:
        if w.name not in read:
            raise DefinitionError(
                w.where,
                f"the output of {w.name!r} is never used: only the last op may end the "
                f"block (give a later op `in: {w.name}`, or remove it)",
            )


class DefinedBlockSpec(BaseModel):
    """A stage's use of a type defined under ``blocks``: its ``type`` and options."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)
    TAG: ClassVar[str] = "defined"  # its tag in the spec's block union

    type: str = Field(
        description="A type defined under the spec's 'blocks'.",
        json_schema_extra={"not": {"enum": list(BUILTIN_TYPES)}},
    )

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    def values(self, bdef: BlockDef) -> dict[str, Number]:
        """The definition's params with this use's options over them."""
        return {**bdef.params, **self.options}
