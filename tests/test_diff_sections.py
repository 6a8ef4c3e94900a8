"""``resgraph diff`` counts the ops of every part of the network from the IR (the stem's
and the head's too, whatever their layers are called), and exits like diff(1)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from helpers import SPECS
from resgraph.cli import main
from resgraph.diff import diff_irs, op_counts, stage_facts
from resgraph.passes import lower
from resgraph.spec import load_spec
from resgraph.summary import summarize

R18 = next(p for p in SPECS if p.name == "resnet18.yaml")


@pytest.mark.parametrize(
    ("name", "stem", "head"),
    [
        ("resnet18.yaml", 4, 2),  # conv, BN, ReLU, max pool; pool, fc
        ("cifar_densenet_bc_100_12.yaml", 1, 4),  # conv; BN, ReLU, pool, fc
    ],
)
def test_the_parts_ops_add_up_to_the_total(name, stem, head):
    ir = lower(load_spec(next(p for p in SPECS if p.name == name)))
    facts = stage_facts(ir, summarize(ir))
    parts = [f["ops"] for k, f in facts.items() if k != "network"]
    assert sum(parts) == op_counts(ir).total() == sum(1 for n in ir.nodes()) - 1  # the input
    assert (facts["stem"]["ops"], facts["head"]["ops"]) == (stem, head)


def test_a_head_dropout_shows_in_the_head_row():
    a, b = lower(load_spec(R18)), lower(load_spec(R18, ["head.dropout=0.2"]))
    d = diff_irs(a, b)
    head = next(s for s in d.stages if s.name == "head")
    assert head.fields["ops"] == (2, 3)
    assert d.totals["ops"] == (68, 69)


def test_a_backbone_s_output_markers_are_no_ops():
    ir = lower(load_spec(R18, ["outputs=[layer2, layer4]"]))
    assert "output" not in op_counts(ir) and "head" not in op_counts(ir)


@pytest.mark.parametrize(
    ("extra", "status"),
    [([], 0), (["--set", "head.dropout=0.0"], 0), (["--set", "head.dropout=0.2"], 1)],
)
def test_exit_status_says_whether_the_networks_differ(extra, status):
    result = CliRunner().invoke(main, ["diff", str(R18), str(R18), *extra])
    assert result.exit_code == status, result.output
    assert "total ops" in result.stdout


def test_an_error_exits_2(tmp_path):
    result = CliRunner().invoke(main, ["diff", str(R18), str(tmp_path / "none.yaml")])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
