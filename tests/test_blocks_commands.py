"""The commands on a block type a spec defines: show, render at every level, diff, and a
backbone cut from it (build, train and export are covered with the other specs)."""

from __future__ import annotations

from pathlib import Path

import torch

from helpers import ROOT, invoke
from resgraph import load_spec
from resgraph.emit import build_model

FIRE = ROOT / "specs" / "cifar_fire_resnet20.yaml"


def test_show_merges_a_library_of_blocks(tmp_path: Path):
    text = FIRE.read_text()
    head, _, rest = text.partition("blocks:\n")
    definitions, _, tail = rest.partition("block: fire\n")
    (tmp_path / "library.yaml").write_text("blocks:\n" + definitions)
    (tmp_path / "net.yaml").write_text("base: library.yaml\n" + head + "block: fire\n" + tail)
    result = invoke("show", tmp_path / "net.yaml")
    assert result.exit_code == 0, result.output
    assert "blocks:" in result.output and "expand3:" in result.output
    assert "base:" not in result.output
    shown = tmp_path / "shown.yaml"
    shown.write_text(result.output)
    assert load_spec(shown).model_dump() == load_spec(FIRE).model_dump()


def test_render_at_every_level(tmp_path: Path):
    for level, wanted in (("op", "3x3 conv, 16, /2"), ("block", "fire"), ("stage", "fire")):
        out = tmp_path / f"{level}.dot"
        result = invoke("render", FIRE, "--level", level, "--format", "dot", "-o", out)
        assert result.exit_code == 0, result.output
        assert wanted in out.read_text(), level


def test_diff_names_the_definitions_and_counts_the_ops():
    result = invoke("diff", FIRE, ROOT / "specs" / "cifar_resnet20.yaml")
    assert result.exit_code == 1, result.output  # the networks differ
    assert "blocks=fire (7 ops, " in result.output
    assert "fire [8, 8, 8] x3" in result.output
    assert "concat x3" not in result.output  # a concat inside a block is no shortcut
    same = invoke("diff", FIRE, FIRE)
    assert same.exit_code == 0, same.output


def test_diff_reads_a_default_written_out_as_the_same_definition(tmp_path: Path):
    spelt = tmp_path / "fire.yaml"
    spelt.write_text(FIRE.read_text().replace("    params:", "    join: add\n    params:"))
    assert invoke("diff", FIRE, spelt).exit_code == 0
    other = tmp_path / "other.yaml"
    other.write_text(FIRE.read_text().replace("squeeze: 0.25}", "squeeze: 0.5}", 1))
    result = invoke("diff", FIRE, other)
    assert result.exit_code == 1 and result.output.count("blocks=fire (7 ops, ") == 2


def test_a_backbone_of_defined_blocks():
    spec = load_spec(FIRE.read_text() + "outputs: [layer1, layer3]\n")
    out = build_model(spec, "generated")(torch.randn(2, 3, 32, 32))
    assert list(out) == ["layer1", "layer3"]
    assert out["layer1"].shape == (2, 16, 32, 32) and out["layer3"].shape == (2, 64, 8, 8)
