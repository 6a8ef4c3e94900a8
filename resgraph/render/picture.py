"""DOT source of the IR at one of three levels.

All three levels share one mechanism: every IR node is mapped to a *group* (itself, its
block, its stage, or the stem/head), and the picture is the quotient graph of those groups.
Folding maps each run of identical blocks onto its first block, drops the edges that lead
into the others, and marks what is left ``x N``. Colours and shapes come from
:mod:`resgraph.render.style`.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from html import escape

import graphviz

from resgraph.ir import IR, Node
from resgraph.ops import JOINS, Add, Concat, GateMix, Input, Output, PadShortcut, fmt_shape
from resgraph.render.model import (
    Model,
    block_text,
    gated,
    html_label,
    run_title,
    stats_text,
    widths,
)
from resgraph.render.style import (
    ADD_SYMBOL,
    BLOCK_CLUSTER,
    BLOCK_LEGEND,
    BORDERS,
    EDGE_ATTRS,
    EDGE_STYLES,
    GATE_FILL,
    GRAPH_ATTRS,
    GRAY_TEXT,
    HIGHLIGHT,
    INPUT_FILL,
    LEGEND,
    LEGEND_CELL_STYLES,
    NODE_ATTRS,
    RUN_FILL,
    SECTION_CLUSTER,
    SECTION_FILL,
    SHORT_NAMES,
    STAGE_CLUSTER_COLOR,
    STAGE_FILLS,
    op_style,
)

LEVELS = ("op", "block", "stage")
MAX_OP_NODES = 150  # the default level is "op" up to this many op nodes ...
MAX_BLOCK_NODES = 60  # ... else "block" up to this many block nodes, else "stage"

Description = tuple[tuple[str, ...], dict[str, str]]  # a node's cluster path and attributes


def default_level(ir: IR, fold: bool | None = None) -> str:
    """The most detailed level that stays readable: ``op`` if the op graph has at most
    MAX_OP_NODES nodes (folded only when ``fold`` is True), else ``block`` if there are at
    most MAX_BLOCK_NODES block nodes (folded unless ``fold`` is False), else ``stage``."""
    model = Model(ir, fold=bool(fold))
    if sum(not model.folded_away(n) for n in model.section) <= MAX_OP_NODES:
        return "op"
    if fold is None:
        model = Model(ir, fold=True)
    return (
        "block" if len({first for first, _ in model.runs.values()}) <= MAX_BLOCK_NODES else "stage"
    )


def to_dot(
    ir: IR,
    level: str | None = None,
    *,
    stats: bool = False,
    fold: bool | None = None,
    legend: bool = True,
) -> str:
    """DOT source of ``ir`` at ``level`` (None: :func:`default_level`). ``fold`` folds runs
    of identical blocks; None means yes at block level, no at op level. Reads the IR only."""
    return build(ir, level, stats=stats, fold=fold, legend=legend)[0].source


def build(
    ir: IR,
    level: str | None = None,
    *,
    stats: bool = False,
    fold: bool | None = None,
    legend: bool = True,
) -> tuple[graphviz.Digraph, int]:
    """The graph behind :func:`to_dot`, and how many nodes it draws (captions not counted)."""
    level = level or default_level(ir, fold)
    g = graphviz.Digraph(
        name=ir.spec.name, graph_attr=dict(GRAPH_ATTRS), node_attr=NODE_ATTRS, edge_attr=EDGE_ATTRS
    )
    drawn = add_network(g, ir, level, stats=stats, fold=fold)
    g.graph_attr["label"] = _title(drawn.model, level, drawn.kinds if legend else set())
    return g, drawn.nodes


@dataclass(frozen=True)
class Drawn:
    """What :func:`add_network` drew: the model it read, how many nodes (captions not
    counted), and the shortcut kinds a legend should explain."""

    model: Model
    nodes: int
    kinds: set[str]


def add_network(
    g: graphviz.Digraph,
    ir: IR,
    level: str,
    *,
    stats: bool = False,
    fold: bool | None = None,
    prefix: str = "",
    highlight: Collection[str] = (),
) -> Drawn:
    """Draw ``ir`` at ``level`` into ``g``: its nodes, clusters and edges, every node and
    cluster id led by ``prefix`` (so that two networks can share one picture). The groups
    named in ``highlight`` (block paths, 'stem', 'head', stage paths at stage level) are
    drawn with :data:`HIGHLIGHT`. Reads the IR only."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
    model = Model(ir, fold=(level == "block") if fold is None else fold and level != "stage")
    key = {"op": _op_key, "block": _block_key, "stage": _stage_key}[level]
    describe = {"op": _op_node, "block": _block_node, "stage": _stage_node}[level]
    group = {name: key(model, name) for name in model.section if not model.folded_away(name)}
    nodes: dict[str, Description] = {}
    for n in model.nodes:
        if n.name in group and group[n.name] not in nodes:
            nodes[group[n.name]] = describe(model, group[n.name], n, stats)
    for gid in highlight:
        if gid in nodes:
            nodes[gid][1].update(HIGHLIGHT)
    edges: dict[tuple[str, str], tuple[str, set[str]]] = {}
    for u, v, data in ir.graph.edges(data=True):
        if model.folded_away(v):
            continue  # leads into a block folded into the first of its run
        u = model.rep(u)
        gu, gv = group[u], group[v]
        if gu == gv:
            continue
        kind = _edge_kind(model, ir.node(u), ir.node(v), data["port"]) if level == "op" else "main"
        shape = fmt_shape(data.get("shape", ir.node(u).shape))
        old_kind, shapes = edges.get((gu, gv), (kind, set()))
        edges[gu, gv] = ("main" if "main" in (old_kind, kind) else kind, shapes | {shape})
    if level == "op":
        legend_kinds = {kind for kind, _ in edges.values()}
    else:
        gate = {"gate"} if any(gated(model, path) for path in model.kinds) else set()
        legend_kinds = set(model.kinds.values()) | gate if level == "block" else set()
    _add_nodes(g, model, nodes, prefix)
    for (gu, gv), (kind, shapes) in edges.items():
        weight = "4" if kind == "main" else "1"
        g.edge(
            prefix + gu,
            prefix + gv,
            label=" " + ", ".join(sorted(shapes)),
            weight=weight,
            **EDGE_STYLES[kind],
        )
    return Drawn(model, len(nodes), legend_kinds)


def _title(model: Model, level: str, kinds: set[str]) -> str:
    """The spec's name and totals, then a legend of the ``kinds`` of shortcut drawn: sample
    lines at op level, sample block borders at block level. The legend sits in the graph
    label so that it cannot disturb the layout."""
    ir = model.ir
    parts = [
        f"{level} level",
        f"input {fmt_shape(ir.node(ir.input).shape)}",
        stats_text(model.nodes),
    ]
    title = html_label(ir.spec.name, ", ".join(p for p in parts if p), bold=True)
    return with_legend(title, legend_rows(level, kinds))


def with_legend(title: str, legend: str) -> str:
    """An HTML-like ``title`` label with the ``legend`` table (if any) below it."""
    if not legend:
        return title
    return (
        f'<<TABLE BORDER="0" CELLSPACING="0"><TR><TD>{title[1:-1]}</TD></TR><TR><TD>'
        f"{legend}</TD></TR></TABLE>>"
    )


def legend_rows(level: str, kinds: set[str], extra: Collection[str] = ()) -> str:
    """An HTML table explaining the ``kinds`` of shortcut drawn: sample lines at op level,
    sample block borders at block level; then a row of each item of ``extra`` (table
    cells, as they are). Empty when there is nothing to explain."""
    rows = [k for k in LEGEND if k in kinds and (level == "block" or k != "none")]
    if not rows and not extra:
        return ""
    small = '<FONT POINT-SIZE="9">{}</FONT>'
    cells = []
    for kind in rows:
        if level == "op":
            style = EDGE_STYLES[kind]
            sample = (
                f'<TD BORDER="2" SIDES="B" STYLE="{style["style"]}" COLOR="{style["color"]}" '
                'WIDTH="30" HEIGHT="8"></TD>'
            )
            text = LEGEND[kind]
        else:
            sample = (
                f'<TD BORDER="{2 if kind == "concat" else 1}" STYLE="{_cell_style(kind)}" '
                f'COLOR="{GRAY_TEXT}" BGCOLOR="{GATE_FILL if kind == "gate" else "white"}" '
                'WIDTH="22"> </TD>'
            )
            text = BLOCK_LEGEND.get(kind, LEGEND[kind])
        cells.append(f'{sample}<TD ALIGN="LEFT">{small.format(escape(text))}</TD>')
    head = small.format("edges:" if level == "op" else "block border:")
    lines = "".join(
        f'<TR><TD ALIGN="RIGHT">{head if i == 0 else ""}</TD>{"".join(cells[i : i + 3])}</TR>'
        for i in range(0, len(cells), 3)
    )
    lines += "".join(f"<TR>{cell}</TR>" for cell in extra)
    return f'<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="4" CELLPADDING="1">{lines}</TABLE>'


def _op_key(model: Model, name: str) -> str:
    return name


def _block_key(model: Model, name: str) -> str:
    where = model.section[name]
    return model.runs[where][0] if where in model.runs else where


def _stage_key(model: Model, name: str) -> str:
    where = model.section[name]
    return model.stage_of.get(where, where)


def _op_node(model: Model, gid: str, n: Node, stats: bool) -> Description:
    where = model.section[n.name]
    if where in model.runs:
        cluster: tuple[str, ...] = (model.stage_of[where], where)
    else:
        cluster = () if where == "input" or isinstance(n.op, Output) else (where,)
    style = op_style(n.op)
    attrs = {"fillcolor": style.pop("fillcolor"), "tooltip": n.name}
    if n.role == "main":
        attrs["group"] = "main"  # dot keeps edges within a group straight: one column
    attrs.update(style)
    text = stats_text([n]) if stats else ""
    if isinstance(n.op, Add) and not text:
        attrs.update(ADD_SYMBOL)
    elif isinstance(n.op, Output):
        attrs.update(shape="ellipse", label=html_label(n.op.label(), fmt_shape(n.shape)))
    elif isinstance(n.op, (*JOINS, Input)):
        attrs["label"] = html_label("input" if isinstance(n.op, Input) else n.op.label(), text)
    else:
        attrs["label"] = html_label(n.op.label(), text)
        if n.role != "main":  # on a shortcut or gate path: its border looks like its edges
            edge = EDGE_STYLES[_node_kind(model, n)]
            attrs.update(style="rounded,filled," + edge["style"], color=edge["color"])
    return cluster, attrs


def _block_node(model: Model, gid: str, n: Node, stats: bool) -> Description:
    if gid not in model.runs:  # input, stem, head (or ops of a stage outside any block)
        return _section_node(model, gid, stats)
    length = model.runs[gid][1]
    title, times = run_title(model, gid)
    what, how = block_text(model, gid)
    attrs = {
        "label": html_label(
            title + (f"   {times}" if times else ""),
            what,
            how,
            stats_text(model.members[gid], " each" if length > 1 else "") if stats else "",
            bold=True,
        ),
        "style": ("filled," if model.kinds[gid] == "none" else "rounded,filled,")
        + BORDERS.get(model.kinds[gid], "solid"),
        "fillcolor": GATE_FILL if gated(model, gid) else RUN_FILL if length > 1 else "white",
        "penwidth": "1.2",
        "tooltip": gid,
        "group": "main",
    }
    return (model.stage_of[gid],), attrs


def _stage_node(model: Model, gid: str, n: Node, stats: bool) -> Description:
    stage = next((s for s in model.ir.stages if s.path == gid), None)
    if stage is None:
        return _section_node(model, gid, stats)
    nodes = [m for m in model.nodes if model.stage_of.get(model.section[m.name]) == gid]
    first = model.ir.blocks[stage.blocks[0]]
    kinds = [model.kinds[p] for p in stage.blocks if model.kinds[p] in SHORT_NAMES]
    counted = (
        "shortcuts: "
        + ", ".join(f"{kinds.count(k)} {SHORT_NAMES[k]}" for k in dict.fromkeys(kinds))
        if kinds
        else "no shortcuts"
    )
    attrs = {
        "label": html_label(
            gid,
            f"{first.kind} {widths(model, first.path)} x {len(stage.blocks)}",
            f"output {fmt_shape(nodes[-1].shape)}",
            counted,
            stats_text(nodes) if stats else "",
            bold=True,
        ),
        "fillcolor": STAGE_FILLS[stage.index % 2],
        "penwidth": "1.0",
        "tooltip": gid,
        "group": "main",
    }
    return (), attrs


def _section_node(model: Model, where: str, stats: bool) -> Description:
    """One node for the input, the stem or the head: its op labels, a few per line."""
    nodes = model.members[where]
    if where == "input" or isinstance(nodes[0].op, Output):  # what goes in, what comes out
        return (), {
            "shape": "ellipse",
            "style": "filled",
            "fillcolor": INPUT_FILL,
            "label": html_label(nodes[0].op.label(), fmt_shape(nodes[0].shape)),
            "group": "main",
        }
    lines, line = [], ""
    for op in (n.op.label() for n in nodes):
        if line and len(line) + len(op) > 28:
            lines.append(line)
            line = ""
        line = f"{line} · {op}" if line else op
    lines.append(line)
    return (), {
        "label": html_label(where, *lines, stats_text(nodes) if stats else "", bold=True),
        "fillcolor": SECTION_FILL,
        "tooltip": where,
        "group": "main",
    }


def _node_kind(model: Model, n: Node) -> str:
    """Edge kind of the path an off-main-path node lies on."""
    if n.role in ("gate", "attention"):
        return n.role
    if n.scope in model.kinds and model.kinds[n.scope] in ("projection", "zeropad"):
        return model.kinds[n.scope]
    return "zeropad" if isinstance(n.op, PadShortcut) else "projection"


def _edge_kind(model: Model, u: Node, v: Node, port: int) -> str:
    for n in (v, u):
        if n.role != "main":
            return _node_kind(model, n)
    if isinstance(v.op, Concat) and u.scope != v.scope:
        return "concat"  # maps carried forward from outside the block
    if isinstance(v.op, (Add, GateMix)) and port == 1:
        return "identity"  # a residual join's shortcut port, fed straight from the input
    return "main"


def _add_nodes(
    g: graphviz.Digraph, model: Model, nodes: dict[str, Description], prefix: str = ""
) -> None:
    """Nodes into nested clusters: ('layer1', 'layer1.0') is a block inside a stage.

    A cluster's title is a caption node beside its first (or second) node rather than a
    cluster label: edges entering a cluster from above would cross a label."""
    tree: dict[tuple[str, ...], list[str]] = {}
    for gid, (cluster, _) in nodes.items():
        for depth in range(len(cluster)):
            tree.setdefault(cluster[:depth], [])
            if cluster[: depth + 1] not in tree:
                tree[cluster[: depth + 1]] = []
                tree[cluster[:depth]].append("\0" + cluster[depth])  # a child cluster
        tree.setdefault(cluster, []).append(gid)

    def leaves(path: tuple[str, ...]) -> list[str]:
        out = []
        for item in tree[path]:
            out += leaves(path + (item[1:],)) if item.startswith("\0") else [item]
        return out

    def fill(graph: graphviz.Digraph, path: tuple[str, ...]) -> None:
        for item in tree.get(path, []):
            if not item.startswith("\0"):
                graph.node(prefix + item, **nodes[item][1])
                continue
            sub = path + (item[1:],)
            cluster = "cluster_" + (prefix + sub[-1]).replace(".", "_").replace("/", "_")
            with graph.subgraph(name=cluster) as c:
                attrs, caption = _cluster_attrs(model, sub)
                c.attr(**attrs)
                fill(c, sub)
                inside = leaves(sub)
                # a block's caption goes beside its second node, so that it does not share
                # a row with its stage's caption (beside the stage's first node)
                beside = inside[min(1, len(inside) - 1)] if sub[-1] in model.runs else inside[0]
                # an invisible edge of length 0 puts the caption on the row of ``beside``
                # (a rank=same subgraph inside a cluster makes dot misplace cluster borders)
                c.node(
                    f"@{prefix}{sub[-1]}",
                    label=caption,
                    shape="plaintext",
                    style="",
                    fontsize="9",
                    margin="0.02",
                    tooltip=sub[-1],
                )
                c.edge(f"@{prefix}{sub[-1]}", prefix + beside, style="invis", minlen="0")

    fill(g, ())


def _cluster_attrs(model: Model, path: tuple[str, ...]) -> tuple[dict[str, str], str]:
    """Attributes of a cluster, and its caption."""
    name = path[-1]
    common = {"label": "", "penwidth": "0.8", "style": "rounded,filled"}
    if name in model.runs:  # a block (op level)
        title, times = run_title(model, name)
        caption = f"<<B>{escape(title)}<BR/>{times}</B>>" if times else html_label(title)
        return {
            **common,
            "style": "rounded,filled" + (",bold" if times else ""),
            **BLOCK_CLUSTER,
            **({"fillcolor": RUN_FILL} if times else {}),
        }, caption
    stage = next((s for s in model.ir.stages if s.path == name), None)
    if stage is not None:
        last = model.ir.blocks[stage.blocks[-1]].output
        caption = html_label(name, fmt_shape(model.ir.node(last).shape), bold=True)
        return {
            **common,
            "fillcolor": STAGE_FILLS[stage.index % 2],
            "color": STAGE_CLUSTER_COLOR,
        }, caption
    return {**common, **SECTION_CLUSTER}, html_label(name, bold=True)


def _cell_style(kind: str) -> str:
    return LEGEND_CELL_STYLES.get(kind, "rounded")
