"""``resgraph render``: structure of the DOT source at each level, folding, the default
level, shortcut styles, and the command line (formats, missing ``dot``, bad options)."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import graphviz
import pytest
from click.testing import CliRunner

from resgraph import load_spec, lower
from resgraph.cli import main
from resgraph.ir import IR, Block, BlockArg, Node, Stage
from resgraph.ops import (
    Add,
    Concat,
    Conv,
    GateMix,
    GlobalAvgPool,
    Input,
    Linear,
    PadShortcut,
    fmt_shape,
)
from resgraph.render import build, default_level, to_dot
from resgraph.spec.schema import DenseBlockSpec

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"
HAS_DOT = shutil.which("dot") is not None
SHORTCUT_BLUE = "#1f5fa8"


# -- a small reader of the DOT that graphviz's Python package writes ----------------------
_ID = r'"(?:[^"\\]|\\.)*"|[\w.]+'
_NODE = re.compile(rf"^\s*({_ID}) \[(.*)\]$")
_EDGE = re.compile(rf"^\s*({_ID}) -> ({_ID})(?: \[(.*)\])?$")


def _unquote(text: str) -> str:
    return text[1:-1].replace('\\"', '"') if text.startswith('"') else text


def _attrs(text: str) -> dict[str, str]:
    """Parse ``a=b c="d e" label=<<B>x</B>>`` (quoted strings and nested <...> values)."""
    out, i = {}, 0
    while i < len(text):
        m = re.compile(r"\s*(\w+)=").match(text, i)
        assert m, f"cannot parse attributes at {text[i:]!r}"
        key, i = m.group(1), m.end()
        if text[i] == '"':
            j = i + 1
            while text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out[key], i = text[i + 1 : j].replace('\\"', '"'), j + 1
        elif text[i] == "<":
            depth, j = 0, i
            while True:
                depth += {"<": 1, ">": -1}.get(text[j], 0)
                if depth == 0:
                    break
                j += 1
            out[key], i = text[i : j + 1], j + 1
        else:
            m = re.compile(r"[^\s]+").match(text, i)
            assert m
            out[key], i = m.group(0), m.end()
    return out


def text_of(label: str) -> str:
    """The visible text of a label: HTML tags dropped, lines joined by newlines."""
    if label.startswith("<"):
        label = re.sub(r"<BR/>", "\n", label[1:-1]).replace("</TD>", " </TD>")
        label = html.unescape(re.sub(r"<[^>]+>", "", label))
    return label


class Dot:
    """Nodes and edges of a DOT text; names starting with '@' (cluster captions) are kept
    apart from the drawing of the network. ``title`` is the text of the graph's label (the
    name, the totals and the legend), ``legend`` its raw HTML."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.nodes: dict[str, dict[str, str]] = {}
        self.edges: list[tuple[str, str, dict[str, str]]] = []
        self.extra_nodes: dict[str, dict[str, str]] = {}
        self.extra_edges: list[tuple[str, str, dict[str, str]]] = []
        for line in source.splitlines():
            if m := _EDGE.match(line):
                u, v = _unquote(m.group(1)), _unquote(m.group(2))
                extra = u.startswith("@") or v.startswith("@")
                (self.extra_edges if extra else self.edges).append((u, v, _attrs(m.group(3) or "")))
            elif (m := _NODE.match(line)) and m.group(1) not in ("graph", "node", "edge"):
                name = _unquote(m.group(1))
                target = self.extra_nodes if name.startswith("@") else self.nodes
                target[name] = _attrs(m.group(2))
        self.clusters = re.findall(r"subgraph (cluster_\w+)", source)
        graph = next(line for line in source.splitlines() if line.startswith("\tgraph ["))
        self.legend = _attrs(graph.strip()[len("graph [") : -1])["label"]
        self.title = text_of(self.legend)

    def label(self, name: str) -> str:
        return text_of(self.nodes[name]["label"])

    def styled(self, style: str) -> list[tuple[str, str, dict[str, str]]]:
        return [e for e in self.edges if e[2].get("style") == style]


@cache
def ir_of(name: str) -> IR:
    return lower(load_spec(SPECS / f"{name}.yaml"))


def dot_of(name: str, level: str | None = None, **kw: object) -> Dot:
    return Dot(to_dot(ir_of(name), level, **kw))  # type: ignore[arg-type]


def projections(ir: IR) -> int:
    return sum(f"{path}.downsample.0" in ir.graph for path in ir.blocks)


def zero_pads(ir: IR) -> int:
    return sum(
        f"{path}.downsample" in ir.graph
        and isinstance(ir.node(f"{path}.downsample").op, PadShortcut)
        for path in ir.blocks
    )


def write_spec(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


RESNET18_C = """\
name: ResNet-18 C
input: {channels: 3, size: 224}
num_classes: 1000
block: basic
shortcut: C
stages:
  - {width: 64, repeats: 2, stride: 1}
  - {width: 128, repeats: 2, stride: 2}
  - {width: 256, repeats: 2, stride: 2}
  - {width: 512, repeats: 2, stride: 2}
"""

GATED = """\
name: Gated
input: {channels: 3, size: 32}
num_classes: 10
stem: {layout: cifar, width: 16}
block: {type: basic, join: gate}
shortcut: A
stages:
  - {width: 16, repeats: 2, stride: 1}
  - {width: 32, repeats: 2, stride: 2}
"""


# -- op level ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, nodes, edges",
    [
        # 4 stem + 9 blocks x 7 ops + 2 zero-pads + 2 head; every op has one input, joins two
        ("cifar_resnet20", 71, 79),
        # 5 stem + 16 x 7 + 3 projections x 2 + 2 head
        ("resnet34", 125, 140),
        # 5 stem + 16 x 10 + 4 projections x 2 + 2 head
        ("resnet50", 175, 190),
    ],
)
def test_op_level_draws_every_op_and_edge(name: str, nodes: int, edges: int) -> None:
    ir = ir_of(name)
    dot = dot_of(name, "op", fold=False)
    assert len(dot.nodes) == len(ir.graph) == nodes
    assert len(dot.edges) == ir.graph.number_of_edges() == edges
    assert set(dot.nodes) == set(ir.graph)
    assert {(u, v) for u, v, _ in dot.edges} == set(ir.graph.edges)
    stages = [f"cluster_{s.path}" for s in ir.stages]
    assert set(stages) | {"cluster_stem", "cluster_head"} <= set(dot.clusters)


def test_op_level_labels_are_the_ops_essentials() -> None:
    dot = dot_of("resnet34", "op")
    assert dot.label("conv1") == "7x7 conv, 64, /2"
    assert dot.label("maxpool") == "3x3 max pool, /2"
    assert dot.label("layer2.0.conv1") == "3x3 conv, 128, /2"
    assert dot.label("layer2.0.downsample.0") == "1x1 conv, 128, /2"
    assert dot.label("layer2.0.bn1") == "BN"
    assert dot.label("layer2.0.relu") == "ReLU"
    assert dot.label("layer2.0.add") == "+"
    assert dot.label("fc") == "fc, 1000"
    assert not any("params" in dot.label(n) for n in dot.nodes)  # only with stats=True
    assert "params 21.8M" in dot.title  # the totals head the picture


def test_every_edge_is_labelled_with_its_tensor_shape() -> None:
    ir = ir_of("resnet34")
    dot = dot_of("resnet34", "op")
    labels = {(u, v): a["label"].strip() for u, v, a in dot.edges}
    for u, v, data in ir.graph.edges(data=True):
        assert labels[u, v] == fmt_shape(data["shape"])
    assert labels["input", "conv1"] == "3x224x224"
    assert labels["maxpool", "layer1.0.conv1"] == "64x56x56"
    assert labels["layer2.0.downsample.1", "layer2.0.add"] == "128x28x28"
    assert labels["avgpool", "fc"] == "512"


def _into_joins(dot: Dot, style: str, ir: IR | None = None) -> list[tuple[str, str, dict]]:
    """Shortcut edges of ``style`` that end in a residual join (add or gated mix)."""

    def is_join(name: str) -> bool:
        return isinstance(ir.node(name).op, (Add, GateMix)) if ir else name.endswith(".add")

    return [e for e in dot.styled(style) if is_join(e[1]) and e[2].get("color") == SHORTCUT_BLUE]


def test_projection_shortcuts_are_dashed() -> None:
    ir = ir_of("resnet34")
    dot = dot_of("resnet34", "op")
    assert projections(ir) == 3
    assert len(_into_joins(dot, "dashed")) == 3  # one dashed shortcut per projection
    assert len(dot.styled("dashed")) == 3 * 3  # source -> 1x1 conv -> BN -> add
    assert {v for _, v, _ in _into_joins(dot, "dashed")} == {
        "layer2.0.add",
        "layer3.0.add",
        "layer4.0.add",
    }
    assert not dot.styled("dotted")
    identity = [e for e in dot.edges if e[1].endswith(".add") and e[2].get("style") == "solid"]
    assert len(identity) == len(ir.blocks) - 3
    assert "projection shortcut (B, C, D)" in dot.title and "zero-pad" not in dot.title
    assert 'STYLE="dashed" COLOR="#1f5fa8"' in dot.legend  # a sample of the dashed line


def test_shortcut_c_gives_a_dashed_shortcut_per_block(tmp_path: Path) -> None:
    ir = lower(load_spec(write_spec(tmp_path, "r18c", RESNET18_C)))
    dot = Dot(to_dot(ir, "op"))
    assert projections(ir) == len(ir.blocks) == 8
    assert len(_into_joins(dot, "dashed")) == 8
    blocks = Dot(to_dot(ir, "block", fold=False))
    assert sum("dashed" in a.get("style", "") for a in blocks.nodes.values()) == 8


def test_option_a_zero_pad_shortcuts_are_dotted() -> None:
    ir = ir_of("cifar_resnet20")
    dot = dot_of("cifar_resnet20", "op")
    assert zero_pads(ir) == 2
    assert len(_into_joins(dot, "dotted")) == 2
    assert len(dot.styled("dotted")) == 2 * 2  # source -> zero-pad -> add
    assert not dot.styled("dashed")
    assert dot.label("layer2.0.downsample") == "zero-pad 16->32, /2"
    assert "zero-pad shortcut (A)" in dot.title and "projection shortcut" not in dot.title
    assert 'STYLE="dotted" COLOR="#1f5fa8"' in dot.legend


def test_plain_network_has_no_shortcut_edges_and_no_legend() -> None:
    dot = dot_of("cifar_plain20", "op")
    assert len(dot.nodes) == len(ir_of("cifar_plain20").graph)
    assert not any(a.get("color") == SHORTCUT_BLUE for _, _, a in dot.edges)
    assert "edges:" not in dot.title and "shortcut" not in dot.title


def test_gate_paths_and_legend(tmp_path: Path) -> None:
    ir = lower(load_spec(write_spec(tmp_path, "gated", GATED)))
    dot = Dot(to_dot(ir, "op"))
    gate_nodes = [n for n in ir.graph if ir.node(n).role == "gate"]
    gate_edges = [e for e in dot.edges if e[2].get("color") == "#c8641e"]
    # into the gate conv, conv -> sigmoid, sigmoid -> mix: three per block
    assert len(gate_nodes) == 2 * len(ir.blocks)
    assert len(gate_edges) == 3 * len(ir.blocks)
    mixes = [n for n in ir.graph if n.endswith(".gate_mix")]
    assert all(dot.label(n) == "T*F + (1-T)*x" for n in mixes)
    assert "gate path (highway join)" in dot.title
    block = Dot(to_dot(ir, "block"))
    assert "gated (highway) join" in block.title
    assert block.nodes["layer1.0"]["fillcolor"] != block.nodes["input"]["fillcolor"]


def test_concat_joins_are_drawn_generically() -> None:
    """A hand-built DenseNet-like IR: the concat join's extra input gets its own style."""
    spec = ir_of("cifar_resnet20").spec
    ir = IR(spec)
    ir.add(Node("input", Input(3, 8), shape=(3, 8, 8)))
    ir.add(Node("conv1", Conv(3, 4, 3, 1, 1), shape=(4, 8, 8)), "input")
    conv = Node("layer1.0.conv1", Conv(4, 4, 3, 1, 1), "layer1.0", section="stage", shape=(4, 8, 8))
    ir.add(conv, "conv1")
    # like DenseNet's lowering: the block input on port 0, the new maps on port 1
    cat = Node("layer1.0.cat", Concat(), "layer1.0", section="stage", shape=(8, 8, 8))
    ir.add(cat, "conv1", "layer1.0.conv1")
    ir.add(Node("avgpool", GlobalAvgPool(), section="head", shape=(8,)), "layer1.0.cat")
    ir.add(Node("fc", Linear(8, 10), section="head", shape=(10,)), "avgpool")
    ir.set_block(
        Block(
            path="layer1.0",
            stage=0,
            index=0,
            kind="dense_layer",
            spec=DenseBlockSpec(),
            args=(BlockArg("in_channels", 4), BlockArg("growth_rate", 4)),
            stride=1,
            shortcut="B",
            input="conv1",
            output="layer1.0.cat",
            join="layer1.0.cat",
            join_kind="concat",
            shortcut_input="conv1",
            shortcut_kind="none",
        )
    )
    ir.stages.append(Stage("layer1", 0, ("layer1.0",)))
    before = sorted(ir.graph.edges(data=True))
    dot = Dot(to_dot(ir, "op"))
    assert [(u, v) for u, v, a in dot.edges if a.get("color") == "#2f8f4f"] == [
        ("conv1", "layer1.0.cat")
    ]
    assert dot.label("layer1.0.cat") == "concat"
    assert "concatenated input" in dot.title
    assert "concat join" in text_of(Dot(to_dot(ir, "block")).nodes["layer1.0"]["label"])
    assert sorted(ir.graph.edges(data=True)) == before


def test_stats_show_params_and_macs() -> None:
    dot = dot_of("resnet34", "op", stats=True)
    # conv1: 7*7*3*64 = 9,408 weights; 9,408 * 112 * 112 = 118,013,952 multiply-adds
    assert dot.label("conv1") == "7x7 conv, 64, /2\nparams 9.41K · MACs 118M"
    assert dot.label("fc") == "fc, 1000\nparams 513K · MACs 512K"
    assert dot.label("relu") == "ReLU"  # nothing to count: no stats line
    block = dot_of("resnet34", "block", stats=True)
    assert "params" in block.label("layer2.0") and "each" in block.label("layer2.1")


# -- block and stage level -----------------------------------------------------------------
@pytest.mark.parametrize(
    "name, folded, marked",
    [
        # layer1 all alike; layer2 and layer3: the /2 block, then 2 alike
        ("cifar_resnet20", 5, 3),
        # layer1 all alike; then the /2 block and the rest, three times
        ("resnet34", 7, 4),
        # layer1.0 widens 64 -> 256, so every stage has 2 block nodes
        ("resnet50", 8, 4),
    ],
)
def test_block_level_counts(name: str, folded: int, marked: int) -> None:
    ir = ir_of(name)
    unfolded = dot_of(name, "block", fold=False)
    assert len(unfolded.nodes) == len(ir.blocks) + 3  # + input, stem, head
    assert set(unfolded.nodes) == set(ir.blocks) | {"input", "stem", "head"}
    assert len(unfolded.edges) == len(unfolded.nodes) - 1  # a chain
    assert "x " not in " ".join(unfolded.label(n) for n in ir.blocks)
    dot = dot_of(name, "block")  # folds by default
    assert len(dot.nodes) == folded + 3
    assert len(dot.edges) == folded + 2
    assert {f"cluster_{s.path}" for s in ir.stages} <= set(dot.clusters)
    counts = [
        re.search(r"x (\d+)$", dot.label(n).split("\n")[0]) for n in dot.nodes if n in ir.blocks
    ]
    assert sum(c is not None for c in counts) == marked
    assert sum(int(c.group(1)) if c else 1 for c in counts) == len(ir.blocks)


def test_block_level_labels_and_borders() -> None:
    dot = dot_of("resnet34", "block")
    assert dot.label("layer2.0") == "layer2.0\nbasic [128, 128], /2\nprojection shortcut (B)"
    assert dot.label("layer2.1") == "layer2.1 … layer2.3   x 3\nbasic [128, 128]\nidentity shortcut"
    dashed = [n for n, a in dot.nodes.items() if "dashed" in a.get("style", "")]
    assert dashed == ["layer2.0", "layer3.0", "layer4.0"]
    assert [e[2]["label"].strip() for e in dot.edges if e[0] == "layer2.1"] == ["128x28x28"]
    cifar = dot_of("cifar_resnet20", "block", fold=False)
    dotted = [n for n, a in cifar.nodes.items() if "dotted" in a.get("style", "")]
    assert len(dotted) == zero_pads(ir_of("cifar_resnet20")) == 2


@pytest.mark.parametrize("name", ["cifar_resnet20", "resnet34", "resnet50"])
def test_stage_level_counts(name: str) -> None:
    ir = ir_of(name)
    dot = dot_of(name, "stage")
    assert set(dot.nodes) == {s.path for s in ir.stages} | {"input", "stem", "head"}
    assert len(dot.edges) == len(ir.stages) + 2
    assert not dot.clusters


def test_stage_level_labels() -> None:
    dot = dot_of("resnet50", "stage")
    assert dot.label("layer3") == (
        "layer3\nbottleneck [256, 256, 1024] x 6\noutput 1024x14x14\n"
        "shortcuts: 1 projection, 5 identity"
    )
    assert dot.label("stem") == "stem\n7x7 conv, 64, /2 · BN · ReLU\n3x3 max pool, /2"


# -- folding and the default level --------------------------------------------------------
def test_resnet1202_defaults_to_folded_blocks() -> None:
    ir = ir_of("cifar_resnet1202")
    assert len(ir.graph) == 4208 and len(ir.blocks) == 600
    assert default_level(ir) == "block"
    dot = Dot(to_dot(ir))
    assert len(dot.nodes) == 5 + 3
    titles = sorted(dot.label(n).split("\n")[0] for n in ir.blocks if n in dot.nodes)
    assert titles == [
        "layer1.0 … layer1.199   x 200",
        "layer2.0",
        "layer2.1 … layer2.199   x 199",
        "layer3.0",
        "layer3.1 … layer3.199   x 199",
    ]
    assert default_level(ir, fold=False) == "stage"  # 600 block nodes are too many
    assert default_level(ir, fold=True) == "op"  # folded, the op graph is small


def test_fold_at_op_level_keeps_one_block_per_run() -> None:
    ir = ir_of("cifar_resnet1202")
    dot = Dot(to_dot(ir, "op", fold=True))
    kept = ["layer1.0", "layer2.0", "layer2.1", "layer3.0", "layer3.1"]
    expected = {n for n in ir.graph if ir.node(n).scope in kept or not ir.node(n).scope}
    assert set(dot.nodes) == expected and len(expected) == 43
    joins = sum(isinstance(ir.node(n).op, Add) for n in expected)
    assert len(dot.edges) == len(expected) - 1 + joins  # each op one input, each join two
    captions = {text_of(a["label"]) for a in dot.extra_nodes.values()}
    assert {"layer1.0 … layer1.199\nx 200", "layer3.1 … layer3.199\nx 199"} <= captions
    # the run's output feeds the next stage, its shortcut included
    assert ("layer2.1.relu", "layer3.0.conv1") in {(u, v) for u, v, _ in dot.edges}
    assert ("layer2.1.relu", "layer3.0.downsample") in {(u, v) for u, v, _ in dot.edges}


@pytest.mark.parametrize(
    "name, level",
    [
        ("cifar_resnet20", "op"),
        ("resnet34", "op"),
        ("plain34", "op"),
        ("resnet50", "block"),
        ("cifar_resnet110", "block"),
        ("resnet152", "block"),
    ],
)
def test_default_levels(name: str, level: str) -> None:
    assert default_level(ir_of(name)) == level


def test_stochastic_depth_blocks_do_not_fold(tmp_path: Path) -> None:
    spec = write_spec(
        tmp_path,
        "sd",
        GATED.replace("join: gate", "join: add") + "stochastic_depth: {final_survival: 0.5}\n",
    )
    ir = lower(load_spec(spec))
    dot = Dot(to_dot(ir, "block"))  # each block has its own survival probability
    assert len(dot.nodes) == len(ir.blocks) + 3


@pytest.mark.parametrize("path", sorted(SPECS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_spec_renders(path: Path) -> None:
    """Every spec: the op level draws the whole IR with one styled shortcut per projection
    and zero-pad, and the default level stays small and quick to lay out."""
    ir = lower(load_spec(path))
    dot = Dot(to_dot(ir, "op", fold=False))
    assert len(dot.nodes) == len(ir.graph)
    assert len(dot.edges) == ir.graph.number_of_edges()
    assert len(_into_joins(dot, "dashed", ir)) == projections(ir)
    assert len(_into_joins(dot, "dotted", ir)) == zero_pads(ir)
    level = default_level(ir)
    graph, shown = build(ir, level)
    assert shown <= {"op": 150, "block": 63, "stage": 16 + 3}[level]
    if HAS_DOT:
        svg = graphviz.pipe("dot", "svg", graph.source.encode())
        assert b"<svg" in svg


def test_emitter_does_not_modify_the_ir() -> None:
    ir = ir_of("resnet34")
    snapshot = (
        dict(ir.graph.nodes(data=True)),
        sorted(ir.graph.edges(data=True)),
        dict(ir.blocks),
        list(ir.stages),
    )
    for level in ("op", "block", "stage"):
        for fold in (True, False):
            to_dot(ir, level, stats=True, fold=fold)
    assert snapshot == (
        dict(ir.graph.nodes(data=True)),
        sorted(ir.graph.edges(data=True)),
        dict(ir.blocks),
        list(ir.stages),
    )


def test_unknown_level() -> None:
    with pytest.raises(ValueError, match="level"):
        to_dot(ir_of("resnet34"), "layer")


# -- the command ---------------------------------------------------------------------------
def run(*args: str) -> object:
    return CliRunner().invoke(main, ["render", *args])


@pytest.mark.skipif(not HAS_DOT, reason="graphviz's dot is not installed")
def test_render_svg_into_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run(str(SPECS / "cifar_resnet20.yaml"))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "cifar_resnet20.svg"
    assert "op level, 71 nodes" in result.stderr
    svg = html.unescape((tmp_path / "cifar_resnet20.svg").read_text())
    assert "<svg" in svg and "zero-pad 16->32, /2" in svg and "16x32x32" in svg
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cifar_resnet20.svg"]  # no temp files


@pytest.mark.skipif(not HAS_DOT, reason="graphviz's dot is not installed")
@pytest.mark.parametrize("fmt, magic", [("png", b"\x89PNG"), ("pdf", b"%PDF")])
def test_render_png_and_pdf(tmp_path: Path, fmt: str, magic: bytes) -> None:
    out = tmp_path / "pics" / f"r34.{fmt}"
    result = run(str(SPECS / "resnet34.yaml"), "-o", str(out), "--level", "block", "--stats")
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(magic)
    assert [p.name for p in out.parent.iterdir()] == [out.name]


def test_format_dot_needs_no_graphviz(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.chdir(tmp_path)
    result = run(str(SPECS / "resnet34.yaml"), "--format", "dot")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "resnet34.dot").read_text().startswith('digraph "ResNet-34" {')
    result = run(str(SPECS / "resnet34.yaml"), "-o", "x.gv", "--level", "stage")
    assert result.exit_code == 0 and "layer4" in (tmp_path / "x.gv").read_text()


def test_missing_dot_writes_the_source_and_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no dot on PATH
    out = tmp_path / "r34.png"
    result = run(str(SPECS / "resnet34.yaml"), "-o", str(out))
    assert result.exit_code == 1
    assert "'dot' program is not installed" in result.stderr
    assert "apt-get install graphviz" in result.stderr
    assert "brew install graphviz" in result.stderr
    assert str(tmp_path / "r34.dot") in result.stderr
    assert "Traceback" not in result.output
    assert not out.exists()
    assert (tmp_path / "r34.dot").read_text().startswith("digraph")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r34.dot"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["-o", "x.jpg"], "cannot tell the format from 'x.jpg'"),
        (["-o", "x"], "cannot tell the format from 'x'"),
        (["-o", "x.png", "--format", "svg"], "'svg' does not match the extension of 'x.png'"),
        (["-o", "x.svg", "--format", "dot"], "'dot' does not match"),
        (["--format", "jpg"], "'jpg' is not one of"),
        (["--level", "layer"], "'layer' is not one of"),
    ],
)
def test_bad_format_and_extension(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run(str(SPECS / "resnet34.yaml"), *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_bad_spec_is_a_clean_error(tmp_path: Path) -> None:
    result = run(str(tmp_path / "missing.yaml"), "--format", "dot")
    assert result.exit_code == 1 and "missing.yaml" in result.stderr
    assert "Traceback" not in result.output


def test_help_states_the_rule_that_default_level_applies() -> None:
    """The thresholds --help states are the ones the code uses: every spec's default
    level follows from its op and block counts and the numbers read from the help."""
    result = run("--help")
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    max_ops = int(re.search(r"op if the op graph has at most (\d+) nodes", text).group(1))
    max_blocks = int(re.search(r"at most (\d+) block nodes", text).group(1))
    assert "stage otherwise" in text
    levels = set()
    for path in SPECS.glob("*.yaml"):
        ir = lower(load_spec(path))
        blocks = [n for n in Dot(to_dot(ir, "block")).nodes if n in ir.blocks]
        expected = (
            "op" if len(ir.graph) <= max_ops else "block" if len(blocks) <= max_blocks else "stage"
        )
        assert default_level(ir) == expected, path.name
        levels.add(expected)
    assert levels >= {"op", "block"}  # the specs exercise both sides of the first threshold


@pytest.mark.subprocess
def test_render_does_not_import_torch(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from resgraph.cli import main\n"
        f"main(['render', {str(SPECS / 'resnet34.yaml')!r}, '-o', "
        f"{str(tmp_path / 'r.dot')!r}], standalone_mode=False)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "r.dot").exists()


def test_huge_op_graph_warns_before_the_layout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # stop before dot runs for a minute
    result = run(
        str(SPECS / "cifar_resnet1202.yaml"), "--level", "op", "-o", str(tmp_path / "all.svg")
    )
    assert result.exit_code == 1
    assert "note: laying out 4208 nodes" in result.stderr
    assert len(Dot((tmp_path / "all.dot").read_text()).nodes) == 4208
