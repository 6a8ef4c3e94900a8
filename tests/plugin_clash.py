"""A plugin module for the tests that takes a built-in op's kind: loading it is refused."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from resgraph.ops import Op


@dataclass(frozen=True)
class MyConv(Op):
    """An op that claims the kind of resgraph's own conv."""

    kind: ClassVar[str] = "conv"
    call: ClassVar[str] = "{0}"
