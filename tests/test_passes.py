"""Lowering, shortcut insertion, shape inference, join checks, analysis, summary."""

from __future__ import annotations

import json
import subprocess
import sys

import networkx as nx
import pytest

from helpers import CIFAR20, ROOT, run_cli
from resgraph import ShapeError, SpecError, load_spec, lower
from resgraph.errors import IRError
from resgraph.ir import IR
from resgraph.ops import (
    Add,
    AvgPool,
    BatchNorm,
    Conv,
    EvoNormS0,
    FilterResponseNorm,
    GroupNorm,
    PadShortcut,
    ShapeMismatch,
)
from resgraph.passes import infer_shapes
from resgraph.passes.lower import lower as lower_only
from resgraph.passes.verify import verify
from resgraph.summary import summarize

# Exact parameter counts (torchvision and the faithful CIFAR implementation)
# and multiply-adds (measured, or the paper's Table 1 and sec. 4.2).
GOLDEN = {
    "resnet18": (11_689_512, 1.81e9),
    "resnet34": (21_797_672, 3.66e9),
    "resnet50": (25_557_032, 3.86e9),
    "resnet101": (44_549_160, 7.57e9),
    "resnet152": (60_192_808, 11.28e9),
    "resnet50_torchvision": (25_557_032, 4.09e9),
    "resnet101_torchvision": (44_549_160, 7.80e9),
    "resnet152_torchvision": (60_192_808, 11.51e9),
    "cifar_resnet20": (269_722, 40.55e6),
    "cifar_resnet32": (464_154, None),
    "cifar_resnet44": (658_586, None),
    "cifar_resnet56": (853_018, 125.49e6),
    "cifar_resnet110": (1_727_962, 252.89e6),
    "cifar_resnet1202": (19_421_274, 2.829e9),
    # Plain nets: the same stacks, so CIFAR plain counts equal the option-A ResNets'.
    "cifar_plain20": (269_722, 40.55e6),
    "cifar_plain56": (853_018, 125.49e6),
}


def _ir(name: str) -> IR:
    return lower(load_spec(ROOT / "specs" / f"{name}.yaml"))


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_params_exact_and_macs_within_one_percent(name):
    params, macs = GOLDEN[name]
    ir = _ir(name)
    assert sum(n.params for n in ir.nodes()) == params
    if macs is not None:
        assert sum(n.macs for n in ir.nodes()) == pytest.approx(macs, rel=0.01)


def test_plain_nets_drop_exactly_the_projection_parameters():
    # ResNet-34 (option B) has three projections: 1x1 conv + BN at each stage change.
    projections = sum(
        c_in * c_out + 2 * c_out for c_in, c_out in ((64, 128), (128, 256), (256, 512))
    )
    resnet, plain = _ir("resnet34"), _ir("plain34")
    assert (
        sum(n.params for n in resnet.nodes()) - sum(n.params for n in plain.nodes()) == projections
    )
    assert not any(isinstance(n.op, Add) for n in plain.nodes())


def test_torchvision_names():
    names = set(_ir("resnet50").graph)
    for expected in (
        "conv1",
        "bn1",
        "maxpool",
        "layer1.0.conv1",
        "layer1.0.bn3",
        "layer1.0.downsample.0",
        "layer1.0.downsample.1",
        "layer4.2.conv3",
        "fc",
    ):
        assert expected in names
    assert "layer1.1.downsample.0" not in names


@pytest.mark.parametrize(
    ("shortcut", "pads", "projections", "adds"),
    [
        ("A", 1, 0, 2),
        ("B", 0, 1, 2),
        ("C", 0, 2, 2),
        ("identity", None, None, None),
        ("none", 0, 0, 0),
    ],
)
def test_each_shortcut_option_gives_its_outcome(shortcut, pads, projections, adds):
    spec = load_spec(CIFAR20.replace("shortcut: A", f"shortcut: {shortcut}"))
    if pads is None:  # identity where the shape changes: an error, not a silent fix
        with pytest.raises(ShapeError) as info:
            lower(spec)
        message = str(info.value)
        assert message.startswith("<string>:9:5: stages[1] (layer2.0): cannot add branch 32x16x16")
        assert "use shortcut A, B or C" in message
        return
    ir = lower(spec)
    nodes = ir.nodes()
    assert sum(isinstance(n.op, PadShortcut) for n in nodes) == pads
    proj = [n for n in nodes if n.role == "shortcut" and isinstance(n.op, Conv)]
    assert len(proj) == projections
    assert sum(isinstance(n.op, Add) for n in nodes) == adds
    for n in nodes:
        if n.role == "shortcut":
            assert n.name.startswith(n.scope + ".downsample")


def test_option_a_cannot_remove_channels():
    text = CIFAR20.replace(
        "{width: 32, repeats: 1, stride: 2}", "{width: 8, repeats: 1, stride: 2}"
    )
    with pytest.raises(ShapeError, match=r"<string>:9:5: .*option A can only add channels"):
        lower(load_spec(text))


def test_spatial_size_reaching_zero_is_an_error():
    # Padded 3x3 convs never empty a map; an unpadded window larger than the map does.
    with pytest.raises(ShapeMismatch, match="7x7 conv with stride 1 leaves no pixels of a 4x4"):
        Conv(3, 8, 7, 1, 0).infer([(3, 4, 4)])
    with pytest.raises(ShapeMismatch, match="2x2 avg pool, /2 leaves no pixels of 1x1"):
        AvgPool(2, 2).infer([(8, 1, 1)])
    with pytest.raises(ShapeMismatch, match="conv expects 3 input channels, got 4"):
        Conv(3, 8, 3, 1, 1).infer([(4, 8, 8)])


def test_shapes_are_inferred_on_every_node_and_edge():
    ir = _ir("resnet18")
    assert ir.node("maxpool").shape == (64, 56, 56)
    assert ir.node("layer2.0.downsample.1").shape == (128, 28, 28)
    assert ir.node("layer4.1.relu").shape == (512, 7, 7)
    assert ir.node("fc").shape == (1000,)
    for u, _, data in ir.graph.edges(data=True):
        assert data["shape"] == ir.node(u).shape


def test_infer_shapes_is_idempotent():
    ir = _ir("cifar_resnet20")
    before = [(n.name, n.shape) for n in ir.nodes()]
    assert [(n.name, n.shape) for n in infer_shapes(ir).nodes()] == before


def test_verifier_names_the_broken_node():
    ir = lower_only(load_spec(CIFAR20))
    ir.graph.add_edge("fc", "conv1", port=1)
    ir.invalidate()
    with pytest.raises(IRError, match="cycle"):
        verify(ir, after="test", shapes=False)
    ir = lower_only(load_spec(CIFAR20))
    ir.graph.edges["layer1.0.bn2", "layer1.0.add"]["port"] = 2
    with pytest.raises(IRError, match=r"node 'layer1.0.add': add has input ports \[1, 2\]"):
        verify(ir, after="test", shapes=False)


def test_zero_init_marks_the_last_bn_of_each_residual_branch():
    spec = load_spec(CIFAR20 + "zero_init_residual: true\n")
    marked = [n.name for n in lower(spec).nodes() if isinstance(n.op, BatchNorm) and n.op.zero_init]
    assert marked == ["layer1.0.bn2", "layer2.0.bn2"]


@pytest.mark.subprocess
def test_summary_table_totals_and_json():
    res = run_cli("summary", "specs/resnet50.yaml", "--json", "--per-layer")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["params"] == 25_557_032
    assert data["flops"] == 2 * data["macs"]
    assert data["canonical_name"] == "ResNet-50, paper layout (stride on 1x1), option B shortcuts"
    assert [s["name"] for s in data["stages"]] == [
        "stem",
        "layer1",
        "layer2",
        "layer3",
        "layer4",
        "head",
    ]
    assert sum(s["params"] for s in data["stages"]) == data["params"]
    assert sum(s["macs"] for s in data["stages"]) == data["macs"]
    assert sum(r["params"] for r in data["layers"]) == data["params"]
    assert data["stages"][1]["blocks"] == "bottleneck [64, 64, 256] x3"
    assert data["stages"][4]["output"] == "2048x7x7"
    table = run_cli("summary", "specs/cifar_resnet20.yaml", "--per-layer").stdout
    assert "layer3.2.conv2" in table and "MACs" in table and "FLOPs" in table


def test_activation_memory_warns_about_resnet1202():
    info = summarize(load_spec(ROOT / "specs" / "cifar_resnet1202.yaml"), batch_size=128)
    assert 10 * 2**30 < info.activation_bytes < 30 * 2**30  # the paper-sized model needs many GB
    small = summarize(load_spec(ROOT / "specs" / "cifar_resnet20.yaml"), batch_size=128)
    assert small.activation_bytes < info.activation_bytes / 40


@pytest.mark.subprocess
def test_front_end_commands_do_not_import_torch():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from resgraph.cli import main\n"
        "for args in (['validate', 'specs/resnet50.yaml'], ['summary', 'specs/resnet50.yaml'],"
        " ['build', 'specs/cifar_resnet20.yaml', '-o', sys.argv[1]]):\n"
        "    r = CliRunner().invoke(main, args)\n"
        "    assert r.exit_code == 0, r.output\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code, "/tmp/resgraph-no-torch"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr


@pytest.mark.subprocess
def test_lower_dump_after_a_pass():
    res = run_cli("lower", "specs/cifar_resnet20.yaml", "--dump-after", "insert_shortcuts")
    assert res.returncode == 0
    assert "layer2.0.downsample" in res.stdout
    assert isinstance(lower(load_spec(CIFAR20)).graph, nx.DiGraph)
    with pytest.raises(SpecError):
        load_spec("name: x\n")


def test_a_plain_pre_activation_net_wires_each_block_to_the_last_branch():
    """Pre-activation blocks end at their join; in a plain net (shortcut none) the join is
    removed, and the next block must read the branch that took its place."""
    import torch

    from resgraph import build_model

    text = CIFAR20.replace("block: basic", "block: {type: basic, preactivation: true}")
    plain = lower(load_spec(text.replace("shortcut: A", "shortcut: none")))
    assert not [n for n in plain.nodes() if isinstance(n.op, Add)]
    for block in plain.blocks.values():  # every block reads a node of the graph
        assert plain.node(block.input) and plain.node(block.output)
    assert plain.blocks["layer2.0"].input == plain.blocks["layer1.0"].output
    assert summarize(plain).params == summarize(load_spec(text)).params  # option A has none
    x = torch.randn(2, 3, 32, 32)
    graph, generated = build_model(plain, "graph").eval(), build_model(plain, "generated").eval()
    generated.load_state_dict(graph.state_dict())
    with torch.no_grad():
        assert torch.equal(graph(x), generated(x))


@pytest.mark.parametrize(
    ("op", "per_channel"),
    [
        (BatchNorm(64), 2),
        (GroupNorm(32, 64), 2),
        (EvoNormS0(64, 32), 3),  # weight, bias, v
        (FilterResponseNorm(64), 3),  # weight, bias, tau
    ],
    ids=lambda v: getattr(v, "kind", str(v)),
)
def test_every_norm_checks_its_channels_and_counts_its_parameters(op, per_channel):
    assert op.infer([(64, 8, 8)]) == (64, 8, 8)
    with pytest.raises(ShapeMismatch, match=f"{op.kind} expects 64 channels, got 48"):
        op.infer([(48, 8, 8)])
    assert op.params() == per_channel * 64


def test_a_grouped_norm_needs_groups_that_divide_its_channels():
    for op in (GroupNorm(24, 48), EvoNormS0(48, 24)):
        assert op.infer([(48, 4, 4)]) == (48, 4, 4)
    for op in (GroupNorm(32, 48), EvoNormS0(48, 32)):
        with pytest.raises(ShapeMismatch, match="32 groups do not divide 48 channels"):
            op.infer([(48, 4, 4)])
