"""What the commands that write files keep: export needs --force to replace a file, build
does not replace a module generated from another spec, import-weights writes only .pt or
.pth with its own report name, and its --partial options are refused without it."""

from __future__ import annotations

import pytest
import torch

from helpers import CIFAR20, invoke
from resgraph.emit.commands import transfer_report_path
from resgraph.emit.graph_module import build_module
from resgraph.passes import lower
from resgraph.spec import load_spec


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "net.yaml"
    spec.write_text(CIFAR20)
    source = tmp_path / "src.pt"
    torch.save(build_module(lower(load_spec(CIFAR20)), seed=0).state_dict(), source)
    return spec, source


def test_export_keeps_an_existing_file_without_force(files, tmp_path):
    spec, _ = files
    out = tmp_path / "m.pt2"
    out.write_bytes(b"mine")
    kept = invoke("export", spec, "-o", out)
    assert kept.exit_code == 1
    assert kept.stderr == f"error: {out}: cannot write: it exists; pass --force to overwrite it\n"
    assert out.read_bytes() == b"mine"
    forced = invoke("export", spec, "-o", out, "--force")
    assert forced.exit_code == 0, forced.output
    assert out.read_bytes() != b"mine"


def test_build_keeps_a_module_generated_from_another_spec(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "timm").mkdir()
    for path in ("r18.yaml", "timm/r18.yaml"):
        (tmp_path / path).write_text(CIFAR20)
    assert invoke("build", "r18.yaml", "-o", "gen").exit_code == 0
    again = invoke("build", "r18.yaml", "-o", "gen", "--set", "num_classes=7")
    assert again.exit_code == 0, again.output  # the same spec, other flags: regenerated
    text = (tmp_path / "gen" / "r18.py").read_text()
    other = invoke("build", "timm/r18.yaml", "-o", "gen")
    assert other.exit_code == 1
    assert other.stderr.startswith(
        "error: gen/r18.py: was generated from r18.yaml, not timm/r18.yaml; pass --force to "
        "overwrite it\n"
    )
    assert (tmp_path / "gen" / "r18.py").read_text() == text
    assert invoke("build", "timm/r18.yaml", "-o", "gen", "--force").exit_code == 0
    assert "from timm/r18.yaml" in (tmp_path / "gen" / "r18.py").read_text()


@pytest.mark.parametrize("name", ["x.onnx", "x", "x.pt2"])
def test_import_weights_writes_only_a_torch_file(files, tmp_path, name):
    spec, source = files
    result = invoke("import-weights", spec, source, "-o", tmp_path / name)
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: {tmp_path / name}: cannot write: import-weights writes a PyTorch state_dict: "
        "name it x.pt\n"
    )
    assert not (tmp_path / name).exists()


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".PT"])
def test_import_weights_takes_pt_and_pth(files, tmp_path, suffix):
    spec, source = files
    assert invoke("import-weights", spec, source, "-o", tmp_path / f"w{suffix}").exit_code == 0


def test_two_outputs_never_share_a_report(tmp_path):
    assert transfer_report_path(tmp_path / "w.pt") == tmp_path / "w.transfer.json"
    assert transfer_report_path(tmp_path / "w.pth") == tmp_path / "w.pth.transfer.json"


@pytest.mark.parametrize("flag", [["--seed", "3"], ["--seed", "0"], ["-v"]])
def test_partial_options_need_partial(files, tmp_path, flag):
    spec, source = files
    result = invoke("import-weights", spec, source, "-o", tmp_path / "w.pt", *flag)
    assert result.exit_code == 2
    name = "--verbose" if flag == ["-v"] else "--seed"
    assert result.stderr.startswith(f"error: {name} goes with --partial")
    assert not (tmp_path / "w.pt").exists()
