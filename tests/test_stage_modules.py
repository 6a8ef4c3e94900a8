"""What timm's DenseNet and SiLU RegNets needed beyond block definitions: a stage that is one
module at a path of its own (DenseNet's transitions beside its dense blocks, RegNet's
``final_conv``), a block with no join that joins its own shortcut (named ``downsample``) and
ends as its definition says, the ``silu`` op, a SiLU stem, and stage paths checked against
each other; with the located error of each misuse."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from helpers import ROOT
from resgraph import SpecError, load_spec
from resgraph.emit import build_model
from resgraph.emit.source import emit_source
from resgraph.ops import SiLU
from resgraph.passes import lower
from resgraph.spec.regnet import RegNetParams, stage_widths
from resgraph.summary import summarize

# Two dense stages with a transition between them that is a stage of one module, as timm's
# DenseNet lays them out under 'features'.
DENSE = """\
name: Dense test net
input: {channels: 3, size: 16}
num_classes: 5
stem: {layout: cifar, width: 8}
names:
  stage: "features.block{stage // 2 + 1}"
  block: "layer{index + 1}"
  modules: {conv1: features.conv0, bn1: features.norm0, final_bn: features.norm5,
            fc: classifier}
blocks:
  layer:
    join: concat
    post_activation: false
    ops:
      - norm1: norm
      - act1: relu
      - conv1: {op: conv, out_channels: width, kernel: 3, padding: 1}
  shrink:
    join: none
    post_activation: false
    ops:
      - norm: norm
      - act: relu
      - conv: {op: conv, out_channels: width, kernel: 1}
      - pool: {op: avgpool, kernel: stride, stride: stride}
block: layer
stages:
  - {width: 4, repeats: 2}
  - {module: features.transition1, width: 8, repeats: 1, stride: 2, block: shrink}
  - {width: 4, repeats: 2}
"""


def _engines(ir):
    torch.manual_seed(0)
    graph = build_model(ir, "graph").eval()
    generated = build_model(ir, "generated").eval()
    generated.load_state_dict(graph.state_dict(), strict=True)
    return graph, generated


def test_a_stage_of_one_module_sits_at_its_own_path_between_the_others():
    spec = load_spec(DENSE)
    assert spec.feature_names() == [
        "stem",
        "features.block1",
        "features.transition1",
        "features.block2",
    ]
    ir = lower(spec)
    graph, generated = _engines(ir)
    keys = list(graph.state_dict())
    assert list(generated.state_dict()) == keys
    module_keys = [k.removesuffix(".weight") for k in keys if k.endswith(".weight")]
    assert module_keys == [
        "features.conv0",
        "features.norm0",
        "features.block1.layer1.norm1",
        "features.block1.layer1.conv1",
        "features.block1.layer2.norm1",
        "features.block1.layer2.conv1",
        "features.transition1.norm",  # no block level inside the stage that is one module
        "features.transition1.conv",
        "features.block2.layer1.norm1",
        "features.block2.layer1.conv1",
        "features.block2.layer2.norm1",
        "features.block2.layer2.conv1",
        "features.norm5",
        "classifier",
    ]
    # the transition reads the concatenation of 8 + 2 x 4 maps and halves the size
    assert ir.node("features.transition1.conv").op.in_channels == 16
    assert ir.node("features.transition1.pool").shape == (8, 8, 8)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(graph(x), generated(x))
    text = emit_source(ir)
    assert '"transition1": Shrink(16, width=8, stride=2)' in text
    assert 'x = self.features["transition1"](x)' in text
    rows = {row.name: row for row in summarize(ir).stages}
    assert rows["features.transition1"].params == 2 * 16 + 16 * 8  # its norm and its conv


def test_a_block_with_no_join_leaves_the_head_without_bn_relu():
    # the last stage is the transition (join none, nothing after it): the head pools it
    ends_in_transition = DENSE.replace("  - {width: 4, repeats: 2}\n", "", 2).replace(
        "stages:\n", "stages:\n  - {width: 4, repeats: 2}\n"
    )
    ir = lower(load_spec(ends_in_transition))
    assert "final_bn" not in ir.graph and "features.norm5" not in ir.graph
    assert ir.inputs("avgpool") == ["features.transition1.pool"]
    ir = lower(load_spec(DENSE))  # dense layers end in a concatenation: BN-ReLU before the pool
    assert ir.inputs("features.norm5") == [ir.blocks["features.block2.layer2"].output]


# A pre-activation block that joins its own shortcut, as timm's RegNetV: the projection reads
# the normalised input, and where it is left out its name stands for that input.
OWN = """\
name: Own shortcut net
input: {channels: 3, size: 16}
num_classes: 5
stem: {layout: cifar, width: 8, activation: silu}
blocks:
  pre:
    join: none
    post_activation: false
    ops:
      - norm1: norm
      - act1: silu
      - conv1: {op: conv, out_channels: width, kernel: 3, stride: stride, padding: 1}
      - downsample: {op: conv, in: act1, out_channels: width, kernel: 1, stride: stride,
                     when: stride > 1 or in_channels != width}
      - residual: {op: add, in: [conv1, downsample]}
block: pre
stages:
  - {width: 8, repeats: 2, stride: 1}
  - {width: 16, repeats: 1, stride: 2}
  - {module: final, width: 16, repeats: 1, block: pre}
"""


def test_a_block_with_no_join_may_join_its_own_downsample():
    ir = lower(load_spec(OWN))
    assert ir.inputs("layer2.0.downsample") == ["layer2.0.act1"]
    assert ir.inputs("layer2.0.residual") == ["layer2.0.conv1", "layer2.0.downsample"]
    # identity: the normalised input itself, not the block input
    assert ir.inputs("layer1.1.residual") == ["layer1.1.conv1", "layer1.1.act1"]
    assert ir.inputs("final.residual") == ["final.conv1", "final.act1"]
    assert not any(n.role == "shortcut" for n in ir.nodes())  # the compiler added none
    assert "final_bn" not in ir.graph
    graph, generated = _engines(ir)
    assert "layer2.0.downsample.weight" in graph.state_dict()
    assert "final.conv1.weight" in graph.state_dict()  # a stage of one module
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(graph(x), generated(x))


def test_silu_is_x_times_its_sigmoid_in_both_engines_and_the_stem():
    ir = lower(load_spec(OWN))
    assert ir.node("silu").op == SiLU()  # the stem's activation, after its norm
    assert ir.inputs("silu") == ["bn1"]
    assert ir.node("layer1.0.act1").op == SiLU()
    assert "F.silu(" in emit_source(ir)
    relu_stem = lower(load_spec(OWN.replace(", activation: silu", "")))
    assert "relu" in relu_stem.graph and "silu" not in relu_stem.graph
    graph, generated = _engines(ir)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        stem = graph.bn1(graph.conv1(x))
        expected = stem * torch.sigmoid(stem)
        for model in (graph, generated):
            seen: list[torch.Tensor] = []
            norm = model.get_submodule("layer1.0.norm1")
            hook = norm.register_forward_hook(lambda m, inp, o, seen=seen: seen.append(inp[0]))
            model(x)
            hook.remove()
            assert torch.allclose(seen[0], expected, atol=1e-6)
            assert not torch.allclose(seen[0], F.relu(stem), atol=1e-3)


def _error(text: str) -> str:
    with pytest.raises(SpecError) as info:
        lower(load_spec(text))
    lines = str(info.value).splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "{module: features.transition1, width: 8, repeats: 1,",
            "{module: features.transition1, width: 8, repeats: 2,",
            "<string>:29:55: stages[1].repeats: a stage that is one module holds one block: "
            "repeats must be 1",
        ),
        (
            "{module: features.transition1,",
            "{module: features.block1,",
            "<string>:29:14: stages[1].module: stage path 'features.block1' is or holds an "
            "earlier stage's path, 'features.block1'",
        ),
        (
            "{module: features.transition1,",
            "{module: features.block1.x,",
            "<string>:29:14: stages[1].module: stage path 'features.block1.x' is or holds an "
            "earlier stage's path, 'features.block1'",
        ),
        (
            "{module: features.transition1,",
            "{module: classifier,",
            "<string>:29:14: stages[1].module: stage path 'classifier' and module 'classifier' "
            "(names.modules' name for 'fc') are one path, or one holds the other",
        ),
        (
            "{module: features.transition1,",
            "{module: features.norm0.t,",
            "<string>:29:14: stages[1].module: stage path 'features.norm0.t' and module "
            "'features.norm0' (names.modules' name for 'bn1') are one path, or one holds",
        ),
        (
            "{module: features.transition1,",
            "{module: features transition1,",
            "<string>:29:14: stages[1].module: 'features transition1' is not a module path",
        ),
        (
            'stage: "features.block{stage // 2 + 1}"',
            'stage: "features.block{stage // 4 + 1}"',
            "<string>:6:10: names.stage: stage path 'features.block1' is or holds an earlier "
            "stage's path, 'features.block1'",
        ),
    ],
)
def test_stage_paths_that_clash_are_located(old, new, message):
    assert old in DENSE
    assert _error(DENSE.replace(old, new, 1)).startswith(message)


def test_a_stage_that_holds_an_earlier_one_is_located():
    last = DENSE.removesuffix("  - {width: 4, repeats: 2}\n")
    line = _error(last.replace("{module: features.transition1,", "{module: features,"))
    assert line.startswith(
        "<string>:29:14: stages[1].module: stage path 'features' is or holds an earlier "
        "stage's path, 'features.block1'"
    )


def test_downsample_stays_the_compilers_where_the_block_has_a_join():
    line = _error(OWN.replace("    join: none\n", ""))
    assert "blocks.pre.ops[3].downsample: 'downsample' cannot name an op" in line
    assert "(unless the join is 'none')" in line


@pytest.mark.parametrize(
    ("model", "rule"),
    [
        ("regnetv_040", {"w0": 96, "wa": 31.41, "wm": 2.24, "depth": 22, "group_width": 64}),
        ("regnetv_064", {"w0": 112, "wa": 33.22, "wm": 2.27, "depth": 25, "group_width": 72}),
        ("regnetz_005", {"w0": 16, "wa": 10.7, "wm": 2.51, "depth": 21, "group_width": 4}),
        ("regnetz_040", {"w0": 48, "wa": 14.5, "wm": 2.226, "depth": 28, "group_width": 8}),
        ("regnetz_040_h", {"w0": 48, "wa": 14.5, "wm": 2.226, "depth": 28, "group_width": 8}),
        ("regnety_040_sgn", {"w0": 96, "wa": 31.41, "wm": 2.24, "depth": 22, "group_width": 64}),
    ],
)
def test_the_written_out_regnet_stages_are_the_rules(model, rule):
    """The SiLU RegNets write their stages out (a final_conv stage follows them): the widths,
    depths and group widths are those RegNet's rule gives for timm's parameters."""
    spec = load_spec(ROOT / "specs" / "timm" / f"{model}.yaml")
    written = [
        (s.width, s.repeats, s.block.options["group_width"])  # type: ignore[union-attr]
        for s in spec.stages
        if s.module is None
    ]
    assert written == stage_widths(RegNetParams(**rule))
    assert [s.stride for s in spec.stages if s.module is None] == [2, 2, 2, 2]
