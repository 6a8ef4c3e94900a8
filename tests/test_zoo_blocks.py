"""Block internals of the timm zoo, checked without timm: SE and ECA attention, anti-aliased
downsampling, the spec's norm, per-block widths and reduce_first. Each test pins one rule of
docs/zoo.md (a rounding, a kernel rule, a placement, a width) so that a one-line slip in the
lowering fails it; the two engines are compared on every option."""

from __future__ import annotations

import importlib

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resgraph import load_spec, lower, ops
from resgraph.emit.graph_module import build_module
from resgraph.emit.source import build_generated, emit_source
from resgraph.render import to_dot

scope = importlib.import_module("resgraph.passes.scope")

HEAD = """\
name: Zoo blocks
input: {channels: 3, size: 16}
num_classes: 10
stem: {layout: cifar, width: 16}
zero_init_residual: true
"""
TWO = "  - {width: 16, repeats: 2, stride: 1}\n  - {width: 32, repeats: 2, stride: 2}\n"


def spec_text(block: str, stages: str = TWO, extra: str = "") -> str:
    return HEAD + extra + f"block: {block}\nstages:\n" + stages


def ir_of(block: str, stages: str = TWO, extra: str = ""):
    return lower(load_spec(spec_text(block, stages, extra)))


def one_stage(width: int, stride: int = 1, repeats: int = 1) -> str:
    return f"  - {{width: {width}, repeats: {repeats}, stride: {stride}}}\n"


def both(ir):
    """The executed graph and the generated module, built under one seed, in eval mode."""
    return [build(ir, seed=0).double().eval() for build in (build_module, build_generated)]


def x_in(channels: int = 3, size: int = 16) -> torch.Tensor:
    n = 2 * channels * size * size
    return torch.sin(torch.arange(n, dtype=torch.float64) * 0.13).reshape(2, channels, size, size)


def randomise_norms(model: nn.Module) -> None:
    """Non-trivial norm statistics and affine parameters (zero-initialised ones included)."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.num_features, generator=g) * 0.2 - 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            if isinstance(m, nn.BatchNorm2d | nn.GroupNorm):
                m.weight.copy_(
                    torch.rand(
                        m.num_features if hasattr(m, "num_features") else m.num_channels,
                        generator=g,
                    )
                    + 0.5
                )


# --- squeeze-and-excitation --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("channels", "ratio", "expected"),
    [
        (1000, "1/16", 64),  # 62.5: nearest multiple of 8 (truncation would give 56)
        (1064, "1/16", 64),  # 66.5: nearest, not up (rounding up would give 72)
        (1096, "1/16", 72),  # 68.5: halves and more go up
        (64, "1/16", 8),  # 4: never below the divisor
        (256, "0.25", 64),  # ResNet-RS's ratio
    ],
)
def test_se_width_is_timms_make_divisible(channels, ratio, expected):
    value = 1 / 16 if ratio == "1/16" else float(ratio)
    ir = ir_of(f"{{type: basic, attention: {{type: se, ratio: {value!r}}}}}", one_stage(channels))
    fc1, fc2 = ir.node("layer1.0.se.fc1"), ir.node("layer1.0.se.fc2")
    assert (fc1.op.in_channels, fc1.op.out_channels, fc1.op.kernel) == (channels, expected, 1)
    assert (fc2.op.in_channels, fc2.op.out_channels) == (expected, channels)
    assert fc1.op.bias and fc2.op.bias
    # parameters with biases; multiply-adds C x r each (a 1x1 map)
    assert fc1.params + fc2.params == 2 * channels * expected + expected + channels
    assert fc1.macs == fc2.macs == channels * expected


def test_se_sits_after_the_last_norm_before_drop_path_and_the_add():
    ir = ir_of(
        "{type: bottleneck, stride_on: 3x3, attention: se}",
        extra=("stochastic_depth: {final_survival: 0.8}\n"),
    )
    p = "layer2.0."
    assert ir.inputs(p + "se.pool") == [p + "bn3"]
    assert ir.inputs(p + "scale") == [p + "bn3", p + "se.gate"]
    assert ir.inputs(p + "drop_path") == [p + "scale"]
    assert ir.inputs(p + "add")[0] == p + "drop_path"
    assert isinstance(ir.node(p + "se.gate").op, ops.Sigmoid)
    assert isinstance(ir.node(p + "se.relu").op, ops.ReLU)


@pytest.mark.parametrize("engine", [build_module, build_generated])
def test_se_block_computes_x_times_the_gate(engine):
    ir = ir_of("{type: bottleneck, stride_on: 3x3, attention: se}")
    model = engine(ir, seed=0).double().eval()
    randomise_norms(model)
    block = model.get_submodule("layer2.0")
    sub = block.get_submodule
    x = x_in(64, 8)
    with torch.no_grad():
        out = F.relu(sub("bn1")(sub("conv1")(x)))
        out = F.relu(sub("bn2")(sub("conv2")(out)))
        out = sub("bn3")(sub("conv3")(out))
        gate = torch.sigmoid(sub("se.fc2")(F.relu(sub("se.fc1")(out.mean((2, 3), keepdim=True)))))
        shortcut = sub("downsample.1")(sub("downsample.0")(x))
        expected = F.relu(out * gate + shortcut)
        assert torch.allclose(block(x), expected, rtol=1e-12, atol=1e-12)
    assert {k for k in block.state_dict() if k.startswith("se.")} == {
        "se.fc1.weight",
        "se.fc1.bias",
        "se.fc2.weight",
        "se.fc2.bias",
    }


# --- efficient channel attention -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "expected"),
    [(16, 3), (32, 5), (64, 5), (512, 7)],  # 64, 128 (t = 4 is even: 5), 256, 2048 channels
)
def test_eca_kernel_follows_the_channel_count(width, expected):
    ir = ir_of("{type: bottleneck, stride_on: 3x3, attention: eca}", one_stage(width))
    node = ir.node("layer1.0.se.conv")
    assert node.op.kernel == expected
    assert node.params == expected and node.macs == 0  # counted in params, not in MACs
    model = build_module(ir, seed=0)
    assert model.state_dict()["layer1.0.se.conv.weight"].shape == (1, 1, expected)


def test_an_explicit_eca_kernel_wins():
    ir = ir_of(
        "{type: bottleneck, stride_on: 3x3, attention: {type: eca, kernel_size: 3}}", one_stage(512)
    )
    assert ir.node("layer1.0.se.conv").op.kernel == 3


@pytest.mark.parametrize("engine", [build_module, build_generated])
def test_eca_block_convolves_across_channels(engine):
    ir = ir_of("{type: basic, attention: {type: eca, kernel_size: 5}}")
    model = engine(ir, seed=0).double().eval()
    randomise_norms(model)
    block = model.get_submodule("layer1.1")
    sub = block.get_submodule
    x = x_in(16, 8)
    w = sub("se.conv").weight.detach().reshape(5)
    with torch.no_grad():
        out = sub("bn2")(sub("conv2")(F.relu(sub("bn1")(sub("conv1")(x)))))
        m = F.pad(out.mean((2, 3)), (2, 2))  # zero padding (k - 1) / 2 across the channels
        y = sum(w[j] * m[:, j : j + 16] for j in range(5))
        expected = F.relu(out * torch.sigmoid(y)[:, :, None, None] + x)
        assert torch.allclose(block(x), expected, rtol=1e-12, atol=1e-12)
    assert sub("se.conv").bias is None


# --- anti-aliased downsampling -------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["blur", "avgpool"])
def test_bottleneck_anti_aliasing_follows_the_3x3_activation_only_at_stride_2(kind):
    ir = ir_of(f"{{type: bottleneck, stride_on: 3x3, anti_alias: {kind}}}")
    plain = ir_of("{type: bottleneck, stride_on: 3x3}")
    aa = [n.name for n in ir.nodes() if n.name.endswith(".aa")]
    assert aa == ["layer2.0.aa"]  # stride-1 blocks: nothing
    assert ir.inputs("layer2.0.aa") == ["layer2.0.relu2"]
    assert ir.inputs("layer2.0.conv3") == ["layer2.0.aa"]
    assert ir.node("layer2.0.conv2").op.stride == 1
    assert ir.node("layer2.0.downsample.0").op.stride == 2  # the shortcut is not anti-aliased
    op = ir.node("layer2.0.aa").op
    if kind == "blur":
        assert (type(op), op.channels, op.stride) == (ops.BlurPool, 32, 2)
    else:
        assert (type(op), op.kernel, op.stride, op.padding) == (ops.AvgPool, 2, 2, 0)
    assert ir.node("layer2.0.aa").params == 0
    # same shapes as the network without it
    assert ir.node("layer2.0.add").shape == plain.node("layer2.0.add").shape


def test_basic_and_paper_layout_anti_alias_their_strided_conv():
    ir = ir_of("{type: basic, anti_alias: avgpool}")
    assert ir.inputs("layer2.0.aa") == ["layer2.0.relu1"]
    assert ir.inputs("layer2.0.conv2") == ["layer2.0.aa"]
    assert ir.node("layer2.0.conv1").op.stride == 1
    ir = ir_of("{type: bottleneck, stride_on: 1x1, anti_alias: avgpool}")
    assert ir.inputs("layer2.0.aa") == ["layer2.0.relu1"]
    assert ir.node("layer2.0.conv1").op.stride == 1


def test_blur_filter_is_binomial_and_not_saved():
    ir = ir_of("{type: basic, anti_alias: blur}")
    for model in both(ir):
        assert not any(".aa" in k for k in model.state_dict())
        buffers = dict(model.named_buffers())
        filt = buffers["layer2.0.aa.filt"]
        taps = torch.tensor([1.0, 2.0, 1.0], dtype=torch.float64)
        assert filt.shape == (32, 1, 3, 3)
        assert torch.equal(filt, (torch.outer(taps, taps) / 16).expand(32, 1, 3, 3))
        assert [k for k in buffers if k.endswith(".filt")] == ["layer2.0.aa.filt"]


def test_blur_pool_reflects_then_filters_with_stride_2():
    from resgraph.nn import BlurPool2d

    x = torch.arange(20, dtype=torch.float64).reshape(1, 1, 4, 5) ** 2
    out = BlurPool2d(1).double()(x)
    assert out.shape == (1, 1, 2, 3)

    def at(i: int, j: int) -> float:  # reflection: index -1 reads 1, index n reads n - 2
        i = -i if i < 0 else 6 - i if i > 3 else i
        j = -j if j < 0 else 8 - j if j > 4 else j
        return float(x[0, 0, i, j])

    w = [1, 2, 1]
    for oi in range(2):
        for oj in range(3):
            want = sum(
                w[a] * w[b] * at(2 * oi + a - 1, 2 * oj + b - 1) for a in range(3) for b in range(3)
            )
            assert out[0, 0, oi, oj].item() == pytest.approx(want / 16, rel=1e-12)


def test_the_stems_blur_runs_the_max_pool_at_stride_1_then_filters():
    text = (
        spec_text("{type: basic, anti_alias: blur}", extra="")
        .replace("stem: {layout: cifar, width: 16}", "stem: {width: 16, anti_alias: blur}")
        .replace("size: 16", "size: 64")
    )
    ir = lower(load_spec(text))
    assert ir.node("maxpool.0").op == ops.MaxPool(3, 1, 1)
    assert ir.node("maxpool.1").op == ops.BlurPool(16, 2)
    assert ir.inputs("maxpool.1") == ["maxpool.0"]
    assert ir.node("maxpool.1").shape == (16, 16, 16)  # 64 -> /2 conv1 -> /2 blur


# --- norm choice ---------------------------------------------------------------------------------


def test_norm_factory_follows_the_spec():
    spec = load_spec(spec_text("basic", extra="norm: {type: group, groups: 8}\n"))
    assert scope.norm_op(spec, 64) == ops.GroupNorm(8, 64)
    assert scope.norm_op(spec, 64, True) == ops.GroupNorm(8, 64, True)
    wide = spec_text("basic", one_stage(32), "norm: group\n").replace("width: 16}", "width: 32}")
    assert scope.norm_op(load_spec(wide), 64).groups == 32
    assert scope.norm_op(load_spec(spec_text("basic")), 64) == ops.BatchNorm(64)


def test_group_norm_replaces_every_block_norm(monkeypatch):
    # the stem's and the projections' norms take the same factory; allow the option here
    ir = ir_of(
        "{type: bottleneck, stride_on: 3x3, reduce_first: 2}",
        extra="norm: {type: group, groups: 4}\n",
    )
    norms = [n for n in ir.nodes() if n.scope and n.role == "main" and ".bn" in n.name]
    assert len(norms) == 12
    assert all(type(n.op) is ops.GroupNorm and n.op.groups == 4 for n in norms)
    assert {n.name for n in norms if n.op.zero_init} == {
        f"layer{s}.{b}.bn3" for s in (1, 2) for b in (0, 1)
    }
    for model in both(ir):
        gn = model.get_submodule("layer1.0.bn1")
        assert type(gn) is nn.GroupNorm and (gn.num_groups, gn.num_channels) == (4, 8)
        assert torch.count_nonzero(model.get_submodule("layer2.1.bn3").weight) == 0
        assert not any(".bn" in k and "running" in k for k in model.state_dict())


# --- per-block widths and reduce_first -----------------------------------------------------------

PRUNED = """\
  - repeats: 2
    stride: 1
    widths: [[5, 7, 24], [9, 3, 24]]
  - repeats: 2
    stride: 2
    widths: [[11, 13, 40], [6, 8, 40]]
"""


def test_listed_widths_reach_every_conv_and_norm():
    ir = ir_of("{type: bottleneck, stride_on: 3x3, attention: {type: eca, kernel_size: 3}}", PRUNED)
    state = build_module(ir, seed=0).state_dict()
    cin = 16
    for s, blocks in ((1, [(5, 7, 24), (9, 3, 24)]), (2, [(11, 13, 40), (6, 8, 40)])):
        for b, (a, m, out) in enumerate(blocks):
            p = f"layer{s}.{b}."
            assert state[p + "conv1.weight"].shape == (a, cin, 1, 1)
            assert state[p + "conv2.weight"].shape == (m, a, 3, 3)
            assert state[p + "conv3.weight"].shape == (out, m, 1, 1)
            assert [state[p + f"bn{i}.weight"].shape[0] for i in (1, 2, 3)] == [a, m, out]
            cin = out
        assert state[f"layer{s}.0.downsample.0.weight"].shape[0] == out
    source = emit_source(ir)
    assert "nn.Conv2d(in_channels, width1, kernel_size=1, bias=False)" in source
    assert "width1=9" in source and "width1=11" in source


def test_listed_widths_of_basic_blocks():
    stages = "  - repeats: 2\n    stride: 1\n    widths: [[5, 16], [7, 16]]\n"
    state = build_generated(ir_of("basic", stages), seed=0).state_dict()
    assert state["layer1.0.conv1.weight"].shape == (5, 16, 3, 3)
    assert state["layer1.0.conv2.weight"].shape == (16, 5, 3, 3)
    assert state["layer1.1.conv2.weight"].shape == (16, 7, 3, 3)


def test_reduce_first_narrows_the_first_conv_only():
    ir = ir_of("{type: bottleneck, stride_on: 3x3, groups: 2, base_width: 64, reduce_first: 2}")
    # 3x3 width 32 x 64/64 x 2 groups = 64; the first 1x1 puts out 64 // 2
    assert [ir.node(f"layer2.0.conv{i}").op.out_channels for i in (1, 2, 3)] == [32, 64, 128]
    assert ir.node("layer2.0.conv2").op.in_channels == 32
    assert ir.node("layer2.0.bn1").op.channels == 32
    ir = ir_of("{type: basic, reduce_first: 2}")
    assert [ir.node(f"layer2.1.conv{i}").op.out_channels for i in (1, 2)] == [16, 32]
    assert ir.node("layer2.1.conv2").op.in_channels == 16
    source = emit_source(ir)
    assert "self.bn1 = nn.BatchNorm2d(width // 2)" in source
    assert "nn.Conv2d(width // 2, width, kernel_size=3, padding=1, bias=False)" in source


# --- both engines, names and pictures ------------------------------------------------------------


@pytest.mark.parametrize(
    ("block", "stages"),
    [
        (
            "{type: bottleneck, stride_on: 3x3, attention: se, anti_alias: blur, reduce_first: 2}",
            TWO,
        ),
        ("{type: bottleneck, stride_on: 3x3, attention: eca, anti_alias: avgpool}", PRUNED),
        ("{type: basic, attention: se, anti_alias: blur}", TWO),
    ],
)
def test_both_engines_agree_on_keys_weights_and_outputs(block, stages):
    ir = ir_of(block, stages)
    graph, generated = both(ir)
    a, b = graph.state_dict(), generated.state_dict()
    assert list(a) == list(b)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert dict(graph.named_buffers()).keys() == dict(generated.named_buffers()).keys()
    randomise_norms(graph)
    generated.load_state_dict(graph.state_dict())
    with torch.no_grad():
        assert torch.equal(graph(x_in()), generated(x_in()))
    names = {type(graph.get_submodule(p)).__name__ for p in ir.blocks}
    assert names == {type(generated.get_submodule(p)).__name__ for p in ir.blocks}
    assert sum(p.numel() for p in graph.parameters()) == sum(n.params for n in ir.nodes())


def test_block_classes_are_named_and_written_readably():
    ir = ir_of("{type: bottleneck, stride_on: 3x3, attention: se, anti_alias: blur}")
    source = emit_source(ir)
    assert "class SEBottleneck(nn.Module):" in source
    assert "class AntiAliasedSEBottleneck(nn.Module):" in source
    assert "class BlurPool2d(nn.Module):" in source and "class ChannelConv" not in source
    lines = [line.strip() for line in source.splitlines()]
    assert "se = out.mean((2, 3), keepdim=True)" in lines
    assert 'se = F.relu(self.se["fc1"](se))' in lines
    assert "out = out * se" in lines
    assert "self.aa = BlurPool2d(width, stride=stride)" in lines
    assert "Squeeze-and-excitation (Hu et al. 2018)" in source


def test_attention_is_drawn_as_its_own_path():
    ir = ir_of("{type: basic, attention: se}")
    op = to_dot(ir, "op")
    assert "channel attention (SE, ECA)" in op and "#7b4aa8" in op
    assert "basic [16, 16] + SE" in to_dot(ir, "block")


def test_the_canonical_name_notes_attention_anti_aliasing_and_the_norm(monkeypatch):
    from resgraph.summary import canonical_name

    name = canonical_name(ir_of("{type: basic, attention: eca, anti_alias: blur}"))
    assert name.endswith(", ECA, anti-aliased (blur)")
    name = canonical_name(
        ir_of("{type: basic, attention: se}", extra="norm: {type: group, groups: 8}\n")
    )
    assert name.endswith(", SE, group norm (8 groups)")
