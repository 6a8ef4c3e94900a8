"""``resgraph render`` as a command: an explicit format names any file, the no-graphviz
fallback never replaces a file, unwritable outputs are one ``error:`` line; and the style
table covers every op."""

from __future__ import annotations

import errno

import pytest
from click.testing import CliRunner

from helpers import ROOT
from resgraph import load_spec, lower, ops
from resgraph.cli import main
from resgraph.render import to_dot
from resgraph.render.style import op_style

R34 = str(ROOT / "specs" / "resnet34.yaml")


def render(*args: object) -> object:
    return CliRunner().invoke(main, ["render", *map(str, args)])


def test_an_explicit_format_writes_a_file_without_extension(tmp_path):
    out = tmp_path / "noext"
    result = render(R34, "--format", "dot", "-o", out, "--level", "stage")
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith('digraph "ResNet-34"')
    assert result.stdout.strip() == str(out)


def test_an_explicit_format_without_dot_falls_back_beside_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    out = tmp_path / "noext"
    result = render(R34, "--format", "svg", "-o", out, "--level", "stage")
    assert result.exit_code == 1
    assert (tmp_path / "noext.dot").read_text().startswith("digraph")
    assert not out.exists()


def test_the_fallback_never_replaces_an_existing_dot_file(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no dot program
    mine = tmp_path / "r34.dot"
    mine.write_text("digraph mine { a -> b }\n")
    result = render(R34, "-o", tmp_path / "r34.svg")
    assert result.exit_code == 1
    assert "'dot' program is not installed" in result.stderr
    assert f"{mine} exists and was left alone" in result.stderr
    assert "written to" not in result.stderr
    assert mine.read_text() == "digraph mine { a -> b }\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r34.dot"]


@pytest.mark.parametrize("fmt", ["svg", "dot"])
def test_output_below_a_file_is_one_clear_error(tmp_path, fmt):
    (tmp_path / "afile").write_text("keep")
    out = tmp_path / "afile" / f"x.{fmt}"
    result = render(R34, "-o", out)
    assert result.exit_code == 1
    assert (
        result.stderr
        == f"error: {out}: cannot write: {tmp_path / 'afile'} is a file, not a folder\n"
    )
    assert (tmp_path / "afile").read_text() == "keep"


def test_an_unwritable_folder_is_one_clear_error(tmp_path, monkeypatch):
    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr("tempfile.mkstemp", denied)
    out = tmp_path / "x.dot"
    result = render(R34, "-o", out)
    assert result.exit_code == 1
    assert result.stderr == f"error: {out}: cannot write: permission denied\n"


def _op_classes() -> list[type]:
    found, todo = [], [ops.Op]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        found.append(cls)
    return found


def _op_kinds() -> set[str]:
    return {c.kind for c in _op_classes() if "kind" in vars(c)}


def test_every_op_kind_has_its_own_fill():
    """Each op states its fill next to the rest of its description; render reads it there."""
    kinds = _op_kinds()
    assert {"conv", "batchnorm", "add", "concat", "input"} <= kinds
    classes = [c for c in _op_classes() if "kind" in vars(c)]
    assert all(c.fill.startswith("#") or c.fill == "white" for c in classes)


def test_the_op_fill_is_what_the_op_level_draws(monkeypatch):
    ir = lower(load_spec(ROOT / "specs" / "cifar_resnet20.yaml"))
    monkeypatch.setattr(ops.Conv, "fill", "#123456")
    source = to_dot(ir, "op")
    convs = [n.name for n in ir.nodes() if n.op.kind == "conv"]
    for line in source.splitlines():
        name = line.strip().split(" ", 1)[0].strip('"')
        if name in convs and " -> " not in line:
            assert 'fillcolor="#123456"' in line, line
    assert source.count("#123456") == len(convs)
    assert op_style(ops.ReLU()) == {"fillcolor": ops.ReLU.fill}
    assert op_style(ops.Add())["shape"] == "ellipse"
