"""Repeats, conditions and the ops that hierarchical and split-attention blocks need: what
they write out for each block, the generated class they give, and their mistakes."""

from __future__ import annotations

import pytest
import torch

from resgraph import ShapeError, SpecError, load_spec
from resgraph.emit import build_model
from resgraph.emit.source import emit_source
from resgraph.ops import AvgPool, ChannelSlice, Conv, RadixSoftmax, ShapeMismatch
from resgraph.passes import lower
from resgraph.spec.blocks import expand

# A small Res2Net-style block: scale-1 hierarchical 3x3 convs over channel slices, the last
# slice pooled in a stage's first block only.
SPEC = """\
name: Split net
input: {channels: 3, size: 16}
num_classes: 4
stem: {layout: cifar, width: 8}
blocks:
  split:
    class_name: SplitBlock
    params: {scale: 3}
    widths: {part: width // scale}
    ops:
      - conv1: {op: conv, out_channels: part * scale, kernel: 1}
      - bn1: norm
      - relu1: relu
      - repeat: scale - 1
        ops:
          - "piece{i}": {op: slice, in: relu1, start: i * part, stop: (i + 1) * part}
          - "sum{i}": {op: add, in: ["piece{i}", "act{i - 1}"], when: i > 0 and index > 0}
          - "convs.{i}": {op: conv, in_channels: part, out_channels: part, kernel: 3,
                          stride: stride, padding: 1}
          - "bns.{i}": norm
          - "act{i}": relu
      - last: {op: slice, in: relu1, start: (scale - 1) * part, stop: scale * part}
      - pool: {op: avgpool, kernel: 3, stride: stride, padding: 1, when: index == 0}
      - cat: {op: concat, in: ["act{*}", pool]}
      - conv3: {op: conv, in_channels: part * scale, out_channels: width, kernel: 1}
      - bn3: {op: norm, zero_init: true}
block: split
shortcut: B
stages:
  - {width: 12, repeats: 2, stride: 1}
  - {width: 24, repeats: 2, stride: 2}
"""


def _values(spec, index: int, stride: int, width: int = 12, in_channels: int = 8) -> dict:
    """The names of one block of the spec's split type, as lowering computes them."""
    scale = spec.blocks["split"].params["scale"]
    return {
        "in_channels": in_channels,
        "width": width,
        "stride": stride,
        "index": index,
        "scale": scale,
        "part": width // scale,
    }


def test_a_first_block_writes_out_without_the_conditional_sums():
    spec = load_spec(SPEC)
    written, branch, shortcut = expand(spec.blocks["split"], _values(spec, 0, 1))
    names = [w.name for w in written]
    assert names == [
        "conv1", "bn1", "relu1",
        "piece0", "convs.0", "bns.0", "act0",
        "piece1", "convs.1", "bns.1", "act1",
        "last", "pool", "cat", "conv3", "bn3",
    ]  # fmt: skip
    by_name = {w.name: w for w in written}
    assert by_name["convs.1"].inputs == ("piece1",)  # sum1 left out: it stands for piece1
    assert by_name["cat"].inputs == ("act0", "act1", "pool")
    assert by_name["piece1"].loop == {"i": 1}
    assert (branch, shortcut) == ("bn3", "input")


def test_a_later_block_adds_the_previous_output_and_skips_the_pool():
    spec = load_spec(SPEC)
    written, _, _ = expand(spec.blocks["split"], _values(spec, 1, 1))
    by_name = {w.name: w for w in written}
    assert "sum0" not in by_name and by_name["sum1"].inputs == ("piece1", "act0")
    assert by_name["convs.1"].inputs == ("sum1",)
    assert "pool" not in by_name and by_name["cat"].inputs == ("act0", "act1", "last")


def test_the_count_follows_the_option():
    text = SPEC.replace("stride: 2}", "stride: 2, block: {type: split, scale: 4}}")
    text = text.replace("{width: 24,", "{width: 32,")
    ir = lower(load_spec(text))
    assert "layer2.0.convs.2" in ir.graph and "layer1.0.convs.2" not in ir.graph
    assert ir.node("layer2.0.piece2").op == ChannelSlice(16, 24)
    assert ir.node("layer2.0.last").op == ChannelSlice(24, 32)


def test_lowered_ops_and_the_engines():
    ir = lower(load_spec(SPEC))
    assert ir.node("layer2.0.convs.1").op == Conv(8, 8, 3, stride=2, padding=1)
    assert ir.node("layer2.0.pool").op == AvgPool(3, 2, 1)
    assert ir.node("layer2.1.sum1").op.kind == "add"
    assert ir.inputs("layer2.1.sum1") == ["layer2.1.piece1", "layer2.1.act0"]
    state = build_model(ir, "graph").state_dict()
    keys = [k for k in state if k.startswith("layer1.0.") and k.endswith("weight")]
    assert keys == [  # modules in registration order: all convs, then all norms
        "layer1.0.conv1.weight", "layer1.0.bn1.weight",
        "layer1.0.convs.0.weight", "layer1.0.convs.1.weight",
        "layer1.0.bns.0.weight", "layer1.0.bns.1.weight",
        "layer1.0.conv3.weight", "layer1.0.bn3.weight",
        "layer1.0.downsample.0.weight", "layer1.0.downsample.1.weight",
    ]  # fmt: skip
    torch.manual_seed(0)
    graph = build_model(ir, "graph").eval()
    generated = build_model(ir, "generated").eval()
    generated.load_state_dict(graph.state_dict(), strict=True)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(graph(x), generated(x))


def test_the_class_keeps_what_forward_reads_and_names_itself():
    text = emit_source(lower(load_spec(SPEC)))
    assert "class SplitBlock(nn.Module):" in text and "class SplitBlock2(nn.Module):" in text
    first = text.split("class SplitBlock(nn.Module):")[1].split("\nclass ")[0]
    assert "self.part = part" in first and "self.scale = scale" in first
    assert "out2 = out[:, 0 : self.part]" in first
    assert "out[:, self.part : 2 * self.part]" in first
    assert "out[:, (self.scale - 1) * self.part : self.scale * self.part]" in first
    assert "self.pool = nn.AvgPool2d(kernel_size=3, stride=stride, padding=1)" in first
    later = text.split("class SplitBlock2(nn.Module):")[1].split("\nclass ")[0]
    assert "pool" not in later and "out3 = out3 + out2" in later


def test_the_simplest_block_keeps_no_attribute():
    text = emit_source(lower(load_spec(SPEC.replace("- conv1:", "- conv0: relu\n      - conv1:"))))
    assert "self.conv0" not in text  # a function op with no bound field is a plain call


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("repeat: scale - 1", "repeat: scale / 2", "scale / 2 is 1.5 here, not a whole number"),
        ("repeat: scale - 1", "repeat: scale - 9", "repeats -6 times: 0 to 256 allowed"),
        ('"act{*}"', '"other{*}"', "no op was made from 'other{*}' before this one"),
        ('"piece{i}": {op: slice, in: relu1,', '"piece{i}": {op: slice, in: "relu{i}",',
         "input 'relu0' is not an op before this one"),
        ('when: index == 0', 'when: index / 0', "division by zero"),
        ('"convs.{i}"', '"convs.{i / 2}"', "i / 2 is 0.5 here, not a whole number"),
        ('"act{i}": relu', '"act": relu', "two ops are called 'act'"),
        ('in: ["act{*}", pool]', 'in: [pool, pool]',
         "reads 'pool' twice: an op takes a value once"),
        ('{op: concat, in: ["act{*}", pool]}', '{op: add, in: ["act{*}", pool]}',
         "op 'add' takes 2 inputs, got 3"),
        ('{op: concat, in: ["act{*}", pool]}', '{op: concat, in: [pool]}',
         "op 'concat' joins two or more inputs, got 1"),
        ("- conv1: {op: conv,",
         "- conv1: {op: relu, in: [input, input]}\n      - conv0: {op: conv,",
         "reads 'input' twice"),
        ("out_channels: part * scale,", "out_channels: part * 99999,",
         "out_channels is 399996 here: it must be from 1 to 65,536"),
        ("out_channels: part * scale,", "out_channels: part - 4,",
         "out_channels is 0 here: it must be from 1 to 65,536"),
        ("padding: 1}", "padding: -1}", "padding is -1 here: it must be from 0 to 65,536"),
        ("- bn1: norm", "- bn1: norm\n      - drop: {op: dropout, p: 1.5}",
         "p is 1.5 here: it must be from 0 to 1"),
        ("widths: {part: width // scale}", "widths: {part: floor(width * 1e308 * 10)}",
         "cannot be computed here"),
        ("widths: {part: width // scale}", "widths: {part: width * 1e308 * 10}", "is inf here"),
        ("- bn1: norm", "- forward: norm", "'forward' cannot name an op"),
        ("- bn1: norm", "- part: norm", "'part' cannot name an op"),
        ("- bn1: norm", "- _bn1: norm", "'_bn1' cannot name an op"),
    ],
)  # fmt: skip
def test_mistakes_found_while_writing_out_a_block(old, new, message):
    assert old in SPEC
    with pytest.raises(SpecError) as info:
        lower(load_spec(SPEC.replace(old, new, 1)))
    lines = str(info.value).splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert "(in layer1.0)" in lines[0]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("repeat: scale - 1\n", "repeat: scale - 1\n        index: in\n", "'in' cannot name"),
        ("repeat: scale - 1", "repeat: scales - 1", "unknown name 'scales'"),
        ('"convs.{i}"', '"convs.{j}"', "unknown name 'j'"),
        ("when: index == 0", "when: index === 0", "cannot read"),
        ("when: index == 0", "when: depth == 0", "unknown name 'depth'"),
        ("params: {scale: 3}", "params: {scale: 3, super: 1}", "'super' cannot name a parameter"),
        ("params: {scale: 3}", "params: {scale: 3, training: 1}", "'training' cannot name"),
        ("params: {scale: 3}", "params: {scale: 3, nn: 1}", "'nn' cannot name a parameter"),
        ("widths: {part: width // scale}", "widths: {Part: width // scale}", "'Part' cannot"),
    ],
)
def test_mistakes_found_when_the_spec_is_read(old, new, message):
    assert old in SPEC
    with pytest.raises(SpecError) as info:
        load_spec(SPEC.replace(old, new, 1))
    lines = str(info.value).splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert lines[0].startswith("<string>:")


def test_a_skipped_op_may_be_named_in_a_repeat_and_outside_it():
    text = SPEC.replace("when: index == 0}", "when: index == 5}")  # never: `last` goes on
    ir = lower(load_spec(text.replace("repeats: 2, stride: 2", "repeats: 2, stride: 1")))
    assert ir.inputs("layer1.0.cat")[-1] == "layer1.0.last"
    assert "layer1.0.pool" not in ir.graph
    with pytest.raises(ShapeError, match="concat needs equal spatial sizes"):
        lower(load_spec(text))  # where the block strides, the unpooled slice does not fit


def test_slice_rules():
    assert ChannelSlice(2, 5).infer([(8, 4, 4)]) == (3, 4, 4)
    for bad in (ChannelSlice(5, 5), ChannelSlice(6, 9), ChannelSlice(-1, 2)):
        with pytest.raises(ShapeMismatch):
            bad.infer([(8, 4, 4)])
    assert ChannelSlice(2, 5).call_text(["y"]) == "y[:, 2:5]"
    assert ChannelSlice(2, 5).call_text(["y"], {"start": "a"}) == "y[:, a:5]"
    assert ChannelSlice(2, 5).call_text(["y"], {"start": "self.a"}) == "y[:, self.a : 5]"
    assert ChannelSlice(2, 5).call_text(["y"], {"stop": "2 * a"}) == "y[:, 2 : 2 * a]"
    assert ChannelSlice(2, 5).channels_text({"start": "2 * w", "stop": "3 * w"}, []) == "w"
    assert ChannelSlice(2, 5).channels_text({"start": "2 * w"}, ["c"]) is None


def test_radix_softmax_matches_the_split_attention_rule():
    from resgraph.nn import radix_softmax

    torch.manual_seed(1)
    x = torch.randn(2, 12, 1, 1, dtype=torch.float64)
    out = radix_softmax(x, 2, 3)  # 3 groups, 2 splits of 6 channels, split-major
    assert out.shape == x.shape
    flat, got = x.view(2, 3, 2, 2), out.view(2, 2, 3, 2)  # (batch, group, split, c)
    for g in range(3):
        expected = torch.softmax(flat[:, g], dim=1)  # across the splits of group g
        assert torch.allclose(got[:, :, g], expected)
    assert torch.allclose(out.view(2, 2, 6).sum(1), torch.ones(2, 6, dtype=torch.float64))
    assert RadixSoftmax(2, 3).infer([(12, 1, 1)]) == (12, 1, 1)
    with pytest.raises(ShapeMismatch):
        RadixSoftmax(4, 2).infer([(12, 1, 1)])
    assert RadixSoftmax(2, 3).call_text(["g"]) == "radix_softmax(g, 2, 3)"


def test_dilated_conv_shape_label_and_module():
    conv = Conv(4, 4, 3, stride=1, padding=2, dilation=2)
    assert conv.infer([(4, 9, 9)]) == (4, 9, 9)
    assert Conv(4, 4, 3, dilation=3).infer([(4, 9, 9)]) == (4, 3, 3)
    assert conv.label() == "3x3 conv, 4, dilation 2"
    assert conv.params() == Conv(4, 4, 3).params()
    from resgraph.emit.graph_module import module_of

    assert module_of(conv).dilation == (2, 2)
    with pytest.raises(ShapeMismatch):
        Conv(4, 4, 3, dilation=5).infer([(4, 8, 8)])


def test_the_module_attribute_list_is_complete():
    """A block's op or kept parameter named like a torch.nn.Module attribute would replace
    it (``self.forward = ...``): the refused names cover every public one."""
    from torch import nn

    from resgraph.spec.blocks import MODULE_ATTRIBUTES

    public = {n for n in [*dir(nn.Module), *vars(nn.Module())] if not n.startswith("_")}
    assert public <= MODULE_ATTRIBUTES
