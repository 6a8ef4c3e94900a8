"""Two networks side by side at block level, the blocks that differ highlighted
(``resgraph diff A B --render out.svg``).

Each network is drawn by :func:`resgraph.render.picture.add_network`, the same code that
draws ``resgraph render --level block``, into a cluster of its own titled with the spec's
name; which blocks differ is for the caller (:mod:`resgraph.diff`) to say.
"""

from __future__ import annotations

from collections.abc import Collection
from html import escape

import graphviz

from resgraph.ir import IR
from resgraph.ops import fmt_shape
from resgraph.render.model import html_label, stats_text
from resgraph.render.picture import add_network, legend_rows, with_legend
from resgraph.render.style import EDGE_ATTRS, GRAPH_ATTRS, GRAY_TEXT, HIGHLIGHT, NODE_ATTRS

SIDES = ("A", "B")
SIDE_CLUSTER = {"style": "rounded", "color": "#999999", "penwidth": "1.0", "fontsize": "12"}


def side_by_side(
    a: IR,
    b: IR,
    *,
    paths: tuple[str, str],
    highlight: tuple[Collection[str], Collection[str]],
    same_ir: bool,
) -> tuple[graphviz.Digraph, int]:
    """The picture of ``a`` (cluster ``cluster_A``, node ids led by ``A/``) beside ``b``
    (``cluster_B``, ``B/``) at block level, every run of blocks unfolded so that each block
    can be marked; ``highlight`` holds the groups (block paths, 'stem', 'head') of each side
    that differ. ``paths`` (the spec files) go under the clusters' titles. Returns the
    graph and how many nodes it draws."""
    g = graphviz.Digraph(
        name="diff", graph_attr=dict(GRAPH_ATTRS), node_attr=NODE_ATTRS, edge_attr=EDGE_ATTRS
    )
    kinds: set[str] = set()
    shown = 0
    for side, ir, path, marks in zip(SIDES, (a, b), paths, highlight, strict=True):
        with g.subgraph(name=f"cluster_{side}") as c:
            parts = [f"input {fmt_shape(ir.node(ir.input).shape)}", stats_text(ir.nodes())]
            c.attr(
                label=html_label(f"{side}: {ir.spec.name}", path, ", ".join(parts), bold=True),
                **SIDE_CLUSTER,
            )
            drawn = add_network(
                c, ir, "block", fold=False, prefix=f"{side}/", highlight=() if same_ir else marks
            )
        kinds |= drawn.kinds
        shown += drawn.nodes
    g.graph_attr["label"] = _title(a, b, highlight, same_ir, kinds)
    return g, shown


def _title(
    a: IR,
    b: IR,
    highlight: tuple[Collection[str], Collection[str]],
    same_ir: bool,
    kinds: set[str],
) -> str:
    head = f"{a.spec.name} vs {b.spec.name}"
    if same_ir:
        line = "the two specs lower to the same network: nothing differs"
    else:
        line = "highlighted: what differs from the block at the same place on the other side " + (
            f"(A: {len(highlight[0])}, B: {len(highlight[1])})"
        )
    title = html_label(head, line, bold=True)
    sample = (
        f'<TD></TD><TD BORDER="1" STYLE="rounded" COLOR="{HIGHLIGHT["color"]}" '
        f'BGCOLOR="{HIGHLIGHT["fillcolor"]}" WIDTH="22"> </TD>'
        f'<TD ALIGN="LEFT"><FONT POINT-SIZE="9" COLOR="{GRAY_TEXT}">'
        f"{escape('differs (type, widths, stride, shortcut or options), or only on this side')}"
        "</FONT></TD>"
    )
    return with_legend(title, legend_rows("block", kinds, () if same_ir else (sample,)))
