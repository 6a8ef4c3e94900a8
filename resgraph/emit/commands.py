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
@click.option("-o", "--output", "out_dir", required=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Directory for the generated modules (created if missing).")
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
