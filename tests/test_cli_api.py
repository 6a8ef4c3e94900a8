"""The Python API takes what people pass it: file names are never parsed as YAML, engine
names are checked, and the build functions take a spec file as well as a spec."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import resgraph
from helpers import CIFAR20, ROOT
from resgraph import ArgumentError, ResgraphError, SpecError, load_spec


@pytest.fixture
def in_root(monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(ROOT)
    return ROOT


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "specs/cifar_resnet20",
            "specs/cifar_resnet20: no such spec file (did you mean specs/cifar_resnet20.yaml?)",
        ),
        (
            "specs/cifar_resnet20.YAML",
            "specs/cifar_resnet20.YAML: no such spec file (did you mean "
            "specs/cifar_resnet20.yaml?)",
        ),
        ("missing.YAML", "missing.YAML: no such spec file"),
        ("missing.yml", "missing.yml: no such spec file"),
        ("nothing/here", "nothing/here: no such spec file"),
        (
            "specs/cifar_resnet20.yaml ",
            "'specs/cifar_resnet20.yaml ': no such spec file (the name has spaces around it; "
            "'specs/cifar_resnet20.yaml' exists)",
        ),
        ("r20.yaml ", "'r20.yaml ': no such spec file (the name has spaces around it)"),
    ],
)
def test_a_one_line_name_is_a_file_name(in_root, name, message):
    with pytest.raises(SpecError) as info:
        load_spec(name)
    assert str(info.value) == message
    assert "scalar" not in str(info.value)


def test_paths_text_and_one_line_mappings(in_root, tmp_path):
    assert load_spec(Path("specs/cifar_resnet20.yaml")).name == "CIFAR ResNet-20"
    assert load_spec("specs/cifar_resnet20.yaml").name == "CIFAR ResNet-20"
    assert load_spec(CIFAR20).name == "Test net"  # several lines: YAML text
    flow = (
        "{name: One line, input: {size: 32}, num_classes: 10, stem: {layout: cifar, width: 16},"
        " stages: [{width: 16, repeats: 1}]}"
    )
    assert load_spec(flow).name == "One line"
    with pytest.raises(SpecError, match=r"<string>:1:1: required field 'input'"):
        load_spec("name: x")  # a one-line mapping is YAML text, not a file name
    # a file without a .yaml suffix is read when it exists
    plain = tmp_path / "spec_without_suffix"
    plain.write_text(CIFAR20)
    assert load_spec(str(plain)).name == "Test net"
    with pytest.raises(SpecError, match="a spec is a file path or YAML text, not int"):
        load_spec(3)  # type: ignore[arg-type]


def test_build_model_refuses_an_unknown_engine():
    ir = resgraph.lower(load_spec(CIFAR20))
    with pytest.raises(
        ArgumentError, match="unknown engine 'grpah': expected 'graph' or 'generated'"
    ):
        resgraph.build_model(ir, "grpah")
    from resgraph.emit import build_model as emit_build_model

    with pytest.raises(ArgumentError, match="unknown engine 'Generated'"):
        emit_build_model(ir, "Generated")  # type: ignore[arg-type]
    assert isinstance(ArgumentError("x"), ValueError) and issubclass(ArgumentError, ResgraphError)


@pytest.mark.parametrize("engine", ["graph", "generated"])
def test_build_functions_take_a_spec_file(tmp_path, engine):
    import torch

    path = tmp_path / "r20.yaml"
    path.write_text(CIFAR20)
    from_path = resgraph.build_model(str(path), engine, seed=0)
    from_spec = resgraph.build_model(load_spec(path), engine, seed=0)
    assert list(from_path.state_dict()) == list(from_spec.state_dict())
    assert all(
        torch.equal(a, b)
        for a, b in zip(
            from_path.state_dict().values(), from_spec.state_dict().values(), strict=True
        )
    )
    module = resgraph.build_module(path, seed=0)
    assert list(module.state_dict()) == list(from_spec.state_dict())


def test_build_module_names_what_it_takes(tmp_path):
    with pytest.raises(
        ArgumentError, match="build_module\\(\\) takes a ModelSpec, an IR, .* not int"
    ):
        resgraph.build_module(42)  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="no such spec file"):
        resgraph.build_module(str(tmp_path / "r20.yaml"))


@pytest.mark.subprocess
def test_importing_resgraph_and_checking_arguments_needs_no_torch():
    code = (
        "import sys, resgraph\n"
        "try:\n"
        "    resgraph.build_model(resgraph.load_spec(sys.argv[1]), 'grpah')\n"
        "except resgraph.ArgumentError:\n"
        "    pass\n"
        "assert 'torch' not in sys.modules\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(ROOT / "specs" / "cifar_resnet20.yaml")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
