"""Front-end commands: validate, summary, schema, lower. None of them imports torch."""

from __future__ import annotations

import json
from pathlib import Path

import click

from resgraph.errors import ResgraphError, error_lines
from resgraph.options import SPEC, spec_overrides
from resgraph.passes import PASS_NAMES, lower
from resgraph.spec import load_spec
from resgraph.units import binary_bytes, si


@click.command()
@click.argument("specs", nargs=-1, required=True, type=SPEC)
@spec_overrides(what="every spec")
def validate(specs: tuple[Path, ...], overrides: tuple[str, ...]) -> None:
    """Check SPECS: schema, lowering, shapes and joins. Exit 0 if all are valid, else 1."""
    failed = 0
    for path in specs:
        try:
            ir = lower(load_spec(path, overrides))
        except ResgraphError as exc:
            failed += 1
            for line in error_lines(exc, where=str(path)):
                click.echo(line, err=True)
            continue
        params = sum(n.params for n in ir.nodes())
        click.echo(f"{path}: ok ({ir.spec.name}, {params:,} parameters)")
    if failed:
        raise click.exceptions.Exit(1)


@click.command()
@click.argument("spec", type=SPEC)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option(
    "--per-layer", is_flag=True, help="One row per op instead of per stage (with --json: add them)."
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 1 << 20),
    default=None,
    help="Batch size for the activation-memory estimate [default: the spec's train batch].",
)
@click.option(
    "--fused",
    is_flag=True,
    help="Count the parameters of the inference network with each BatchNorm folded into "
    "the conv before it (as `export --fuse-bn` makes it).",
)
@spec_overrides()
def summary(
    spec: Path,
    as_json: bool,
    per_layer: bool,
    batch_size: int | None,
    fused: bool,
    overrides: tuple[str, ...],
) -> None:
    """Parameters, multiply-adds and shapes per stage (like the paper's Table 1)."""
    from resgraph.summary import summarize

    model = load_spec(spec, overrides)
    info = summarize(model, batch_size or model.train.batch_size, fused=fused)
    if as_json:
        click.echo(json.dumps(info.to_json(per_layer=per_layer), indent=2))
        return
    click.echo(f"{info.name}: {info.canonical_name}")
    if info.fused is not None:
        kept = len(info.fused.kept)
        click.echo(
            f"fused (inference) parameters: {info.fused.folded} BatchNorm folded into the conv "
            f"before them, {kept} kept (not right after a conv); "
            f"{info.fused.params_unfused:,} parameters unfused"
        )
    click.echo(
        f"input {info.input}; MACs = multiply-adds per example of the conv and fc layers "
        "(pools, norms, activations, filters and joins not counted); FLOPs = 2 x MACs\n"
    )
    if per_layer:
        rows = [(r.name, r.op, r.output, f"{r.params:,}", si(r.macs)) for r in info.layers]
        header = ("layer", "op", "output", "params", "MACs")
    else:
        rows = [(r.name, r.blocks, r.output, f"{r.params:,}", si(r.macs)) for r in info.stages]
        header = ("stage", "blocks", "output", "params", "MACs")
    rows.append(("total", "", "", f"{info.params:,}", si(info.macs)))
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(5)]
    for i, row in enumerate([header, *rows]):
        if i == len(rows):
            click.echo("  ".join("-" * w for w in widths))
        click.echo(
            "  ".join(
                str(c).ljust(w) if j < 3 else str(c).rjust(w)
                for j, (c, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )
    click.echo(
        f"\nparams {info.params:,}   MACs {info.macs:,} ({si(info.macs)})   "
        f"FLOPs {info.flops:,} ({si(info.flops)})"
    )
    click.echo(
        f"training activations at batch {info.batch_size}: about "
        f"{binary_bytes(info.activation_bytes)} (float32, kept for backward)"
    )
    if info.backbone:
        click.echo("\nbackbone: forward returns a dict of feature maps (no head)")
        for f in info.feature_info:
            shape = "x".join(map(str, f.shape))
            click.echo(f"  {f.name:8} {f.channels:>5} channels  stride {f.stride:>2}  {shape}")


@click.command()
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write to FILE instead of stdout.",
)
def schema(output: Path | None) -> None:
    """Print the JSON Schema of the spec language (for editors)."""
    from resgraph.fsutil import atomic_write_text, check_output
    from resgraph.spec.file_schema import file_schema

    if output is not None:
        check_output(output)
    text = json.dumps(file_schema(), indent=2, sort_keys=True) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        atomic_write_text(output, text)
        click.echo(f"wrote {output}")


@click.command("lower")
@click.argument("spec", type=SPEC)
@click.option(
    "--dump-after",
    type=click.Choice(PASS_NAMES),
    default="analyze",
    show_default=True,
    help="Print the IR after this pass.",
)
@spec_overrides()
def lower_cmd(spec: Path, dump_after: str, overrides: tuple[str, ...]) -> None:
    """Print the IR of SPEC, one node per line (a debugging aid)."""
    lower(load_spec(spec, overrides), dump_after=dump_after, dump=click.echo)
