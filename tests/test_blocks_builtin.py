"""The built-in block types as shipped block definitions (resgraph/blocks/*.yaml), and the
language features they use that any definition may use: constants, the choice ``A if C else
B`` and a stage opener."""

from __future__ import annotations

import pytest
import torch

from resgraph import SpecError, load_spec
from resgraph.emit import build_model
from resgraph.emit.source import emit_source
from resgraph.ops import AvgPool, Conv, Dropout
from resgraph.passes import lower
from resgraph.passes.defined import definitions
from resgraph.spec.blocks import STANDARD_NAMES, BlockDef
from resgraph.spec.builtin import LIBRARY, builtin_library, builtin_options, option_names
from resgraph.spec.expr import parse
from resgraph.spec.schema import BasicBlockSpec, BottleneckBlockSpec, DenseBlockSpec

SPEC = """\
name: Opened net
input: {channels: 3, size: 16}
num_classes: 5
stem: {layout: cifar, width: 8}
blocks:
  layer:
    params: {growth: 4, drop: 0.25}
    constants: [drop]
    join: concat
    post_activation: false
    stage_opener: shrink
    ops:
      - bn1: norm
      - relu1: relu
      - conv1: {op: conv, out_channels: growth, kernel: 3, padding: 1}
      - drop1: {op: dropout, p: drop, when: drop > 0}
  shrink:
    params: {drop: 0.0}
    widths: {out: in_channels // 2}
    join: none
    post_activation: false
    ops:
      - conv1: {op: conv, out_channels: "out if stride > 1 else in_channels", kernel: 1}
      - pool: {op: avgpool, kernel: stride, stride: stride}
block: layer
shortcut: B
stages:
  - {width: 8, repeats: 2, stride: 1}
  - {width: 16, repeats: 2, stride: 2, block: {type: layer, drop: 0.0}}
"""


def test_a_stage_with_a_stride_opens_with_the_opener_and_its_blocks_run_at_stride_1():
    ir = lower(load_spec(SPEC))
    assert [ir.blocks[p].kind for p in ir.stages[1].blocks] == ["shrink", "layer", "layer"]
    assert [ir.blocks[p].kind for p in ir.stages[0].blocks] == ["layer", "layer"]
    # 8 + 4 + 4 = 16 maps into the opener, which halves them and the resolution
    assert ir.node("layer2.0.conv1").op == Conv(16, 8, 1)
    assert ir.node("layer2.0.pool").op == AvgPool(2, 2)
    assert ir.blocks["layer2.1"].stride == 1 and ir.node("layer2.1.conv1").op.in_channels == 8
    assert ir.node("layer2.1.conv1").op.stride == 1
    assert ir.node("layer2.1.concat").shape == (12, 8, 8)
    graph = build_model(ir, "graph").eval()
    generated = build_model(ir, "generated").eval()
    generated.load_state_dict(graph.state_dict(), strict=True)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(graph(x), generated(x))


def test_the_opener_takes_the_stage_options_it_has_as_params():
    ir = lower(load_spec(SPEC.replace("params: {drop: 0.0}", "params: {drop: 0.5}")))
    # the stage sets drop 0.0 for its layers; the opener has its own default
    assert "layer2.1.drop1" not in ir.graph and "layer1.0.drop1" in ir.graph
    opener, _ = definitions(ir.spec, ir.spec.stage_block(1))  # type: ignore[misc]
    assert opener.values["drop"] == 0.0 and opener.kind == "layer"


def test_constants_are_written_as_numbers_and_other_names_are_parameters():
    text = emit_source(lower(load_spec(SPEC)))
    assert "self.drop1 = nn.Dropout(p=0.25)" in text and "drop: float" not in text
    bound = SPEC.replace("    constants: [drop]\n", "")
    text = emit_source(lower(load_spec(bound)))
    assert "self.drop1 = nn.Dropout(p=drop)" in text and "drop: float = 0.25" in text


def test_a_choice_is_made_when_its_condition_reads_only_constants():
    ir = lower(load_spec(SPEC.replace("    constants: [drop]\n", "    constants: [drop]\n", 1)))
    # in the opener, the condition reads stride, which is no constant: written as its value
    assert ir.node("layer2.0.conv1").bind == (("in_channels", "in_channels"),)
    chosen = SPEC.replace(
        "    widths: {out: in_channels // 2}\n",
        "    widths: {out: in_channels // 2}\n    constants: [stride]\n",
    )
    ir = lower(load_spec(chosen))
    assert ir.node("layer2.0.conv1").bind == (
        ("in_channels", "in_channels"),
        ("out_channels", "out"),
    )


def _located(text: str, old: str, new: str, where: str, message: str) -> None:
    """``text`` with ``old`` written as ``new`` fails with one error at ``where``."""
    assert old in text
    with pytest.raises(SpecError) as info:
        load_spec(text.replace(old, new, 1))
    assert str(info.value).startswith(f"<string>:{where}: {message}")


@pytest.mark.parametrize(
    ("old", "new", "where", "message"),
    [
        (
            "stage_opener: shrink",
            "stage_opener: shrnk",
            "11:19: blocks.layer.stage_opener",
            "'shrnk' is not another type defined here (defined: shrink)",
        ),
        (
            "stage_opener: shrink",
            "stage_opener: layer",
            "11:19: blocks.layer.stage_opener",
            "'layer' is not another type defined here (defined: shrink)",
        ),
        (
            "constants: [drop]",
            "constants: [dorp]",
            "8:17: blocks.layer.constants[0]",
            "'dorp' is not a name of the block (did you mean 'drop'?)",
        ),
    ],
)
def test_mistakes_in_the_new_keys_are_located(old, new, where, message):
    _located(SPEC, old, new, where, message)


def test_every_shipped_library_names_its_block_and_reads_only_its_types_options():
    files = sorted(LIBRARY.glob("*.yaml"))
    assert [f.stem for f in files] == ["basic", "bottleneck", "dense"]
    for schema in (BasicBlockSpec, BottleneckBlockSpec):
        shipped = builtin_library(schema)
        assert list(shipped.blocks) == [shipped.block] == [schema().type]
        assert shipped.blocks[shipped.block].stage_opener is None
    shipped = builtin_library(DenseBlockSpec)
    assert shipped is not None and shipped.block == "dense_layer"
    assert set(shipped.blocks) == {"dense_layer", "transition"}
    assert shipped.blocks["dense_layer"].stage_opener == "transition"
    options = set(builtin_options(DenseBlockSpec()))
    for bdef in shipped.blocks.values():
        read = {n for text in bdef.widths.values() for n in parse(text).names}
        assert read <= options | set(STANDARD_NAMES) | set(bdef.widths)


def test_built_in_options_are_numbers_with_switches_as_0_and_1():
    values = builtin_options(DenseBlockSpec(bottleneck_layers=True, growth_rate=7))
    assert values["bottleneck_layers"] == 1 and type(values["bottleneck_layers"]) is int
    assert values["growth_rate"] == 7 and "type" not in values
    assert builtin_options(DenseBlockSpec())["bottleneck_layers"] == 0


def test_a_shipped_definition_reading_an_option_its_type_lacks_is_refused():
    body = {"ops": [{"conv1": {"op": "conv", "out_channels": "growth_rat", "kernel": 1}}]}
    with pytest.raises(ValueError, match="unknown name 'growth_rat'"):
        BlockDef.model_validate(body, context={"names": ("growth_rate",)})
    assert BlockDef.model_validate(
        {"ops": [{"conv1": {"op": "conv", "out_channels": "growth_rate", "kernel": 1}}]},
        context={"names": ("growth_rate",)},
    )


DENSE = """\
name: Dense
input: {channels: 3, size: 16}
num_classes: 5
stem: {layout: cifar, width: 8}
block: {type: dense, growth_rate: 4, bottleneck_layers: BOTTLENECK, dropout: 0.1}
stages:
  - {repeats: 2, stride: 1}
  - {repeats: 1, stride: 2}
"""


@pytest.mark.parametrize("bottleneck", [False, True])
def test_the_dense_layer_and_transition_come_from_the_shipped_definitions(bottleneck):
    ir = lower(load_spec(DENSE.replace("BOTTLENECK", str(bottleneck).lower())))
    last = "conv2" if bottleneck else "conv1"
    assert ir.node(f"layer1.0.{last}").op == Conv(16 if bottleneck else 8, 4, 3, padding=1)
    assert ir.node(f"layer1.0.{last}").bind[-1] == ("out_channels", "growth_rate")
    if bottleneck:
        assert ir.node("layer1.0.conv1").op == Conv(8, 16, 1)
        assert ir.node("layer1.0.conv1").bind[-1] == ("out_channels", "4 * growth_rate")
        assert ir.node("layer1.0.dropout1").op == Dropout(0.1)
    assert "layer1.0.conv3" not in ir.graph
    assert ("layer1.0.conv2" in ir.graph) is bottleneck
    assert ir.blocks["layer2.0"].kind == "transition"
    assert ir.node("layer2.0.conv1").op == Conv(16, 16, 1)  # compression 1 keeps all 16
    assert [(a.name, a.value, a.default) for a in ir.blocks["layer2.0"].args] == [
        ("in_channels", 16, None),
        ("out_channels", 16, None),
        ("stride", 2, 1),
    ]
    assert [(a.name, a.default) for a in ir.blocks["layer1.0"].args] == [
        ("in_channels", None),
        ("growth_rate", None),
    ]


def test_a_mapping_option_and_a_choice_read_as_numbers_and_switches():
    spec = BottleneckBlockSpec(attention={"type": "eca", "gamma": 3.0}, stride_on="3x3")
    values = builtin_options(spec)
    assert (values["attention_eca"], values["attention_se"]) == (1, 0)
    assert values["attention_gamma"] == 3.0 and values["attention_kernel_size"] == 0
    assert values["attention_ratio"] == 0  # an SE option, and the attention is ECA
    assert (values["stride_on_1x1"], values["stride_on_3x3"]) == (0, 1)
    assert (values["anti_alias_avgpool"], values["anti_alias_blur"]) == (0, 0)
    values = builtin_options(BasicBlockSpec(anti_alias="blur", join="gate"))
    assert (values["anti_alias_blur"], values["join_gate"], values["join_add"]) == (1, 1, 0)
    assert set(values) == set(option_names(BasicBlockSpec))


def test_a_basic_block_of_one_conv_with_reduce_first_builds_the_same_in_both_engines():
    # its constructor's width is already reduced: the conv takes it as it is
    text = DENSE.replace(
        "{type: dense, growth_rate: 4, bottleneck_layers: BOTTLENECK, dropout: 0.1}",
        "{type: basic, convs: 1, reduce_first: 2}",
    )
    text = text.replace("{repeats: 2,", "{width: 8, repeats: 2,").replace(
        "{repeats: 1,", "{width: 16, repeats: 1,"
    )
    ir = lower(load_spec(text + "shortcut: B\n"))
    assert ir.node("layer2.0.conv1").op.out_channels == 8
    assert ir.node("layer2.0.conv1").bind[1] == ("out_channels", "width")
    graph = build_model(ir, "graph").eval()
    generated = build_model(ir, "generated").eval()
    generated.load_state_dict(graph.state_dict(), strict=True)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(graph(x), generated(x))


NAMES = """\
name: Names
input: {channels: 3, size: 8}
num_classes: 5
stem: {layout: cifar, width: 8}
blocks:
  pair:
    params: {w0: 8, w1: 16, pre: 0}
    widths: {width: width * 2, down: stride > 1}
    parameters: [in_channels, stride, width, "w{*}"]
    defaults: {w1: 16}
    variants:
      - {when: pre, post_activation: false, shortcut_from: act}
    ops:
      - act: {op: relu, when: pre}
      - conv1: {op: conv, out_channels: "w{index}", kernel: 1, stride: stride}
      - act: {op: relu, when: not pre}
      - sig: {op: sigmoid, role: attention}
      - conv2: {op: conv, out_channels: width, kernel: 1}
      - drop: {op: dropout, p: 0.5, when: down}
block: pair
shortcut: B
stages:
  - {width: 8, repeats: 2, stride: 1}
  - {width: 8, repeats: 1, stride: 2}
"""


def test_an_op_left_out_leaves_its_name_to_a_later_op():
    ir = lower(load_spec(NAMES))
    assert ir.inputs("layer1.0.act") == ["layer1.0.conv1"]  # the second 'act'
    assert ir.inputs("layer1.0.conv1") == [ir.blocks["layer1.0"].input]
    pre = lower(load_spec(NAMES.replace("pre: 0", "pre: 1")))
    assert pre.inputs("layer1.0.conv1") == ["layer1.0.act"]  # the first 'act'
    # a left-out op never takes the name from a kept one: the next op reads its input
    assert pre.inputs("layer1.0.sig") == ["layer1.0.conv1"]
    both = NAMES.replace("{op: relu, when: not pre}", "relu")
    with pytest.raises(SpecError, match="two ops are called 'act'"):
        lower(load_spec(both.replace("pre: 0", "pre: 1")))


def test_variants_change_the_keys_where_their_condition_holds():
    plain = lower(load_spec(NAMES))
    assert plain.blocks["layer2.0"].shortcut_input == plain.blocks["layer2.0"].input
    assert "layer1.0.relu" in plain.graph
    pre = lower(load_spec(NAMES.replace("pre: 0", "pre: 1")))
    assert pre.blocks["layer2.0"].shortcut_input == "layer2.0.act"
    assert "layer1.0.relu" not in pre.graph  # post_activation false


def test_fields_with_templates_a_redefined_width_and_a_condition_as_a_width():
    ir = lower(load_spec(NAMES))
    assert ir.node("layer1.0.conv1").op.out_channels == 8  # w0, the block of index 0
    assert ir.node("layer1.1.conv1").op.out_channels == 16  # w1
    assert ir.node("layer1.1.conv1").bind[1] == ("out_channels", "w1")
    assert ir.node("layer1.0.conv2").op.out_channels == 16  # width: 8 * 2
    assert ir.node("layer1.0.conv2").bind[1] == ("out_channels", "width")
    assert "layer2.0.drop" in ir.graph and "layer1.1.drop" not in ir.graph  # down: 1 and 0
    assert ir.node("layer1.0.sig").role == "attention"
    assert ir.node("layer1.0.conv1").role == "main"


def test_parameters_order_the_constructor_and_defaults_give_its_defaults():
    ir = lower(load_spec(NAMES))
    args = ir.blocks["layer1.1"].args
    assert [(a.name, a.value, a.default) for a in args] == [
        ("in_channels", 16, None),
        ("stride", 1, 1),
        ("width", 16, None),
        ("w1", 16, 16),
    ]
    usual = lower(
        load_spec(NAMES.replace('    parameters: [in_channels, stride, width, "w{*}"]\n', ""))
    )
    assert [a.name for a in usual.blocks["layer1.1"].args] == [
        "in_channels",
        "width",
        "stride",
        "w1",
    ]


@pytest.mark.parametrize(
    ("old", "new", "where", "message"),
    [
        (
            "parameters: [in_channels,",
            "parameters: [in_chanels,",
            "9:18: blocks.pair.parameters[0]",
            "'in_chanels' is not a name of the block",
        ),
        (
            "defaults: {w1: 16}",
            "defaults: {w2: 16}",
            "10:20: blocks.pair.defaults.w2",
            "'w2' is not a name of the block",
        ),
        (
            "shortcut_from: act}",
            "shortcut_from: acts}",
            "12:60: blocks.pair.variants[0].shortcut_from",
            "'acts' is not an op",
        ),
        (
            "{when: pre,",
            "{when: pree,",
            "12:16: blocks.pair.variants[0].when",
            "unknown name 'pree'",
        ),
    ],
)
def test_mistakes_in_the_other_new_keys_are_located(old, new, where, message):
    _located(NAMES, old, new, where, message)


def test_a_role_is_main_or_attention():
    with pytest.raises(SpecError) as info:
        load_spec(NAMES.replace("role: attention}", "role: gate}"))
    lines = str(info.value).splitlines()
    assert len(lines) == 1 and lines[0].endswith("expected 'main' or 'attention', got 'gate'")


def test_only_width_of_the_block_names_may_be_redefined():
    with pytest.raises(SpecError, match="'stride' cannot name a parameter"):
        load_spec(
            NAMES.replace("widths: {width: width * 2,", "widths: {stride: 2, width: width * 2,")
        )
    assert load_spec(NAMES).blocks["pair"].widths["width"] == "width * 2"


def test_blocks_of_one_definition_written_out_by_the_values_that_decide_their_ops():
    from resgraph.spec.blocks import _deciding_names

    text = NAMES.replace(
        "{width: 8, repeats: 1, stride: 2}",
        "{width: 8, repeats: 1, stride: 2, block: {type: pair, pre: 1}}",
    )
    ir = lower(load_spec(text))
    assert ir.inputs("layer1.0.conv1") == [ir.blocks["layer1.0"].input]
    assert ir.inputs("layer2.0.conv1") == ["layer2.0.act"]  # pre: 1 in the second stage only
    # a field's template (w{index}) is read for each block, not in writing the ops out
    assert _deciding_names(load_spec(text).blocks["pair"]) == ("down", "pre")


def test_a_variant_that_gates_the_join_needs_a_shortcut():
    text = NAMES.replace("shortcut_from: act}", "shortcut_from: act, join: gate}")
    assert lower(load_spec(text.replace("pre: 0", "pre: 1"))).blocks["layer1.0"].join_kind == "gate"
    with pytest.raises(SpecError, match="gated joins need a shortcut to gate"):
        load_spec(text.replace("shortcut: B", "shortcut: none"))


def test_a_shipped_definition_serves_specs_that_differ_in_their_norm_and_zero_init():
    from resgraph.ops import BatchNorm, GroupNorm

    text = DENSE.replace(
        "{type: dense, growth_rate: 4, bottleneck_layers: BOTTLENECK, dropout: 0.1}", "basic"
    )
    text = text.replace("{repeats: 2,", "{width: 8, repeats: 2,").replace(
        "{repeats: 1,", "{width: 16, repeats: 1,"
    )
    batch = lower(load_spec(text))
    group = lower(load_spec(text + "norm: {type: group, groups: 4}\n"))
    zeroed = lower(load_spec(text + "zero_init_residual: true\n"))
    assert batch.node("layer1.1.bn2").op == BatchNorm(8)
    assert group.node("layer1.1.bn2").op == GroupNorm(4, 8)
    assert zeroed.node("layer1.1.bn2").op == BatchNorm(8, zero_init=True)
    assert lower(load_spec(text)).node("layer1.1.bn2").op == BatchNorm(8)
