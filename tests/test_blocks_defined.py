"""Block types defined in a spec: lowering, both engines, the emitted class, joins and
shortcuts, composition through base files, the spec hash, and one located error for each
kind of mistake in a definition or in its use."""

from __future__ import annotations

import re

import pytest
import torch

from helpers import ROOT
from resgraph import ShapeError, SpecError, load_spec
from resgraph.emit import build_model
from resgraph.emit.source import emit_source
from resgraph.ops import BatchNorm, Concat, Conv, GateMix, ReLU
from resgraph.passes import lower
from resgraph.spec.digest import spec_hash
from resgraph.summary import summarize

FIRE = ROOT / "specs" / "cifar_fire_resnet20.yaml"

# One block of every kind of op field: a bound width, a named width, an inferred input,
# a second input, a zero-initialised norm.
SPEC = """\
name: Defined net
input: {channels: 3, size: 16}
num_classes: 5
stem: {layout: cifar, width: 8}
blocks:
  duo:
    params: {ratio: 0.5}
    widths: {mid: "round(width * ratio)"}
    ops:
      - conv1: {op: conv, out_channels: mid, kernel: 3, stride: stride, padding: 1}
      - bn1: norm
      - relu1: relu
      - conv2: {op: conv, out_channels: width, kernel: 3, padding: 1}
      - bn2: {op: norm, zero_init: true}
block: duo
shortcut: B
stages:
  - {width: 8, repeats: 2, stride: 1}
  - {width: 16, repeats: 2, stride: 2}
"""


def _lowered(text: str):
    return lower(load_spec(text))


def _engines(ir, seed: int = 0):
    torch.manual_seed(seed)
    graph = build_model(ir, "graph").eval()
    generated = build_model(ir, "generated").eval()
    generated.load_state_dict(graph.state_dict(), strict=True)
    return graph, generated


def test_ops_are_built_from_the_registry_with_evaluated_fields():
    ir = _lowered(SPEC)
    conv1 = ir.node("layer2.0.conv1").op
    assert conv1 == Conv(8, 8, 3, stride=2, padding=1)  # in 8, mid = round(16 * 0.5), /2
    assert ir.node("layer2.1.conv1").op == Conv(16, 8, 3, stride=1, padding=1)
    assert ir.node("layer2.0.bn1").op == BatchNorm(8)
    assert ir.node("layer2.0.conv2").op == Conv(8, 16, 3, padding=1)
    assert isinstance(ir.node("layer2.0.relu1").op, ReLU)
    assert ir.inputs("layer2.0.conv2") == ["layer2.0.relu1"]
    block = ir.blocks["layer2.0"]
    assert (block.kind, block.join_kind, block.shortcut_kind) == ("duo", "add", "projection")
    assert ir.blocks["layer2.1"].shortcut_kind == "identity"
    assert ir.node("layer2.0.relu").op == ReLU()  # after the join (post_activation)
    assert [(a.name, a.value) for a in block.args] == [
        ("in_channels", 8),
        ("width", 16),
        ("mid", 8),
        ("stride", 2),
    ]


def test_parameters_and_macs_are_counted_like_built_in_blocks():
    info = summarize(load_spec(SPEC))
    # stem 3*8*9 + BN 16; per block conv1 in*mid*9, bn 2*mid, conv2 mid*w*9, bn 2*w
    blocks = (8 * 4 * 9 + 8 + 4 * 8 * 9 + 16) * 2
    blocks += 8 * 8 * 9 + 16 + 8 * 16 * 9 + 32 + (8 * 16 + 32)  # + projection conv and BN
    blocks += 16 * 8 * 9 + 16 + 8 * 16 * 9 + 32
    assert info.params == 3 * 8 * 9 + 16 + blocks + 16 * 5 + 5


def test_both_engines_agree_bitwise_and_share_state_names():
    ir = _lowered(SPEC)
    graph, generated = _engines(ir)
    assert list(graph.state_dict()) == list(generated.state_dict())
    assert "layer2.0.downsample.0.weight" in graph.state_dict()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(graph(x), generated(x))


def test_zero_init_residual_zeroes_only_the_marked_norm():
    spec = SPEC.replace("shortcut: B", "shortcut: B\nzero_init_residual: true")
    for engine in ("graph", "generated"):
        state = build_model(_lowered(spec), engine).state_dict()
        assert torch.count_nonzero(state["layer1.0.bn2.weight"]) == 0
        assert torch.all(state["layer1.0.bn1.weight"] == 1)
    plain = build_model(_lowered(SPEC), "graph").state_dict()
    assert torch.all(plain["layer1.0.bn2.weight"] == 1)


def test_the_emitted_class_is_readable_and_options_change_numbers_not_classes():
    spec = SPEC.replace(
        "  - {width: 16, repeats: 2, stride: 2}",
        "  - {width: 16, repeats: 2, stride: 2, block: {type: duo, ratio: 0.25}}",
    )
    ir = _lowered(spec)
    text = emit_source(ir)
    assert text.count("class Duo(nn.Module):") == 1 and "class Duo2" not in text
    assert re.search(
        r"self.conv1 = nn.Conv2d\(\s*in_channels, mid, kernel_size=3, stride=stride", text
    )
    assert "self.conv2 = nn.Conv2d(mid, width, kernel_size=3, padding=1, bias=False)" in text
    assert "self.bn2 = nn.BatchNorm2d(width)" in text
    assert "Duo(16, width=16, mid=4)" in text  # ratio 0.25: round(16 * 0.25)
    assert re.search(r"Duo\(\s*8,\s*width=16,\s*mid=4,\s*stride=2,", text)
    forward = text.split("class Duo(nn.Module):")[1].split("class ")[0]
    assert "out = F.relu(self.bn1(self.conv1(x)))" in forward
    assert "out = out + identity" in forward


def test_true_and_false_fields_reach_the_op():
    ir = _lowered(SPEC.replace("kernel: 3, padding: 1}", "kernel: 3, padding: 1, bias: true}"))
    assert ir.node("layer1.0.conv2").op.bias is True
    assert ir.node("layer1.0.conv1").op.bias is False  # the registry's default
    plain = summarize(load_spec(SPEC)).params
    assert summarize(ir).params == plain + 8 * 2 + 16 * 2  # one bias per output channel


def test_a_width_written_with_a_function_is_passed_as_its_value():
    ir = _lowered(SPEC.replace("kernel: 3, padding: 1}", 'kernel: 3, padding: "max(1, 0)"}'))
    assert "padding=1" in emit_source(ir)
    assert ir.node("layer1.0.conv2").bind == (
        ("in_channels", "mid"),
        ("out_channels", "width"),
    )


def test_concat_join_carries_the_input_and_gate_join_mixes():
    dense = SPEC.replace("    ops:", "    join: concat\n    post_activation: false\n    ops:")
    dense = dense.replace(
        "{width: 16, repeats: 2, stride: 2}", "{width: 16, repeats: 2, stride: 1}"
    )
    ir = _lowered(dense)
    assert isinstance(ir.node("layer1.0.concat").op, Concat)
    assert ir.inputs("layer1.0.concat") == [ir.blocks["layer1.0"].input, "layer1.0.bn2"]
    assert ir.node("layer1.1.conv1").op.in_channels == 8 + 8  # input 8 + the branch's 8
    assert ir.node("layer2.0.conv1").op.in_channels == 8 + 8 + 8
    assert ir.node("fc").op.in_features == 8 + 8 * 2 + 16 * 2
    assert "layer1.0.relu" not in ir.graph  # post_activation false: nothing after the join
    assert isinstance(ir.node("final_bn").op, BatchNorm)  # the head pre-activates instead
    strided = _error(SPEC.replace("    ops:", "    join: concat\n    ops:"), ShapeError)
    assert "<string>:20:5: stages[1] (layer2.0): concat needs equal spatial sizes" in strided
    gated = _lowered(SPEC.replace("    ops:", "    join: gate\n    ops:"))
    assert isinstance(gated.node("layer2.0.gate_mix").op, GateMix)
    assert gated.node("layer2.0.gate").op == Conv(8, 16, 1, 2, 0, bias=True)
    graph, generated = _engines(gated)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(graph(x), generated(x))


def test_no_join_and_the_shortcut_options_apply_to_defined_blocks():
    plain = _lowered(SPEC.replace("    ops:", "    join: none\n    ops:"))
    assert all(b.join is None for b in plain.blocks.values())
    assert not any(n.role == "shortcut" for n in plain.nodes())
    option_a = _lowered(SPEC.replace("shortcut: B", "shortcut: A"))
    assert option_a.blocks["layer2.0"].shortcut_kind == "zero-pad"
    option_c = _lowered(SPEC.replace("shortcut: B", "shortcut: C"))
    assert option_c.blocks["layer1.1"].shortcut_kind == "projection"
    none = _lowered(SPEC.replace("shortcut: B", "shortcut: none"))
    assert all(b.shortcut_kind == "none" for b in none.blocks.values())


def test_shortcut_from_an_op_reads_the_pre_activation():
    pre = SPEC.replace(
        "    ops:\n      - conv1:",
        "    shortcut_from: relu0\n    post_activation: false\n    ops:\n"
        "      - bn0: norm\n      - relu0: relu\n      - conv1:",
    )
    ir = _lowered(pre)
    assert ir.blocks["layer2.0"].shortcut_input == "layer2.0.relu0"
    assert ir.inputs("layer2.0.downsample.0") == ["layer2.0.relu0"]
    block = ir.blocks["layer1.1"]  # an identity shortcut adds the block input itself
    assert ir.inputs(block.join) == ["layer1.1.bn2", block.input]
    graph, generated = _engines(ir)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(graph(x), generated(x))


def test_a_library_of_blocks_is_shared_through_base(tmp_path):
    head, _, rest = SPEC.partition("blocks:\n")
    definitions, _, tail = rest.partition("block: duo\n")
    (tmp_path / "library.yaml").write_text("blocks:\n" + definitions)
    user = tmp_path / "net.yaml"
    user.write_text("base: library.yaml\n" + head + "block: duo\n" + tail)
    assert spec_hash(load_spec(user)) == spec_hash(load_spec(SPEC))
    broken = definitions.replace("kernel: 3, padding: 1}", "kernel: 3, padding: 1, groups: 3}")
    (tmp_path / "library.yaml").write_text("blocks:\n" + broken)
    with pytest.raises(ShapeError) as info:
        lower(load_spec(user))
    assert str(info.value) == (
        f"{tmp_path / 'library.yaml'}:9:16: blocks.duo.ops[3].conv2 (layer1.0): conv groups=3 "
        f"must divide in (4) and out (8) channels"
    )


def test_the_hash_follows_the_definition_not_its_spelling():
    same = SPEC.replace("- bn1: norm", "- bn1: {op: norm}")
    assert spec_hash(load_spec(same)) == spec_hash(load_spec(SPEC))
    other = SPEC.replace("kernel: 3, padding: 1}", "kernel: 5, padding: 2}")
    assert spec_hash(load_spec(other)) != spec_hash(load_spec(SPEC))
    option = SPEC.replace("block: duo", "block: {type: duo, ratio: 0.25}")
    assert spec_hash(load_spec(option)) != spec_hash(load_spec(SPEC))


def test_the_shipped_fire_network():
    ir = lower(load_spec(FIRE))
    assert ir.blocks["layer3.0"].args[2].value == 32  # squeeze 0.5 of 64
    assert ir.blocks["layer2.0"].args[2].value == 8  # make_divisible(32 * 0.25, 8)
    graph, generated = _engines(ir)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(graph(x), generated(x))


def test_a_network_of_defined_blocks_is_named_by_its_depth_not_a_family():
    from resgraph.summary import canonical_name

    name = canonical_name(lower(load_spec(FIRE)))
    assert name.startswith("29 weighted layers (CIFAR), fire blocks"), name
    assert "ResNet" not in name


# -- mistakes: one located line each ---------------------------------------------------------
def _error(text: str, exc: type = SpecError) -> str:
    with pytest.raises(exc) as info:
        lower(load_spec(text))
    lines = str(info.value).splitlines()
    assert len(lines) == 1, lines
    return lines[0]


CONV2 = "- conv2: {op: conv, out_channels: width, kernel: 3, padding: 1}"


@pytest.mark.parametrize(
    ("old", "new", "where", "message"),
    [
        (
            "op: conv, out_channels: mid",
            "op: cnv, out_channels: mid",
            "10:21: blocks.duo.ops[0].conv1.op",
            "unknown op 'cnv' (did you mean 'conv'?)",
        ),
        (
            "out_channels: mid, kernel: 3",
            "out_channels: mdi, kernel: 3",
            "10:41: blocks.duo.ops[0].conv1.out_channels",
            "unknown name 'mdi' (did you mean 'mid'?)",
        ),
        (
            "kernel: 3, stride: stride",
            "kernal: 3, stride: stride",
            "10:54: blocks.duo.ops[0].conv1.kernal",
            "op 'conv' has no field 'kernal' (did you mean 'kernel'?)",
        ),
        (
            CONV2,
            CONV2.replace("conv,", "conv, in: relu2,"),
            "13:31: blocks.duo.ops[3].conv2.in",
            "input 'relu2' is not an op before this one: ops run in the order written "
            "(did you mean 'relu1'?)",
        ),
        (
            CONV2,
            CONV2.replace("conv,", "conv, in: bn2,"),
            "13:31: blocks.duo.ops[3].conv2.in",
            "input 'bn2' is not an op before this one: ops run in the order written",
        ),
        ("- conv1: {op: conv,", "- conv1: {op: conv, in: input,", None, None),  # the default
        (
            "- relu1: relu",
            "- relu1: relu\n      - extra: relu\n      - other: {op: relu, in: relu1}",
            "13:16: blocks.duo.ops[3].extra",
            "the output of 'extra' is never used",
        ),
        (
            "- relu1: relu",
            "- relu1: relu\n      - relu1: relu",
            "13:16: blocks.duo.ops[3].relu1",
            "two ops are called 'relu1'",
        ),
        (
            "- relu1: relu",
            "- bn1.x: relu",
            "12:16: blocks.duo.ops[2].bn1.x",
            "'bn1.x' and another op would be one module inside another",
        ),
        (
            "- relu1: relu",
            "- downsample: relu",
            "12:21: blocks.duo.ops[2].downsample",
            "'downsample' cannot name an op",
        ),
        (
            "- relu1: relu",
            "- 0conv: relu",
            "12:16: blocks.duo.ops[2].0conv",
            "'0conv' cannot name an op",
        ),
        (
            CONV2,
            CONV2.replace("out_channels: width, ", ""),
            "13:16: blocks.duo.ops[3].conv2",
            "op 'conv' needs 'out_channels'",
        ),
        (
            "zero_init: true",
            "zero_init: 1",
            "14:36: blocks.duo.ops[4].bn2.zero_init",
            "must be true or false, got 1",
        ),
        (
            "kernel: 3, padding: 1}",
            "kernel: 3, padding: 1, bias: 1}",
            "13:77: blocks.duo.ops[3].conv2.bias",
            "must be true or false, got 1",
        ),
        (
            "kernel: 3, padding: 1}",
            "kernel: 3, padding: [1]}",
            "13:68: blocks.duo.ops[3].conv2.padding",
            "must be a number or an expression",
        ),
        (
            "params: {ratio: 0.5}",
            "params: {ratio: 0.5, width: 3}",
            "7:13: blocks.duo.params",
            "'width' cannot name a parameter",
        ),
        (
            'widths: {mid: "round(width * ratio)"}',
            'widths: {mid: "width ** 2"}',
            "8:19: blocks.duo.widths.mid",
            "the operator in 'width ** 2' is not allowed",
        ),
        (
            "block: duo",
            "block: {type: duo, ration: 1}",
            "15:28: block.ration",
            "unknown key 'ration' (did you mean 'ratio'?)",
        ),
        (
            "block: duo",
            "block: {type: duo, ratio: fast}",
            "15:27: block.ratio",
            "must be a number, got 'fast'",
        ),
        (
            "block: duo",
            "block: dou",
            "15:8: block.type",
            "expected 'basic', 'bottleneck', 'dense', 'duo' or a type defined under 'blocks', got "
            "'dou' (did you mean 'duo'?)",
        ),
        (
            "stride: 2}",
            "stride: 2, widths: [[8], [8]]}",
            "19:48: stages[1].widths",
            "a duo stage has no conv widths to list",
        ),
    ],
)
def test_definition_mistakes_are_located(old, new, where, message):
    assert old in SPEC
    text = SPEC.replace(old, new, 1)
    if where is None:
        lower(load_spec(text))
        return
    assert _error(text).startswith(f"<string>:{where}: {message}")


def test_an_unknown_op_with_no_close_name_points_at_plugins():
    line = _error(SPEC.replace("- relu1: relu", "- relu1: zzzz"))
    assert line.endswith("unknown op 'zzzz' (an op written in Python loads with --plugin)")


def test_a_built_in_name_cannot_be_redefined():
    with pytest.raises(SpecError) as info:
        load_spec(SPEC.replace("  duo:\n", "  basic:\n"))
    lines = str(info.value).splitlines()
    assert lines[0].startswith("<string>:7:5: blocks.basic: 'basic' cannot name a block type")
    assert "got 'duo'" in lines[1] and "'basic' or a type" not in lines[1]


def test_values_that_only_fail_for_one_stage_name_the_block():
    line = _error(SPEC.replace("round(width * ratio)", "width * ratio * 0.3"))
    assert "8:19: blocks.duo.widths.mid: width * ratio * 0.3 is 1.2 here" in line
    assert "(in layer1.0)" in line
    line = _error(SPEC.replace("kernel: 3, padding: 1}", "kernel: 3, padding: 0}"), ShapeError)
    assert (
        line
        == "<string>:18:5: stages[0] (layer1.0): cannot add branch 8x14x14 and shortcut 8x16x16"
    )
    line = _error(SPEC.replace("round(width * ratio)", "width // (stride - 1)"))
    assert "division by zero" in line and "(in layer1.0)" in line
