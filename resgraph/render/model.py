"""What a picture needs from the IR, read once: sections, blocks, shortcut kinds and runs
of identical blocks (which folding draws once, marked ``x N``). Reads the IR only."""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

from resgraph import names
from resgraph.ir import IR, Block, Node
from resgraph.ops import Conv, Input, Output
from resgraph.render.style import GRAY_TEXT
from resgraph.units import si

# Block.shortcut_kind (what insert_shortcuts made) -> how a picture draws it
_DRAWN_AS = {"zero-pad": "zeropad", "avg-projection": "projection"}


def shortcut_kind(ir: IR, block: Block) -> str:
    """How ``block``'s shortcut is drawn: identity, projection (options B, C and D),
    zeropad, concat, none (a plain block, its join removed) or nojoin (a block built without
    one: a transition). Read from the block's recorded shortcut kind."""
    if block.join is None:
        return "none" if block.shortcut == "none" else "nojoin"
    if block.join_kind == "concat":
        return "concat"
    kind = block.shortcut_kind or "identity"
    return _DRAWN_AS.get(kind, kind)


@dataclass
class Model:
    """What every level needs, read once from the IR: sections, blocks, folded runs."""

    ir: IR
    fold: bool
    nodes: list[Node] = field(default_factory=list)  # execution order
    # node -> "input", "stem", its scope, "head", or an Output marker's own name
    section: dict[str, str] = field(default_factory=dict)
    members: dict[str, list[Node]] = field(default_factory=dict)  # scope -> its nodes
    stage_of: dict[str, str] = field(default_factory=dict)  # block path -> stage path
    kinds: dict[str, str] = field(default_factory=dict)  # block path -> shortcut kind
    runs: dict[str, tuple[str, int]] = field(default_factory=dict)  # block -> (first, length)
    lasts: dict[str, str] = field(default_factory=dict)  # first block of a run -> its last

    def __post_init__(self) -> None:
        ir = self.ir
        self.nodes = ir.nodes()
        for n in self.nodes:
            if isinstance(n.op, Input):
                where = "input"
            elif isinstance(n.op, Output):  # each feature map a backbone returns: its own node
                where = n.name
            else:
                where = n.scope if n.section == "stage" else n.section
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
        ops = tuple((n.name[len(path) :], n.role, n.op) for n in self.members.get(path, []))
        return (b.kind, b.args, b.spec, self.kinds[path], ops)

    def rep(self, name: str) -> str:
        """The node that stands for ``name`` once runs are folded (itself if not folded)."""
        scope = self.section[name]
        if scope in self.runs and self.runs[scope][0] != scope:
            return self.runs[scope][0] + name[len(scope) :]
        return name

    def folded_away(self, name: str) -> bool:
        return self.rep(name) != name


def stats_text(nodes: list[Node], suffix: str = "") -> str:
    params, macs = sum(n.params for n in nodes), sum(n.macs for n in nodes)
    if not params and not macs:
        return ""
    return f"params {si(params, '.3g')} · MACs {si(macs, '.3g')}{suffix}"


def html_label(title: str, *lines: str, bold: bool = False) -> str:
    """An HTML-like label: the title, then smaller grey lines (empty ones are skipped)."""
    text = f"<B>{escape(title)}</B>" if bold else escape(title)
    for line in lines:
        if line:
            text += f'<BR/><FONT POINT-SIZE="8" COLOR="{GRAY_TEXT}">{escape(line)}</FONT>'
    return f"<{text}>"


def widths(model: Model, path: str) -> str:
    convs = [
        n.op.out_channels
        for n in model.members.get(path, [])
        if n.role == "main" and isinstance(n.op, Conv)
    ]
    return f"[{', '.join(map(str, convs))}]" if convs else ""


def block_text(model: Model, path: str) -> tuple[str, str]:
    """('basic [64, 64], /2', 'projection shortcut (B)') for a block node or cluster."""
    b = model.ir.blocks[path]
    stride = b.stride
    what = f"{b.kind} {widths(model, path)}".strip()
    attention = getattr(b.spec, "attention", None)
    if attention is not None:
        what += f" + {names.ATTENTION[attention.type].label}"
    what += f", /{stride}" if stride != 1 else ""
    if b.anti_aliased:
        what += f" ({b.spec.anti_alias.type} {names.ANTI_ALIAS.label})"  # type: ignore[union-attr]
    option = names.SHORTCUT[b.shortcut].label
    how = {
        "identity": "identity shortcut",
        "projection": f"projection shortcut ({option})",
        "zeropad": f"zero-pad shortcut ({option})",
        "concat": "concat join",
        "none": f"{option} shortcut",
    }.get(model.kinds[path], "")
    if gated(model, path):
        how = f"{names.GATED.label}, {how}"
    return what, how


def gated(model: Model, path: str) -> bool:
    block = model.ir.blocks[path]
    return block.join is not None and block.join_kind == "gate"


def run_title(model: Model, first: str) -> tuple[str, str]:
    length = model.runs[first][1]
    if length == 1:
        return first, ""
    return f"{first} … {model.lasts[first]}", f"x {length}"
