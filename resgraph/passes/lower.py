"""Pass 1, lowering: spec -> IR of ops, with every residual join wired to an identity
shortcut. Shortcut insertion and shapes are later passes.

Expects a validated :class:`ModelSpec`. Guarantees one input, one output (a classifier's
``fc``) or, for a backbone (a spec with ``outputs``), one :class:`~resgraph.ops.Output` marker
per feature map it returns, with neither the head nor the stages after the last marker
lowered; the module paths the spec's ``names`` give (torchvision's by default), one
:class:`Block` per block with its join (an add, a highway gate, a concatenation, or none for a
block that is all branch), a section and a spec location on every node, and on every block
node the op fields its class takes from its constructor (``Node.bind``).
Every block type is a definition (a spec's own, or a built-in type's, shipped in
``resgraph/blocks/``) and lowers in :mod:`resgraph.passes.defined`, a stage opener (a dense
stage's transition) first where the stage strides. The shared wrapper ``_wrap`` adds
stochastic depth, the join and the ReLU after it. A new built-in block option is a schema
field read by the definitions of the blocks it applies to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from resgraph.errors import SourceLoc
from resgraph.ir import (
    IR,
    Block,
    BlockArg,
    Stage,
)
from resgraph.ops import (
    Add,
    AvgPool,
    BlurPool,
    Concat,
    Conv,
    Dropout,
    DropPath,
    Flatten,
    GateMix,
    GlobalAvgPool,
    GlobalMean,
    Input,
    Linear,
    MaxPool,
    Output,
    ReLU,
    ReLUModule,
    Sigmoid,
    SiLU,
    ZeroPad,
)
from resgraph.passes.defined import definitions, lower_defined
from resgraph.passes.scope import BlockCtx, Lowered, Scope, conv_op
from resgraph.spec.blocks import DefinedBlockSpec
from resgraph.spec.schema import (
    BasicBlockSpec,
    BottleneckBlockSpec,
    DenseBlockSpec,
    ModelSpec,
    ShortcutOption,
)


def _wrap(
    s: Scope,
    block_in: str,
    low: Lowered,
    c: BlockCtx,
    spec: BasicBlockSpec | BottleneckBlockSpec | DenseBlockSpec,
    *,
    stage: int,
    index: int,
    shortcut: ShortcutOption,
) -> Block:
    """The residual wrapper every block type shares: stochastic depth on the branch, the join
    with the block input (add, highway gate, or concatenation), the ReLU after the join."""
    branch, args, join = low.branch, low.args, None
    if low.join is not None and c.survival is not None:
        branch = s.add("drop_path", DropPath(c.survival), branch, bind={"survival": "survival"})
        args += (BlockArg("survival", c.survival),)
    if low.join == "gate":
        bind = {"in_channels": "in_channels", "out_channels": low.out_arg, "stride": "stride"}
        gate_conv = Conv(c.in_channels, low.out_channels, 1, c.stride, 0, bias=True)
        gate = s.add("gate", gate_conv, low.projection_from, role="gate", bind=bind)
        gate = s.add("gate_sigmoid", Sigmoid(), gate, role="gate")
        join = s.add("gate_mix", GateMix(), branch, block_in, gate)
    elif low.join == "add":
        join = s.add("add", Add(), branch, block_in)
    elif low.join == "concat":  # the input first, then the new maps (torchvision's order)
        join = s.add("concat", Concat(), block_in, branch)
    out = join or branch
    if low.post_activation:
        out = s.add("relu", ReLU(), out)
    return Block(
        path=s.prefix,
        stage=stage,
        index=index,
        kind=low.kind,
        spec=spec,
        args=args,
        stride=c.stride,
        shortcut=shortcut,
        input=block_in,
        output=out,
        join=join,
        join_kind=low.join,
        # a projection reads the pre-activated input (He et al. 2016), option A the input
        shortcut_input=low.projection_from if shortcut in ("B", "C", "D") else block_in,
        loc=s.loc,
    )


def _lower_stem(s: Scope, x: str, spec: ModelSpec) -> str:
    """The layers before the first stage, as one conv (paper Table 1 or sec. 4.2) or three
    (He et al. 2019's ResNet-C, timm's state names), then the pool, if any, that halves the
    input."""
    stem, cin, width = spec.stem, spec.input.channels, spec.stem.width
    if stem.type != "single":  # three 3x3 convs, stride 2 on the first: Sequential 'conv1'
        *inner, _ = stem.conv_widths()
        for i, w in enumerate(inner):
            x = s.add(f"conv1.{3 * i}", conv_op(spec, cin, w, 3, 2 if i == 0 else 1, 1), x)
            x = s.norm(f"conv1.{3 * i + 1}", w, x, None)
            if not s.ir.node(x).op.activates:  # EvoNorm and FRN have their own
                x = s.add(f"conv1.{3 * i + 2}", ReLUModule(), x)
            cin = w
        x = s.add("conv1.6", conv_op(spec, cin, width, 3, 1, 1), x)
    else:  # paper Table 1's conv1 (7x7, stride 2) or sec. 4.2's first layer (3x3, stride 1)
        k, stride = stem.conv_kernel(), 2 if stem.layout == "imagenet" else 1
        x = s.add("conv1", conv_op(spec, cin, width, k, stride, k // 2), x)
    if stem.activation:
        x = s.norm("bn1", width, x, None)
        act = SiLU() if stem.activation == "silu" else ReLU()
        x = s.add(act.kind, act, x)
    if stem.layout != "imagenet" or stem.pool == "none":
        return x
    aa = stem.anti_alias.type if stem.anti_alias else None
    if stem.pool == "conv":  # ResNet-RS (Bello et al. 2021): a 3x3/2 conv replaces the max pool
        x = s.add("maxpool.0", conv_op(spec, width, width, 3, 1 if aa else 2, 1), x)
        at = 1
        if aa:  # Zhang 2019: the conv at stride 1, the filter downsamples after it
            x = s.add("maxpool.1", AvgPool(2, 2) if aa == "avgpool" else BlurPool(width, 2), x)
            at = 2
        x = s.norm(f"maxpool.{at}", width, x, None)
        return s.add(f"maxpool.{at + 1}", ReLUModule(), x)
    if aa == "avgpool":  # timm's rule: a 2x2/2 average pool replaces the max pool
        return s.add("maxpool", AvgPool(2, 2), x)
    if aa == "blur":  # the max pool at stride 1, then the blur filter downsamples
        x = s.add("maxpool.0", MaxPool(3, 1, 1), x)
        return s.add("maxpool.1", BlurPool(width, 2), x)
    if stem.pool == "zero_pad_max":  # BiT: the pool's padding counts as zeros
        return s.add("maxpool", MaxPool(3, 2), s.add("pad", ZeroPad(1), x))
    return s.add("maxpool", MaxPool(3, 2, 1), x)


@dataclass
class _Flow:
    """Where lowering stands after the stem and each stage."""

    x: str  # the last node
    channels: int  # its channels
    done: int = 0  # blocks of the spec lowered so far (stochastic depth counts them)
    pre_activated: bool = False  # the last block left its output without BN-ReLU


def lower(spec: ModelSpec) -> IR:
    """Lower a validated spec to an IR whose joins all take an identity shortcut."""
    smap = spec._source
    locate = (lambda *path: smap.locate(path)) if smap else (lambda *path: None)
    ir = IR(spec)
    wanted = {name: i for i, name in enumerate(spec.outputs or ())}
    names = spec.feature_names()

    def mark(key: str, x: str) -> None:
        """An Output marker reading ``x``, if the spec asks for feature map ``key``."""
        if key in wanted:
            marker = Scope(ir, "", locate("outputs", wanted[key]), "output")
            marker.add(f"output.{key}", Output(key), x)

    top = Scope(ir, "", locate("stem"), "stem")
    x = top.add("input", Input(spec.input.channels, spec.input.size))
    flow = _Flow(_lower_stem(top, x, spec), spec.stem.width)
    mark(names[0], flow.x)
    # a backbone stops at the last stage it returns: later stages would be wasted compute
    count = max(names.index(name) for name in wanted) if wanted else len(spec.stages)
    for si in range(count):
        stage_loc = smap.locate(("stages", si), causes=[("input",)]) if smap else None
        _lower_stage(ir, spec, si, flow, stage_loc)
        mark(spec.stage_name(si), flow.x)
    if not wanted:  # a backbone has no head
        _lower_head(Scope(ir, "", locate("head"), "head"), spec, flow)
    return ir


def _lower_stage(ir: IR, spec: ModelSpec, si: int, flow: _Flow, loc: SourceLoc | None) -> None:
    """Stage ``si``'s blocks (a stage opener first, if its block type has one), in order."""
    stage, block_spec = spec.stages[si], spec.stage_block(si)
    shortcut = cast(ShortcutOption, spec.stage_shortcut(si))
    main, opener = definitions(spec, block_spec)
    opened = opener is not None and stage.stride > 1
    plan = [(opener, stage.stride, False)] if opened else []
    plan += [(main, 1 if opened or bi else stage.stride, True) for bi in range(stage.repeats)]
    paths = []
    for bi, (definition, stride, counted) in enumerate(plan):
        path = spec.block_path(si, bi)
        if counted:  # the spec's blocks; a stage opener is extra and never dropped
            flow.done += 1
        ctx = _block_ctx(spec, si, bi, flow, stride, counted)
        scope = Scope(ir, path, loc, "stage")
        low = lower_defined(scope, flow.x, ctx, definition=definition)
        block = _wrap(scope, flow.x, low, ctx, block_spec, stage=si, index=bi, shortcut=shortcut)
        ir.set_block(block)
        paths.append(path)
        flow.x, flow.channels = block.output, low.out_channels
        # a block with no join ends as its definition says: only a join left without its
        # activation (pre-activation, He et al. 2016) asks the head for BN-ReLU
        flow.pre_activated = low.join is not None and not low.post_activation
    ir.stages.append(Stage(spec.stage_name(si), si, tuple(paths), loc))


def _block_ctx(
    spec: ModelSpec, si: int, bi: int, flow: _Flow, stride: int, counted: bool
) -> BlockCtx:
    """What block ``bi`` of stage ``si`` is lowered with: its widths, stride, survival."""
    stage, block_spec = spec.stages[si], spec.stage_block(si)
    residual = spec.stage_shortcut(si) != "none"
    survival = None
    if counted and spec.stochastic_depth and residual:
        # Huang et al. 2016, eq. 4: p_l = 1 - l/L (1 - p_L), l = 1..L
        total = sum(st.repeats for st in spec.stages)
        survival = 1 - flow.done / total * (1 - spec.stochastic_depth.final_survival)
    width = stage.width * spec.width_factor if stage.width else None
    listed = counted and stage.widths is not None
    if isinstance(block_spec, DenseBlockSpec | DefinedBlockSpec):
        widths: tuple[int, ...] = ()
    elif listed:
        widths = tuple(stage.widths[bi])  # type: ignore[index]
    else:
        assert width is not None  # the schema requires a width or widths
        widths = block_spec.conv_widths(width)
    return BlockCtx(
        in_channels=flow.channels,
        width=width,
        widths=widths,
        listed=listed,
        stride=stride,
        zero_init=spec.zero_init_residual and residual,
        survival=survival,
        index=bi,
    )


def _lower_head(head: Scope, spec: ModelSpec, flow: _Flow) -> None:
    """Global average pool, dropout, and the classifier, whose width is the network's
    constructor parameter ``num_classes`` (the spec's value by default)."""
    x, channels = flow.x, flow.channels
    if flow.pre_activated:  # He et al. 2016: pre-activation nets end with BN-ReLU before the pool
        x = head.norm("final_bn", channels, x, None)
        if not head.ir.node(x).op.activates:  # EvoNorm and FRN have their own
            x = head.add("final_relu", ReLU(), x)
    conv = spec.head.classifier == "conv"
    x = head.add("avgpool", GlobalMean() if conv else GlobalAvgPool(), x)
    if spec.head.dropout:
        x = head.add("dropout", Dropout(spec.head.dropout), x)
    if conv:  # a 1x1 conv on the pooled map, flattened after it (timm's ClassifierHead)
        fc = Conv(channels, spec.num_classes, 1, bias=True)
        x = head.add("fc", fc, x, bind={"out_channels": "num_classes"})
        head.add("flatten", Flatten(), x)
    else:
        fc = Linear(channels, spec.num_classes)
        head.add("fc", fc, x, bind={"out_features": "num_classes"})
    head.ir.args = (BlockArg("num_classes", spec.num_classes),)
