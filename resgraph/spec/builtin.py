"""The built-in block types as block definitions shipped with resgraph: ``resgraph/blocks/
TYPE.yaml`` holds the definitions of built-in type TYPE in the language users write
(docs/blocks.md), and ``block:`` names the one a stage repeats. They are read like a spec's
``blocks:``; a definition reads the type's options (its schema's numbers and switches,
true as 1) as names. The schema classes stay the types' parameters, with their defaults and
checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml
from pydantic import BaseModel

from resgraph.spec.blocks import BlockDef
from resgraph.spec.expr import Number

LIBRARY = Path(__file__).resolve().parent.parent / "blocks"


@dataclass(frozen=True)
class Library:
    """The definitions of one built-in type."""

    block: str  # the definition a stage repeats
    blocks: dict[str, BlockDef]


def builtin_options(spec: BaseModel) -> dict[str, Number]:
    """A built-in block spec's options that a definition reads: its numbers and switches."""
    return {
        name: int(value) if isinstance(value, bool) else value
        for name, value in spec.model_dump().items()
        if isinstance(value, int | float)
    }


@cache
def builtin_library(schema: type[BaseModel]) -> Library | None:
    """The shipped definitions of the built-in type whose options ``schema`` holds, if it
    has any (``resgraph/blocks/TYPE.yaml``)."""
    path = LIBRARY / f"{schema.model_fields['type'].default}.yaml"
    if not path.is_file():
        return None
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    names = {"names": tuple(builtin_options(schema()))}
    blocks = {
        name: BlockDef.model_validate(body, context=names) for name, body in data["blocks"].items()
    }
    return Library(data["block"], blocks)
