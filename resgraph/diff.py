"""``resgraph diff A.yaml B.yaml``: what differs between two networks, stage by stage.

Each stage (stem, layer1, ..., head) is compared on what the spec says (block type and
options, width, repeats, stride, shortcut) and on what lowering made of it (the blocks, the
shortcut each block got, where the stride sits, the output shape, parameters and MACs).
Only fields that differ are shown, then the totals. Two specs whose lowered graphs are the
same (same ops, shapes and connections) are reported as such.

Blocks are compared too, each with the block at the same place (stage i, block j) of the
other network (:func:`block_facts`): ``--json`` lists those that differ, and ``--render``
draws both networks side by side with them highlighted.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from resgraph.errors import ResgraphError
from resgraph.ir import IR, Block, block_members
from resgraph.ops import Conv, Input, Output
from resgraph.options import (
    SPEC,
    input_size_option,
    input_size_override,
    spec_overrides,
    with_flags,
)
from resgraph.passes import lower
from resgraph.spec import ModelSpec, load_spec
from resgraph.spec.digest import digest
from resgraph.summary import LayerRow, Summary, summarize
from resgraph.units import si

# the fields of a stage, in the order they are shown
FIELDS = (
    "options",
    "block",
    "width",
    "repeats",
    "stride",
    "shortcut",
    "blocks",
    "shortcut outcome",
    "strided layers",
    "ops",
    "output",
    "params",
    "MACs",
)
_STRIDED = re.compile(r"/(\d+)")
# spec fields compared per stage (or not at all: the name, the description, the recipe)
_NOT_NETWORK = {"name", "description", "stages", "train", "block", "stem", "shortcut"}


@dataclass
class StageDiff:
    name: str
    fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # field -> (A, B)


@dataclass
class BlockDiff:
    """A block that differs from the one at the same place (stage, index) of the other
    network, or that only one network has (its path on the other side is None)."""

    stage: int
    index: int
    a: str | None  # the block's path in A ("layer2.0")
    b: str | None
    fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # fact -> (A, B)


@dataclass
class SpecDiff:
    a: str
    b: str
    same_ir: bool
    stages: list[StageDiff]
    totals: dict[str, tuple[Any, Any]]
    blocks: list[BlockDiff] = field(default_factory=list)

    def highlight(self) -> tuple[set[str], set[str]]:
        """What a picture marks on each side: the blocks that differ, and the stem or the
        head where their facts differ. Nothing when both lower to the same network."""
        if self.same_ir:
            return set(), set()
        ends = {s.name for s in self.stages if s.name in ("stem", "head")}
        return (
            ends | {d.a for d in self.blocks if d.a is not None},
            ends | {d.b for d in self.blocks if d.b is not None},
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "same_ir": self.same_ir,
            "stages": [
                {"name": s.name, "differences": {k: list(v) for k, v in s.fields.items()}}
                for s in self.stages
            ],
            "blocks": [
                {
                    "stage": d.stage,
                    "index": d.index,
                    "a": d.a,
                    "b": d.b,
                    "differences": {k: list(v) for k, v in d.fields.items()},
                }
                for d in self.blocks
            ],
            "totals": {k: list(v) for k, v in self.totals.items()},
        }


def _options(block: Any) -> dict[str, Any]:
    """A block or stem spec as a flat dict of its set options (type first)."""
    data = block.model_dump(mode="json") if hasattr(block, "model_dump") else {"type": block}
    return {k: v for k, v in data.items() if v is not None}


def _narrow(a: Any, b: Any) -> tuple[Any, Any]:
    """Of two option dicts of the same type, only the options that differ, as text."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys = [k for k in dict.fromkeys([*a, *b]) if a.get(k) != b.get(k)]
        if a.get("type") != b.get("type"):
            keys = list(dict.fromkeys([*a, *b]))
        return tuple(", ".join(f"{k}={d[k]}" for k in keys if k in d) or "-" for d in (a, b))
    return a, b


def _outcome(layers: list[LayerRow], block: Block) -> str:
    """The shortcut a block got: its downsample ops, 'identity' when the join takes the
    input itself, 'none' without a join (plain nets), 'concat' (dense layers)."""
    short = [r.op for r in layers if f"{r.name}.".startswith(f"{block.path}.downsample.")]
    if short:
        return " + ".join(short)
    if block.join_kind == "concat":
        return "concat"
    return "identity" if block.join is not None else "none"


def _definitions(spec: ModelSpec) -> str:
    """Block types defined in a spec, each with its op count and a digest of it (the spec
    hash's rule), so that two specs whose definitions differ show it without printing them
    whole."""
    return ", ".join(
        f"{name} ({len(d.ops)} ops, {digest(d)[:8]})" for name, d in (spec.blocks or {}).items()
    )


def _runs(items: list[str]) -> str:
    """['a', 'a', 'b'] -> 'a x2, b x1'."""
    runs: list[list[Any]] = []
    for item in items:
        if runs and runs[-1][0] == item:
            runs[-1][1] += 1
        else:
            runs.append([item, 1])
    return ", ".join(f"{item} x{n}" for item, n in runs)


def op_counts(ir: IR) -> Counter[str]:
    """The ops of each part of the network, as the IR records it: ``stem``, each stage by
    its path (``layer1``), ``head``. The input and a backbone's output markers are no ops."""
    parts = ir.parts()
    return Counter(parts[n.name] for n in ir.nodes() if not isinstance(n.op, (Input, Output)))


def stage_facts(ir: IR, info: Summary) -> dict[str, dict[str, Any]]:
    """Every stage's fields (see FIELDS) by stage name."""
    spec: ModelSpec = ir.spec
    counts = op_counts(ir)
    facts: dict[str, dict[str, Any]] = {}
    top = {k: v for k, v in spec.model_dump(mode="json").items() if k not in _NOT_NETWORK}
    if spec.blocks:
        top["blocks"] = _definitions(spec)
    facts["network"] = {"options": {"type": "network", **top}}
    scope = {n.name: n.scope for n in ir.nodes()}  # a layer's block ('layer2.0')
    parts = ir.parts()
    by_stage: dict[str, list[LayerRow]] = {}
    for row in info.layers:
        by_stage.setdefault(parts[row.name], []).append(row)
    paths = [r.name for r in info.stages if r.name not in ("stem", "head")]
    for row in info.stages:
        f: dict[str, Any] = {
            "ops": counts[row.name],
            "blocks": row.blocks,
            "output": row.output,
            "params": row.params,
            "MACs": row.macs,
        }
        if row.name in paths:
            i = paths.index(row.name)
            stage = spec.stages[i]
            f["block"] = _options(spec.stage_block(i))
            f["width"] = getattr(stage, "width", None)
            f["repeats"] = stage.repeats
            f["stride"] = stage.stride
            # dense stages have no shortcut (the join is a concatenation)
            f["shortcut"] = None if f["block"].get("type") == "dense" else spec.stage_shortcut(i)
            layers = by_stage.get(row.name, [])
            blocks: dict[str, list[LayerRow]] = {}
            for r in layers:
                blocks.setdefault(scope[r.name], []).append(r)
            f["shortcut outcome"] = _runs([_outcome(b, ir.blocks[k]) for k, b in blocks.items()])
            f["strided layers"] = (
                ", ".join(f"{r.name} ({r.op})" for r in layers if _STRIDED.search(r.op)) or "-"
            )
        elif row.name == "stem":
            f["block"] = _options(spec.stem)
        facts[row.name] = f
    return facts


def block_facts(ir: IR) -> dict[tuple[int, int], tuple[str, dict[str, Any]]]:
    """Every block by its place (stage index, block index): its path, and the facts two
    blocks are compared on -- its type, the widths of its main-path convs, its stride, the
    shortcut lowering gave it (and how the branch joins) and its options as the spec set
    them."""
    members = block_members(ir)
    facts: dict[tuple[int, int], tuple[str, dict[str, Any]]] = {}
    for i, stage in enumerate(ir.stages):
        for j, path in enumerate(stage.blocks):
            b = ir.blocks[path]
            facts[i, j] = (
                path,
                {
                    "kind": b.kind,
                    "widths": [
                        n.op.out_channels
                        for n in members.get(path, [])
                        if n.role == "main" and isinstance(n.op, Conv)
                    ],
                    "stride": b.stride,
                    "shortcut_kind": b.shortcut_kind if b.join is not None else "none",
                    "join": b.join_kind if b.join is not None else "none",
                    "options": _options(b.spec),
                },
            )
    return facts


def block_diffs(a: IR, b: IR) -> list[BlockDiff]:
    """The blocks of ``a`` and ``b`` whose facts (:func:`block_facts`) differ from those of
    the block at the same place on the other side, or that have no such block."""
    fa, fb = block_facts(a), block_facts(b)
    out = []
    for place in sorted(fa.keys() | fb.keys()):
        left, right = fa.get(place), fb.get(place)
        d = BlockDiff(*place, left[0] if left else None, right[0] if right else None)
        if left is None or right is None:
            d.fields["block"] = ("present" if left else "absent", "present" if right else "absent")
        else:
            for k, va in left[1].items():
                if va != right[1][k]:
                    d.fields[k] = _narrow(va, right[1][k]) if k == "options" else (va, right[1][k])
        if d.fields:
            out.append(d)
    return out


def ir_signature(ir: IR) -> list[tuple[Any, ...]]:
    """What makes two lowered graphs the same network: each op (its kind and every
    argument), its output shape and where its inputs come from, in execution order."""
    return [
        (n.name, repr(n.op), tuple(n.shape or ()), tuple(ir.inputs(n.name))) for n in ir.nodes()
    ]


def diff_specs(a: ModelSpec, b: ModelSpec, a_name: str = "A", b_name: str = "B") -> SpecDiff:
    return diff_irs(lower(a), lower(b), a_name, b_name)


def diff_irs(ir_a: IR, ir_b: IR, a_name: str = "A", b_name: str = "B") -> SpecDiff:
    """What differs between two lowered networks (their specs are ``ir.spec``)."""
    info_a, info_b = summarize(ir_a), summarize(ir_b)
    fa, fb = stage_facts(ir_a, info_a), stage_facts(ir_b, info_b)
    order = list(fa) + [s for s in fb if s not in fa]
    stages = []
    for name in order:
        left, right = fa.get(name), fb.get(name)
        d = StageDiff(name)
        if left is None or right is None:
            d.fields["stage"] = ("present" if left else "absent", "present" if right else "absent")
            have = left or right or {}
            for k in FIELDS:
                if k in have:
                    d.fields[k] = _narrow(
                        left.get(k) if left else None, right.get(k) if right else None
                    )
        else:
            for k in FIELDS:
                if left.get(k) != right.get(k):
                    d.fields[k] = _narrow(left.get(k), right.get(k))
        if d.fields:
            stages.append(d)
    totals = {
        "input": (info_a.input, info_b.input),
        "ops": (op_counts(ir_a).total(), op_counts(ir_b).total()),
        "blocks": (len(ir_a.blocks), len(ir_b.blocks)),
        "params": (info_a.params, info_b.params),
        "MACs": (info_a.macs, info_b.macs),
    }
    same = ir_signature(ir_a) == ir_signature(ir_b)
    # the same network: no block differs, whatever the specs' options say
    return SpecDiff(a_name, b_name, same, stages, totals, [] if same else block_diffs(ir_a, ir_b))


def _show(value: Any, key: str) -> str:
    if value is None:
        return "-"
    if key == "MACs" and isinstance(value, int):
        return si(value)
    if isinstance(value, int) and key == "params":
        return f"{value:,}"
    return str(value)


def _delta(a: Any, b: Any, key: str) -> str:
    if not (isinstance(a, int) and isinstance(b, int)) or a == b:
        return ""
    change = b - a
    rel = f" ({100 * change / a:+.1f}%)" if a else ""
    shown = si(abs(change)) if key == "MACs" else f"{abs(change):,}"
    return f"{'+' if change > 0 else '-'}{shown}{rel}"


def format_text(d: SpecDiff) -> str:
    lines = [f"A: {d.a}", f"B: {d.b}"]
    if d.same_ir:
        lines.append("the two specs lower to the same network (same ops, shapes and connections)")
    rows: list[tuple[str, str, str, str, str]] = []
    for s in d.stages:
        for i, (k, (va, vb)) in enumerate(s.fields.items()):
            rows.append(
                (s.name if i == 0 else "", k, _show(va, k), _show(vb, k), _delta(va, vb, k))
            )
    if rows:
        header = ("stage", "field", "A", "B", "B - A")
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
        lines.append("")
        for row in [header, *rows]:
            lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    elif not d.same_ir:
        lines.append(
            "no stage differs in the fields compared; the graphs differ in detail "
            "(use `resgraph summary --per-layer` on each)"
        )
    lines.append("")
    for k, (va, vb) in d.totals.items():
        same = "  (same)" if va == vb else f"  {_delta(va, vb, k)}".rstrip()
        lines.append(f"total {k}: {_show(va, k)} vs {_show(vb, k)}{same}")
    if d.blocks:
        a, b = (sum(getattr(x, side) is not None for x in d.blocks) for side in ("a", "b"))
        lines.append(
            f"blocks that differ from the block at the same place: {a} of A's, {b} of B's "
            "(--json lists them, --render highlights them)"
        )
    return "\n".join(lines)


def render_diff(d: SpecDiff, ir_a: IR, ir_b: IR, target: Path, fmt: str) -> int:
    """Draw both networks of ``d`` side by side into ``target`` (see
    :mod:`resgraph.render.compare`); returns how many nodes the picture has."""
    from resgraph.render.command import draw
    from resgraph.render.compare import side_by_side

    graph, shown = side_by_side(
        ir_a, ir_b, paths=(d.a, d.b), highlight=d.highlight(), same_ir=d.same_ir
    )
    draw(
        graph.source,
        fmt,
        target,
        redo=f"resgraph diff {d.a} {d.b} --render OTHER.dot",
        ask="a .dot file (--render FILE.dot)",
    )
    return shown


@click.command("diff")
@click.argument("a", type=SPEC)
@click.argument("b", type=SPEC)
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON.")
@input_size_option("Compare both at input resolution N x N (same as --set input.size=N on each).")
@click.option(
    "--render",
    "picture",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE",
    help="Also draw both networks side by side at block level, the blocks that differ "
    "highlighted, as FILE (.svg, .png, .pdf by its extension; .dot: the DOT source).",
)
@spec_overrides(shorthands=False, what="B")
def diff_cmd(
    a: Path,
    b: Path,
    as_json: bool,
    input_size: int | None,
    picture: Path | None,
    overrides: tuple[str, ...],
) -> None:
    """Compare the networks of specs A and B stage by stage.

    --set changes B only, so `resgraph diff X.yaml X.yaml --set block.groups=32` shows
    what an override does. Exit status, as diff(1)'s: 0 when both lower to the same
    network, 1 when the networks differ, 2 on an error."""
    try:
        same = _diff(a, b, as_json, input_size, picture, overrides)
    except ResgraphError as exc:
        exc.exit_status = 2
        raise
    if not same:
        click.get_current_context().exit(1)


def _diff(
    a: Path,
    b: Path,
    as_json: bool,
    input_size: int | None,
    picture: Path | None,
    overrides: tuple[str, ...],
) -> bool:
    """Print the differences (and draw them); whether both are the same network."""
    if picture is not None:  # refused before any work
        from resgraph.fsutil import check_output
        from resgraph.render.command import picture_format

        fmt = picture_format(picture, "'--render'")
        check_output(picture)
    size = [] if input_size is None else [input_size_override(input_size)]
    ir_a, ir_b = lower(load_spec(a, size)), lower(load_spec(b, [*size, *overrides]))
    result = diff_irs(ir_a, ir_b, str(a), with_flags(b, overrides))
    if picture is not None:
        shown = render_diff(result, ir_a, ir_b, picture, fmt)
        click.echo(f"wrote {picture} ({shown} nodes)", err=True)
    click.echo(json.dumps(result.to_json(), indent=2) if as_json else format_text(result))
    return result.same_ir
