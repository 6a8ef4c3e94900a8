"""``resgraph diff A.yaml B.yaml``: what differs between two networks, stage by stage.

Each stage (stem, layer1, ..., head) is compared on what the spec says (block type and
options, width, repeats, stride, shortcut) and on what lowering made of it (the blocks, the
shortcut each block got, where the stride sits, the output shape, parameters and MACs).
Only fields that differ are shown, then the totals. Two specs whose lowered graphs are the
same (same ops, shapes and connections) are reported as such.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from resgraph.ir import IR
from resgraph.options import SPEC, command_flags, spec_overrides
from resgraph.passes import lower
from resgraph.spec import ModelSpec, load_spec
from resgraph.spec.overrides import Override
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
class SpecDiff:
    a: str
    b: str
    same_ir: bool
    stages: list[StageDiff]
    totals: dict[str, tuple[Any, Any]]

    def to_json(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "same_ir": self.same_ir,
            "stages": [
                {"name": s.name, "differences": {k: list(v) for k, v in s.fields.items()}}
                for s in self.stages
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


def _block_of(layer: str) -> str:
    """'layer2.0.downsample.1' -> 'layer2.0'."""
    return ".".join(layer.split(".")[:2])


def _outcome(layers: list[LayerRow]) -> str:
    """The shortcut a block got: its downsample ops, 'identity' when the join adds the input
    itself, 'none' without a join (plain nets), 'concat' (dense layers)."""
    short = [r.op for r in layers if r.name.split(".")[2:3] == ["downsample"]]
    if short:
        return " + ".join(short)
    ops = {r.op for r in layers}
    if "concat" in ops:
        return "concat"
    joins = [r for r in layers if r.op == "+" or "gate" in r.name]
    return "identity" if joins else "none"


def _runs(items: list[str]) -> str:
    """['a', 'a', 'b'] -> 'a x2, b x1'."""
    runs: list[list[Any]] = []
    for item in items:
        if runs and runs[-1][0] == item:
            runs[-1][1] += 1
        else:
            runs.append([item, 1])
    return ", ".join(f"{item} x{n}" for item, n in runs)


def stage_facts(spec: ModelSpec, info: Summary) -> dict[str, dict[str, Any]]:
    """Every stage's fields (see FIELDS) by stage name."""
    facts: dict[str, dict[str, Any]] = {}
    top = {k: v for k, v in spec.model_dump(mode="json").items() if k not in _NOT_NETWORK}
    facts["network"] = {"options": {"type": "network", **top}}
    by_stage: dict[str, list[LayerRow]] = {}
    for row in info.layers:
        by_stage.setdefault(row.name.split(".")[0], []).append(row)
    paths = [r.name for r in info.stages if r.name not in ("stem", "head")]
    for row in info.stages:
        f: dict[str, Any] = {
            "ops": sum(r.name.split(".")[0] == row.name for r in info.layers),
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
                blocks.setdefault(_block_of(r.name), []).append(r)
            f["shortcut outcome"] = _runs([_outcome(b) for b in blocks.values()])
            f["strided layers"] = (
                ", ".join(f"{r.name} ({r.op})" for r in layers if _STRIDED.search(r.op)) or "-"
            )
        elif row.name == "stem":
            f["block"] = _options(spec.stem)
        facts[row.name] = f
    return facts


def ir_signature(ir: IR) -> list[tuple[Any, ...]]:
    """What makes two lowered graphs the same network: each op (its kind and every
    argument), its output shape and where its inputs come from, in execution order."""
    return [
        (n.name, repr(n.op), tuple(n.shape or ()), tuple(ir.inputs(n.name))) for n in ir.nodes()
    ]


def diff_specs(a: ModelSpec, b: ModelSpec, a_name: str = "A", b_name: str = "B") -> SpecDiff:
    ir_a, ir_b = lower(a), lower(b)
    info_a, info_b = summarize(ir_a), summarize(ir_b)
    fa, fb = stage_facts(a, info_a), stage_facts(b, info_b)
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
        "ops": (
            len([r for r in info_a.layers if r.op != "input"]),
            len([r for r in info_b.layers if r.op != "input"]),
        ),
        "params": (info_a.params, info_b.params),
        "MACs": (info_a.macs, info_b.macs),
    }
    return SpecDiff(a_name, b_name, ir_signature(ir_a) == ir_signature(ir_b), stages, totals)


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
    return "\n".join(lines)


@click.command("diff")
@click.argument("a", type=SPEC)
@click.argument("b", type=SPEC)
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON.")
@click.option(
    "--input-size",
    type=int,
    default=None,
    metavar="N",
    help="Compare both at input resolution N x N (same as --set input.size=N on each).",
)
@spec_overrides(input_size=False, what="B")
def diff_cmd(
    a: Path, b: Path, as_json: bool, input_size: int | None, overrides: tuple[str, ...]
) -> None:
    """Compare the networks of specs A and B stage by stage.

    --set changes B only, so `resgraph diff X.yaml X.yaml --set block.groups=32` shows
    what an override does."""
    size = (
        []
        if input_size is None
        else [Override(f"input.size={input_size}", f"--input-size {input_size}")]
    )
    result = diff_specs(
        load_spec(a, size), load_spec(b, [*size, *overrides]), _named(a, []), _named(b, overrides)
    )
    click.echo(json.dumps(result.to_json(), indent=2) if as_json else format_text(result))


def _named(path: Path, overrides: tuple[str, ...] | list[str]) -> str:
    return " ".join(filter(None, [str(path), command_flags(overrides)]))
