"""The built-in block types as block definitions shipped with resgraph: ``resgraph/blocks/
TYPE.yaml`` holds the definitions of built-in type TYPE in the language users write
(docs/blocks.md), and ``block:`` names the one a stage repeats. They are read like a spec's
``blocks:``; a definition reads the type's options (its schema's numbers and switches,
true as 1) as names. The schema classes stay the types' parameters, with their defaults and
checks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel

from resgraph.spec.blocks import BlockDef
from resgraph.spec.expr import Number

LIBRARY = Path(__file__).resolve().parent.parent / "blocks"
# what a built-in type's definitions read besides its options: whether the stage lists its
# convs' widths, and the widths (width1, ...: listed, or the type's rule; at most 16 convs)
BLOCK_NAMES = ("listed", *(f"width{k}" for k in range(1, 17)))


@dataclass(frozen=True)
class Library:
    """The definitions of one built-in type."""

    block: str  # the definition a stage repeats
    blocks: dict[str, BlockDef]


def builtin_options(spec: BaseModel) -> dict[str, Number]:
    """A built-in block spec's options as the names its definitions read (:func:`_flat`)."""
    return dict(_fields(type(spec), spec, ""))


def option_names(schema: type[BaseModel]) -> tuple[str, ...]:
    """Every name the options of ``schema`` can give, whether or not a spec sets them."""
    return tuple(name for name, _ in _fields(schema, None, ""))


def _fields(model: type[BaseModel], value: Any, prefix: str) -> Iterator[tuple[str, Number]]:
    for name, field in model.model_fields.items():
        inner = getattr(value, name) if value is not None else None
        if name != "type":
            yield from _flat(field.annotation, inner, f"{prefix}_{name}" if prefix else name)
        elif prefix:  # a mapping's type: a choice (attention_se); a block's own is no option
            yield from _flat(field.annotation, inner, prefix)


def _flat(tp: Any, value: Any, name: str) -> Iterator[tuple[str, Number]]:
    """An option as numbers: a number or a switch (true 1) under its name, a choice
    ``join: gate`` as one switch per choice (``join_add`` 0, ``join_gate`` 1), an option
    that is a mapping as its own options after its name and ``_`` (``attention_ratio``)
    with its ``type`` as a choice (``attention_se``); an option left out, or null, reads 0."""
    origin, args = get_origin(tp), get_args(tp)
    if origin is Annotated:
        yield from _flat(args[0], value, name)
    elif origin in (Union, UnionType):
        for member in (a for a in args if a is not type(None)):
            yield from _flat(member, value if _fits(member, value) else None, name)
    elif origin is Literal:
        for choice in args:
            yield f"{name}_{choice}", int(value == choice)
    elif isinstance(tp, type) and issubclass(tp, BaseModel):
        yield from _fields(tp, value, name)
    else:  # int, float, bool
        yield name, 0 if value is None else int(value) if isinstance(value, bool) else value


def _fits(member: Any, value: Any) -> bool:
    """Whether ``value`` is of union member ``member``."""
    if get_origin(member) is Annotated:
        return _fits(get_args(member)[0], value)
    if get_origin(member) in (Union, UnionType):
        return any(_fits(a, value) for a in get_args(member))
    return isinstance(member, type) and isinstance(value, member)


@cache
def builtin_library(schema: type[BaseModel]) -> Library:
    """The shipped definitions of the built-in type whose options ``schema`` holds
    (``resgraph/blocks/TYPE.yaml``)."""
    path = LIBRARY / f"{schema.model_fields['type'].default}.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    names = {"names": (*option_names(schema), *BLOCK_NAMES)}
    blocks = {
        name: BlockDef.model_validate(body, context=names) for name, body in data["blocks"].items()
    }
    return Library(data["block"], blocks)
