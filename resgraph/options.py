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


ORDER = "resgraph.spec_flags"  # ctx.meta key: the spec flags' names, in command-line order


class SpecFlag(click.Option):
    """``--set``, ``--input-size`` or ``--outputs``: repeatable, and remembered in the order
    they were typed (the parser records each occurrence; this keeps that record on the
    context), so that the later of two flags on one field wins whatever their kinds."""

    def add_to_parser(self, parser: Any, ctx: click.Context) -> None:
        super().add_to_parser(parser, ctx)
        if ORDER in ctx.meta:  # another spec flag wrapped this parser already
            return
        ctx.meta[ORDER] = []
        parse = parser.parse_args

        def parse_args(args: list[str]) -> Any:
            opts, rest, order = parse(args=args)
            ctx.meta[ORDER] = [p.name for p in order if isinstance(p, SpecFlag)]
            return opts, rest, order

        parser.parse_args = parse_args


def spec_overrides(*, shorthands: bool = True, what: str = "the spec") -> Callable[..., Any]:
    """Add ``--set`` (and, unless ``shorthands`` is false, ``--input-size`` and ``--outputs``)
    to a command; the command receives them as one ``overrides`` tuple, in the order they
    were given on the command line."""

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(f)
        def command(*args: Any, **kwargs: Any) -> Any:
            names = ("input_size", "outputs", "sets") if shorthands else ("sets",)
            given = {name: list(kwargs.pop(name)) for name in names}
            order = click.get_current_context().meta.get(ORDER, [])
            make = {
                "input_size": input_size_override,
                "outputs": outputs_override,
                "sets": Override,
            }
            overrides = [make[name](given[name].pop(0)) for name in order if given.get(name)]
            return f(*args, overrides=tuple(overrides), **kwargs)

        command = click.option(
            "--set",
            "sets",
            cls=SpecFlag,
            multiple=True,
            metavar="PATH=VALUE",
            help=SET_HELP.replace("the spec", what),
        )(command)
        if shorthands:
            command = click.option(
                "--input-size",
                cls=SpecFlag,
                type=int,
                multiple=True,
                metavar="N",
                help=f"Input resolution N x N instead of {what}'s input.size "
                "(same as --set input.size=N).",
            )(command)
            command = click.option(
                "--outputs",
                cls=SpecFlag,
                multiple=True,
                metavar="NAMES",
                help="Make it a backbone that returns these feature maps, comma-separated "
                "(--outputs layer2,layer3,layer4; same as --set outputs=[...]).",
            )(command)
        return command

    return decorate


def outputs_override(outputs: str) -> Override:
    names = ", ".join(n.strip() for n in outputs.split(","))
    return Override(f"outputs=[{names}]", flag=f"--outputs {shlex.quote(outputs)}")


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


FOLDER = click.Path(file_okay=False, path_type=Path)


def folder_option(dest: str, help: str, **kwargs: Any) -> Callable[..., Any]:
    """``-o/--output FOLDER``, passed to the command as ``dest``."""
    return click.option("-o", "--output", dest, type=FOLDER, help=help, **kwargs)


def bounded_option(
    *decls: str, lo: float, hi: float, default: float | None = None, help: str | None = None
) -> Callable[..., Any]:
    """An option that takes a number from ``lo`` to ``hi`` (a real where the default is one,
    else an integer), its default shown in the help if it has one."""
    kind = click.FloatRange if isinstance(default, float) else click.IntRange
    shown = default is not None
    return click.option(*decls, type=kind(lo, hi), default=default, show_default=shown, help=help)
