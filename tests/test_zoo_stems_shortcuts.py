"""Deep and tiered stems, the conv stem pool, stem anti-aliasing, shortcut D and the
projection kernel, independently of timm: the ops each lowers to, their fields, state names,
shapes at odd sizes, and the two engines agreeing."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from resgraph import load_spec, lower
from resgraph.emit import build_model
from resgraph.emit.source import emit_source
from resgraph.ops import AvgPool, BatchNorm, Conv, Identity, MaxPool, ReLUModule
from resgraph.render import shortcut_kind
from resgraph.summary import summarize

NET = """\
name: Zoo test net
input: {channels: 3, size: SIZE}
num_classes: 10
stem: {STEM}
block: {type: bottleneck, stride_on: 3x3}
shortcut: SHORTCUT
EXTRA
stages:
  - {width: 8, repeats: 2, stride: 1}
  - {width: 16, repeats: 1, stride: 2}
"""


def _spec(stem="width: 16", shortcut="B", size=32, extra=""):
    text = (
        NET.replace("SIZE", str(size))
        .replace("STEM", stem)
        .replace("SHORTCUT", shortcut)
        .replace("EXTRA\n", extra + "\n" if extra else "")
    )
    return load_spec(text)


def _ops(ir, prefix):
    return {n.name: n.op for n in ir.nodes() if n.name.startswith(prefix)}


# --- stems ----------------------------------------------------------------------------------


def test_deep_stem_is_three_3x3_convs_with_timms_indices():
    ir = lower(_spec("width: 16, type: deep"))
    ops = _ops(ir, "conv1.")
    assert list(ops) == [f"conv1.{i}" for i in range(7)]
    assert ops["conv1.0"] == Conv(3, 8, 3, 2, 1)
    assert ops["conv1.1"] == BatchNorm(8)
    assert ops["conv1.3"] == Conv(8, 8, 3, 1, 1)
    assert ops["conv1.6"] == Conv(8, 16, 3, 1, 1)
    assert isinstance(ops["conv1.2"], ReLUModule) and isinstance(ops["conv1.5"], ReLUModule)
    assert ir.node("bn1").op == BatchNorm(16) and ir.node("maxpool").op == MaxPool(3, 2, 1)
    assert ir.node("maxpool").shape == (16, 8, 8)  # /2 by conv1.0, /2 by the pool


def test_tiered_stem_splits_the_inner_width_in_quarters():
    ir = lower(_spec("width: 16, type: tiered, inner_width: 30"))
    ops = _ops(ir, "conv1.")
    # 3 x (30 // 4) = 21, not 3 x 30 / 4 or 30 * 3 // 4 (22)
    assert [ops[f"conv1.{i}"].out_channels for i in (0, 3, 6)] == [21, 30, 16]
    assert ops["conv1.3"].in_channels == 21


def test_deep_stem_state_names_and_one_call_in_the_generated_forward():
    spec = _spec("width: 16, type: deep")
    model = build_model(spec, "generated")
    keys = [k for k in model.state_dict() if k.startswith("conv1.")]
    assert keys[:2] == ["conv1.0.weight", "conv1.1.weight"]
    assert {k.split(".")[1] for k in keys} == {"0", "1", "3", "4", "6"}
    assert isinstance(model.conv1, nn.Sequential) and len(model.conv1) == 7
    source = emit_source(lower(spec))
    assert "x = self.conv1(x)" in source and "self.conv1[" not in source


def test_conv_stem_pool_replaces_the_max_pool():
    ir = lower(_spec("width: 16, type: deep, pool: conv"))
    ops = _ops(ir, "maxpool")
    assert list(ops) == ["maxpool.0", "maxpool.1", "maxpool.2"]
    assert ops["maxpool.0"] == Conv(16, 16, 3, 2, 1)
    assert ops["maxpool.1"] == BatchNorm(16) and isinstance(ops["maxpool.2"], ReLUModule)
    assert ir.node("maxpool.2").shape == (16, 8, 8)


def test_anti_aliased_conv_stem_pool_filters_after_a_stride_1_conv():
    ir = lower(_spec("width: 16, pool: conv, anti_alias: avgpool"))
    ops = _ops(ir, "maxpool")
    assert list(ops) == ["maxpool.0", "maxpool.1", "maxpool.2", "maxpool.3"]
    assert ops["maxpool.0"] == Conv(16, 16, 3, 1, 1)
    assert ops["maxpool.1"] == AvgPool(2, 2)
    assert ops["maxpool.2"] == BatchNorm(16) and isinstance(ops["maxpool.3"], ReLUModule)
    assert ir.node("maxpool.3").shape == (16, 8, 8)


def test_anti_aliased_max_pool_becomes_a_2x2_average_pool():
    ir = lower(_spec("width: 16, anti_alias: avgpool", size=34))
    assert ir.node("maxpool").op == AvgPool(2, 2)
    assert ir.node("maxpool").shape == (16, 8, 8)  # 34 -> 17 -> floor(17 / 2)


# --- shortcut D -----------------------------------------------------------------------------


def test_shortcut_d_pools_with_ceil_mode_then_projects():
    ir = lower(_spec(shortcut="D"))
    first, down = _ops(ir, "layer1.0.downsample"), _ops(ir, "layer2.0.downsample")
    # stride 1, 16 -> 32 channels: identity in the pool's place, state at .1 and .2
    assert list(first.values()) == [Identity(), Conv(16, 32, 1), BatchNorm(32)]
    assert list(down.values()) == [
        AvgPool(2, 2, ceil_mode=True, count_include_pad=False),
        Conv(32, 64, 1),
        BatchNorm(64),
    ]
    assert not _ops(ir, "layer1.1.downsample")  # nothing changes: identity
    kinds = {p: b.shortcut_kind for p, b in ir.blocks.items()}
    assert kinds == {
        "layer1.0": "avg-projection",
        "layer1.1": "identity",
        "layer2.0": "avg-projection",
    }
    assert {shortcut_kind(ir, b) for b in ir.blocks.values()} == {"projection", "identity"}


def test_shortcut_d_modules_and_state_names():
    model = build_model(_spec(shortcut="D"), "graph")
    pool = model.get_submodule("layer2.0.downsample.0")
    assert isinstance(pool, nn.AvgPool2d)
    assert (pool.kernel_size, pool.stride, pool.ceil_mode, pool.count_include_pad) == (
        2,
        2,
        True,
        False,
    )
    keys = [k for k in model.state_dict() if ".downsample." in k]
    assert keys[0] == "layer1.0.downsample.1.weight"
    assert "layer2.0.downsample.2.running_var" in keys
    assert not any(".downsample.0." in k for k in keys)  # pools and identities hold no state


@pytest.mark.parametrize("size", [29, 30, 31, 33])
def test_shortcut_d_keeps_the_last_partial_window_at_odd_sizes(size):
    """The branch's 3x3/2 conv rounds up; the pool must too (ceil mode) or the add fails, and
    the partial window's mean counts only the pixels it covers."""
    spec = _spec(shortcut="D", size=size)
    ir = lower(spec)
    branch = ir.inputs(ir.blocks["layer2.0"].join)
    assert ir.node(branch[0]).shape == ir.node(branch[1]).shape
    model = build_model(spec, "graph").eval()
    pool = model.get_submodule("layer2.0.downsample.0")
    x = torch.arange(2 * 3 * 3, dtype=torch.float32).reshape(1, 2, 3, 3)
    out = pool(x)
    assert out.shape == (1, 2, 2, 2)
    assert out[0, 0, 1, 1] == x[0, 0, 2, 2]  # a 1-pixel window: that pixel, not a quarter
    assert out[0, 0, 0, 1] == (x[0, 0, 0, 2] + x[0, 0, 1, 2]) / 2


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "padding"),
    [
        (s, k, st, p)
        for s in range(2, 12)
        for k in (2, 3)
        for st in (1, 2, 3)
        for p in (0, 1)
        if p <= k // 2 and s >= k
    ],
)
def test_ceil_mode_shape_rule_is_torchs(size, kernel, stride, padding):
    op = AvgPool(kernel, stride, padding, ceil_mode=True, count_include_pad=False)
    pool = nn.AvgPool2d(kernel, stride, padding, ceil_mode=True, count_include_pad=False)
    expected = pool(torch.zeros(1, 1, size, size)).shape[-1]
    assert op.infer([(1, size, size)]) == (1, expected, expected)


# --- projection kernel ----------------------------------------------------------------------


@pytest.mark.parametrize(("kernel", "padding"), [(1, 0), (3, 1), (5, 2), (7, 3)])
def test_projection_kernel_and_its_padding_where_the_shortcut_downsamples(kernel, padding):
    ir = lower(_spec(extra=f"projection_kernel: {kernel}", size=31))
    assert ir.node("layer2.0.downsample.0").op == Conv(32, 64, kernel, 2, padding)
    assert ir.node("layer1.0.downsample.0").op == Conv(16, 32, 1)  # stride 1: always 1x1
    join = ir.blocks["layer2.0"].join
    assert len({ir.node(i).shape for i in ir.inputs(join)}) == 1


def test_projection_kernel_applies_to_option_c_too():
    ir = lower(_spec(shortcut="C", extra="projection_kernel: 3"))
    assert ir.node("layer1.1.downsample.0").op == Conv(32, 32, 1)
    assert ir.node("layer2.0.downsample.0").op.kernel == 3


# --- both engines, summary ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stem", "shortcut", "extra"),
    [
        ("width: 16, type: tiered", "D", ""),
        ("width: 16, type: deep, pool: conv, anti_alias: avgpool", "D", ""),
        ("width: 16, anti_alias: avgpool", "B", "projection_kernel: 3"),
    ],
)
def test_engines_agree(stem, shortcut, extra):
    spec = _spec(stem, shortcut, size=35, extra=extra)
    graph = build_model(spec, "graph", seed=0).eval()
    generated = build_model(spec, "generated", seed=0).eval()
    assert list(graph.state_dict()) == list(generated.state_dict())
    generated.load_state_dict(graph.state_dict(), strict=True)
    x = torch.randn(2, 3, 35, 35, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(graph(x), generated(x), rtol=1e-5, atol=1e-6)


def test_summary_names_and_counts_the_new_options():
    summary = summarize(_spec("width: 16, type: deep", "D"))
    assert "option D shortcuts" in summary.canonical_name
    assert "deep stem" in summary.canonical_name
    # a three-conv stem counts as one layer: 1 + 3 x 3 bottleneck convs + fc
    assert summary.canonical_name.startswith("ResNet-11,")
    stem_params = 3 * 8 * 9 + 2 * 8 + 8 * 8 * 9 + 2 * 8 + 8 * 16 * 9 + 2 * 16
    assert summary.stages[0].params == stem_params


def test_shortcut_d_of_a_pre_activated_block_reads_the_pre_activated_input():
    """As options B and C do (He et al. 2016): the projection sees BN-ReLU of the input."""
    text = NET.replace("SIZE", "32").replace("STEM", "width: 16").replace("SHORTCUT", "D")
    text = text.replace("EXTRA\n", "").replace("3x3}", "3x3, preactivation: true}")
    ir = lower(load_spec(text))
    block = ir.blocks["layer2.0"]
    assert block.shortcut_input == "layer2.0.relu1"
    assert ir.inputs("layer2.0.downsample.0") == ["layer2.0.relu1"]
