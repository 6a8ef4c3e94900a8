"""The follow-up architectures: pre-activation, wide and ResNeXt
networks, stochastic depth, gated (highway) joins, longer skips and dense blocks.

Every new spec is checked against the reference parameter counts, and (the two biggest
excepted) both emitters must agree on state_dict keys, weights and outputs, in evaluation
and in training under the same seed. Small inputs and small specs keep the file fast.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from resgraph import load_spec, lower
from resgraph import nn as rnn
from resgraph.emit import build_model
from resgraph.errors import SpecError
from resgraph.ir import IR
from resgraph.ops import AvgPool, Concat, Conv, Dropout, DropPath, GateMix, PadShortcut
from resgraph.summary import canonical_name, depth

ROOT = Path(__file__).resolve().parent.parent


def cifar_basic_params(blocks: int, convs: int = 2, gates: bool = False) -> int:
    """He et al. 2015, sec. 4.2, counted by hand: a 3x3 conv (no bias) + BN from 3 to 16
    maps, three stages of ``blocks`` basic blocks of ``convs`` 3x3 convs + BN at widths 16,
    32, 64 (option A shortcuts: no parameters), an fc 64 -> 10 with bias. A highway gate adds
    one 1x1 conv with bias per block, from the block's input to its width."""
    total = 3 * 16 * 9 + 2 * 16
    cin = 16
    for width in (16, 32, 64):
        for _ in range(blocks):
            total += cin * width * 9 + 2 * width + (convs - 1) * (width * width * 9 + 2 * width)
            if gates:
                total += cin * width + width
            cin = width
    return total + 64 * 10 + 10


# Exact counts from the formula above (independent of resgraph), where there is one.
PARAMS = {
    "cifar_resnet110_stochastic_depth": cifar_basic_params(18),
    "cifar_highway_resnet20": cifar_basic_params(3, gates=True),
    "cifar_resnet_skip3": cifar_basic_params(6, convs=3),
}
REFERENCE = {  # the authors' or torchvision's figure, and the relative tolerance it has
    "resnext50_32x4d": (25_028_904, 0.0),  # torchvision, exact
    "wide_resnet50_2": (68_883_240, 0.0),  # torchvision, exact
    "cifar_preact_resnet164": (1.7e6, 0.02),
    "cifar_preact_resnet1001": (10.2e6, 0.02),
    "cifar_wrn_28_10": (36.5e6, 0.02),
    "cifar_wrn_40_4": (8.9e6, 0.02),
    "cifar_resnet110_stochastic_depth": (1_727_962, 0.0),  # ResNet-110's weights exactly
    "cifar_densenet_bc_100_12": (0.8e6, 0.04),  # "0.8M", one digit: 769,162 rounds to it
    "cifar_resnet_skip3": (853_018, 0.0),  # the 54 convs of ResNet-56, regrouped
}
NAMES = {
    "resnext50_32x4d": "ResNeXt-50 32x4d, torchvision layout (stride on 3x3), option B shortcuts",
    "wide_resnet50_2": "Wide ResNet-50-2, torchvision layout (stride on 3x3), option B shortcuts",
    "cifar_preact_resnet164": "PreAct-ResNet-164 (CIFAR), paper layout (stride on 1x1), "
    "option B shortcuts",
    "cifar_preact_resnet1001": "PreAct-ResNet-1001 (CIFAR), paper layout (stride on 1x1), "
    "option B shortcuts",
    "cifar_wrn_28_10": "WRN-28-10 (CIFAR), option B shortcuts, dropout 0.3",
    "cifar_wrn_40_4": "WRN-40-4 (CIFAR), option B shortcuts",
    "cifar_resnet110_stochastic_depth": "ResNet-110 (CIFAR), option A shortcuts, "
    "stochastic depth p_L=0.5",
    "cifar_densenet_bc_100_12": "DenseNet-BC-100 k=12 (CIFAR)",
    "cifar_highway_resnet20": "ResNet-20 (CIFAR), option A shortcuts, gated (highway) joins",
    "cifar_resnet_skip3": "ResNet-56 (CIFAR), option A shortcuts, residual branches of 3 convs",
}
BIG = {"cifar_preact_resnet1001", "cifar_wrn_28_10"}  # structure and counts only

_IRS: dict[str, IR] = {}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These forwards are tiny: one thread avoids the start-up and scheduling costs of a
    thread pool (seconds per spec on a busy machine), and is restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _ir(stem: str) -> IR:
    if stem not in _IRS:
        _IRS[stem] = lower(load_spec(ROOT / "specs" / f"{stem}.yaml"))
    return _IRS[stem]


def _params(ir: IR) -> int:
    return sum(n.params for n in ir.nodes())


def _small(body: str, *, size: int = 8, head: str = "") -> IR:
    """A CIFAR-style spec of `size` pixels with the given block/shortcut/stages lines."""
    text = f"name: t\ninput: {{channels: 3, size: {size}}}\nnum_classes: 5\n{head}{body}"
    return lower(load_spec(text))


def _agree(ir: IR, *, size: int | None = None, seed: int = 0) -> tuple[torch.nn.Module, ...]:
    """Both emitters: same keys in the same order, same weights under one seed, IR's
    parameter count, same outputs in eval and in train mode under the same seed."""
    graph = build_model(ir, "graph", seed=seed)
    gen = build_model(ir, "generated", seed=seed)
    a, b = graph.state_dict(), gen.state_dict()
    assert list(a) == list(b)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert sum(p.numel() for p in graph.parameters()) == _params(ir)
    assert sum(p.numel() for p in gen.parameters()) == _params(ir)
    size = size or ir.spec.input.size
    shape = (2, ir.spec.input.channels, size, size)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        graph.eval(), gen.eval()
        assert (graph(x) - gen(x)).abs().max().item() <= 1e-5
        graph.train(), gen.train()
        for s in (3, 4):
            torch.manual_seed(s)
            out_graph = graph(x)
            torch.manual_seed(s)
            out_gen = gen(x)
            assert (out_graph - out_gen).abs().max().item() <= 1e-5
    return graph, gen


# --- the new specs -------------------------------------------------------------------------


@pytest.mark.parametrize("stem", sorted(NAMES))
def test_new_spec_parameter_counts_and_names(stem):
    ir = _ir(stem)
    if stem in PARAMS:
        assert _params(ir) == PARAMS[stem]
    if stem in REFERENCE:
        figure, tolerance = REFERENCE[stem]
        assert abs(_params(ir) - figure) <= tolerance * figure
    assert canonical_name(ir) == NAMES[stem]
    text = (ROOT / "specs" / f"{stem}.yaml").read_text()
    assert text.startswith("# yaml-language-server: $schema=schema.json\n# ")


def test_the_formula_gives_the_papers_cifar_counts():
    # He et al. 2015, Table 6: ResNet-20 0.27M, ResNet-110 1.7M; ResNet-56 0.85M
    assert (
        cifar_basic_params(3)
        == 269_722
        == _params(lower(load_spec(ROOT / "specs" / "cifar_resnet20.yaml")))
    )
    assert round(cifar_basic_params(18) / 1e5) == 17 and round(cifar_basic_params(9) / 1e4) == 85


@pytest.mark.slow
@pytest.mark.parametrize("stem", sorted(set(NAMES) - BIG))
def test_both_emitters_agree_on_every_new_spec(stem):
    ir = _ir(stem)
    _agree(ir, size=32 if ir.spec.input.size > 32 else 8)


def test_big_specs_structure():
    ir = _ir("cifar_preact_resnet1001")
    assert [len(s.blocks) for s in ir.stages] == [111, 111, 111]
    assert depth(ir) == 1001
    assert {b.kind for b in ir.blocks.values()} == {"bottleneck"}
    assert ir.node("final_bn").shape == (256, 8, 8)
    # one projection per stage (16 -> 64 at stage 1, then the two downsamplings)
    projections = [n for n in ir.nodes() if n.name.endswith("downsample.0")]
    assert [n.scope for n in projections] == ["layer1.0", "layer2.0", "layer3.0"]

    wrn = _ir("cifar_wrn_28_10")
    assert [len(s.blocks) for s in wrn.stages] == [4, 4, 4]
    assert [wrn.node(f"layer{i}.0.conv2").op.out_channels for i in (1, 2, 3)] == [160, 320, 640]
    dropouts = [n for n in wrn.nodes() if isinstance(n.op, Dropout)]
    assert len(dropouts) == 12 and {n.op.p for n in dropouts} == {0.3}
    # WRN's depth counts the three 1x1 shortcut convs: 1 + 24 + 3 = 28
    assert sum(isinstance(n.op, Conv) for n in wrn.nodes()) == 28
    assert "bn1" not in wrn.graph and "final_bn" in wrn.graph  # pre-activation stem and head


def test_resnext_and_wide_resnet_inner_widths():
    x = _ir("resnext50_32x4d")
    conv = x.node("layer1.0.conv2").op
    assert (conv.in_channels, conv.out_channels, conv.groups, conv.stride) == (128, 128, 32, 1)
    conv = x.node("layer4.0.conv2").op
    assert (conv.out_channels, conv.groups, conv.stride) == (1024, 32, 2)  # stride on 3x3
    assert x.node("layer4.2.conv3").op.out_channels == 2048
    w = _ir("wide_resnet50_2")
    assert [w.node(f"layer{i}.0.conv2").op.out_channels for i in (1, 2, 3, 4)] == [
        128,
        256,
        512,
        1024,
    ]
    assert w.node("layer1.0.conv3").op.out_channels == 256


# --- pre-activation ------------------------------------------------------------------------

PREACT = """\
stem: {layout: cifar, width: 4, activation: false}
block: {type: %s, preactivation: true}
shortcut: %s
stages:
  - {width: 8, repeats: 2, stride: 1}
  - {width: 16, repeats: 2, stride: 2}
"""


@pytest.mark.parametrize("block", ["basic", "bottleneck"])
def test_preactivation_projection_takes_the_activated_input_identity_the_raw_one(block):
    ir = _small(PREACT % (block, "B"))
    for path in ("layer1.0", "layer2.0"):  # the width changes: projection
        assert ir.inputs(f"{path}.downsample.0") == [f"{path}.relu1"]
        assert ir.inputs(f"{path}.add") == [ir.inputs(f"{path}.add")[0], f"{path}.downsample.1"]
    block2 = ir.blocks["layer2.1"]  # identity: the raw block input, not its BN-ReLU
    assert ir.inputs(block2.join)[1] == block2.input == "layer2.0.add"
    # nothing after the addition; BN-ReLU before the pool; no BN-ReLU in the stem
    assert all(b.output == b.join for b in ir.blocks.values())
    assert ir.inputs("avgpool") == ["final_relu"] and ir.inputs("final_relu") == ["final_bn"]
    assert ir.inputs("layer1.0.bn1") == ["conv1"]
    graph, gen = _agree(ir)
    assert "self.downsample(preact)" in _source(ir)


def test_preactivation_option_a_pads_the_raw_input():
    ir = _small(PREACT % ("basic", "A"))
    pad = ir.node("layer2.0.downsample")
    assert isinstance(pad.op, PadShortcut) and ir.inputs(pad.name) == ["layer1.1.add"]
    _agree(ir)


def test_wide_dropout_sits_between_the_convs():
    pre = _small(
        PREACT.replace("preactivation: true", "preactivation: true, dropout: 0.5") % ("basic", "B"),
        head="train: {batch_size: 2}\n",
    )
    assert pre.inputs("layer1.0.dropout1") == ["layer1.0.relu2"]
    assert pre.inputs("layer1.0.conv2") == ["layer1.0.dropout1"]
    _agree(pre)
    post = _small(PREACT.replace("preactivation: true", "dropout: 0.5") % ("basic", "B"))
    assert post.inputs("layer1.0.dropout1") == ["layer1.0.relu1"]
    assert post.inputs("layer1.0.conv2") == ["layer1.0.dropout1"]
    _agree(post)


def _source(ir: IR) -> str:
    from resgraph.emit.source import emit_source

    return emit_source(ir)


# --- longer skips --------------------------------------------------------------------------

SKIP = """\
stem: {layout: cifar, width: 8}
block: {type: basic, convs: %d, preactivation: %s}
shortcut: %s
stages:
  - {width: 8, repeats: 2, stride: 1}
  - {width: 16, repeats: 1, stride: 2}
"""


@pytest.mark.parametrize("convs", [1, 3])
@pytest.mark.parametrize("pre", ["false", "true"])
def test_branches_of_one_and_three_convs(convs, pre):
    ir = _small(SKIP % (convs, pre, "B"))
    for path, block in ir.blocks.items():
        main = [
            n for n in ir.nodes() if n.scope == path and n.role == "main" and isinstance(n.op, Conv)
        ]
        assert [n.name for n in main] == [f"{path}.conv{i}" for i in range(1, convs + 1)]
        assert block.join is not None and block.join.endswith(".add")
    # 3x3 convs: stage 1 has 8 -> 8 everywhere, stage 2 starts 8 -> 16, BN after each conv
    assert depth(ir) == 2 + 3 * convs
    _agree(ir)


def test_skip3_spec_regroups_resnet56():
    ir = _ir("cifar_resnet_skip3")
    assert len(ir.blocks) == 18 and depth(ir) == 56
    resnet56 = lower(load_spec(ROOT / "specs" / "cifar_resnet56.yaml"))
    shapes = sorted(n.op.params() for n in ir.nodes() if isinstance(n.op, Conv))
    assert shapes == sorted(n.op.params() for n in resnet56.nodes() if isinstance(n.op, Conv))


# --- stochastic depth ----------------------------------------------------------------------


def test_drop_path_scales_in_eval_and_drops_whole_branches_in_training():
    x = torch.randn(4, 3, 5, 5)
    drop = rnn.DropPath(0.7)
    drop.eval()
    assert torch.equal(drop(x), x * 0.7)
    drop.train()
    kept = 0
    for seed in range(400):
        torch.manual_seed(seed)
        expect = bool(torch.rand(()) < 0.7)
        torch.manual_seed(seed)
        out = drop(x)
        assert torch.equal(out, x if expect else torch.zeros_like(x))  # the whole batch
        kept += expect
    assert abs(kept / 400 - 0.7) < 0.08


def test_generated_drop_path_behaves_like_the_graph_one():
    ir = _small(
        "stem: {layout: cifar, width: 8}\nblock: basic\nshortcut: A\n"
        "stochastic_depth: {final_survival: 0.5}\nstages:\n  - {width: 8, repeats: 2}\n"
    )
    gen = build_model(ir, "generated", seed=0)
    drop = gen.get_submodule("layer1.1.drop_path")
    assert type(drop).__name__ == "DropPath" and drop.survival == 0.5
    x = torch.randn(2, 8, 4, 4)
    drop.eval()
    assert torch.equal(drop(x), x * 0.5)
    drop.train()
    for seed in range(20):
        torch.manual_seed(seed)
        ours = drop(x)
        torch.manual_seed(seed)
        assert torch.equal(ours, rnn.DropPath(0.5)(x))


def test_stochastic_depth_survival_decays_linearly_to_p_l():
    ir = _ir("cifar_resnet110_stochastic_depth")
    survival = [n.op.survival for n in ir.nodes() if isinstance(n.op, DropPath)]
    assert len(survival) == 54
    # Huang et al. 2016, eq. 4: p_l = 1 - l / L (1 - p_L)
    assert all(math.isclose(p, 1 - (i + 1) / 54 * 0.5) for i, p in enumerate(survival))
    assert survival[-1] == 0.5
    for block in ir.blocks.values():  # drop path on the branch, before the join
        assert ir.inputs(block.join)[0] == f"{block.path}.drop_path"


def test_stochastic_depth_draws_differ_across_seeds_in_training_only():
    ir = _small(
        "stem: {layout: cifar, width: 8}\nblock: basic\nshortcut: A\n"
        "stochastic_depth: {final_survival: 0.2}\nstages:\n  - {width: 8, repeats: 4}\n"
    )
    graph, gen = _agree(ir)
    x = torch.randn(2, 3, 8, 8)
    outs = set()
    with torch.no_grad():
        for seed in range(12):
            torch.manual_seed(seed)
            outs.add(graph(x).sum().item())
        graph.eval()
        assert torch.equal(graph(x), graph(x))
    assert len(outs) > 1


# --- gated (highway) joins -----------------------------------------------------------------

GATE = """\
stem: {layout: cifar, width: 8}
block: {type: basic, join: gate, preactivation: %s}
shortcut: %s
stages:
  - {width: 8, repeats: 1, stride: 1}
  - {width: 16, repeats: 1, stride: 2}
"""


def test_gate_join_wiring_and_parameters():
    ir = _small(GATE % ("false", "B"))
    for path, block in ir.blocks.items():
        mix = ir.node(block.join)
        assert isinstance(mix.op, GateMix)
        branch, carry, gate = ir.inputs(block.join)
        assert branch == f"{path}.bn2" and gate == f"{path}.gate_sigmoid"
        assert ir.inputs(f"{path}.gate") == [block.input]
        conv = ir.node(f"{path}.gate").op
        assert conv.bias and conv.params() == (conv.in_channels + 1) * conv.out_channels
    assert ir.inputs("layer2.0.gate_mix")[1] == "layer2.0.downsample.1"  # carry projected
    _agree(ir)
    pre = _small(GATE % ("true", "B"))
    assert pre.inputs("layer2.0.gate") == ["layer2.0.relu1"]  # the pre-activated input
    _agree(pre)


@pytest.mark.parametrize("engine", ["graph", "generated"])
def test_gate_mixes_branch_and_carry(engine):
    text = GATE % ("false", "identity")
    ir = _small(text.replace("{width: 16, repeats: 1, stride: 2}", "{width: 8, repeats: 1}"))
    model = build_model(ir, engine, seed=0).eval()
    seen: dict[str, torch.Tensor] = {}
    for name in ("layer1.0", "layer1.0.bn2"):
        model.get_submodule(name).register_forward_hook(
            lambda m, i, o, name=name: seen.update({name: o, name + ".in": i[0]})
        )
    gate = model.get_submodule("layer1.0.gate")
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        gate.weight.zero_()
        gate.bias.fill_(-40.0)  # T = 0: carry the input (post-activation ReLU of x >= 0)
        model(x)
        assert torch.allclose(seen["layer1.0"], seen["layer1.0.in"])
        gate.bias.fill_(40.0)  # T = 1: the branch alone, then the ReLU
        model(x)
        assert torch.allclose(seen["layer1.0"], torch.relu(seen["layer1.0.bn2"]))
        gate.bias.zero_()  # T = 1/2: the mean of both
        model(x)
        mean = torch.relu((seen["layer1.0.bn2"] + seen["layer1.0.in"]) / 2)
        assert torch.allclose(seen["layer1.0"], mean, atol=1e-6)


# --- dense blocks --------------------------------------------------------------------------

DENSE = """\
stem: {layout: cifar, width: 16, activation: false}
block: {type: dense, growth_rate: 4, bottleneck_layers: %s, compression: %s, dropout: %s}
stages:
  - {repeats: 3}
  - {repeats: 2, stride: 2}
"""


@pytest.mark.parametrize("bottleneck", ["true", "false"])
def test_dense_channels_grow_by_k_and_transitions_compress_and_halve(bottleneck):
    ir = _small(DENSE % (bottleneck, "0.5", "0.0"))
    kinds = [(p, b.kind) for p, b in ir.blocks.items()]
    assert kinds == [
        ("layer1.0", "dense_layer"),
        ("layer1.1", "dense_layer"),
        ("layer1.2", "dense_layer"),
        ("layer2.0", "transition"),
        ("layer2.1", "dense_layer"),
        ("layer2.2", "dense_layer"),
    ]
    shapes = [ir.node(b.output).shape for b in ir.blocks.values()]
    assert shapes == [(20, 8, 8), (24, 8, 8), (28, 8, 8), (14, 4, 4), (18, 4, 4), (22, 4, 4)]
    for block in ir.blocks.values():
        if block.kind == "transition":
            assert block.join is None
            assert isinstance(ir.node(block.output).op, AvgPool)
            continue
        assert isinstance(ir.node(block.join).op, Concat)
        x, new = ir.inputs(block.join)  # the input first, then the new maps
        assert x == block.input and ir.node(new).shape[0] == 4
        convs = [ir.node(n).op for n in ir.graph if n.startswith(block.path + ".conv")]
        assert [(c.kernel, c.out_channels) for c in convs] == (
            [(1, 16), (3, 4)] if bottleneck == "true" else [(3, 4)]
        )
    assert not [n for n in ir.nodes() if n.role == "shortcut"]  # shortcut B changes nothing
    assert ir.inputs("avgpool") == ["final_relu"] and ir.node("fc").op.in_features == 22
    _agree(ir)


def test_dense_without_compression_keeps_the_maps_and_dropout_agrees_in_training():
    ir = _small(DENSE % ("true", "1.0", "0.2"))
    assert ir.node(ir.blocks["layer2.0"].output).shape == (28, 4, 4)
    assert len([n for n in ir.nodes() if isinstance(n.op, Dropout)]) == 2 * 5 + 1
    _agree(ir)


def test_dense_stages_mix_with_residual_ones_and_stochastic_depth():
    ir = _small(
        "stem: {layout: cifar, width: 8}\nblock: {type: dense, growth_rate: 4}\n"
        "stochastic_depth: {final_survival: 0.5}\nstages:\n  - {repeats: 2}\n"
        "  - {width: 8, repeats: 1, stride: 2, block: basic}\n"
    )
    assert [b.kind for b in ir.blocks.values()] == ["dense_layer", "dense_layer", "basic"]
    assert ir.inputs("layer2.0.downsample.0") == ["layer1.1.concat"]  # 16 -> 8 maps: B
    assert ir.inputs("layer1.0.concat")[1] == "layer1.0.drop_path"
    _agree(ir)


def test_densenet_bc_spec_structure():
    ir = _ir("cifar_densenet_bc_100_12")
    assert [len(s.blocks) for s in ir.stages] == [16, 17, 17]
    assert [ir.node(ir.blocks[f"layer{i}.0"].output).shape for i in (2, 3)] == [
        (108, 16, 16),
        (150, 8, 8),
    ]
    assert ir.node("final_bn").shape == (342, 8, 8)
    assert depth(ir) == 100


# --- located errors ------------------------------------------------------------------------

BAD = """\
name: t
input: {channels: 3, size: 8}
num_classes: 4
stem: {layout: cifar, width: 8}
block: %s
shortcut: %s
stages:
  - %s
  - %s
"""


@pytest.mark.parametrize(
    "fields, expected",
    [
        (
            (
                "{type: basic, join: gate}",
                "none",
                "{width: 8, repeats: 1}",
                "{width: 8, repeats: 1}",
            ),
            ["6:11: shortcut: gated joins need a shortcut to gate"],
        ),
        (
            (
                "{type: basic, join: gate}",
                "B",
                "{width: 8, repeats: 1}",
                "{width: 8, repeats: 1, shortcut: none}",
            ),
            ["9:38: stages[1].shortcut: gated joins need a shortcut to gate"],
        ),
        (
            ("{type: dense, growth_rate: 0}", "B", "{repeats: 1}", "{repeats: 1}"),
            ["5:35: block.growth_rate: must be a positive integer, got 0"],
        ),
        (
            ("{type: dense, compression: 1.5}", "B", "{repeats: 1}", "{repeats: 1}"),
            ["5:35: block.compression: must be <= 1.0, got 1.5"],
        ),
        (
            ("{type: dense}", "B", "{width: 8, repeats: 1}", "{repeats: 1}"),
            ["8:13: stages[0].width: a dense stage has no width"],
        ),
        (
            ("{type: dense}", "none", "{repeats: 1}", "{repeats: 1}"),
            ["6:11: shortcut: dense layers carry their input forward by concatenation"],
        ),
        (
            ("basic", "B", "{repeats: 1}", "{width: 8, repeats: 1}"),
            ["8:5: stages[0]: required field 'width' is missing"],
        ),
        (
            ("{type: dense, join: gate}", "B", "{repeats: 1}", "{repeats: 1}"),
            ["5:22: block: unknown key 'join'"],
        ),
        (
            (
                "{type: dense}",
                "B",
                "{repeats: 1}",
                "{width: 8, repeats: 1, block: {type: basic, join: gate}, shortcut: none}",
            ),
            ["9:72: stages[1].shortcut: gated joins need a shortcut to gate"],
        ),
    ],
)
def test_bad_dense_and_gate_configs_give_located_errors(fields, expected):
    with pytest.raises(SpecError) as info:
        load_spec(BAD % fields)
    lines = str(info.value).splitlines()
    assert len(lines) == len(expected)
    for line, start in zip(lines, expected, strict=True):
        assert line.startswith(f"<string>:{start}"), line
