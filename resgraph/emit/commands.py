"""The ``build`` and ``import-weights`` commands."""

from __future__ import annotations

from pathlib import Path

import click

from resgraph.errors import ResgraphError
from resgraph.fsutil import atomic_write_text
from resgraph.passes import lower
from resgraph.spec import load_spec

SPEC = click.Path(dir_okay=False, path_type=Path)


def source_label(path: Path) -> str:
    """How a spec file is named in generated headers: relative to the current directory
    when inside it (``specs/resnet50.yaml``), else its file name. Never an absolute path,
    so output does not depend on where the checkout lies."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.name


@click.command()
@click.argument("specs", nargs=-1, required=True, type=SPEC)
@click.option(
    "-o",
    "--output",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for the generated modules (created if missing).",
)
def build(specs: tuple[Path, ...], out_dir: Path) -> None:
    """Write standalone PyTorch source for each SPEC as OUTPUT/<spec stem>.py.

    Every spec is checked before anything is written; each file is written atomically
    and other files in OUTPUT are left alone.
    """
    from resgraph.emit.source import emit_source

    stems: dict[str, Path] = {}
    for path in specs:
        if path.stem in stems and stems[path.stem] != path:
            raise ResgraphError(f"{path} and {stems[path.stem]} would both write {path.stem}.py")
        stems[path.stem] = path
    rendered: list[tuple[Path, str]] = []
    failures: list[str] = []
    for path in specs:
        try:
            text = emit_source(lower(load_spec(path)), source=source_label(path))
        except ResgraphError as exc:
            failures.append(str(exc))
            continue
        rendered.append((out_dir / f"{path.stem}.py", text))
    if failures:
        raise ResgraphError("\n".join(failures) + "\nnothing was written")
    if out_dir.exists() and not out_dir.is_dir():
        raise ResgraphError(f"{out_dir}: exists and is not a directory")
    for target, text in rendered:
        try:
            atomic_write_text(target, text)
        except OSError as exc:
            raise ResgraphError(f"{target}: cannot write: {exc.strerror}") from None
        click.echo(f"wrote {target}")


@click.command("import-weights")
@click.argument("spec", type=SPEC)
@click.argument("checkpoint", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the converted state_dict (.pt).",
)
@click.option("--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
def import_weights(spec: Path, checkpoint: Path, output: Path, force: bool) -> None:
    """Convert CHECKPOINT (another implementation of SPEC's network) to resgraph's names.

    Tensors are matched by their order in the forward computation and their shapes; on
    the first disagreement nothing is written and the place is reported.
    """
    import torch

    from resgraph.emit.graph_module import build_module
    from resgraph.emit.weights import convert_state_dict, read_checkpoint
    from resgraph.fsutil import atomic_write_bytes

    if output.exists() and not force:
        raise ResgraphError(f"{output}: exists; pass --force to overwrite it")
    ir = lower(load_spec(spec))
    state = convert_state_dict(ir, read_checkpoint(checkpoint), str(checkpoint))
    build_module(ir).load_state_dict(state, strict=True)  # proves it loads
    import io

    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(output, buffer.getvalue())
    click.echo(
        f"wrote {output} ({len(state)} tensors, {sum(v.numel() for v in state.values()):,} values)"
    )
