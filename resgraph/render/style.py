"""How the pictures look: every colour, line style and node shape in one table.

Ops are styled by their ``kind`` (``Op.kind``) through :func:`op_style`, the one place that
says how an op is drawn. Shortcut lines follow Figure 3 of He et al. (2015): identity
solid, projection (options B, C and D) dashed, zero-padding (option A) dotted.
"""

from __future__ import annotations

from resgraph.ops import Op

FONT = "Helvetica"
SHORTCUT = "#1f5fa8"
GRAY_TEXT = "#555555"

# Node shapes that differ from the default box, per op kind. Fill colours are the ops' own
# (``Op.fill`` in resgraph.ops, next to the rest of each op's description).
OP_SHAPES: dict[str, dict[str, str]] = {
    "input": {"shape": "ellipse", "style": "filled"},
    "add": {"shape": "ellipse"},
    "gate_mix": {"shape": "ellipse"},
    "concat": {"shape": "ellipse"},
    "mul": {"shape": "ellipse"},
}
# An addition without statistics to show is drawn as a small circled '+'.
ADD_SYMBOL = {
    "shape": "circle",
    "label": "+",
    "width": "0.3",
    "height": "0.3",
    "margin": "0",
    "fontsize": "12",
}


def op_style(op: Op) -> dict[str, str]:
    """The node attributes of an op (a new dict: callers add to it)."""
    return {"fillcolor": op.fill, **OP_SHAPES.get(op.kind, {})}


# Edge kinds: how each looks, and what the legend calls it.
EDGE_STYLES: dict[str, dict[str, str]] = {
    "main": {},
    "identity": {"color": SHORTCUT, "style": "solid", "penwidth": "1.2"},
    "projection": {"color": SHORTCUT, "style": "dashed", "penwidth": "1.2"},
    "zeropad": {"color": SHORTCUT, "style": "dotted", "penwidth": "1.6"},
    "gate": {"color": "#c8641e", "style": "solid", "penwidth": "1.0"},
    "concat": {"color": "#2f8f4f", "style": "solid", "penwidth": "1.0"},
    "attention": {"color": "#7b4aa8", "style": "solid", "penwidth": "1.0"},
}
LEGEND = {
    "identity": "identity shortcut",
    "projection": "projection shortcut (B, C, D)",
    "zeropad": "zero-pad shortcut (A)",
    "gate": "gate path (highway join)",
    "concat": "concatenated input",
    "attention": "channel attention (SE, ECA)",
    "none": "no shortcut (plain)",
}
BLOCK_LEGEND = {"gate": "gated (highway) join", "concat": "concat join"}
SHORT_NAMES = {
    "identity": "identity",
    "projection": "projection",
    "zeropad": "zero-pad",
    "concat": "concat",
}
# At block level the node border carries the block's shortcut kind.
BORDERS = {
    "identity": "solid",
    "projection": "dashed",
    "zeropad": "dotted",
    "none": "solid",
    "concat": "bold",
}
LEGEND_CELL_STYLES = {"projection": "dashed", "zeropad": "dotted", "none": "solid"}
STAGE_FILLS = ("#f2f6fb", "#f7f4ec")
GATE_FILL = "#fdebd9"  # blocks with a gated (highway) join, at block level
RUN_FILL = "#fffaf0"  # a folded run of identical blocks
SECTION_FILL = "#eeeeee"  # the stem and the head at block and stage level
INPUT_FILL = "#f4f4f4"
# A node drawn highlighted: a block that differs between two specs (``resgraph diff``).
HIGHLIGHT = {"fillcolor": "#ffd9d2", "color": "#c0392b", "penwidth": "2.4"}

GRAPH_ATTRS = {
    "rankdir": "TB",
    "newrank": "true",
    "nodesep": "0.25",
    "ranksep": "0.22",
    "fontname": FONT,
    "fontsize": "11",
    "labelloc": "t",
    "labeljust": "c",
    "label": "",
    "pad": "0.15",
}  # the label: the title and legend of each picture
NODE_ATTRS = {
    "shape": "box",
    "style": "rounded,filled",
    "fillcolor": "white",
    "fontname": FONT,
    "fontsize": "10",
    "height": "0.28",
    "width": "0.4",
    "margin": "0.08,0.03",
    "penwidth": "0.8",
    "color": GRAY_TEXT,
}
EDGE_ATTRS = {
    "fontname": FONT,
    "fontsize": "8",
    "fontcolor": "#666666",
    "arrowsize": "0.6",
    "penwidth": "0.8",
    "color": "#333333",
}
# Clusters: a block (op level), a stage, and the stem or head.
BLOCK_CLUSTER = {"fillcolor": "#ffffff", "color": "#b8c2cf"}
STAGE_CLUSTER_COLOR = "#c5cfdb"
SECTION_CLUSTER = {"fillcolor": "#f3f3f3", "color": "#cccccc"}
