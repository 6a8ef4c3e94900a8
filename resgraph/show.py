"""``resgraph show``: a spec as the compiler sees it, its base chain merged in."""

from __future__ import annotations

from pathlib import Path

import click
import yaml

from resgraph.options import SPEC, spec_overrides
from resgraph.spec import load_spec


@click.command("show")
@click.argument("spec", type=SPEC)
@spec_overrides()
def show(spec: Path, overrides: tuple[str, ...]) -> None:
    """Print SPEC as YAML after merging its 'base' chain and any --set (the spec is
    validated first)."""
    model = load_spec(spec, overrides)
    # The merged node tree keeps each value's style (flow or block, quoting); comments are gone.
    text = yaml.serialize(model._source.root, Dumper=yaml.SafeDumper)
    click.echo(text.rstrip("\n"))
