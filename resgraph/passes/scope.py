"""What every block lowering works with: the scope that adds nodes under a block's module
path, what a lowering is given about its block (:class:`BlockCtx`) and what it hands back
(:class:`Lowered`), and the spec's norm layer. Shared by the lowering of the stem and head
(:mod:`resgraph.passes.lower`) and that of block types (:mod:`resgraph.passes.defined`).
"""

from __future__ import annotations

from dataclasses import dataclass

from resgraph.errors import SourceLoc
from resgraph.ir import IR, BlockArg, BlockKind, JoinKind, Node, Role, Section
from resgraph.ops import CONVS, BatchNorm, Conv, EvoNormS0, FilterResponseNorm, GroupNorm, Op
from resgraph.spec.schema import ModelSpec

Bind = dict[str, str]  # op field -> expression over the block's constructor parameters


def norm_op(spec: ModelSpec, channels: int, zero_init: bool = False) -> Op:
    """The spec's normalisation layer for ``channels`` channels: batch norm, group norm or
    EvoNorm-S0 with the spec's groups, or FRN (same module names every way)."""
    if spec.norm.type == "group":
        return GroupNorm(spec.norm.group_count(), channels, zero_init)
    if spec.norm.type == "evonorm_s0":
        return EvoNormS0(channels, spec.norm.group_count(), zero_init)
    if spec.norm.type == "frn":
        return FilterResponseNorm(channels, zero_init)
    return BatchNorm(channels, zero_init)


def conv_op(spec: ModelSpec, *fields: int, **named: int | bool) -> Conv:
    """The spec's convolution (``conv``: plain or weight-standardised) with these fields."""
    return CONVS[spec.conv](*fields, **named)  # type: ignore[arg-type]


@dataclass
class Scope:
    """Adds nodes under one module path prefix with one spec location and section."""

    ir: IR
    prefix: str
    loc: SourceLoc | None
    section: Section
    role: Role = "main"

    def add(
        self, name: str, op: Op, *inputs: str, role: Role | None = None, bind: Bind | None = None
    ) -> str:
        if self.section in ("stem", "head"):  # the spec may name these as another library does
            name = self.ir.spec.names.rename(name)
        full = f"{self.prefix}.{name}" if self.prefix else name
        node = Node(
            name=full,
            op=op,
            scope=self.prefix if self.section == "stage" else "",
            role=role or self.role,
            section=self.section,
            bind=tuple(bind.items()) if bind else (),
            loc=self.loc,
        )
        return self.ir.add(node, *inputs)

    def norm(
        self, name: str, channels: int, x: str, bind: Bind | None, zero_init: bool = False
    ) -> str:
        """The spec's norm (:func:`norm_op`) on ``channels`` channels."""
        return self.add(name, norm_op(self.ir.spec, channels, zero_init), x, bind=bind)


@dataclass(frozen=True)
class BlockCtx:
    """What a block lowering needs beyond its own spec."""

    in_channels: int
    width: int | None  # stage width x width factor; None for dense and per-block-width stages
    widths: tuple[int, ...]  # output width of each conv of the branch (residual blocks)
    listed: bool  # the widths were listed per block in the spec (pruned networks)
    stride: int
    zero_init: bool
    survival: float | None  # stochastic depth survival probability of this block
    index: int = 0  # the block's place in its stage, from 0


@dataclass(frozen=True)
class Lowered:
    """What a block lowering hands the shared wrapper."""

    kind: BlockKind
    args: tuple[BlockArg, ...]  # the class's constructor parameters
    branch: str  # last node of the residual branch
    out_channels: int  # channels the block puts out (after a concatenation)
    projection_from: str  # where a projection shortcut starts
    post_activation: bool  # ReLU after the join (original ResNet) or not (pre-activation)
    join: JoinKind | None  # how branch and block input meet; None: the branch is the block
    out_arg: str  # the constructor parameter holding the branch's output width
