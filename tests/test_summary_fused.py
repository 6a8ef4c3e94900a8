"""``resgraph summary --fused``: parameters of the network with BatchNorm folded, counted
from the IR alone and checked against torch.fx's conv/BN fusion of the built model."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from helpers import ROOT
from resgraph import load_spec, lower
from resgraph.cli import main
from resgraph.ops import BatchNorm, Conv
from resgraph.passes.analysis import analyze
from resgraph.summary import batchnorm_folding, summarize

SPECS = ROOT / "specs"
CASES = [
    "resnet18",  # a BatchNorm after every conv, projections included
    "cifar_resnet20",  # option A: padding shortcuts, no shortcut BatchNorm
    "cifar_preact_resnet164",  # pre-activation: BatchNorms after joins stay
    "cifar_densenet_bc_100_12",  # dense: BatchNorms after concatenations stay
    "timm/seresnet18",  # squeeze-excitation convs with biases, no BatchNorm after them
]


def fused_model(ir):  # type: ignore[no-untyped-def]
    pytest.importorskip("torch")
    from resgraph import build_module
    from resgraph.export import fuse_bn

    return fuse_bn(build_module(ir, seed=0).eval())


@pytest.mark.parametrize("stem", CASES)
def test_ir_count_equals_the_fused_model(stem: str) -> None:
    ir = lower(load_spec(SPECS / f"{stem}.yaml"))
    info = summarize(ir, fused=True)
    model, folded, kept = fused_model(ir)
    assert info.fused is not None
    assert (info.params, info.fused.folded, len(info.fused.kept)) == (
        sum(p.numel() for p in model.parameters()),
        folded,
        kept,
    )
    assert info.fused.params_unfused == summarize(ir).params
    # per stage too: the fused module keeps resgraph's names
    for stage in ir.stages:
        row = next(r for r in info.stages if r.name == stage.path)
        real = sum(p.numel() for n, p in model.named_parameters() if n.startswith(stage.path + "."))
        assert row.params == real, stage.path
    # a kept BatchNorm keeps its parameters, a folded one gives them up
    bns = [n for n in ir.nodes() if isinstance(n.op, BatchNorm)]
    assert len(bns) == folded + kept
    assert {name for _, name in info.fused.pairs} | set(info.fused.kept) == {n.name for n in bns}


def test_which_batchnorms_fold() -> None:
    preact = lower(load_spec(SPECS / "cifar_preact_resnet164.yaml"))
    folding = batchnorm_folding(preact)
    for conv, bn in folding.pairs:
        assert isinstance(preact.node(conv).op, Conv)
        assert preact.inputs(bn) == [conv] and preact.outputs(conv) == [bn]
    # the first BatchNorm of a pre-activation block reads the previous block's join
    assert "layer1.1.bn1" in folding.kept and "layer1.1.bn2" in {b for _, b in folding.pairs}
    plain = lower(load_spec(SPECS / "resnet18.yaml"))
    assert not batchnorm_folding(plain).kept
    assert summarize(plain).fused is None


def test_a_conv_with_a_bias_gains_none(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ir = lower(load_spec(SPECS / "cifar_resnet20.yaml"))
    conv = ir.node("conv1")
    ir.update("conv1", op=dataclasses.replace(conv.op, bias=True))
    ir = analyze(ir)
    info = summarize(ir, fused=True)
    model, folded, kept = fused_model(ir)
    assert info.params == sum(p.numel() for p in model.parameters())
    stem = next(r for r in info.stages if r.name == "stem")
    # 3x3 conv 3 -> 16 with its bias; the BatchNorm's 32 numbers are gone
    assert stem.params == 16 * 3 * 9 + 16


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, ["summary", *args])


def test_cli_says_it_is_the_fused_count() -> None:
    spec = str(SPECS / "cifar_preact_resnet164.yaml")
    plain, fused = run(spec), run(spec, "--fused")
    assert plain.exit_code == 0 and fused.exit_code == 0, fused.output
    info, unfused = summarize(load_spec(spec), fused=True), summarize(load_spec(spec))
    assert info.fused is not None
    assert "fused (inference) parameters: 112 BatchNorm folded" in fused.output
    assert "54 kept" in fused.output
    assert f"{unfused.params:,} parameters unfused" in fused.output
    assert f"params {info.params:,} " in fused.output and info.params < unfused.params
    assert "fused" not in plain.output and f"params {unfused.params:,} " in plain.output


def test_cli_json() -> None:
    spec = str(SPECS / "cifar_resnet20.yaml")
    data = json.loads(run(spec, "--fused", "--json").output)
    plain = json.loads(run(spec, "--json").output)
    assert "fused" not in plain
    assert data["fused"] == {
        "folded": 19,
        "kept": 0,
        "kept_batchnorms": [],
        "params_unfused": plain["params"],
    }
    # 19 folded BatchNorms of 16, 32 or 64 channels: each gives 2C, its conv gains C back
    ir = lower(load_spec(spec))
    saved = sum(n.op.channels for n in ir.nodes() if isinstance(n.op, BatchNorm))
    assert data["params"] == plain["params"] - saved
    assert sum(s["params"] for s in data["stages"]) == data["params"]


@pytest.mark.subprocess
def test_fused_summary_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from resgraph.cli import main\n"
        "r = CliRunner().invoke(main, ['summary', 'specs/resnet50.yaml', '--fused'])\n"
        "assert r.exit_code == 0, r.output\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
