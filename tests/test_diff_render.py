"""``resgraph diff A B --render FILE``: both networks side by side at block level, the blocks
that differ from the block at the same place on the other side highlighted."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from test_render import Dot, text_of

from helpers import ROOT
from resgraph import load_spec, lower
from resgraph.cli import main
from resgraph.diff import block_facts, diff_irs, format_text
from resgraph.render import to_dot
from resgraph.render.compare import side_by_side
from resgraph.render.style import HIGHLIGHT

SPECS = ROOT / "specs"
HAS_DOT = shutil.which("dot") is not None


def spec_file(tmp_path: Path, stem: str, **changes: object) -> Path:
    """A copy of a bundled spec with top-level fields changed."""
    data = yaml.safe_load((SPECS / f"{stem}.yaml").read_text())
    data.update(changes)
    path = tmp_path / f"{stem}_changed.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def picture(a: Path, b: Path):  # type: ignore[no-untyped-def]
    """The diff and the parsed DOT of its picture, and the two IRs."""
    ir_a, ir_b = lower(load_spec(a)), lower(load_spec(b))
    d = diff_irs(ir_a, ir_b, str(a), str(b))
    graph, shown = side_by_side(
        ir_a, ir_b, paths=(d.a, d.b), highlight=d.highlight(), same_ir=d.same_ir
    )
    dot = Dot(graph.source)
    assert shown == len(dot.nodes)
    return d, dot, ir_a, ir_b


def highlighted(dot: Dot) -> set[str]:
    return {n for n, attrs in dot.nodes.items() if attrs.get("fillcolor") == HIGHLIGHT["fillcolor"]}


def test_extra_blocks_are_highlighted_on_the_deeper_side() -> None:
    d, dot, ir_a, ir_b = picture(SPECS / "resnet18.yaml", SPECS / "resnet34.yaml")
    # ResNet-34 has 3, 4, 6, 3 blocks where ResNet-18 has 2 of each: the rest is B's alone
    extra = {
        f"layer{s}.{j}"
        for s, n in zip((1, 2, 3, 4), (3, 4, 6, 3), strict=True)
        for j in range(2, n)
    }
    assert highlighted(dot) == {f"B/{p}" for p in extra}
    assert all(HIGHLIGHT["color"] == dot.nodes[f"B/{p}"]["color"] for p in extra)
    assert {(x.a, x.b) for x in d.blocks} == {(None, p) for p in extra}
    # every block of both networks is drawn, unfolded, each side in its own cluster
    for side, ir in (("A", ir_a), ("B", ir_b)):
        expected = {f"{side}/{p}" for p in ir.blocks} | {
            f"{side}/{s}" for s in ("input", "stem", "head")
        }
        assert {n for n in dot.nodes if n.startswith(side + "/")} == expected
        assert f"cluster_{side}" in dot.clusters
        assert f"cluster_{side}_layer1" in dot.clusters
    assert len(dot.nodes) == len(ir_a.blocks) + len(ir_b.blocks) + 6
    # edges never cross from one network to the other; each side is one chain
    assert all(u.split("/")[0] == v.split("/")[0] for u, v, _ in dot.edges)
    assert len(dot.edges) == len(dot.nodes) - 2
    # the clusters are titled with the spec names, the picture with both and the count
    assert "A: ResNet-18" in dot.source and "B: ResNet-34" in dot.source
    assert "ResNet-18 vs ResNet-34" in dot.title and "(A: 0, B: 8)" in dot.title
    assert "differs" in dot.title and "identity shortcut" in dot.title  # the legend
    # the table says as much
    text = format_text(d)
    assert "total blocks: 8 vs 16" in text
    assert "blocks that differ from the block at the same place: 0 of A's, 8 of B's" in text


def test_a_block_level_node_is_the_one_render_draws() -> None:
    """The diff picture reuses the render package: a block node carries the same label and
    border as in ``resgraph render --level block --no-fold``."""
    _, dot, ir_a, _ = picture(SPECS / "resnet18.yaml", SPECS / "resnet34.yaml")
    alone = Dot(to_dot(ir_a, "block", fold=False))
    for name, attrs in alone.nodes.items():
        assert dot.nodes[f"A/{name}"] == attrs


def test_a_changed_option_highlights_every_block(tmp_path: Path) -> None:
    grouped = spec_file(
        tmp_path, "resnet50", block={"type": "bottleneck", "stride_on": "1x1", "groups": 32}
    )
    d, dot, ir_a, ir_b = picture(SPECS / "resnet50.yaml", grouped)
    assert highlighted(dot) == {f"A/{p}" for p in ir_a.blocks} | {f"B/{p}" for p in ir_b.blocks}
    assert len(ir_a.blocks) == 16
    for x in d.blocks:
        assert x.a == x.b
        assert x.fields["options"] == ("groups=1", "groups=32")
        # torchvision's rule: a grouped bottleneck is `groups` times as wide inside
        (wa, wb) = x.fields["widths"]
        assert wb == [32 * wa[0], 32 * wa[1], wa[2]]
        assert set(x.fields) == {"widths", "options"}


def test_a_changed_head_is_highlighted_and_no_block(tmp_path: Path) -> None:
    other = spec_file(tmp_path, "cifar_resnet20", num_classes=100)
    d, dot, _, _ = picture(SPECS / "cifar_resnet20.yaml", other)
    assert not d.blocks
    assert highlighted(dot) == {"A/head", "B/head"}


def test_the_same_network_highlights_nothing(tmp_path: Path) -> None:
    renamed = spec_file(tmp_path, "resnet18", name="Renamed")
    d, dot, _, _ = picture(SPECS / "resnet18.yaml", renamed)
    assert d.same_ir and not highlighted(dot) and not d.blocks
    assert "blocks that differ" not in format_text(d)
    assert "lower to the same network" in dot.title
    assert "differs (" not in dot.title  # no highlight in the legend either


def test_block_facts_are_what_blocks_are_compared_on() -> None:
    r20 = block_facts(lower(load_spec(SPECS / "cifar_resnet20.yaml")))
    plain = block_facts(lower(load_spec(SPECS / "cifar_plain20.yaml")))
    path, facts = r20[1, 0]
    assert path == "layer2.0"
    assert facts["kind"] == "basic" and facts["widths"] == [32, 32] and facts["stride"] == 2
    assert facts["shortcut_kind"] == "zero-pad" and facts["join"] == "add"
    assert facts["options"]["type"] == "basic"
    assert plain[1, 0][1]["shortcut_kind"] == "none" and r20[0, 0][1]["shortcut_kind"] == "identity"


def run(*args: object):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, ["diff", *map(str, args)])


@pytest.mark.skipif(not HAS_DOT, reason="graphviz's dot is not installed")
def test_cli_writes_valid_svg_and_the_table(tmp_path: Path) -> None:
    out = tmp_path / "d.svg"
    r = run(SPECS / "resnet18.yaml", SPECS / "resnet34.yaml", "--render", out)
    assert r.exit_code == 1, r.output  # they differ
    assert "total params" in r.stdout and f"wrote {out}" in r.stderr
    root = ET.parse(out).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = {t.text for t in root.iter("{http://www.w3.org/2000/svg}text")}
    assert {"A: ResNet-18", "B: ResNet-34", "layer3.5"} <= texts
    assert not list(tmp_path.glob(".*tmp"))  # written atomically, nothing left beside it
    # --json stays JSON; its blocks are the highlighted ones
    j = run(SPECS / "resnet18.yaml", SPECS / "resnet34.yaml", "--json", "--render", out)
    data = json.loads(j.stdout)
    assert len(data["blocks"]) == 8 and all(x["a"] is None for x in data["blocks"])


def test_cli_dot_file_needs_no_graphviz(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    out = tmp_path / "d.dot"
    r = run(SPECS / "cifar_resnet20.yaml", SPECS / "cifar_plain20.yaml", "--render", out)
    assert r.exit_code == 1, r.output
    dot = Dot(out.read_text())
    assert len(highlighted(dot)) == 2 * 9  # every block: plain blocks have no shortcut
    assert text_of(dot.nodes["B/layer1.0"]["label"]).endswith("no shortcut")


def test_cli_without_dot_is_one_error_line(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    out = tmp_path / "d.svg"
    r = run(SPECS / "resnet18.yaml", SPECS / "resnet34.yaml", "--render", out)
    assert r.exit_code == 2
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "'dot' program is not installed" in errors[0]
    assert "--render FILE.dot" in r.stderr and "Traceback" not in r.output
    assert not out.exists() and r.stdout == ""
    kept = (tmp_path / "d.dot").read_text()
    assert Dot(kept).nodes  # the DOT source is kept beside
    again = run(SPECS / "resnet18.yaml", SPECS / "resnet50.yaml", "--render", out)
    assert again.exit_code == 2 and (tmp_path / "d.dot").read_text() == kept  # never replaced
    assert "exists and was left alone" in again.stderr
    assert "resgraph diff" in again.stderr and "--render OTHER.dot" in again.stderr


@pytest.mark.parametrize("where", ["below_a_file", "bad_suffix", "a_folder"])
def test_cli_unwritable_output_is_one_error_line(tmp_path: Path, where: str) -> None:
    (tmp_path / "afile").write_text("keep")
    (tmp_path / "pic.svg").mkdir()
    out = {
        "below_a_file": tmp_path / "afile" / "d.svg",
        "bad_suffix": tmp_path / "d.txt",
        "a_folder": tmp_path / "pic.svg",
    }[where]
    r = run(SPECS / "resnet18.yaml", SPECS / "resnet34.yaml", "--render", out)
    assert r.exit_code != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    assert r.stdout == ""  # refused before any work
    assert (tmp_path / "afile").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "pic.svg"]
    assert not any((tmp_path / "pic.svg").iterdir())
