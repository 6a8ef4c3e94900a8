"""Text never becomes code in ``resgraph build``'s output: spec paths and ``--set`` flags
that reach a generated file's docstring are escaped by one rule, compile, and read back
as the same text."""

from __future__ import annotations

import ast
import importlib.util

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from helpers import CIFAR20
from resgraph.cli import main
from resgraph.emit.source import Code, docstring_text
from resgraph.options import with_flags

# What the generated file itself puts at module level: the docstring, then these.
MODULE_LEVEL = ["Expr", "ImportFrom", "Import", "Import", "ImportFrom"]

HOSTILE_VALUES = [
    r"weights from C:\Users\me",  # \U would start a unicode escape
    'a """ b',  # would end the docstring
    'x"""\nimport os\n"""',  # would put code at module level
    'ends in a quote"',
    "ends in a backslash\\",
    '"tab\\tnel\\x85ls\\u2028nul\\0"',  # YAML's escapes, typed as backslashes
    "Réseau à 18 couches ✓",
    "it's 'single' and \"double\"",
]


@given(st.text())
def test_escaped_text_reads_back_as_itself(text):
    literal = '"""' + docstring_text(text) + '"""'
    assert ast.literal_eval(literal) == text


def test_code_passes_unchanged_and_nothing_else_does():
    assert docstring_text(Code('x = "\\n"')) == 'x = "\\n"'
    assert docstring_text('x = "\\n"') == 'x = \\"\\\\n\\"'


def _build(spec, *flags):
    out = spec.parent / "gen"
    result = CliRunner().invoke(main, ["build", spec.name, "-o", str(out), "--force", *flags])
    assert result.exit_code == 0, result.output
    (written,) = out.glob("*.py")
    return written


def _check_module(path, label, flags):
    """The file compiles, holds nothing at module level but its own statements, and its
    docstring repeats the command exactly, as text."""
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text)
    top = [type(s).__name__ for s in tree.body]
    assert top[: len(MODULE_LEVEL)] == MODULE_LEVEL
    assert set(top[len(MODULE_LEVEL) :]) <= {"ClassDef", "FunctionDef"}
    assert "os" not in {a.name for s in tree.body if isinstance(s, ast.Import) for a in s.names}
    doc = ast.get_docstring(tree, clean=False)
    assert f"\n    resgraph build {with_flags(label, flags)} -o DIR\n" in doc
    spec = importlib.util.spec_from_file_location("hostile_generated", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.__doc__ == doc
    assert module.build_model()(module.torch.zeros(1, 3, 32, 32)).shape == (1, 10)


@pytest.mark.parametrize("value", HOSTILE_VALUES)
def test_a_hostile_set_flag_stays_text(tmp_path, monkeypatch, value):
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "tiny.yaml"
    spec.write_text(CIFAR20)
    flags = ["--set", f"description={value}"]
    _check_module(_build(spec, *flags), "tiny.yaml", [flags[1]])


@pytest.mark.parametrize("folder", ["bs\\U", 'q"""q', "new\nline", "é ü", "x'y"])
def test_a_hostile_spec_path_stays_text(tmp_path, monkeypatch, folder):
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / folder / "b.yaml"
    spec.parent.mkdir()
    spec.write_text(CIFAR20)
    result = CliRunner().invoke(main, ["build", f"{folder}/b.yaml", "-o", "gen"])
    assert result.exit_code == 0, result.output
    _check_module(tmp_path / "gen" / "b.py", f"{folder}/b.yaml", [])
