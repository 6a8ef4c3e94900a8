"""Options shared by every command that reads a spec: ``--set``, and its shorthands
``--input-size`` and ``--outputs``.

All become overrides for :func:`resgraph.spec.load_spec` (see
:mod:`resgraph.spec.overrides`), so a value given on the command line is validated like the
same value written in the file, and a mistake in it is reported at the flag.
"""

from __future__ import annotations

import functools
import shlex
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from resgraph.spec.overrides import Override

SPEC = click.Path(dir_okay=False, path_type=Path)

SET_HELP = (
    "Override a field of the spec, validated like the file: PATH=VALUE with a field path and "
    "a YAML value (--set stages[2].repeats=8 --set block.groups=32). Repeatable; later wins."
)


def spec_overrides(*, shorthands: bool = True, what: str = "the spec") -> Callable[..., Any]:
    """Add ``--set`` (and, unless ``shorthands`` is false, ``--input-size`` and ``--outputs``)
    to a command; the command receives them as one ``overrides`` tuple, shorthands first."""

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(f)
        def command(*args: Any, **kwargs: Any) -> Any:
            size = kwargs.pop("input_size", None) if shorthands else None
            outputs = kwargs.pop("outputs", None) if shorthands else None
            sets = kwargs.pop("sets", ())
            overrides: list[str] = []
            if size is not None:
                overrides.append(input_size_override(size))
            if outputs is not None:
                names = ", ".join(n.strip() for n in outputs.split(","))
                flag = f"--outputs {shlex.quote(outputs)}"
                overrides.append(Override(f"outputs=[{names}]", flag=flag))
            overrides += [Override(s) for s in sets]
            return f(*args, overrides=tuple(overrides), **kwargs)

        command = click.option(
            "--set",
            "sets",
            multiple=True,
            metavar="PATH=VALUE",
            help=SET_HELP.replace("the spec", what),
        )(command)
        if shorthands:
            command = input_size_option(
                f"Input resolution N x N instead of {what}'s input.size "
                "(same as --set input.size=N)."
            )(command)
            command = click.option(
                "--outputs",
                default=None,
                metavar="NAMES",
                help="Make it a backbone that returns these feature maps, comma-separated "
                "(--outputs layer2,layer3,layer4; same as --set outputs=[...]).",
            )(command)
        return command

    return decorate


def input_size_option(help: str) -> Callable[..., Any]:
    """``--input-size N``, an int the schema checks like the file's ``input.size``."""
    return click.option("--input-size", type=int, default=None, metavar="N", help=help)


def input_size_override(size: int) -> Override:
    return Override(f"input.size={size}", flag=f"--input-size {size}")


def with_flags(spec: object, overrides: Sequence[str]) -> str:
    """``spec`` followed by the flags that changed it, as typed on a command line (for
    printed commands, generated headers and reports)."""
    flags = [o.flag if isinstance(o, Override) else Override(o).flag for o in overrides]
    return " ".join([str(spec), *flags])
