"""Partial weight transfer: a checkpoint into a changed architecture, every tensor accounted for.

:func:`transfer` matches the checkpoint's tensors to the target network's by name, then
shape, and sorts each into one of four outcomes:

- ``moved``: same name and shape; the checkpoint's values are copied.
- ``adapted``: the first conv reading the input, when only its input channels differ (the
  spec's ``input.channels`` changed): one channel gets the sum over the checkpoint's
  channels; more channels repeat them cyclically, scaled by ``in_source / in_target`` so the
  conv's output keeps its scale (the convention of timm's ``adapt_input_conv``).
- ``new``: a target tensor without a partner (a deeper or wider network, another
  ``num_classes``): it keeps the value the spec's initialisation gave it. Shapes that differ
  are never sliced or padded.
- ``dropped``: a checkpoint tensor without a place in the target.

So ``moved + adapted + new`` is every target tensor and ``moved + adapted + dropped`` every
checkpoint tensor. BatchNorm's running statistics count like every other tensor; its step
counter ``num_batches_tracked`` (a scalar, so its shape fits anywhere) never makes a match:
it moves only with its layer's running mean and variance, and is new otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import torch
from torch import Tensor

from resgraph.errors import WeightsError
from resgraph.ir import IR
from resgraph.ops import Conv

Status = Literal["moved", "adapted", "new", "dropped"]
STATUSES: tuple[Status, ...] = ("moved", "adapted", "new", "dropped")
COUNTER = "num_batches_tracked"  # BatchNorm's step counter
STILL_COUNTER = "a step counter moves only with its layer's running statistics"


@dataclass(frozen=True)
class Entry:
    """What became of one tensor. ``name`` is the target's name, or the checkpoint's for a
    dropped tensor; ``values`` counts the elements of the tensor that is kept (the target's,
    or the checkpoint's for a dropped one)."""

    name: str
    status: Status
    source: str | None  # the checkpoint's name of the tensor, if it has one
    source_shape: tuple[int, ...] | None
    target_shape: tuple[int, ...] | None
    values: int
    note: str = ""


@dataclass
class TransferReport:
    """Every tensor of the checkpoint and of the target, with its outcome."""

    entries: list[Entry] = field(default_factory=list)
    source_tensors: int = 0
    target_tensors: int = 0
    blocks: dict[str, str] = field(default_factory=dict)  # the target's block paths -> stage

    def count(self, status: Status) -> int:
        return sum(e.status == status for e in self.entries)

    def totals(self) -> dict[str, dict[str, int]]:
        """Tensors and values per outcome."""
        return {
            s: {
                "tensors": self.count(s),
                "values": sum(e.values for e in self.entries if e.status == s),
            }
            for s in STATUSES
        }

    def to_json(self, **about: Any) -> str:
        """The report as JSON: ``about`` (the spec and checkpoint names), every tensor, the
        totals and the two tensor counts."""
        data = {
            **about,
            "checkpoint_tensors": self.source_tensors,
            "target_tensors": self.target_tensors,
            "totals": self.totals(),
            "tensors": [asdict(e) for e in self.entries],
        }
        return json.dumps(data, indent=2) + "\n"

    def table(self, verbose: bool = False) -> str:
        """The terminal report: one row per tensor that did not simply move (every tensor
        with ``verbose``), consecutive rows of one outcome within one block folded into
        one, then the totals."""
        rows = self.entries if verbose else [e for e in self.entries if e.status != "moved"]
        lines = _rows(rows if verbose else _fold(rows, self.blocks))
        hidden = len(self.entries) - len(rows)
        if hidden:
            lines.append(f"({hidden} moved tensors not listed; --verbose lists every tensor)")
        if lines:
            lines.append("")
        lines.append(f"{'':10}{'tensors':>9}{'values':>14}")
        for status, total in self.totals().items():
            lines.append(f"{status:10}{total['tensors']:>9,}{total['values']:>14,}")
        lines.append(f"{'checkpoint':10}{self.source_tensors:>9,}")
        lines.append(f"{'target':10}{self.target_tensors:>9,}")
        return "\n".join(lines)


def input_convs(ir: IR) -> list[str]:
    """The convs that read the network's input (through parameter-free ops only): the
    stem's first conv. Found in the IR, whatever the module is called."""
    reach = {ir.input}
    convs: list[str] = []
    for node in ir.nodes():
        if node.name in reach or not ir.inputs(node.name):
            continue
        if not all(i in reach for i in ir.inputs(node.name)):
            continue
        if isinstance(node.op, Conv):
            convs.append(node.name)
        elif node.params == 0:
            reach.add(node.name)
    return convs


def adapt_input_conv(weight: Tensor, channels: int) -> Tensor:
    """A conv weight (out, in, kh, kw) for ``channels`` input channels: the sum over the
    input channels for one, else the channels repeated cyclically and scaled by
    ``in / channels``, so that an image whose channels are all equal gives the same output
    when ``channels`` is a multiple of ``in``."""
    have = weight.shape[1]
    if channels == 1:
        return weight.sum(dim=1, keepdim=True)
    index = torch.arange(channels) % have
    return weight[:, index] * (have / channels)


def transfer(
    ir: IR,
    target: Mapping[str, Tensor],
    source: Mapping[str, Tensor],
    names: Mapping[str, str] | None = None,
) -> tuple[dict[str, Tensor], TransferReport]:
    """Move ``source``'s tensors into the network ``ir`` describes.

    ``target`` is a state_dict of that network as initialised (it gives the new tensors
    their values); ``names`` optionally gives the checkpoint's name of a source tensor
    (``source`` keyed by resgraph's names, ``names`` as :func:`resgraph.emit.weights.match_names`
    found them). Returns a complete state_dict of the target and the report."""
    names = names or {}
    adaptable = {f"{conv}.weight" for conv in input_convs(ir)}
    out: dict[str, Tensor] = {}
    blocks = {block: stage.path for block, stage in ir.block_stages().items()}
    report = TransferReport(source_tensors=len(source), target_tensors=len(target), blocks=blocks)
    used: set[str] = set()
    for key, value in target.items():
        theirs = source.get(key) if _counter_moves(key, target, source) else None
        out[key], entry = _place(key, value, theirs, names.get(key, key), adaptable)
        if theirs is None and key in source:
            entry = replace(entry, note=STILL_COUNTER)
        report.entries.append(entry)
        if entry.status != "new":
            used.add(key)
    for key, theirs in source.items():
        if key not in used:
            report.entries.append(_dropped(key, theirs, target, names))
    if not any(not _is_counter(k) for k in used) and source:
        first = ", ".join(list(source)[:3])
        raise WeightsError(
            f"not one tensor of the checkpoint has a name and shape of the target (its first "
            f"are {first}); if it comes from another implementation, name the spec it was "
            "trained for with --source-spec to rename it first"
        )
    return out, report


def _place(
    key: str, value: Tensor, theirs: Tensor | None, where: str, adaptable: set[str]
) -> tuple[Tensor, Entry]:
    """The target's tensor ``key``: the checkpoint's if its shape fits (moved), an input conv
    adapted to other input channels, else the initialised ``value`` (new)."""
    shape = tuple(value.shape)
    if theirs is None:
        return value.detach().clone(), Entry(
            key, "new", None, None, shape, value.numel(), "not in the checkpoint"
        )
    have = tuple(theirs.shape)
    if have == shape:
        moved = theirs.detach().to(value.dtype).clone()
        return moved, Entry(key, "moved", where, have, shape, value.numel())
    if key in adaptable and _only_inputs_differ(have, shape):
        adapted = adapt_input_conv(theirs.detach(), shape[1]).to(value.dtype).contiguous()
        how = "summed" if shape[1] == 1 else f"repeated, x{have[1] / shape[1]:.4g}"
        note = f"input channels {have[1]} -> {shape[1]}: {how}"
        return adapted, Entry(key, "adapted", where, have, shape, value.numel(), note)
    note = f"the checkpoint's has shape {_fmt(have)}"
    return value.detach().clone(), Entry(key, "new", None, None, shape, value.numel(), note)


def _dropped(
    key: str, theirs: Tensor, target: Mapping[str, Tensor], names: Mapping[str, str]
) -> Entry:
    """The entry of a checkpoint tensor the target does not take."""
    note = (
        "not in the target"
        if key not in target
        else STILL_COUNTER
        if _is_counter(key)
        else f"the target's has shape {_fmt(tuple(target[key].shape))}"
    )
    where = names.get(key, key)
    return Entry(where, "dropped", where, tuple(theirs.shape), None, theirs.numel(), note)


def import_partial(
    ir: IR,
    source: Mapping[str, Tensor],
    *,
    source_ir: IR | None = None,
    seed: int = 0,
    where: str = "checkpoint",
) -> tuple[dict[str, Tensor], TransferReport]:
    """:func:`transfer` into a freshly initialised network ``ir`` (``seed`` seeds its
    initialisation), checked to load strictly. With ``source_ir``, the network the checkpoint
    was trained for, the checkpoint is first renamed to resgraph's names by order and shape
    (as a strict import), so other implementations' names need not agree."""
    from resgraph.emit.graph_module import build_module
    from resgraph.emit.weights import match_names

    names: dict[str, str] = {}
    if source_ir is not None:
        names = match_names(build_module(source_ir).state_dict(), source, where)
        renamed = {ours: source[theirs] for ours, theirs in names.items()}
        taken = set(names.values())
        renamed.update({k: v for k, v in source.items() if k not in taken and k not in renamed})
        source = renamed
    model = build_module(ir, seed=seed)
    try:
        state, report = transfer(ir, model.state_dict(), source, names)
    except WeightsError as exc:
        raise WeightsError(f"{where}: {exc}") from None
    model.load_state_dict(state, strict=True)  # proves it loads
    return state, report


def _is_counter(key: str) -> bool:
    return key.rsplit(".", 1)[-1] == COUNTER


def _counter_moves(key: str, target: Mapping[str, Tensor], source: Mapping[str, Tensor]) -> bool:
    """Whether ``key`` may move: anything but a BatchNorm's step counter, and a counter
    whose layer's running statistics move (same names and shapes)."""
    if not _is_counter(key):
        return True
    layer = key.rsplit(".", 1)[0]
    stats = [f"{layer}.running_mean", f"{layer}.running_var"]
    return all(k in source and k in target and source[k].shape == target[k].shape for k in stats)


def _only_inputs_differ(have: tuple[int, ...], want: tuple[int, ...]) -> bool:
    return len(have) == len(want) == 4 and have[0] == want[0] and have[2:] == want[2:]


def _fmt(shape: tuple[int, ...] | None) -> str:
    if shape is None:
        return "-"
    return "x".join(map(str, shape)) or "scalar"


def _block_of(name: str, blocks: Mapping[str, str]) -> str | None:
    """The block a tensor belongs to (``layer3.2`` for ``layer3.2.conv1.weight``,
    ``stages.0.blocks.1`` for ``stages.0.blocks.1.norm1.weight``), or None outside blocks."""
    parts = name.split(".")
    for end in range(len(parts) - 1, 0, -1):
        if (path := ".".join(parts[:end])) in blocks:
            return path
    return None


def _fold(entries: list[Entry], blocks: Mapping[str, str]) -> list[Entry]:
    """Runs of two or more entries of one outcome (and note) in one block as one row, and
    consecutive such rows of one stage as one row (``layer3.6-35.*``). ``blocks``: the
    network's block paths and the stage of each."""
    runs: list[list[Entry]] = []
    for e in entries:
        last = runs[-1][-1] if runs else None
        if (
            last is not None
            and (last.status, last.note) == (e.status, e.note)
            and _block_of(e.name, blocks) is not None
            and _block_of(last.name, blocks) == _block_of(e.name, blocks)
        ):
            runs[-1].append(e)
        else:
            runs.append([e])
    merged: list[tuple[list[str], list[Entry]]] = []  # (blocks, entries)
    for run in runs:
        block = _block_of(run[0].name, blocks) or run[0].name
        if merged and len(run) > 1 and len(merged[-1][1]) > 1:
            folded, prev = merged[-1]
            same = (prev[0].status, prev[0].note) == (run[0].status, run[0].note)
            if same and blocks[folded[-1]] == blocks[block]:
                folded.append(block)
                prev.extend(run)
                continue
        merged.append(([block], list(run)))
    out: list[Entry] = []
    for folded, run in merged:
        if len(run) == 1:
            out.append(run[0])
            continue
        name = folded[0] if len(folded) == 1 else f"{folded[0]}-{folded[-1].rsplit('.', 1)[-1]}"
        values = sum(r.values for r in run)
        label = f"{name}.* ({len(run)} tensors)"
        out.append(Entry(label, run[0].status, None, None, None, values, run[0].note))
    return out


def _rows(entries: list[Entry]) -> list[str]:
    if not entries:
        return []
    width = max(len("tensor"), *(len(e.name) for e in entries))
    lines = [f"{'tensor':{width}}  {'status':8} {'checkpoint':>16} -> {'target':16} note"]
    for e in entries:
        lines.append(
            f"{e.name:{width}}  {e.status:8} {_fmt(e.source_shape):>16} -> "
            f"{_fmt(e.target_shape):16} {e.note}".rstrip()
        )
    return lines
