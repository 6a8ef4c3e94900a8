"""Summaries derived from the checked IR: parameters, multiply-adds, shapes, memory.

Nothing here is kept by hand: every figure is a sum over IR nodes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from resgraph import names
from resgraph.ir import IR, block_members
from resgraph.ops import BatchNorm, Conv, Input, Linear, Output, fmt_shape
from resgraph.spec.blocks import DefinedBlockSpec
from resgraph.spec.schema import BasicBlockSpec, BottleneckBlockSpec, DenseBlockSpec, ModelSpec

BYTES_PER_FLOAT = 4


@dataclass(frozen=True)
class LayerRow:
    name: str
    op: str
    output: str
    params: int
    macs: int


@dataclass(frozen=True)
class StageRow:
    name: str  # "stem", "layer1", ..., "head"
    output: str
    blocks: str  # e.g. "bottleneck [64, 64, 256] x3"
    params: int
    macs: int


@dataclass(frozen=True)
class FeatureRow:
    """A feature map a backbone returns (or, for a classifier, could return)."""

    name: str  # "stem", "layer1", ...: its key in a backbone's output dict
    channels: int
    stride: int  # reduction w.r.t. the input: the product of the strides on the way
    shape: tuple[int, ...]  # (C, H, W) of one example at the spec's input size


@dataclass(frozen=True)
class Summary:
    name: str
    canonical_name: str
    input: str
    params: int
    macs: int  # multiply-adds of conv and fc layers for one example (the paper's "FLOPs")
    batch_size: int
    activation_bytes: int  # forward activations kept for backward, float32, at batch_size
    stages: list[StageRow] = field(default_factory=list)
    layers: list[LayerRow] = field(default_factory=list)
    # a backbone's outputs in the order forward returns them; a classifier's every stage
    feature_info: list[FeatureRow] = field(default_factory=list)
    backbone: bool = False  # the spec has outputs: forward returns a dict of feature maps
    # with fused=True: the BatchNorms folded into the conv before them and those kept
    fused: BatchNormFolding | None = None

    @property
    def flops(self) -> int:
        return 2 * self.macs

    def to_json(self, per_layer: bool = True) -> dict[str, object]:
        data = asdict(self)
        data["flops"] = self.flops
        if not per_layer:
            del data["layers"]
        if self.fused is None:
            del data["fused"]
        else:  # parameters are those of the folded (inference) network
            data["fused"] = {
                "folded": self.fused.folded,
                "kept": len(self.fused.kept),
                "kept_batchnorms": list(self.fused.kept),
                "params_unfused": self.fused.params_unfused,
            }
        return data


@dataclass(frozen=True)
class BatchNormFolding:
    """What folding BatchNorm into convolutions (``export --fuse-bn``) does to a network."""

    pairs: tuple[tuple[str, str], ...]  # (conv, BatchNorm) node pairs that fold
    kept: tuple[str, ...]  # BatchNorm nodes that stay (after a join, a pool, the input, ...)
    params_unfused: int

    @property
    def folded(self) -> int:
        return len(self.pairs)

    def params(self, ir: IR) -> dict[str, int]:
        """Every node's parameters once folded: a folded BatchNorm has none, and its conv
        gains a bias (out_channels numbers) unless it had one."""
        out = {n.name: n.params for n in ir.nodes()}
        for conv, bn in self.pairs:
            op = ir.node(conv).op
            assert isinstance(op, Conv)
            out[bn] = 0
            out[conv] += 0 if op.bias else op.out_channels
        return out


def batchnorm_folding(ir: IR) -> BatchNormFolding:
    """Which BatchNorms fold into the conv before them in eval mode: the one rule, the same
    as torch.fx's conv/BN fusion that ``export --fuse-bn`` runs -- a BatchNorm whose single
    input is a conv whose only consumer is that BatchNorm. Any other BatchNorm stays (a
    pre-activation network's BatchNorm after a join, for one)."""
    pairs, kept = [], []
    for n in ir.nodes():
        if not isinstance(n.op, BatchNorm):
            continue
        sources = ir.inputs(n.name)
        if (
            len(sources) == 1
            and isinstance(ir.node(sources[0]).op, Conv)
            and ir.outputs(sources[0]) == [n.name]
        ):
            pairs.append((sources[0], n.name))
        else:
            kept.append(n.name)
    return BatchNormFolding(tuple(pairs), tuple(kept), sum(n.params for n in ir.nodes()))


def summarize(spec_or_ir: ModelSpec | IR, batch_size: int = 1, fused: bool = False) -> Summary:
    """Summarise a spec (lowered here) or an already lowered IR; ``fused``: count the
    parameters of the network with BatchNorm folded (see :func:`batchnorm_folding`)."""
    if isinstance(spec_or_ir, IR):
        ir = spec_or_ir
    else:
        from resgraph.passes import lower

        ir = lower(spec_or_ir)
    nodes = ir.nodes()
    folding = batchnorm_folding(ir) if fused else None
    params = folding.params(ir) if folding else {n.name: n.params for n in nodes}
    layers = [
        LayerRow(n.name, n.op.label(), fmt_shape(n.shape), params[n.name], n.macs) for n in nodes
    ]
    # the stage a node's section puts it in: "stem", "layer1", ..., "head"
    stage_of = ir.parts()
    order = ["stem"] + [s.path for s in ir.stages] + ["head"]
    stages: list[StageRow] = []
    for name in order:
        members = [n for n in nodes if stage_of[n.name] == name and not isinstance(n.op, Input)]
        if not members:
            continue
        stages.append(
            StageRow(
                name=name,
                output=fmt_shape(members[-1].shape),
                blocks=_describe_stage(ir, name),
                params=sum(params[n.name] for n in members),
                macs=sum(n.macs for n in members),
            )
        )
    return Summary(
        name=ir.spec.name,
        canonical_name=canonical_name(ir),
        input=fmt_shape(ir.node(ir.input).shape),
        params=sum(params.values()),
        macs=sum(n.macs for n in nodes),
        batch_size=batch_size,
        activation_bytes=activation_bytes(ir, batch_size),
        stages=stages,
        layers=layers,
        feature_info=feature_info(ir),
        backbone=ir.spec.outputs is not None,
        fused=folding,
    )


def feature_info(ir: IR) -> list[FeatureRow]:
    """Channels, stride and shape of each feature map a backbone returns, in the order its
    dict holds them; for a classifier, of every map it could return ('stem' and each stage's
    output), the names a spec's ``outputs`` takes."""
    if ir.spec.outputs is not None:
        maps = [(str(key), name) for key, name in ir.results]
    else:
        first = [("stem", ir.blocks[ir.stages[0].blocks[0]].input)] if ir.stages else []
        maps = first + [(s.path, ir.blocks[s.blocks[-1]].output) for s in ir.stages]
    rows = []
    for key, name in maps:
        shape = ir.node(name).shape or ()
        rows.append(FeatureRow(key, shape[0], _reduction(ir, name), tuple(shape)))
    return rows


def _reduction(ir: IR, name: str) -> int:
    """How much smaller than the input node ``name``'s map is: the product of the strides of
    the ops on the path of first inputs back to the input (a block's branch, a dense layer's
    carried input: every path through a block downsamples alike)."""
    stride = 1
    while True:
        stride *= int(getattr(ir.node(name).op, "stride", 1))
        inputs = ir.inputs(name)
        if not inputs:
            return stride
        name = inputs[0]


def activation_bytes(ir: IR, batch_size: int, bytes_per_value: int = BYTES_PER_FLOAT) -> int:
    """Bytes of the activations autograd keeps for the backward pass at ``batch_size``,
    estimated as every op's output except the input, the joins (an add saves nothing) and a
    backbone's output markers (they compute nothing), at ``bytes_per_value`` per number (4:
    float32). Good to within tens of percent of what PyTorch really holds; it is meant to
    warn, not to account. The one memory rule: the summary and the trainer's device check
    both call it."""
    elements = 0
    for n in ir.nodes():
        if isinstance(n.op, (Input, Output)) or n.op.arity is None or (n.op.arity or 0) >= 2:
            continue
        size = 1
        for d in n.shape or ():
            size *= d
        elements += size
    return elements * bytes_per_value * batch_size


def _describe_stage(ir: IR, name: str) -> str:
    """Runs of blocks of one kind, each as its first block's main conv widths and a count:
    'basic [64, 64] x2', or 'transition [108] x1, dense_layer [48, 12] x16'."""
    stage = next((s for s in ir.stages if s.path == name), None)
    if stage is None:
        return ""
    runs: list[tuple[str, str, int]] = []  # kind, first block's path, blocks in the run
    members = block_members(ir)
    for path in stage.blocks:
        kind = ir.blocks[path].kind
        if runs and runs[-1][0] == kind:
            runs[-1] = (kind, runs[-1][1], runs[-1][2] + 1)
        else:
            runs.append((kind, path, 1))
    text = []
    for kind, first, count in runs:
        widths = [
            n.op.out_channels for n in members[first] if n.role == "main" and isinstance(n.op, Conv)
        ]
        text.append(f"{kind} [{', '.join(map(str, widths))}] x{count}")
    return ", ".join(text)


def depth(ir: IR) -> int:
    """Weight layers on the main path (convs and fc), the way the paper names its nets: the
    stem counts as one, however many convs it has (He et al. 2019 call a ResNet-50 with a
    three-conv stem ResNet-50-C)."""
    weights = [n for n in ir.nodes() if n.role == "main" and isinstance(n.op, (Conv, Linear))]
    stem = sum(1 for n in weights if n.section == "stem")
    return len(weights) - max(stem - 1, 0)


def canonical_name(ir: IR) -> str:
    """E.g. 'ResNet-50, paper layout (stride on 1x1), option B shortcuts', 'WRN-28-10 (CIFAR),
    option B shortcuts, dropout 0.3', 'DenseNet-BC-100 k=12 (CIFAR)', '121 weighted layers,
    densenet_layer and densenet_transition blocks'."""
    spec: ModelSpec = ir.spec
    if spec.outputs is not None:  # named after the classifier it is cut from
        from resgraph.passes import lower

        keys = [key for key, _ in ir.results]
        full = canonical_name(lower(spec.model_copy(update={"outputs": None})))
        return f"{full}, backbone ({', '.join(map(str, keys))})"
    stages = range(len(spec.stages))
    everything = [spec.stage_block(i) for i in stages]
    shortcuts = sorted(
        {spec.stage_shortcut(i) for i in stages if not isinstance(everything[i], DenseBlockSpec)}
    )
    blocks = [b for b in everything if not isinstance(b, DefinedBlockSpec)]
    defined = list(dict.fromkeys(b.type for b in everything if isinstance(b, DefinedBlockSpec)))
    # a network of defined blocks only: its depth, not a family name it may not belong to
    family = _family(ir, blocks, shortcuts) if blocks else f"{depth(ir)} weighted layers"
    if spec.stem.layout == "cifar":
        family += " (CIFAR)"
    uses = [f"{' and '.join(defined)} blocks"] if defined else []
    return ", ".join(
        [family, *uses, *_structure_words(spec, blocks, shortcuts), *_option_words(spec, blocks)]
    )


def _family(ir: IR, blocks: list[Any], shortcuts: list[str]) -> str:
    """'ResNet-50', 'PreAct-ResNet-164', 'ResNeXt-50 32x4d', 'WRN-28-10', 'DenseNet-BC-100
    k=12', ..."""
    spec: ModelSpec = ir.spec
    d = depth(ir)
    dense = [b for b in blocks if isinstance(b, DenseBlockSpec)]
    residual = [b for b in blocks if not isinstance(b, DenseBlockSpec)]
    first = residual[0] if residual else None
    if not residual:  # Huang et al. 2017: B = bottleneck layers, C = compression < 1
        letters = ("B" if all(b.bottleneck_layers for b in dense) else "") + (
            "C" if all(b.compression < 1 for b in dense) else ""
        )
        rates = "/".join(dict.fromkeys(str(b.growth_rate) for b in dense))
        return f"DenseNet{'-' + letters if letters else ''}-{d} k={rates}"
    if isinstance(first, BottleneckBlockSpec) and first.groups > 1:
        return f"ResNeXt-{d} {first.groups}x{first.base_width}d"
    if isinstance(first, BottleneckBlockSpec) and first.base_width != 64:
        return f"Wide ResNet-{d}-{first.base_width // 64}"
    if spec.width_factor > 1:
        # Zagoruyko & Komodakis count every conv, the 1x1 projection shortcuts included
        convs = sum(1 for n in ir.nodes() if n.role != "gate" and isinstance(n.op, Conv))
        return f"WRN-{convs}-{spec.width_factor}"
    if shortcuts == ["none"]:
        return f"{names.SHORTCUT['none'].cls}-{d}"
    if all(b.preactivation for b in residual):
        return f"{names.PREACTIVATION.summary}-{d}"
    return f"ResNet-{d}"


def _structure_words(spec: ModelSpec, blocks: list[Any], shortcuts: list[str]) -> list[str]:
    """The stem, the block layout, the shortcuts and joins, the branch length, dropout."""
    dense = [b for b in blocks if isinstance(b, DenseBlockSpec)]
    residual = [b for b in blocks if not isinstance(b, DenseBlockSpec)]
    parts = []
    if spec.stem.type != "single":
        parts.append(f"{spec.stem.type} stem")
    if residual and dense:
        parts.append("with dense stages")
    layouts = {b.stride_on for b in residual if isinstance(b, BottleneckBlockSpec)}
    if layouts == {"1x1"}:
        parts.append("paper layout (stride on 1x1)")
    elif layouts == {"3x3"}:
        parts.append("torchvision layout (stride on 3x3)")
    if residual and shortcuts != ["none"]:
        parts.append(" / ".join(names.SHORTCUT[s].summary for s in shortcuts) + " shortcuts")
    if any(b.join == "gate" for b in residual):
        parts.append(names.GATED.summary)
    convs = [str(b.convs) for b in residual if isinstance(b, BasicBlockSpec)]
    if any(c != "2" for c in convs):
        parts.append(f"residual branches of {'/'.join(dict.fromkeys(convs))} convs")
    dropouts = {b.dropout for b in blocks if isinstance(b, BasicBlockSpec | DenseBlockSpec)}
    if dropouts - {0.0}:
        parts.append("dropout " + "/".join(f"{p:g}" for p in sorted(dropouts)))
    return parts


def _option_words(spec: ModelSpec, blocks: list[Any]) -> list[str]:
    """Stochastic depth, channel attention, anti-aliasing, a norm other than batch norm."""
    residual = [b for b in blocks if not isinstance(b, DenseBlockSpec)]
    parts = []
    if spec.stochastic_depth:
        parts.append(f"stochastic depth p_L={spec.stochastic_depth.final_survival:g}")
    attention = {b.attention.type for b in residual if b.attention is not None}
    if attention:  # Hu et al. 2018; Wang et al. 2020
        parts.append(" / ".join(names.ATTENTION[a].summary for a in sorted(attention)))
    filters = {b.anti_alias.type for b in residual if b.anti_alias is not None}
    if filters:  # Zhang 2019
        parts.append(f"{names.ANTI_ALIAS.summary} ({'/'.join(sorted(filters))})")
    if spec.norm.type == "group":
        parts.append(f"group norm ({spec.norm.group_count()} groups)")
    elif spec.norm.type == "evonorm_s0":  # Liu et al. 2020
        parts.append(f"EvoNorm-S0 ({spec.norm.group_count()} groups)")
    elif spec.norm.type == "frn":  # Singh & Krishnan 2020
        parts.append("FRN + TLU")
    return parts
