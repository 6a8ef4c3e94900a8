"""``resgraph render``: pictures of the checked IR, drawn by graphviz.

:func:`to_dot` turns an IR into DOT source at one of three levels -- ``op`` (one node per
op), ``block`` (one node per residual block) or ``stage`` (one node per stage) -- and only
reads the IR. All three levels share one mechanism: every IR node is mapped to a *group*
(itself, its block, its stage, or the stem/head), and the picture is the quotient graph of
those groups. Folding maps each run of identical blocks onto its first block, drops the
edges that lead into the others, and marks what is left ``x N``.

Shortcuts follow Figure 3 of He et al. (2015): identity shortcuts solid, projection
shortcuts (options B and C) dashed, zero-padding shortcuts (option A) dotted.

Nothing here imports torch; the ``dot`` program is needed only for svg, png and pdf.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from pathlib import Path

import click
import graphviz

from resgraph.errors import ResgraphError
from resgraph.ir import IR, Block, Node
from resgraph.ops import JOINS, Add, Concat, Conv, GateMix, Input, PadShortcut, fmt_shape
from resgraph.units import si

LEVELS = ("op", "block", "stage")
FORMATS = ("svg", "png", "pdf", "dot")
EXTENSIONS = {".svg": "svg", ".png": "png", ".pdf": "pdf", ".dot": "dot", ".gv": "dot"}
MAX_OP_NODES = 150  # the default level is "op" up to this many op nodes ...
MAX_BLOCK_NODES = 60  # ... else "block" up to this many block nodes, else "stage"
SLOW_LAYOUT_NODES = 1500  # dot lays out 550 ops in 0.5 s, 3,300 in a minute (2 cores)

FONT = "Helvetica"
SHORTCUT = "#1f5fa8"
# Edge kinds: how each looks, and what the legend calls it.
EDGE_STYLES: dict[str, dict[str, str]] = {
    "main": {},
    "identity": {"color": SHORTCUT, "style": "solid", "penwidth": "1.2"},
    "projection": {"color": SHORTCUT, "style": "dashed", "penwidth": "1.2"},
    "zeropad": {"color": SHORTCUT, "style": "dotted", "penwidth": "1.6"},
    "gate": {"color": "#c8641e", "style": "solid", "penwidth": "1.0"},
    "concat": {"color": "#2f8f4f", "style": "solid", "penwidth": "1.0"},
}
LEGEND = {
    "identity": "identity shortcut",
    "projection": "projection shortcut (B, C)",
    "zeropad": "zero-pad shortcut (A)",
    "gate": "gate path (highway join)",
    "concat": "concatenated input",
    "none": "no shortcut (plain)",
}
BLOCK_LEGEND = {"gate": "gated (highway) join", "concat": "concat join"}
SHORT_NAMES = {"identity": "identity", "projection": "projection", "zeropad": "zero-pad",
               "concat": "concat"}
# At block level the node border carries the block's shortcut kind.
BORDERS = {"identity": "solid", "projection": "dashed", "zeropad": "dotted", "none": "solid",
           "concat": "bold"}
FILLS = {
    "conv": "#dce8f6", "batchnorm": "#fbf0c9", "relu": "#e0f0da", "sigmoid": "#e0f0da",
    "maxpool": "#e9e9e9", "avgpool": "#e9e9e9", "global_avgpool": "#e9e9e9",
    "linear": "#f6dcdc", "dropout": "#eee3f5", "drop_path": "#eee3f5",
    "pad_shortcut": "#ffffff",
}
STAGE_FILLS = ("#f2f6fb", "#f7f4ec")
GATE_FILL = "#fdebd9"  # blocks with a gated (highway) join, at block level


Description = tuple[tuple[str, ...], dict[str, str]]  # a node's cluster path and attributes


class RenderError(ResgraphError):
    """The picture cannot be written (no ``dot`` program, ``dot`` failed)."""


# -- reading the IR ------------------------------------------------------------------------
def shortcut_kind(ir: IR, block: Block) -> str:
    """What the shortcut pass made of ``block``: identity, projection, zeropad, concat, none
    (a plain block, its join removed) or nojoin (a block built without one: a transition)."""
    if block.join is None:
        return "none" if block.shortcut == "none" else "nojoin"
    join = ir.node(block.join)
    if isinstance(join.op, Concat):
        return "concat"
    inputs = ir.inputs(block.join)
    if len(inputs) < 2:
        return "none"
    chain, x = [], inputs[1]
    while ir.node(x).role == "shortcut":
        chain.append(ir.node(x))
        x = ir.inputs(x)[0]
    if not chain:
        return "identity"
    return "zeropad" if any(isinstance(n.op, PadShortcut) for n in chain) else "projection"


@dataclass
class _Model:
    """What every level needs, read once from the IR: sections, blocks, folded runs."""

    ir: IR
    fold: bool
    nodes: list[Node] = field(default_factory=list)  # execution order
    section: dict[str, str] = field(default_factory=dict)  # node -> "input"/"stem"/scope/"head"
    members: dict[str, list[Node]] = field(default_factory=dict)  # scope -> its nodes
    stage_of: dict[str, str] = field(default_factory=dict)  # block path -> stage path
    kinds: dict[str, str] = field(default_factory=dict)  # block path -> shortcut kind
    runs: dict[str, tuple[str, int]] = field(default_factory=dict)  # block -> (first, length)
    lasts: dict[str, str] = field(default_factory=dict)  # first block of a run -> its last

    def __post_init__(self) -> None:
        ir, in_head = self.ir, False
        self.nodes = ir.nodes()
        for n in self.nodes:
            in_head = in_head or bool(n.scope)
            if isinstance(n.op, Input):
                where = "input"
            else:
                where = n.scope or ("head" if in_head else "stem")
            self.section[n.name] = where
            self.members.setdefault(where, []).append(n)
        for stage in ir.stages:
            runs: list[list[str]] = []
            previous = None
            for path in stage.blocks:
                self.stage_of[path] = stage.path
                self.kinds[path] = shortcut_kind(ir, ir.blocks[path])
                signature = self._signature(path)
                if self.fold and runs and signature == previous:
                    runs[-1].append(path)
                else:
                    runs.append([path])
                previous = signature
            for run in runs:
                self.lasts[run[0]] = run[-1]
                for path in run:
                    self.runs[path] = (run[0], len(run))

    def _signature(self, path: str) -> tuple[object, ...]:
        b = self.ir.blocks[path]
        ops = tuple((n.name[len(path):], n.role, n.op) for n in self.members.get(path, []))
        return (b.kind, b.args, b.options, self.kinds[path], ops)

    def rep(self, name: str) -> str:
        """The node that stands for ``name`` once runs are folded (itself if not folded)."""
        scope = self.section[name]
        if scope in self.runs and self.runs[scope][0] != scope:
            return self.runs[scope][0] + name[len(scope):]
        return name

    def folded_away(self, name: str) -> bool:
        return self.rep(name) != name


def _stats(nodes: list[Node], suffix: str = "") -> str:
    params, macs = sum(n.params for n in nodes), sum(n.macs for n in nodes)
    if not params and not macs:
        return ""
    return f"params {si(params, '.3g')} · MACs {si(macs, '.3g')}{suffix}"


def _label(title: str, *lines: str, bold: bool = False) -> str:
    """An HTML-like label: the title, then smaller grey lines (empty ones are skipped)."""
    text = f"<B>{escape(title)}</B>" if bold else escape(title)
    for line in lines:
        if line:
            text += f'<BR/><FONT POINT-SIZE="8" COLOR="#555555">{escape(line)}</FONT>'
    return f"<{text}>"


def _widths(model: _Model, path: str) -> str:
    convs = [n.op.out_channels for n in model.members.get(path, [])
             if n.role == "main" and isinstance(n.op, Conv)]
    return f"[{', '.join(map(str, convs))}]" if convs else ""


def _block_text(model: _Model, path: str) -> tuple[str, str]:
    """('basic [64, 64], /2', 'projection shortcut (B)') for a block node or cluster."""
    b = model.ir.blocks[path]
    stride = dict(b.args).get("stride", 1)
    what = f"{b.kind} {_widths(model, path)}".strip() + (f", /{stride}" if stride != 1 else "")
    kind = model.kinds[path]
    how = {"identity": "identity shortcut", "projection": f"projection shortcut ({b.shortcut})",
           "zeropad": "zero-pad shortcut (A)", "concat": "concat join", "none": "no shortcut",
           }.get(kind, "")
    if _gated(model, path):
        how = f"gated, {how}"
    return what, how


def _gated(model: _Model, path: str) -> bool:
    join = model.ir.blocks[path].join
    return join is not None and isinstance(model.ir.node(join).op, GateMix)


def _run_title(model: _Model, first: str) -> tuple[str, str]:
    length = model.runs[first][1]
    if length == 1:
        return first, ""
    return f"{first} … {model.lasts[first]}", f"x {length}"


# -- the picture ---------------------------------------------------------------------------
def default_level(ir: IR, fold: bool | None = None) -> str:
    """The most detailed level that stays readable: ``op`` if the op graph has at most
    MAX_OP_NODES nodes (folded only when ``fold`` is True), else ``block`` if there are at
    most MAX_BLOCK_NODES block nodes (folded unless ``fold`` is False), else ``stage``."""
    model = _Model(ir, fold=bool(fold))
    if sum(not model.folded_away(n) for n in model.section) <= MAX_OP_NODES:
        return "op"
    if fold is None:
        model = _Model(ir, fold=True)
    return "block" if len({first for first, _ in model.runs.values()}) <= MAX_BLOCK_NODES \
        else "stage"


def to_dot(ir: IR, level: str | None = None, *, stats: bool = False, fold: bool | None = None,
           legend: bool = True) -> str:
    """DOT source of ``ir`` at ``level`` (None: :func:`default_level`). ``fold`` folds runs
    of identical blocks; None means yes at block level, no at op level. Reads the IR only."""
    return build(ir, level, stats=stats, fold=fold, legend=legend)[0].source


def build(ir: IR, level: str | None = None, *, stats: bool = False, fold: bool | None = None,
          legend: bool = True) -> tuple[graphviz.Digraph, int]:
    """The graph behind :func:`to_dot`, and how many nodes it draws (captions not counted)."""
    level = level or default_level(ir, fold)
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
    model = _Model(ir, fold=(level == "block") if fold is None else fold and level != "stage")
    key = {"op": _op_key, "block": _block_key, "stage": _stage_key}[level]
    describe = {"op": _op_node, "block": _block_node, "stage": _stage_node}[level]
    group = {name: key(model, name) for name in model.section if not model.folded_away(name)}
    nodes: dict[str, Description] = {}
    for n in model.nodes:
        if n.name in group and group[n.name] not in nodes:
            nodes[group[n.name]] = describe(model, group[n.name], n, stats)
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
        gated = {"gate"} if any(_gated(model, path) for path in model.kinds) else set()
        legend_kinds = set(model.kinds.values()) | gated if level == "block" else set()
    title = _title(model, level, legend_kinds if legend else set())
    g = graphviz.Digraph(
        name=ir.spec.name,
        graph_attr={"rankdir": "TB", "newrank": "true", "nodesep": "0.25", "ranksep": "0.22",
                    "fontname": FONT, "fontsize": "11", "labelloc": "t", "labeljust": "c",
                    "label": title, "pad": "0.15"},
        node_attr={"shape": "box", "style": "rounded,filled", "fillcolor": "white",
                   "fontname": FONT, "fontsize": "10", "height": "0.28", "width": "0.4",
                   "margin": "0.08,0.03", "penwidth": "0.8", "color": "#555555"},
        edge_attr={"fontname": FONT, "fontsize": "8", "fontcolor": "#666666",
                   "arrowsize": "0.6", "penwidth": "0.8", "color": "#333333"},
    )
    _add_nodes(g, model, nodes)
    for (gu, gv), (kind, shapes) in edges.items():
        weight = "4" if kind == "main" else "1"
        g.edge(gu, gv, label=" " + ", ".join(sorted(shapes)), weight=weight, **EDGE_STYLES[kind])
    return g, len(nodes)


def _title(model: _Model, level: str, kinds: set[str]) -> str:
    """The spec's name and totals, then a legend of the ``kinds`` of shortcut drawn: sample
    lines at op level, sample block borders at block level. The legend sits in the graph
    label so that it cannot disturb the layout."""
    ir = model.ir
    parts = [f"{level} level", f"input {fmt_shape(ir.node(ir.input).shape)}", _stats(model.nodes)]
    title = _label(ir.spec.name, ", ".join(p for p in parts if p), bold=True)
    rows = [k for k in LEGEND if k in kinds and (level == "block" or k != "none")]
    if not rows:
        return title
    small = '<FONT POINT-SIZE="9">{}</FONT>'
    cells = []
    for kind in rows:
        if level == "op":
            style = EDGE_STYLES[kind]
            sample = (f'<TD BORDER="2" SIDES="B" STYLE="{style["style"]}" COLOR="{style["color"]}" '
                      'WIDTH="30" HEIGHT="8"></TD>')
            text = LEGEND[kind]
        else:
            sample = (f'<TD BORDER="{2 if kind == "concat" else 1}" STYLE="{_cell_style(kind)}" '
                      f'COLOR="#555555" BGCOLOR="{GATE_FILL if kind == "gate" else "white"}" '
                      'WIDTH="22"> </TD>')
            text = BLOCK_LEGEND.get(kind, LEGEND[kind])
        cells.append(f'{sample}<TD ALIGN="LEFT">{small.format(escape(text))}</TD>')
    head = small.format("edges:" if level == "op" else "block border:")
    lines = "".join(f'<TR><TD ALIGN="RIGHT">{head if i == 0 else ""}</TD>'
                    f'{"".join(cells[i:i + 3])}</TR>' for i in range(0, len(cells), 3))
    return (f'<<TABLE BORDER="0" CELLSPACING="0"><TR><TD>{title[1:-1]}</TD></TR><TR><TD>'
            f'<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="4" CELLPADDING="1">{lines}</TABLE>'
            "</TD></TR></TABLE>>")


def _op_key(model: _Model, name: str) -> str:
    return name


def _block_key(model: _Model, name: str) -> str:
    where = model.section[name]
    return model.runs[where][0] if where in model.runs else where


def _stage_key(model: _Model, name: str) -> str:
    where = model.section[name]
    return model.stage_of.get(where, where)


def _op_node(model: _Model, gid: str, n: Node, stats: bool) -> Description:
    where = model.section[n.name]
    if where in model.runs:
        cluster: tuple[str, ...] = (model.stage_of[where], where)
    else:
        cluster = () if where == "input" else (where,)
    attrs = {"fillcolor": FILLS.get(n.op.kind, "white"), "tooltip": n.name}
    if n.role == "main":
        attrs["group"] = "main"  # dot keeps edges within a group straight: one column
    text = _stats([n]) if stats else ""
    if isinstance(n.op, Add) and not text:
        attrs.update(shape="circle", label="+", width="0.3", height="0.3", margin="0",
                     fontsize="12")
    elif isinstance(n.op, JOINS):
        attrs.update(shape="ellipse", label=_label(n.op.label(), text))
    elif isinstance(n.op, Input):
        attrs.update(shape="ellipse", style="filled", fillcolor="#f4f4f4",
                     label=_label("input", text))
    else:
        attrs["label"] = _label(n.op.label(), text)
        if n.role != "main":  # on a shortcut or gate path: its border looks like its edges
            style = EDGE_STYLES[_node_kind(model, n)]
            attrs.update(style="rounded,filled," + style["style"], color=style["color"])
    return cluster, attrs


def _block_node(model: _Model, gid: str, n: Node, stats: bool) -> Description:
    if gid not in model.runs:  # input, stem, head (or ops of a stage outside any block)
        return _section_node(model, gid, stats)
    length = model.runs[gid][1]
    title, times = _run_title(model, gid)
    what, how = _block_text(model, gid)
    attrs = {
        "label": _label(title + (f"   {times}" if times else ""), what, how,
                        _stats(model.members[gid], " each" if length > 1 else "")
                        if stats else "", bold=True),
        "style": ("filled," if model.kinds[gid] == "none" else "rounded,filled,")
        + BORDERS.get(model.kinds[gid], "solid"),
        "fillcolor": GATE_FILL if _gated(model, gid) else "#fffaf0" if length > 1 else "white",
        "penwidth": "1.2", "tooltip": gid, "group": "main",
    }
    return (model.stage_of[gid],), attrs


def _stage_node(model: _Model, gid: str, n: Node, stats: bool) -> Description:
    stage = next((s for s in model.ir.stages if s.path == gid), None)
    if stage is None:
        return _section_node(model, gid, stats)
    nodes = [m for m in model.nodes if model.section[m.name].split(".")[0] == gid]
    first = model.ir.blocks[stage.blocks[0]]
    kinds = [model.kinds[p] for p in stage.blocks if model.kinds[p] in SHORT_NAMES]
    counted = "shortcuts: " + ", ".join(
        f"{kinds.count(k)} {SHORT_NAMES[k]}" for k in dict.fromkeys(kinds)) if kinds \
        else "no shortcuts"
    attrs = {
        "label": _label(gid, f"{first.kind} {_widths(model, first.path)} x {len(stage.blocks)}",
                        f"output {fmt_shape(nodes[-1].shape)}", counted,
                        _stats(nodes) if stats else "", bold=True),
        "fillcolor": STAGE_FILLS[stage.index % 2], "penwidth": "1.0", "tooltip": gid,
        "group": "main",
    }
    return (), attrs


def _section_node(model: _Model, where: str, stats: bool) -> Description:
    """One node for the input, the stem or the head: its op labels, a few per line."""
    nodes = model.members[where]
    if where == "input":
        return (), {"shape": "ellipse", "style": "filled", "fillcolor": "#f4f4f4",
                    "label": _label("input", fmt_shape(nodes[0].shape)), "group": "main"}
    lines, line = [], ""
    for op in (n.op.label() for n in nodes):
        if line and len(line) + len(op) > 28:
            lines.append(line)
            line = ""
        line = f"{line} · {op}" if line else op
    lines.append(line)
    return (), {"label": _label(where, *lines, _stats(nodes) if stats else "", bold=True),
                "fillcolor": "#eeeeee", "tooltip": where, "group": "main"}


def _node_kind(model: _Model, n: Node) -> str:
    """Edge kind of the path an off-main-path node lies on."""
    if n.role == "gate":
        return "gate"
    if n.scope in model.kinds and model.kinds[n.scope] in ("projection", "zeropad"):
        return model.kinds[n.scope]
    return "zeropad" if isinstance(n.op, PadShortcut) else "projection"


def _edge_kind(model: _Model, u: Node, v: Node, port: int) -> str:
    for n in (v, u):
        if n.role != "main":
            return _node_kind(model, n)
    if isinstance(v.op, Concat) and u.scope != v.scope:
        return "concat"  # maps carried forward from outside the block
    if isinstance(v.op, (Add, GateMix)) and port == 1:
        return "identity"  # a residual join's shortcut port, fed straight from the input
    return "main"


def _add_nodes(g: graphviz.Digraph, model: _Model, nodes: dict[str, Description]) -> None:
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
                graph.node(item, **nodes[item][1])
                continue
            sub = path + (item[1:],)
            with graph.subgraph(name="cluster_" + sub[-1].replace(".", "_")) as c:
                attrs, caption = _cluster_attrs(model, sub)
                c.attr(**attrs)
                fill(c, sub)
                inside = leaves(sub)
                # a block's caption goes beside its second node, so that it does not share
                # a row with its stage's caption (beside the stage's first node)
                beside = inside[min(1, len(inside) - 1)] if sub[-1] in model.runs else inside[0]
                # an invisible edge of length 0 puts the caption on the row of ``beside``
                # (a rank=same subgraph inside a cluster makes dot misplace cluster borders)
                c.node(f"@{sub[-1]}", label=caption, shape="plaintext", style="",
                       fontsize="9", margin="0.02", tooltip=sub[-1])
                c.edge(f"@{sub[-1]}", beside, style="invis", minlen="0")

    fill(g, ())


def _cluster_attrs(model: _Model, path: tuple[str, ...]) -> tuple[dict[str, str], str]:
    """Attributes of a cluster, and its caption."""
    name = path[-1]
    common = {"label": "", "penwidth": "0.8", "style": "rounded,filled"}
    if name in model.runs:  # a block (op level)
        title, times = _run_title(model, name)
        caption = f"<<B>{escape(title)}<BR/>{times}</B>>" if times else _label(title)
        return {**common, "style": "rounded,filled" + (",bold" if times else ""),
                "fillcolor": "#fffaf0" if times else "#ffffff", "color": "#b8c2cf"}, caption
    stage = next((s for s in model.ir.stages if s.path == name), None)
    if stage is not None:
        last = model.ir.blocks[stage.blocks[-1]].output
        caption = _label(name, fmt_shape(model.ir.node(last).shape), bold=True)
        return {**common, "fillcolor": STAGE_FILLS[stage.index % 2], "color": "#c5cfdb"}, caption
    return {**common, "fillcolor": "#f3f3f3", "color": "#cccccc"}, _label(name, bold=True)


def _cell_style(kind: str) -> str:
    return {"projection": "dashed", "zeropad": "dotted", "none": "solid"}.get(kind, "rounded")


# -- the command ---------------------------------------------------------------------------
def _target(spec: Path, output: Path | None, fmt: str | None) -> tuple[Path, str]:
    """The file to write and its format, from -o and --format (checked before any work)."""
    if output is None:
        fmt = fmt or "svg"
        return Path(f"{spec.stem}.{fmt}"), fmt
    ext = output.suffix.lower()
    if ext not in EXTENSIONS:
        raise click.BadParameter(
            f"cannot tell the format from {str(output)!r}: the file name must end in one of "
            f"{', '.join(EXTENSIONS)}", param_hint="'-o' / '--output'")
    if fmt and EXTENSIONS[ext] != fmt:
        raise click.BadParameter(
            f"{fmt!r} does not match the extension of {str(output)!r} ({ext}); "
            f"drop --format or name the file *.{fmt}", param_hint="'--format'")
    return output, EXTENSIONS[ext]


def draw(source: str, fmt: str, target: Path) -> None:
    """Write ``source`` as ``fmt`` to ``target`` atomically, running ``dot`` unless fmt is
    dot. Without ``dot`` the DOT source goes next to ``target`` and RenderError says why."""
    from resgraph.fsutil import atomic_write_bytes, atomic_write_text

    if fmt == "dot":
        atomic_write_text(target, source)
        return
    try:
        data = graphviz.pipe("dot", fmt, source.encode("utf-8"), quiet=True)
    except graphviz.ExecutableNotFound:
        fallback = target.with_suffix(".dot")
        atomic_write_text(fallback, source)
        raise RenderError(
            f"cannot draw {target}: graphviz's 'dot' program is not installed (or not on PATH).\n"
            "Install graphviz -- Debian/Ubuntu: sudo apt-get install graphviz; macOS: brew "
            "install graphviz -- and run again, or ask for --format dot.\n"
            f"The DOT source was written to {fallback}; draw it later with: "
            f"dot -T{fmt} {fallback} -o {target}"
        ) from None
    except graphviz.CalledProcessError as exc:
        stderr = (exc.stderr or b"").decode("utf-8", "replace").strip()
        raise RenderError(f"dot failed to draw {target}: {stderr or exc}") from None
    atomic_write_bytes(target, data)


@click.command("render")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File to write [default: SPEC's stem and the format, in the current "
              "directory, e.g. resnet34.svg].")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
              help="Picture format [default: from -o's extension, else svg]. 'dot' writes "
              "the DOT source and needs no graphviz program.")
@click.option("--level", type=click.Choice(LEVELS), default=None,
              help="Detail: one node per op, per residual block, or per stage "
              "[default: see above].")
@click.option("--stats/--no-stats", default=False, show_default=True,
              help="Show parameters and multiply-adds (MACs) on every node.")
@click.option("--fold/--no-fold", default=None,
              help="Fold runs of identical consecutive blocks of a stage into one node "
              "marked 'x N' [default: on at block level, off at op level].")
def render_cmd(spec: Path, output: Path | None, fmt: str | None, level: str | None,
               stats: bool, fold: bool | None) -> None:
    """Draw the network of SPEC with graphviz and print the path of the picture.

    \b
    Levels:
      op     one node per op (its label, e.g. '3x3 conv, 64, /2'), edges labelled with
             tensor shapes CxHxW; stages, blocks, stem and head drawn as boxes around them
      block  one node per residual block: type, widths, stride, shortcut kind
      stage  one node per stage: block type x repeats, widths, output size

    \b
    Default level: the most detailed one that stays readable --
      op     if the op graph has at most 150 nodes (counted folded only with --fold),
      block  else, if there are at most 60 block nodes (counted folded unless --no-fold),
      stage  otherwise.
    So ResNet-34 (125 ops) is drawn per op, ResNet-50 per block, and CIFAR ResNet-1202
    (4,208 ops, 600 blocks, 5 block nodes once folded) per folded block.

    \b
    Shortcuts follow the paper's Figure 3: identity solid, projection (B, C) dashed,
    zero-padding (A) dotted; at block level the node's border shows it. Gate paths of
    highway joins are orange, concatenated inputs green. A legend says so in the picture.
    """
    from resgraph.passes import lower
    from resgraph.spec import load_spec

    target, fmt = _target(spec, output, fmt)
    ir = lower(load_spec(spec))
    level = level or default_level(ir, fold)
    graph, shown = build(ir, level, stats=stats, fold=fold)
    if fmt != "dot" and shown > SLOW_LAYOUT_NODES:
        click.echo(f"note: laying out {shown} nodes; dot may take a minute or more "
                   "(--fold or a coarser --level draws fewer)", err=True)
    draw(graph.source, fmt, target)
    click.echo(str(target))
    click.echo(f"{ir.spec.name}: {level} level, {shown} nodes", err=True)
