"""`resgraph build` and `import-weights` as a user meets them: all or nothing, nothing of the
user's overwritten, one-line errors."""

from __future__ import annotations

from pathlib import Path

import torch
from click.testing import CliRunner

import resgraph
from helpers import CIFAR20
from resgraph.cli import main


def _invoke(*args: object):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, [str(a) for a in args])


def _refused(result) -> str:  # type: ignore[no-untyped-def]
    """A refused command: non-zero exit, a message, no traceback."""
    assert result.exit_code != 0 and "Traceback" not in result.output, result.output
    assert (
        result.output.strip()
        and result.exception is None
        or isinstance(result.exception, SystemExit)
    ), result.exception
    return result.output


def test_build_writes_a_module_per_spec_and_leaves_other_files(tmp_path: Path) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(CIFAR20)
    b.write_text(CIFAR20.replace("shortcut: A", "shortcut: B"))
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = _invoke("build", a, b, "-o", out)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["a.py", "b.py", "notes.txt"]
    assert (out / "notes.txt").read_text() == "mine"
    source = (out / "b.py").read_text()
    assert source == resgraph.emit_source(
        resgraph.lower(resgraph.load_spec(b)), source=(out / "b.py").name.replace(".py", ".yaml")
    )


def test_build_writes_nothing_when_one_spec_is_bad(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(CIFAR20)
    bad.write_text(CIFAR20.replace("width: 32", "width: -32"))
    out = tmp_path / "out"
    output = _refused(_invoke("build", good, bad, "-o", out))
    assert f"{bad}:" in output and "nothing was written" in output
    assert not out.exists() or not list(out.iterdir())


def test_build_refuses_an_output_that_is_a_file(tmp_path: Path) -> None:
    spec = tmp_path / "net.yaml"
    spec.write_text(CIFAR20)
    out = tmp_path / "out"
    out.write_text("mine")
    _refused(_invoke("build", spec, "-o", out))
    assert out.read_text() == "mine"


def test_build_refuses_two_specs_with_one_stem(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    one, two = tmp_path / "x" / "net.yaml", tmp_path / "y" / "net.yaml"
    one.write_text(CIFAR20)
    two.write_text(CIFAR20)
    output = _refused(_invoke("build", one, two, "-o", tmp_path / "out"))
    assert "net.py" in output and not (tmp_path / "out" / "net.py").exists()
    same = _invoke("build", one, one, "-o", tmp_path / "out")  # the same file twice is fine
    assert same.exit_code == 0, same.output


def test_import_weights_keeps_an_existing_output_unless_forced(tmp_path: Path) -> None:
    spec = tmp_path / "net.yaml"
    spec.write_text(CIFAR20)
    model = resgraph.build_module(resgraph.lower(resgraph.load_spec(CIFAR20)), seed=3)
    source = tmp_path / "theirs.pt"
    torch.save({"state_dict": {"module." + k: v for k, v in model.state_dict().items()}}, source)
    out = tmp_path / "ours.pt"
    out.write_bytes(b"mine")
    output = _refused(_invoke("import-weights", spec, source, "-o", out))
    assert "--force" in output and out.read_bytes() == b"mine"
    forced = _invoke("import-weights", spec, source, "-o", out, "--force")
    assert forced.exit_code == 0, forced.output
    converted = torch.load(out, weights_only=True)
    assert list(converted) == list(model.state_dict())
    assert all(torch.equal(converted[k], v) for k, v in model.state_dict().items())
