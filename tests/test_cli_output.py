"""Errors as the command line prints them: one ``error:`` line per problem; output paths
that cannot be written say so the same way in every command (fsutil.OutputError)."""

from __future__ import annotations

import errno
import json

import pytest

from helpers import CIFAR20, invoke
from resgraph.errors import (
    LocatedError,
    OutputError,
    Problem,
    ResgraphError,
    SourceLoc,
    error_lines,
)
from resgraph.fsutil import atomic_write_text, check_output, output_error


def test_error_lines_prefix_every_problem_and_only_problems():
    exc = LocatedError(
        [Problem("bad width", SourceLoc("a.yaml", 3, 5, "stages[0].width")), Problem("x: gone")],
        note="nothing was written",
    )
    assert error_lines(exc) == [
        "error: a.yaml:3:5: stages[0].width: bad width",
        "error: x: gone",
        "nothing was written",
    ]
    assert error_lines(exc, where="a.yaml")[1] == "error: a.yaml: x: gone"
    assert error_lines(ResgraphError("first\nhow to fix it")) == ["error: first", "how to fix it"]


@pytest.mark.parametrize(
    "command",
    [
        lambda out: ["schema", "-o", out],
        lambda out: ["render", "specs/resnet34.yaml", "--format", "dot", "-o", out],
    ],
    ids=["schema", "render"],
)
def test_output_below_a_file(tmp_path, monkeypatch, command):
    from helpers import ROOT

    monkeypatch.chdir(ROOT)
    (tmp_path / "afile").write_text("keep")
    out = tmp_path / "afile" / "x.json"
    result = invoke(*command(out))
    assert result.exit_code == 1
    assert (
        result.stderr
        == f"error: {out}: cannot write: {tmp_path / 'afile'} is a file, not a folder\n"
    )
    assert (tmp_path / "afile").read_text() == "keep"


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (errno.EACCES, "permission denied"),
        (errno.EROFS, "the file system is read-only"),
        (errno.ENOSPC, "no space left on the device"),
    ],
)
def test_schema_into_an_unwritable_place_keeps_the_old_file(tmp_path, monkeypatch, code, reason):
    out = tmp_path / "schema.json"
    out.write_text("old")

    def fail(*args: object, **kwargs: object) -> None:
        raise OSError(code, "raw")

    monkeypatch.setattr("os.replace", fail)
    result = invoke("schema", "-o", out)
    assert result.exit_code == 1
    assert result.stderr == f"error: {out}: cannot write: {reason}\n"
    assert out.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["schema.json"]


def test_schema_writes_json(tmp_path):
    out = tmp_path / "deep" / "schema.json"
    result = invoke("schema", "-o", out)
    assert result.exit_code == 0 and result.stdout == f"wrote {out}\n"
    assert json.loads(out.read_text())["title"] == "ModelSpec"


def test_check_output_and_output_error(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(OutputError, match=r"cannot write: .*/f is a file, not a folder"):
        check_output(tmp_path / "f" / "g" / "h.txt")
    with pytest.raises(OutputError, match="cannot write: it is a folder"):
        check_output(tmp_path)
    check_output(tmp_path / "new" / "file.txt")  # missing folders are fine: they are made
    error = output_error(tmp_path / "x", OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert str(error) == f"{tmp_path / 'x'}: cannot write: disk quota exceeded"
    assert error.path == str(tmp_path / "x") and error.reason == "disk quota exceeded"
    assert isinstance(error, OSError) and error.strerror == "disk quota exceeded"
    with pytest.raises(OutputError, match="is a file, not a folder"):
        atomic_write_text(tmp_path / "f" / "x.txt", "x")


def test_build_lists_every_failing_spec_as_error_lines(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(CIFAR20.replace("num_classes: 10", "num_classes: 0"))
    b.write_text(CIFAR20.replace("shortcut: A", "shortcut: E"))
    result = invoke("build", a, b, "-o", tmp_path / "out")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"error: {a}:3:14: num_classes:")
    assert lines[1].startswith(f"error: {b}:6:11: shortcut:")
    assert lines[2:] == ["nothing was written"]
