"""The options timm's ResNetV2 needs, independently of timm, on a small pre-activation net:
the 1x1 conv classifier, projections without a norm, shortcut modules registered first,
weight-standardised convs, the zero-padded stem pool, EvoNorm-S0 and FRN, and a stage path
holding an index; each with the ops it lowers to, what it computes, and its mistakes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from resgraph import load_spec, lower
from resgraph.diff import stage_facts
from resgraph.emit import ENGINES, build_model
from resgraph.emit.source import emit_source
from resgraph.errors import SpecError
from resgraph.nn import EvoNorm2dS0, FilterResponseNormTlu2d, StdConv2d
from resgraph.ops import (
    AvgPool,
    BatchNorm,
    Conv,
    EvoNormS0,
    FilterResponseNorm,
    Linear,
    MaxPool,
    ReLU,
    ReLUModule,
    StdConv,
    ZeroPad,
)
from resgraph.render.picture import to_dot
from resgraph.summary import summarize

NET = """\
name: Preact test net
input: {channels: 3, size: 32}
num_classes: 10
stem: {width: 8, activation: false STEM}
EXTRA
blocks:
  preact:
    ops:
      - norm1: norm
      - act1: {op: relu, when: not norm_activates}
      - conv1: {op: conv, out_channels: width, kernel: 3, stride: stride, padding: 1}
      - norm2: norm
      - act2: {op: relu, when: not norm_activates}
      - conv2: {op: conv, out_channels: width, kernel: 3, padding: 1}
    post_activation: false
    shortcut_from: act1
block: preact
stages:
  - {width: 8, repeats: 1, stride: 1}
  - {width: 16, repeats: 2, stride: 2}
"""


def _text(extra: str = "", stem: str = "") -> str:
    return NET.replace(" STEM", f", {stem}" if stem else "").replace("EXTRA", extra)


def _spec(extra: str = "", stem: str = ""):
    return load_spec(_text(extra, stem))


def _shortcut(ir, block: str = "layer2.0") -> list[tuple[str, object]]:
    return [(n.name, n.op) for n in ir.nodes() if n.role == "shortcut" and n.scope == block]


def _run(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x)


def _refused(write_spec, text: str, where: str) -> None:
    path = write_spec(text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert len(info.value.problems) == 1
    assert str(info.value).startswith(f"{path}:{where}"), str(info.value)


# --- the head -------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_a_conv_classifier_holds_the_linear_weights_as_1x1_filters(engine):
    linear, conv = lower(_spec()), lower(_spec("head: {classifier: conv}"))
    assert isinstance(linear.node("fc").op, Linear)
    assert conv.node("fc").op == Conv(16, 10, 1, bias=True)
    assert summarize(conv).params == summarize(linear).params
    assert summarize(conv).macs == summarize(linear).macs
    a, b = build_model(linear, engine, seed=0), build_model(conv, engine)
    state = a.state_dict()
    assert b.state_dict()["fc.weight"].shape == (10, 16, 1, 1)
    b.load_state_dict({k: v.reshape(b.state_dict()[k].shape) for k, v in state.items()})
    x = torch.randn(2, 3, 32, 32)
    out = _run(b, x)
    assert out.shape == (2, 10)
    torch.testing.assert_close(out, _run(a, x))


# --- the shortcut -----------------------------------------------------------------------------


def test_without_a_projection_norm_a_projection_is_its_conv_alone():
    assert [op for _, op in _shortcut(lower(_spec()))] == [Conv(8, 16, 1, 2), BatchNorm(16)]
    assert _shortcut(lower(_spec("projection_norm: false"))) == [
        ("layer2.0.downsample.0", Conv(8, 16, 1, 2))
    ]
    pooled = _shortcut(lower(_spec("projection_norm: false\nshortcut: D")))
    assert [op for _, op in pooled] == [AvgPool(2, 2, ceil_mode=True, count_include_pad=False)] + [
        Conv(8, 16, 1)
    ]


def test_a_projection_reads_the_normalised_input_and_identity_the_raw_one():
    ir = lower(_spec("projection_norm: false"))
    assert ir.inputs("layer2.0.downsample.0") == ["layer2.0.act1"]
    assert ir.inputs("layer2.1.add")[1] == "layer2.0.add"  # the block input, not act1


def test_projection_norm_false_without_a_projection_is_refused(write_spec):
    _refused(
        write_spec,
        _text("shortcut: A\nprojection_norm: false"),
        "6:18: projection_norm: no stage projects its shortcut (options B, C, D; here A)",
    )


@pytest.mark.parametrize("engine", ENGINES)
def test_shortcut_first_registers_the_shortcut_before_the_branch(engine):
    def keys(extra: str) -> list[str]:
        model = build_model(lower(_spec(extra)), engine)
        return [k for k in model.state_dict() if k.startswith("layer2.0.")]

    default, first = keys(""), keys("names: {shortcut_first: true}")
    assert default[0] == "layer2.0.norm1.weight"
    assert default[-1].startswith("layer2.0.downsample.1.")
    assert first[:2] == ["layer2.0.downsample.0.weight", "layer2.0.downsample.1.weight"]
    assert sorted(first) == sorted(default)


# --- weight-standardised convs ----------------------------------------------------------------


def test_std_conv_standardises_each_filter_before_use():
    torch.manual_seed(0)
    conv = StdConv2d(4, 6, 3, padding=1, bias=True).double()
    conv.weight.data.mul_(3).add_(0.5)
    x = torch.randn(2, 4, 9, 9, dtype=torch.float64)
    w = conv.weight.detach()
    standard = torch.stack(
        [(f - f.mean()) / (f.var(unbiased=False) + 1e-8).sqrt() for f in w.unbind(0)]
    )
    expected = F.conv2d(x, standard, conv.bias, padding=1)
    torch.testing.assert_close(_run(conv, x), expected)
    assert list(dict(conv.named_parameters())) == ["weight", "bias"]


def test_conv_std_conv_standardises_the_stem_blocks_and_projections_not_the_classifier():
    ir = lower(_spec("conv: std_conv\nhead: {classifier: conv}"))
    convs = {n.name: type(n.op) for n in ir.nodes() if isinstance(n.op, Conv)}
    assert convs.pop("fc") is Conv
    assert set(convs.values()) == {StdConv}
    assert {"conv1", "layer1.0.conv1", "layer2.0.conv2", "layer2.0.downsample.0"} <= set(convs)
    plain = lower(_spec())
    assert {type(n.op) for n in plain.nodes() if isinstance(n.op, Conv)} == {Conv}
    assert summarize(ir).params == summarize(plain).params  # the same state, used otherwise


@pytest.mark.parametrize(
    ("stem", "extra", "convs"),
    [
        ("type: deep", "", ["conv1.0", "conv1.3", "conv1.6", "layer2.0.downsample.0"]),
        ("pool: conv", "shortcut: D", ["conv1", "maxpool.0", "layer2.0.downsample.1"]),
    ],
    ids=["deep-stem", "conv-pool-and-option-d"],
)
def test_every_conv_the_compiler_lays_out_follows_the_spec(stem, extra, convs):
    ir = lower(_spec(f"conv: std_conv\n{extra}", stem=stem))
    assert all(type(ir.node(name).op) is StdConv for name in convs)
    plain = lower(_spec(extra, stem=stem))
    assert all(type(plain.node(name).op) is Conv for name in convs)


@pytest.mark.parametrize("engine", ENGINES)
def test_engines_agree_with_standardised_convs(engine):
    ir = lower(_spec("conv: std_conv"))
    a = build_model(ir, "graph", seed=1)
    b = build_model(ir, engine)
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(_run(a, x), _run(b, x))
    assert type(b.get_submodule("conv1")).__name__ == "StdConv2d"  # the helper, or its copy


def test_std_conv_with_built_in_blocks_is_refused(write_spec):
    text = _text("conv: std_conv").replace("block: preact", "block: basic")
    _refused(write_spec, text, "5:7: conv: stage 0's blocks are a built-in type")


# --- the stem's zero-padded pool --------------------------------------------------------------


def test_zero_pad_max_pads_with_zeros_then_pools_without_padding():
    ir = lower(_spec(stem="pool: zero_pad_max"))
    assert ir.node("pad").op == ZeroPad(1) and ir.node("maxpool").op == MaxPool(3, 2, 0)
    assert ir.inputs("maxpool") == ["pad"] and ir.inputs("pad") == ["conv1"]
    assert ir.node("pad").shape == (8, 18, 18) and ir.node("maxpool").shape == (8, 8, 8)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_zero_padded_pool_counts_the_padding_as_zero(engine):
    """A stem conv that puts out negative values everywhere: the zero padding wins at the
    border, where a max pool's own padding (minus infinity) would not."""
    outs = {}
    for pool in ("max", "zero_pad_max"):
        model = build_model(lower(_spec("outputs: [stem]", stem=f"pool: {pool}")), engine)
        torch.nn.init.constant_(model.get_submodule("conv1").weight, -1.0)
        outs[pool] = _run(model, torch.ones(1, 3, 32, 32))["stem"]
    assert outs["max"].max() < 0
    padded = outs["zero_pad_max"]
    assert padded[..., 0, :].eq(0).all() and padded[..., :, 0].eq(0).all()
    torch.testing.assert_close(padded[..., 1:, 1:], outs["max"][..., 1:, 1:])


def test_zero_pad_max_with_anti_aliasing_is_refused(write_spec):
    text = _text(stem="pool: zero_pad_max, anti_alias: blur")
    _refused(write_spec, text, "4:69: stem.anti_alias: pool 'zero_pad_max' is not anti-aliased")


# --- norms with their own nonlinearity --------------------------------------------------------


def test_evonorm_s0_divides_x_sigmoid_vx_by_the_group_std():
    torch.manual_seed(0)
    norm = EvoNorm2dS0(8, groups=2).double()
    for p in norm.parameters():
        p.data.uniform_(0.5, 1.5)
    x = torch.randn(3, 8, 5, 4, dtype=torch.float64)
    std = torch.cat(
        [
            (part.var(dim=(1, 2, 3), unbiased=False, keepdim=True) + 1e-5).sqrt().expand_as(part)
            for part in x.split(4, dim=1)
        ],
        dim=1,
    )
    w, b, v = (t.detach().view(1, -1, 1, 1) for t in (norm.weight, norm.bias, norm.v))
    expected = x * torch.sigmoid(v * x) / std * w + b
    torch.testing.assert_close(_run(norm, x), expected)
    assert list(dict(norm.named_parameters())) == ["weight", "bias", "v"]


def test_frn_tlu_normalises_by_the_mean_square_and_thresholds():
    torch.manual_seed(0)
    norm = FilterResponseNormTlu2d(6).double()
    for p in norm.parameters():
        p.data.uniform_(-0.5, 1.5)
    x = torch.randn(2, 6, 5, 5, dtype=torch.float64)
    w, b, tau = (t.detach().view(1, -1, 1, 1) for t in (norm.weight, norm.bias, norm.tau))
    mean_square = (x * x).mean(dim=(2, 3), keepdim=True)
    expected = torch.max(x / (mean_square + 1e-5).sqrt() * w + b, tau)
    out = _run(norm, x)
    torch.testing.assert_close(out, expected)
    assert out.eq(tau.expand_as(out)).any()  # the threshold takes effect somewhere
    assert list(dict(norm.named_parameters())) == ["weight", "bias", "tau"]


@pytest.mark.parametrize(
    ("norm", "op"),
    [("{type: evonorm_s0, groups: 4}", EvoNormS0(4, 4)), ("frn", FilterResponseNorm(4))],
)
def test_a_norm_with_its_own_nonlinearity_gets_no_relu_after_it(norm, op):
    ir = lower(_spec(f"norm: {norm}", stem="type: deep"))
    assert ir.node("conv1.1").op == op
    assert "conv1.2" not in ir.graph and ir.inputs("conv1.3") == ["conv1.1"]
    assert "final_relu" not in ir.graph and ir.inputs("avgpool") == ["final_bn"]
    batch = lower(_spec(stem="type: deep"))
    assert isinstance(batch.node("conv1.2").op, ReLUModule)
    assert isinstance(batch.node("final_relu").op, ReLU)


@pytest.mark.parametrize(
    ("norm", "activates"),
    [
        ("batch", 0),
        ("{type: group, groups: 4}", 0),
        ("{type: evonorm_s0, groups: 4}", 1),
        ("frn", 1),
    ],
)
def test_a_definition_reads_whether_the_norm_brings_its_own_nonlinearity(norm, activates):
    ir = lower(_spec(f"norm: {norm}"))
    relus = [n.name for n in ir.nodes() if n.scope == "layer2.1" and isinstance(n.op, ReLU)]
    assert relus == ([] if activates else ["layer2.1.act1", "layer2.1.act2"])


def test_norm_activates_cannot_be_a_param(write_spec):
    text = _text().replace("  preact:\n", "  preact:\n    params: {norm_activates: 0}\n")
    with pytest.raises(SpecError, match="norm_activates"):
        load_spec(write_spec(text))


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("norm", ["{type: evonorm_s0, groups: 4}", "frn"])
def test_engines_agree_with_evonorm_and_frn(engine, norm):
    ir = lower(_spec(f"norm: {norm}", stem="type: deep"))
    a = build_model(ir, "graph", seed=2)
    for p in a.parameters():  # away from the constructors' values
        p.data.add_(torch.rand_like(p) * 0.1)
    b = build_model(ir, engine)
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(_run(a, x), _run(b, x))


def test_evonorm_groups_must_divide_every_normalised_width(write_spec):
    _refused(
        write_spec,
        _text("norm: {type: evonorm_s0, groups: 3}"),
        "5:34: norm.groups: group norm with 3 groups needs channel counts divisible by 3",
    )


def test_frn_with_groups_is_refused(write_spec):
    _refused(
        write_spec,
        _text("norm: {type: frn, groups: 4}"),
        "5:27: norm.groups: groups are for group norm",
    )


# --- a stage path with an index ---------------------------------------------------------------


def test_a_stage_path_may_hold_an_index():
    spec = _spec('names: {stage: "stages.{stage}.blocks"}')
    ir = lower(spec)
    assert "stages.1.blocks.0.conv1" in ir.graph
    assert 'self.stages[1]["blocks"](' in emit_source(ir)
    a, b = build_model(ir, "graph", seed=3), build_model(ir, "generated")
    assert list(a.state_dict()) == list(b.state_dict())
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(_run(a, x), _run(b, x))


def test_generated_source_imports_functional_only_where_it_calls_it():
    text = _text("norm: frn\nhead: {classifier: conv}")
    without = emit_source(lower(load_spec(text)))
    assert "import torch.nn.functional" not in without and "F." not in without
    namespace: dict[str, object] = {}
    exec(compile(without, "<generated>", "exec"), namespace)  # it runs without the import
    out = _run(namespace["build_model"](), torch.randn(1, 3, 32, 32))  # type: ignore[operator]
    assert out.shape == (1, 10)
    assert "import torch.nn.functional as F" in emit_source(lower(_spec()))  # F.relu


def test_a_dotted_stage_path_is_one_stage_in_the_summary_the_diff_and_the_picture():
    dotted = lower(_spec('names: {stage: "stages.{stage}.blocks"}'))
    info = summarize(dotted)
    assert [r.name for r in info.stages] == ["stem", "stages.0.blocks", "stages.1.blocks", "head"]
    plain = summarize(lower(_spec()))
    assert [r.params for r in info.stages] == [r.params for r in plain.stages]
    facts = stage_facts(dotted, info)["stages.1.blocks"]
    assert facts["shortcut outcome"] == "1x1 conv, 16, /2 + BN x1, identity x1"
    assert facts["strided layers"].startswith("stages.1.blocks.0.conv1 (3x3 conv, 16, /2)")
    dot = to_dot(dotted, "stage")
    assert "output 16x4x4" in dot and "shortcuts: 1 projection, 1 identity" in dot
