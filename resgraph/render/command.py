"""The ``resgraph render`` command: choose the file and format, draw, write atomically."""

from __future__ import annotations

from pathlib import Path

import click
import graphviz

from resgraph.errors import ResgraphError
from resgraph.options import SPEC, spec_overrides
from resgraph.render.picture import LEVELS, MAX_BLOCK_NODES, MAX_OP_NODES, build, default_level

FORMATS = ("svg", "png", "pdf", "dot")
EXTENSIONS = {".svg": "svg", ".png": "png", ".pdf": "pdf", ".dot": "dot", ".gv": "dot"}
SLOW_LAYOUT_NODES = 1500  # dot lays out 550 ops in 0.5 s, 3,300 in a minute (2 cores)


class RenderError(ResgraphError):
    """The picture cannot be written (no ``dot`` program, ``dot`` failed)."""


def _target(spec: Path, output: Path | None, fmt: str | None) -> tuple[Path, str]:
    """The file to write and its format, from -o and --format (checked before any work)."""
    if output is None:
        fmt = fmt or "svg"
        return Path(f"{spec.stem}.{fmt}"), fmt
    ext = output.suffix.lower()
    if ext not in EXTENSIONS:
        if fmt:  # the format is given: the file may be named anything
            return output, fmt
        raise click.BadParameter(
            f"cannot tell the format from {str(output)!r}: the file name must end in one of "
            f"{', '.join(EXTENSIONS)}, or give --format",
            param_hint="'-o' / '--output'",
        )
    if fmt and EXTENSIONS[ext] != fmt:
        raise click.BadParameter(
            f"{fmt!r} does not match the extension of {str(output)!r} ({ext}); "
            f"drop --format or name the file *.{fmt}",
            param_hint="'--format'",
        )
    return output, EXTENSIONS[ext]


def picture_format(output: Path, param_hint: str) -> str:
    """The format of a picture named ``output``, from its extension (a usage error naming
    ``param_hint`` if there is none of EXTENSIONS)."""
    fmt = EXTENSIONS.get(output.suffix.lower())
    if fmt is None:
        raise click.BadParameter(
            f"cannot tell the format from {str(output)!r}: the file name must end in one of "
            f"{', '.join(EXTENSIONS)}",
            param_hint=param_hint,
        )
    return fmt


def draw(
    source: str,
    fmt: str,
    target: Path,
    redo: str = "resgraph render ... --format dot -o OTHER.dot",
    ask: str = "--format dot",
) -> None:
    """Write ``source`` as ``fmt`` to ``target`` atomically, running ``dot`` unless fmt is
    dot. Without ``dot`` the DOT source goes next to ``target`` (unless a file of that name
    exists: it is never replaced) and RenderError says why; ``ask`` is the option that asks
    for the DOT source, ``redo`` the command that writes it elsewhere."""
    from resgraph.fsutil import atomic_write_bytes, atomic_write_text

    if fmt == "dot":
        atomic_write_text(target, source)
        return
    try:
        data = graphviz.pipe("dot", fmt, source.encode("utf-8"), quiet=True)
    except graphviz.ExecutableNotFound:
        fallback = target.with_suffix(".dot")
        if fallback.exists():
            kept = (
                f"{fallback} exists and was left alone, so the DOT source was not saved; "
                f"write it with: {redo}"
            )
        else:
            atomic_write_text(fallback, source)
            kept = (
                f"The DOT source was written to {fallback}; draw it later with: "
                f"dot -T{fmt} {fallback} -o {target}"
            )
        raise RenderError(
            f"cannot draw {target}: graphviz's 'dot' program is not installed (or not on PATH).\n"
            "Install graphviz -- Debian/Ubuntu: sudo apt-get install graphviz; macOS: brew "
            f"install graphviz -- and run again, or ask for {ask}.\n" + kept
        ) from None
    except graphviz.CalledProcessError as exc:
        stderr = (exc.stderr or b"").decode("utf-8", "replace").strip()
        raise RenderError(f"dot failed to draw {target}: {stderr or exc}") from None
    atomic_write_bytes(target, data)


HELP = f"""Draw the network of SPEC with graphviz and print the path of the picture.

    \b
    Levels:
      op     one node per op (its label, e.g. '3x3 conv, 64, /2'), edges labelled with
             tensor shapes CxHxW; stages, blocks, stem and head drawn as boxes around them
      block  one node per residual block: type, widths, stride, shortcut kind
      stage  one node per stage: block type x repeats, widths, output size

    \b
    Default level: the most detailed one that stays readable --
      op     if the op graph has at most {MAX_OP_NODES} nodes (counted folded only with --fold),
      block  else, if there are at most {MAX_BLOCK_NODES} block nodes (counted folded unless
             --no-fold),
      stage  otherwise.
    So ResNet-34 (125 ops) is drawn per op, ResNet-50 per block, and CIFAR ResNet-1202
    (4,208 ops, 600 blocks, 5 block nodes once folded) per folded block.

    \b
    Shortcuts follow the paper's Figure 3: identity solid, projection (B, C, D) dashed,
    zero-padding (A) dotted; at block level the node's border shows it. Gate paths of
    highway joins are orange, concatenated inputs green. A legend says so in the picture.
    """


@click.command("render", help=HELP)
@click.argument("spec", type=SPEC)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File to write [default: SPEC's stem and the format, in the current "
    "directory, e.g. resnet34.svg].",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default=None,
    help="Picture format [default: from -o's extension, else svg]. 'dot' writes "
    "the DOT source and needs no graphviz program.",
)
@click.option(
    "--level",
    type=click.Choice(LEVELS),
    default=None,
    help="Detail: one node per op, per residual block, or per stage [default: see above].",
)
@click.option(
    "--stats/--no-stats",
    default=False,
    show_default=True,
    help="Show parameters and multiply-adds (MACs) on every node.",
)
@click.option(
    "--fold/--no-fold",
    default=None,
    help="Fold runs of identical consecutive blocks of a stage into one node "
    "marked 'x N' [default: on at block level, off at op level].",
)
@spec_overrides()
def render_cmd(
    spec: Path,
    output: Path | None,
    fmt: str | None,
    level: str | None,
    stats: bool,
    fold: bool | None,
    overrides: tuple[str, ...],
) -> None:
    """Draw SPEC with graphviz (see HELP)."""
    from resgraph.fsutil import check_output
    from resgraph.passes import lower
    from resgraph.spec import load_spec

    target, fmt = _target(spec, output, fmt)
    check_output(target)
    ir = lower(load_spec(spec, overrides))
    level = level or default_level(ir, fold)
    graph, shown = build(ir, level, stats=stats, fold=fold)
    if fmt != "dot" and shown > SLOW_LAYOUT_NODES:
        click.echo(
            f"note: laying out {shown} nodes; dot may take a minute or more "
            "(--fold or a coarser --level draws fewer)",
            err=True,
        )
    draw(graph.source, fmt, target)
    click.echo(str(target))
    click.echo(f"{ir.spec.name}: {level} level, {shown} nodes", err=True)
