"""``resgraph show``: a spec as the compiler sees it, its base chain merged in."""

from __future__ import annotations

from pathlib import Path

import click
import yaml

from resgraph.spec import load_spec


@click.command("show")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
def show(spec: Path) -> None:
    """Print SPEC as YAML after merging its 'base' chain (the spec is validated first)."""
    model = load_spec(spec)
    # The merged node tree keeps each value's style (flow or block, quoting); comments are gone.
    text = yaml.serialize(model._source.root, Dumper=yaml.SafeDumper)
    click.echo(text.rstrip("\n"))
