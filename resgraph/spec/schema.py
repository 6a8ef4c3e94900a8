"""The spec language: pydantic models of one network.

Field descriptions are the documentation: ``resgraph schema`` exports them as JSON Schema,
which YAML-aware editors use to validate and complete specs. Every model forbids unknown
keys and coerces nothing (``strict``): ``width: "64"`` is an error, not 64.
"""

from __future__ import annotations

import difflib
import math
import re
from functools import lru_cache
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BeforeValidator,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails

from resgraph.spec.base import StrictModel
from resgraph.spec.blocks import (
    BUILTIN_TYPES,
    COMPONENT,
    MAX_FIELD,
    RESERVED_TYPES,
    BlockDef,
    DefinedBlockSpec,
    fill,
)
from resgraph.spec.blocks import NAME as TYPE_NAME
from resgraph.spec.expr import ExprError
from resgraph.spec.train import TrainSpec

# Documented limits (README, "Limits"). They stop absurd specs early, before any lowering.
MAX_WIDTH = MAX_FIELD  # a width is a conv's channel count: the bound of every op field
MAX_REPEATS = 1000
MAX_BLOCKS = 2000
MAX_STAGES = 16
MAX_INPUT_SIZE = 2048
MAX_CLASSES = 100_000
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 _.,+()/-]{0,79}$"

ShortcutOption = Literal["A", "B", "C", "D", "identity", "none"]
SHORTCUT_HELP = (
    "Shortcut connections (He et al. 2015, sec. 3.3): 'A' parameter-free (subsample + zero-pad "
    "extra channels where dimensions grow), 'B' 1x1-conv+BN projection only where dimensions "
    "change, 'C' projection on every block, 'D' (He et al. 2019, 'Bag of Tricks', ResNet-D) where "
    "dimensions change a 2x2 average pool with the block's stride (ceil mode, padded cells not "
    "counted; left out where the stride is 1) then a 1x1 conv + norm (state 'downsample.1' "
    "and 'downsample.2', also at stride 1), identity elsewhere, "
    "'identity' identity only (a shape change is an error), 'none' no shortcut at all (a plain "
    "network)."
)
ANTI_ALIAS_STRIDE = 2  # the one stride an anti-aliasing filter downsamples by
STEM_OUTPUT = "stem"  # the name of the stem's feature map among a backbone's outputs


def _type_shorthand(value: Any) -> Any:
    """Accept ``option: name`` as shorthand for ``option: {type: name}`` (``block:
    bottleneck``, ``attention: se``, ``norm: group``, ...)."""
    return {"type": value} if isinstance(value, str) else value


class AntiAliasSpec(StrictModel):
    """Anti-aliased downsampling (Zhang 2019, 'Making Convolutional Networks Shift-Invariant
    Again'): a strided layer runs at stride 1 and a low-pass filter with stride 2 follows."""

    type: Literal["avgpool", "blur"] = Field(
        description="'avgpool': a 2x2 average pool with stride 2 and no padding (an odd size "
        "is floored, where a stride-2 3x3 conv would round up); 'blur': a fixed 3x3 binomial "
        "filter ([1,2,1] x [1,2,1] / 16) applied to each channel with stride 2 after padding "
        "by 1 with reflection (timm's BlurPool2d: its filter is a buffer 'filt' of shape "
        "(C, 1, 3, 3) that is not saved in the state_dict). Neither has parameters."
    )


AntiAlias = Annotated[AntiAliasSpec, BeforeValidator(_type_shorthand)]


class SESpec(StrictModel):
    """Squeeze-and-excitation (Hu et al. 2018): global average pool, 1x1 conv to r channels
    (with bias), ReLU, 1x1 conv back to C channels (with bias), sigmoid; the block's branch is
    multiplied by it channel-wise. State: 'se.fc1' (r x C x 1 x 1, bias r) and 'se.fc2'
    (C x r x 1 x 1, bias C)."""

    type: Literal["se"] = "se"
    ratio: float = Field(
        1 / 16,
        gt=0.0,
        le=1.0,
        description="Reduction ratio: r is C x ratio rounded to the nearest multiple of "
        "divisor, halves up, and never below divisor (timm's make_divisible with no round "
        "limit): 1/16 for SENets, 0.25 for ResNet-RS.",
    )
    divisor: int = Field(
        8, ge=1, le=MAX_WIDTH, description="r is a multiple of it (8 in timm; 1: plain rounding)."
    )

    def channels(self, c: int) -> int:
        """r for a C-channel branch."""
        return max(
            self.divisor, int(c * self.ratio + self.divisor / 2) // self.divisor * self.divisor
        )


class ECASpec(StrictModel):
    """Efficient channel attention (Wang et al. 2020, ECA-Net): global average pool, a 1-D conv
    of odd kernel k across the channels (no bias, padding (k-1)/2), sigmoid; the block's branch
    is multiplied by it channel-wise. State: 'se.conv.weight' of shape (1, 1, k)."""

    type: Literal["eca"] = "eca"
    kernel_size: int | None = Field(
        None,
        ge=1,
        le=63,
        description="k, odd. Left out: t = int(|log2(C) + beta| / gamma), k = t if t is odd "
        "else t + 1, and at least 3 (the paper's rule; 256 channels give 5, 2048 give 7). "
        "Pruned networks give it explicitly: timm keeps the unpruned network's kernels. With "
        "it given, gamma and beta have no effect.",
    )
    gamma: float = Field(2.0, gt=0.0, le=64.0, description="gamma of the kernel-size rule.")
    beta: float = Field(1.0, ge=-64.0, le=64.0, description="beta of the kernel-size rule.")

    def kernel(self, c: int) -> int:
        """k for a C-channel branch."""
        if self.kernel_size is not None:
            return self.kernel_size
        t = int(abs(math.log2(c) + self.beta) / self.gamma)
        return max(t if t % 2 else t + 1, 3)

    @field_validator("kernel_size")
    @classmethod
    def _odd(cls, value: int | None) -> int | None:
        if value is not None and value % 2 == 0:
            raise ValueError(f"must be odd (a centred 1-D conv), got {value}")
        return value


Attention = Annotated[
    SESpec | ECASpec, Field(discriminator="type"), BeforeValidator(_type_shorthand)
]
ATTENTION_HELP = (
    "Channel attention on the residual branch: 'se' or 'eca', or a mapping with 'type' and "
    "options. It rescales the branch's output just before the join: after the last norm "
    "(post-activation blocks, as timm puts it) or after the last conv (pre-activation blocks), "
    "before stochastic depth and the join. Its module is 'se' in the state_dict for both types."
)
ANTI_ALIAS_HELP = (
    "Anti-aliased downsampling: the block's strided conv (the 3x3, or the first 1x1 where "
    "stride_on is '1x1'; the first 3x3 of a basic block) runs at stride 1, and the filter "
    "('avgpool' or 'blur', module 'aa') follows its activation. No effect on a stride-1 block; "
    "only stride 2 can be anti-aliased. The shortcut is not changed."
)
REDUCE_FIRST_HELP = (
    "Divides the output width of the branch's first conv (floor division): a basic block's "
    "first 3x3 gets width // reduce_first, a bottleneck's 1x1 reduce gets its 3x3 width // "
    "reduce_first (SENet-154 uses 2; timm's block_reduce_first). 1 changes nothing."
)


class InputSpec(StrictModel):
    """The input tensor of one example."""

    channels: int = Field(3, ge=1, le=64, description="Input channels (3 for RGB).")
    size: int = Field(
        ge=1, le=MAX_INPUT_SIZE, description="Height and width of the (square) input in pixels."
    )


class StemSpec(StrictModel):
    """The layers before the first stage."""

    # keys an older spec language used -> their names now (the loader's error names them)
    RENAMED: ClassVar[dict[str, str]] = {"kind": "layout"}

    layout: Literal["imagenet", "cifar"] = Field(
        "imagenet",
        description="Which of the paper's stem layouts: 'imagenet': 7x7/2 conv, BN, ReLU, "
        "3x3/2 max pool (paper Table 1). 'cifar': 3x3/1 conv, BN, ReLU (paper sec. 4.2).",
    )
    width: int = Field(64, ge=1, le=MAX_WIDTH, description="Output channels of the stem conv.")
    activation: bool | Literal["silu"] = Field(
        True,
        description="BN and ReLU after the stem conv; 'silu': BN and SiLU (timm's RegNetZ and "
        "SiLU RegNetYs). Pre-activation networks set false: their first block normalises "
        "its own input.",
    )
    type: Literal["single", "deep", "tiered"] = Field(
        "single",
        description="'single': one conv as 'layout' says. 'deep' (He et al. 2019, 'Bag of "
        "Tricks', ResNet-C): the imagenet 7x7/2 conv becomes three 3x3 convs, the first with "
        "stride 2, of widths inner_width, inner_width, width, with norm and ReLU between them "
        "(state 'conv1.0', 'conv1.1', 'conv1.3', 'conv1.4', 'conv1.6', then 'bn1' as before). "
        "'tiered': the same with widths 3 x (inner_width // 4), inner_width, width (timm's "
        "'deep_tiered', the 't' models). Deep stems need layout 'imagenet'.",
    )
    inner_width: int | None = Field(
        None,
        ge=1,
        le=MAX_WIDTH,
        description="Width of the first two convs of a deep or tiered stem (timm's stem_width); "
        "left out: width // 2. Only for deep and tiered stems.",
    )
    kernel: int | None = Field(
        None,
        ge=1,
        le=11,
        description="Kernel of a single stem's conv, odd, padded by kernel // 2; left out: 7 "
        "for layout 'imagenet', 3 for 'cifar'. RegNet's stem (Radosavovic et al. 2020) is "
        "kernel 3 with pool 'none'. Deep and tiered stems are 3x3 convs: leave it out there.",
    )
    pool: Literal["max", "zero_pad_max", "conv", "none"] = Field(
        "max",
        description="How an imagenet stem halves the resolution after its conv(s): 'max' the "
        "3x3/2 max pool (paper Table 1), 'conv' a 3x3/2 conv (width to width, no bias), norm "
        "and ReLU in its place (ResNet-RS, Bello et al. 2021; state 'maxpool.0' conv, "
        "'maxpool.1' norm), 'none' no pool: the stride-2 conv alone halves it (RegNet's stem, "
        "Radosavovic et al. 2020: a 3x3/2 conv, BN, ReLU), 'zero_pad_max' the max pool after "
        "zero padding by 1 ('pad'), so the padding counts as zeros (BiT, Kolesnikov et al. "
        "2020). A cifar stem has no pool: leave it out there.",
    )
    anti_alias: AntiAlias | None = Field(
        None,
        description="Anti-alias the stem's pool (timm's rule): with pool 'max', 'avgpool' "
        "replaces the max pool by a 2x2/2 average pool and 'blur' runs the max pool at "
        "stride 1 and blurs with stride 2 after it ('maxpool.1'); with pool 'conv', the conv "
        "runs at stride 1 and the filter follows it (state 'maxpool.0' conv, 'maxpool.2' "
        "norm). Needs a pool (layout 'imagenet').",
    )

    def conv_widths(self) -> tuple[int, ...]:
        """Output widths of the stem's convs in order (one for a single stem, three deep)."""
        if self.type == "single":
            return (self.width,)
        inner = self.inner_width if self.inner_width is not None else self.width // 2
        first = 3 * (inner // 4) if self.type == "tiered" else inner
        return (first, inner, self.width)

    def conv_kernel(self) -> int:
        """The kernel of a single stem's conv (paper Table 1: 7; sec. 4.2: 3)."""
        if self.kernel is not None:
            return self.kernel
        return 7 if self.layout == "imagenet" else 3


class _ResidualBlockBase(StrictModel):
    join: Literal["add", "gate"] = Field(
        "add",
        description="How branch F(x) and shortcut x meet: 'add' F(x) + x (ResNet); 'gate' "
        "T(x)*F(x) + (1-T(x))*x with a learned sigmoid gate T (highway networks).",
    )
    attention: Attention | None = Field(None, description=ATTENTION_HELP)
    anti_alias: AntiAlias | None = Field(None, description=ANTI_ALIAS_HELP)
    reduce_first: int = Field(1, ge=1, le=64, description=REDUCE_FIRST_HELP)

    def anti_aliased_at(self, stride: int) -> bool:
        """Whether a block of this spec with ``stride`` runs its strided conv at stride 1 and
        low-pass filters after it: only where the stride is the filter's (Zhang 2019; timm's
        rule). Other strides are refused, except 1, where the option has no effect."""
        return self.anti_alias is not None and stride == ANTI_ALIAS_STRIDE


class BasicBlockSpec(_ResidualBlockBase):
    """3x3 convolutions with BN and ReLU, and a shortcut around them (paper Fig. 2)."""

    type: Literal["basic"] = "basic"
    convs: int = Field(
        2,
        ge=1,
        le=16,
        description="3x3 convolutions the residual branch spans (2 in the paper; more gives "
        "longer skips).",
    )
    dropout: float = Field(
        0.0, ge=0.0, lt=1.0, description="Dropout probability between the convolutions (WRN)."
    )
    preactivation: bool = Field(
        False,
        description="BN-ReLU-conv order inside the branch and nothing after the addition "
        "(He et al. 2016, 'Identity Mappings').",
    )

    def conv_widths(self, width: int) -> tuple[int, ...]:
        """Output widths of the branch's convs for a stage of this width."""
        return (width // self.reduce_first,) + (width,) * (self.convs - 1)


class BottleneckBlockSpec(_ResidualBlockBase):
    """1x1 reduce, 3x3, 1x1 expand, each followed by BN (paper Fig. 5 right)."""

    type: Literal["bottleneck"] = "bottleneck"
    expansion: int = Field(4, ge=1, le=64, description="Output width = stage width x expansion.")
    stride_on: Literal["1x1", "3x3"] = Field(
        "1x1",
        description="Where a downsampling bottleneck puts its stride: '1x1' on the first 1x1 "
        "conv as in the paper (v1), '3x3' on the 3x3 conv as torchvision does (v1.5).",
    )
    groups: int = Field(
        1, ge=1, le=MAX_WIDTH, description="Groups of the 3x3 conv (ResNeXt cardinality)."
    )
    base_width: int = Field(
        64,
        ge=1,
        le=MAX_WIDTH,
        description="Width per group at the 64-wide stage: the 3x3 width is "
        "width x base_width / 64 x groups (64 and 1 group give the paper's bottleneck; "
        "128 gives Wide ResNet-50-2; 4 with 32 groups gives ResNeXt-50 32x4d).",
    )
    preactivation: bool = Field(
        False, description="BN-ReLU-conv order inside the branch (He et al. 2016)."
    )

    def conv_widths(self, width: int) -> tuple[int, ...]:
        """Output widths of the 1x1, 3x3 and 1x1 convs for a stage of this width."""
        mid = int(width * self.base_width / 64) * self.groups
        return (mid // self.reduce_first, mid, width * self.expansion)


class DenseBlockSpec(StrictModel):
    """A dense layer (Huang et al. 2017, DenseNet): BN-ReLU-conv that adds growth_rate new
    feature maps, concatenated to its input, so every layer sees all earlier maps of the stage.
    A stage of dense layers is the paper's dense block; a stage with stride > 1 opens with a
    transition layer (BN-ReLU-1x1 conv-average pool) that also applies the compression."""

    type: Literal["dense"] = "dense"
    growth_rate: int = Field(
        12, ge=1, le=MAX_WIDTH, description="k: feature maps each layer adds (12 on CIFAR)."
    )
    bottleneck_layers: bool = Field(
        False,
        description="DenseNet-B: each layer starts with a BN-ReLU-1x1 conv to "
        "bottleneck_width x k maps, then BN-ReLU-3x3 conv to k.",
    )
    bottleneck_width: int = Field(
        4,
        ge=1,
        le=64,
        description="Output of a bottleneck layer's 1x1 conv, in multiples of k (4 in the "
        "paper); used with bottleneck_layers.",
    )
    compression: float = Field(
        1.0,
        gt=0.0,
        le=1.0,
        description="theta: a transition keeps floor(theta x channels) maps (DenseNet-C; "
        "0.5 in DenseNet-BC, 1 keeps them all).",
    )
    dropout: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="Dropout after each conv of a layer and of a transition (the paper uses "
        "0.2 when training without augmentation).",
    )


def _block_tag(value: Any) -> str | None:
    """A built-in block's own type, or 'defined' for any other type name (a type defined
    under the spec's ``blocks``, checked by ModelSpec once the definitions are read)."""
    tag = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    if not isinstance(tag, str):
        return None
    return tag if tag in BUILTIN_TYPES else DefinedBlockSpec.TAG


BlockSpec = Annotated[
    Annotated[BasicBlockSpec, Tag("basic")]
    | Annotated[BottleneckBlockSpec, Tag("bottleneck")]
    | Annotated[DenseBlockSpec, Tag("dense")]
    | Annotated[DefinedBlockSpec, Tag(DefinedBlockSpec.TAG)],
    Discriminator(_block_tag),
    BeforeValidator(_type_shorthand),
]
AnyBlockSpec = BasicBlockSpec | BottleneckBlockSpec | DenseBlockSpec | DefinedBlockSpec


class StageSpec(StrictModel):
    """A run of blocks at one resolution: torchvision's layerN, the paper's convN_x."""

    width: int | None = Field(
        None,
        ge=1,
        le=MAX_WIDTH,
        description="Channels of the stage (a bottleneck's inner width; its output is "
        "width x expansion). Multiplied by the spec's width_factor. Required for basic and "
        "bottleneck stages (unless 'widths' lists them); left out for dense stages, whose "
        "width follows from the growth rate.",
    )
    widths: list[list[Annotated[int, Field(ge=1, le=MAX_WIDTH)]]] | None = Field(
        None,
        max_length=MAX_REPEATS,
        description="Instead of 'width', for pruned networks (e.g. timm's ecaresnet50d_pruned, "
        "Aflalo et al. 2020): per block, the output width of each conv of its branch, in "
        "order ([1x1, 3x3, 1x1] for a bottleneck, one per conv for a basic block). One list "
        "per block; the last width is the block's output and must be the same for the whole "
        "stage (the blocks add to one another). Taken as written: width_factor, base_width "
        "and reduce_first do not apply.",
    )
    repeats: int = Field(ge=1, le=MAX_REPEATS, description="Number of blocks (dense layers).")
    stride: int = Field(
        1,
        ge=1,
        le=8,
        description="Stride of the first block (2 halves the resolution); a dense stage "
        "opens with a transition layer that pools by it instead.",
    )
    block: BlockSpec | None = Field(
        None, description="Block type of this stage, if not the default."
    )
    shortcut: ShortcutOption | None = Field(
        None, description="Shortcut option of this stage, if not the default. " + SHORTCUT_HELP
    )
    module: str | None = Field(
        None,
        max_length=80,
        description="Make this stage one module at this path, with no stage container "
        "around its one block (repeats 1): timm's DenseNet transitions between its dense "
        "blocks ('features.transition1'), RegNet's 'final_conv'. Also its feature map's name.",
    )

    @field_validator("module")
    @classmethod
    def _module_path(cls, value: str | None) -> str | None:
        if value is not None and not _MODULE_PATH.fullmatch(value):
            raise ValueError(f"{value!r} is not a module path: dotted identifiers or numbers")
        return value


_MODULE_PATH = re.compile(
    r"[A-Za-z][A-Za-z0-9_]{0,39}(\.([A-Za-z][A-Za-z0-9_]{0,39}|[0-9]{1,4})){0,7}"
)


class NamesSpec(StrictModel):
    """The module paths resgraph gives the parts it lays out itself: stages, blocks, the
    stem's and the head's modules and a block's shortcut. The defaults are torchvision's; a
    network whose state must carry another implementation's names sets them (timm's RegNets:
    s1.b1, stem.conv, head.fc, downsample.conv)."""

    stage: str = Field(
        "layer{stage + 1}",
        max_length=80,
        description="Each stage's module path (and its feature map's name): {EXPR} is "
        "filled in from stage, the stage's index from 0.",
    )
    block: str = Field(
        "{index}",
        max_length=80,
        description="Each block's name inside its stage: {EXPR} is filled in from index, the "
        "block's index from 0.",
    )
    modules: dict[str, str] = Field(
        default_factory=dict,
        max_length=64,
        description="Module paths renamed, old -> new: the stem's and the head's ('conv1', "
        "'bn1', 'fc'), and a block's shortcut modules ('downsample.0', 'downsample.1'). A "
        "name renames the modules inside it too ('conv1' -> 'stem.conv' makes a deep stem's "
        "'conv1.3' 'stem.conv.3').",
    )
    shortcut_first: bool = Field(
        False,
        description="Register a block's shortcut modules before its branch's, so they come "
        "first in its state_dict (timm's ResNetV2); by default they come last.",
    )

    @field_validator("modules")
    @classmethod
    def _paths(cls, value: dict[str, str]) -> dict[str, str]:
        for path in [*value, *value.values()]:
            if not _MODULE_PATH.fullmatch(path):
                raise ValueError(
                    f"{path!r} is not a module path: dotted identifiers or numbers, e.g. "
                    f"'stem.conv' or 'downsample.0'"
                )
        return value

    @field_validator("stage", "block")
    @classmethod
    def _template(cls, value: str, info: Any) -> str:
        name = "stage" if info.field_name == "stage" else "index"
        try:  # the first few names
            paths = [fill(value, {name: i}) for i in range(3)]
        except ExprError as exc:
            raise ValueError(f"{value!r}: {exc}") from None
        shape = _MODULE_PATH if info.field_name == "stage" else COMPONENT  # a block's name
        for path in paths:
            if not shape.fullmatch(path):
                raise ValueError(
                    f"{value!r} gives {path!r}, not a module path part (use {{{name}}} or "
                    f"{{{name} + 1}} beside letters, digits and _)"
                )
        # stage paths are checked against each other with the stages (a stage may be a
        # module of its own path): ModelSpec._stage_paths
        if info.field_name == "block" and len(set(paths)) < len(paths):
            raise ValueError(f"{value!r} gives {paths[0]!r} more than once: write {{{name}}} in it")
        return value

    def rename(self, path: str) -> str:
        """``path`` with its longest renamed prefix (whole components) replaced."""
        parts = path.split(".")
        for end in range(len(parts), 0, -1):
            new = self.modules.get(".".join(parts[:end]))
            if new is not None:
                return ".".join([new, *parts[end:]])
        return path


@lru_cache(maxsize=4096)
def _filled(template: str, name: str, value: int) -> str:
    """A stage or block name (:func:`resgraph.spec.blocks.fill` of one value), remembered:
    lowering asks it for every block."""
    return fill(template, {name: value})


class StochasticDepthSpec(StrictModel):
    """Huang et al. 2016: drop whole residual branches while training."""

    final_survival: float = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description="Survival probability p_L of the last block; it decays linearly from 1.",
    )


class HeadSpec(StrictModel):
    """Global average pool, optional dropout, fully connected classifier."""

    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout before the classifier.")
    classifier: Literal["linear", "conv"] = Field(
        "linear",
        description="'linear': a fully connected layer ('fc', weight classes x C). 'conv': a "
        "1x1 conv with bias on the pooled C x 1 x 1 map, then flattened (weight classes x C x "
        "1 x 1, timm's ClassifierHead with use_conv, as in its ResNetV2); same outputs.",
    )


class NormSpec(StrictModel):
    """The normalisation layer used everywhere a network normalises (stem, blocks, shortcut
    projections)."""

    type: Literal["batch", "group", "evonorm_s0", "frn"] = Field(
        "batch",
        description="'batch': batch norm (Ioffe & Szegedy 2015). 'group': group norm (Wu & He "
        "2018) with 'groups' groups, eps 1e-5, a per-channel scale and shift: same state names "
        "('bn1', 'downsample.1', ...) with 'weight' and 'bias' only, no running statistics, "
        "and the same output in training and evaluation. 'evonorm_s0' (Liu et al. 2020, "
        "'groups' groups) and 'frn' (filter response norm with TLU, Singh & Krishnan 2020) "
        "apply their own nonlinearity: the ReLUs the compiler puts after a norm (stem, final "
        "norm) are left out, and a defined block's own ReLUs need a `when`.",
    )
    groups: int | None = Field(
        None,
        ge=1,
        le=MAX_WIDTH,
        description="Groups of a group norm (left out: 32, as in the paper and timm's "
        "resnet50_gn); it must divide the channels of every layer it normalises. Only for "
        "'group'.",
    )

    def group_count(self) -> int:
        return self.groups if self.groups is not None else 32


Norm = Annotated[NormSpec, BeforeValidator(_type_shorthand)]


class ModelSpec(StrictModel):
    """One network. Defaults follow He et al. 2015 so paper specs stay short."""

    base: str | None = Field(
        None,
        description="Path of another spec file, relative to this one, that this spec "
        "extends: its keys are merged with this file's, mappings key by key (recursively), "
        "lists and scalars replaced whole by this file's. Resolved when the file is loaded "
        "(chains allowed, at most 8 deep; no cycles).",
    )

    name: str = Field(pattern=NAME_PATTERN, description="Human-readable name, e.g. 'ResNet-50'.")
    description: str = Field("", max_length=2000, description="Free text: what the spec is for.")
    input: InputSpec = Field(description="Input tensor of one example.")
    num_classes: int = Field(ge=1, le=MAX_CLASSES, description="Outputs of the classifier.")
    stem: StemSpec = Field(default_factory=StemSpec, description="Layers before the stages.")
    block: BlockSpec = Field(
        default_factory=BasicBlockSpec,
        description="Default block type: 'basic', 'bottleneck', 'dense' or a type defined under "
        "'blocks', or a mapping with 'type' and options.",
    )
    blocks: dict[str, BlockDef] | None = Field(
        None,
        max_length=64,
        description="Block types defined in the spec as graphs of registry ops (docs/blocks.md): "
        "name -> definition. A stage uses one as it uses a built-in: block: {type: NAME, "
        "OPTION: VALUE}. A 'base' file can hold a library of them.",
    )
    shortcut: ShortcutOption = Field("B", description=SHORTCUT_HELP)
    projection_kernel: int = Field(
        1,
        ge=1,
        le=7,
        description="Kernel of the projection conv of a shortcut that downsamples (option B or "
        "C at a stride > 1), with padding ((stride - 1) + (kernel - 1)) // 2 (SENet-154: 3). "
        "A projection at stride 1 stays 1x1 (timm's rule), and option D always projects 1x1 "
        "after its pool. Odd, 1 or more.",
    )
    projection_norm: bool = Field(
        True,
        description="A norm after the conv of a projection shortcut (options B, C, D). "
        "Pre-activation networks whose projection reads the normalised block input may leave "
        "it out (timm's ResNetV2). Needs a projecting shortcut.",
    )
    conv: Literal["conv", "std_conv"] = Field(
        "conv",
        description="The convolution of the stem, of defined blocks' 'conv' ops and of "
        "projection shortcuts: 'conv' (nn.Conv2d) or 'std_conv', its weight standardised "
        "before each use (Qiao et al. 2019; BiT, Kolesnikov et al. 2020). The classifier "
        "stays as it is. Built-in block types have plain convs: 'std_conv' needs defined ones.",
    )
    norm: Norm = Field(
        default_factory=NormSpec,
        description="Normalisation layer: 'batch' (default), 'group', 'evonorm_s0' or 'frn', "
        "or a mapping with 'type' and 'groups'.",
    )
    width_factor: int = Field(
        1,
        ge=1,
        le=64,
        description="Multiplies every stage width (Wide ResNets' k); dense stages have none.",
    )
    zero_init_residual: bool = Field(
        False,
        description="Initialise the last BN of each residual branch to zero, so every block "
        "starts as the identity (Goyal et al. 2017). Pre-activation branches (which end in a "
        "conv), dense layers and plain blocks (shortcut 'none', whose branch is the whole "
        "block) are left as they are; a spec whose blocks are all pre-activation or dense is "
        "refused, since the flag would do nothing.",
    )
    stochastic_depth: StochasticDepthSpec | None = Field(
        None, description="Randomly drop residual branches in training (Huang et al. 2016)."
    )
    stages: list[StageSpec] = Field(
        min_length=1, max_length=MAX_STAGES, description="Stages in order, input to output."
    )
    head: HeadSpec = Field(default_factory=HeadSpec, description="Classifier head.")
    names: NamesSpec = Field(
        default_factory=NamesSpec,
        description="Module paths of stages, blocks, stem, head and shortcuts (torchvision's "
        "by default).",
    )
    outputs: list[str] | None = Field(
        None,
        min_length=1,
        max_length=MAX_STAGES + 1,
        description="Make the network a backbone: its forward returns these feature maps as a "
        "dict keyed by name, in network order, and the head (pool, dropout, classifier) is "
        "left out, as are the stages after the last one listed. Names: 'stem' (after the "
        "stem's pool) and the stages 'layer1', 'layer2', ... Each name at most once.",
    )
    train: TrainSpec = Field(
        default_factory=TrainSpec, description="Training recipe (defaults: the paper's CIFAR one)."
    )

    _source: Any = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _defined_blocks(self) -> ModelSpec:
        """Every defined type used is defined, with options it has; no definition takes a
        built-in's name. Reported at the key that is wrong."""
        problems: list[InitErrorDetails] = []

        def error(path: tuple[str | int, ...], value: Any, message: str) -> None:
            problems.append(
                InitErrorDetails(type="value_error", loc=path, input=value, ctx={"error": message})
            )

        for name in self.blocks or {}:
            if name in RESERVED_TYPES or not TYPE_NAME.fullmatch(name):
                error(
                    ("blocks", name),
                    name,
                    f"{name!r} cannot name a block type: use lower-case letters, digits and _ "
                    f"(not {', '.join(RESERVED_TYPES)})",
                )
        for name, bdef in (self.blocks or {}).items():
            opener = bdef.stage_opener
            if opener is not None and (opener == name or opener not in self.blocks):  # type: ignore[operator]
                others = ", ".join(sorted(set(self.blocks or {}) - {name})) or "none"
                message = f"{opener!r} is not another type defined here (defined: {others})"
                error(("blocks", name, "stage_opener"), opener, message)
        uses = [(("block",), self.block)] + [
            (("stages", i, "block"), st.block) for i, st in enumerate(self.stages) if st.block
        ]
        for at, block in uses:
            if isinstance(block, DefinedBlockSpec):
                self._check_use(at, block, error)
        if problems:
            raise ValidationError.from_exception_data(type(self).__name__, problems)
        return self

    def _check_use(self, at: tuple[str | int, ...], block: DefinedBlockSpec, error: Any) -> None:
        defined = sorted(set(self.blocks or {}) - set(RESERVED_TYPES))
        if block.type not in defined:
            choices = [*BUILTIN_TYPES, *defined]
            listed = ", ".join(f"'{c}'" for c in choices)
            close = difflib.get_close_matches(block.type, choices, n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            message = f"expected {listed} or a type defined under 'blocks', got {block.type!r}"
            error((*at, "type"), block.type, message + hint)
            return
        params = self.blocks[block.type].params  # type: ignore[index]
        for key, value in block.options.items():
            if key not in params:
                known = ", ".join(params) or "none"
                close = difflib.get_close_matches(key, list(params), n=1, cutoff=0.6)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                error(
                    (*at, key),
                    value,
                    f"unknown key {key!r}{hint}: block type {block.type!r} takes 'type' and "
                    f"its params ({known})",
                )
            elif isinstance(value, bool) or not isinstance(value, int | float):
                error((*at, key), value, f"must be a number, got {value!r}")

    def definition(self, block: DefinedBlockSpec) -> BlockDef:
        """The definition of a defined block type this spec uses."""
        assert self.blocks is not None
        return self.blocks[block.type]

    @model_validator(mode="after")
    def _total_blocks(self) -> ModelSpec:
        """Reported at the repeats of the stage that takes the total past the limit."""
        total = sum(stage.repeats for stage in self.stages)
        if total > MAX_BLOCKS:
            counts = [stage.repeats for stage in self.stages]
            i = next(i for i in range(len(counts)) if sum(counts[: i + 1]) > MAX_BLOCKS)
            message = f"at most {MAX_BLOCKS} blocks in all, got {total} (this stage crosses it)"
            raise ValidationError.from_exception_data(
                type(self).__name__,
                [
                    InitErrorDetails(
                        type="value_error",
                        loc=("stages", i, "repeats"),
                        input=counts[i],
                        ctx={"error": message},
                    )
                ],
            )
        return self

    @model_validator(mode="after")
    def _known_outputs(self) -> ModelSpec:
        """Each of ``outputs`` names a feature map of this network, once; reported at the
        list element."""
        if self.outputs is None:
            return self
        names, seen, errors = self.feature_names(), set(), []
        for i, name in enumerate(self.outputs):
            if name not in names:
                close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                shown = repr(name) if len(name) <= 40 else repr(name[:37] + "...")
                message = f"unknown feature map {shown}{hint}: expected one of {', '.join(names)}"
            elif name in seen:
                message = f"{name!r} is listed twice"
            else:
                seen.add(name)
                continue
            errors.append(
                InitErrorDetails(
                    type="value_error", loc=("outputs", i), input=name, ctx={"error": message}
                )
            )
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self

    def feature_names(self) -> list[str]:
        """The feature maps a backbone can return, in network order: 'stem', 'layer1', ..."""
        return [STEM_OUTPUT] + [self.stage_name(i) for i in range(len(self.stages))]

    def stage_name(self, index: int) -> str:
        """Stage ``index``'s module path: ``layer1``, ... (or as ``names.stage`` or the
        stage's ``module`` says)."""
        return self.stages[index].module or _filled(self.names.stage, "stage", index)

    def block_path(self, stage: int, index: int) -> str:
        """The module path of block ``index`` of stage ``stage``: ``layer2.0``, ...; a
        stage that is one module is its block."""
        if self.stages[stage].module:
            return self.stages[stage].module  # type: ignore[return-value]
        return f"{self.stage_name(stage)}.{_filled(self.names.block, 'index', index)}"

    @model_validator(mode="after")
    def _stage_paths(self) -> ModelSpec:
        """A stage that is one module holds one block; no two stages share a module path
        or lie one inside the other. Reported at the later stage."""
        errors: list[tuple[tuple[str | int, ...], object, str]] = []
        paths: list[str] = []
        # the stem's and the head's modules renamed by names (a shortcut's are a block's)
        renamed = {v: k for k, v in self.names.modules.items() if k.split(".")[0] != "downsample"}
        for i, stage in enumerate(self.stages):
            path = self.stage_name(i)
            at = ("stages", i, "module") if stage.module else ("names", "stage")
            if stage.module and stage.repeats != 1:
                message = "a stage that is one module holds one block: repeats must be 1"
                errors.append((("stages", i, "repeats"), stage.repeats, message))
            clash = next((p for p in paths if _nested(p, path) or _nested(path, p)), None)
            if clash is not None:
                message = f"stage path {path!r} is or holds an earlier stage's path, {clash!r}"
                errors.append((at, path, message))
            taken = next((p for p in renamed if _nested(p, path) or _nested(path, p)), None)
            if taken is not None and clash is None:  # one message a stage
                message = (
                    f"stage path {path!r} and module {taken!r} (names.modules' name for "
                    f"{renamed[taken]!r}) are one path, or one holds the other"
                )
                errors.append((at, path, message))
            paths.append(path)
        if errors:
            raise ValidationError.from_exception_data(
                type(self).__name__,
                [
                    InitErrorDetails(type="value_error", loc=at, input=v, ctx={"error": m})
                    for at, v, m in errors
                ],
            )
        return self

    @model_validator(mode="after")
    def _stage_combinations(self) -> ModelSpec:
        """Checks that need a stage and the defaults together, each reported once, at the key
        of the stage (or of the default) that set the conflicting value."""
        errors: dict[tuple[tuple[str | int, ...], str], InitErrorDetails] = {}

        def error(path: tuple[str | int, ...], value: Any, message: str) -> None:
            errors.setdefault(
                (path, message),
                InitErrorDetails(type="value_error", loc=path, input=value, ctx={"error": message}),
            )

        for i, stage in enumerate(self.stages):
            block, shortcut = self.stage_block(i), self.stage_shortcut(i)
            at = ("stages", i, "shortcut") if stage.shortcut else ("shortcut",)
            if isinstance(block, DenseBlockSpec):
                if stage.width is not None:
                    error(
                        ("stages", i, "width"),
                        stage.width,
                        "a dense stage has no width: each layer adds growth_rate maps; "
                        "remove 'width'",
                    )
                if shortcut in ("C", "none"):
                    error(
                        at,
                        shortcut,
                        f"dense layers carry their input forward by concatenation: "
                        f"shortcut '{shortcut}' cannot apply to them",
                    )
                continue
            if stage.width is None and stage.widths is None:
                error(
                    ("stages", i),
                    None,
                    f"required field 'width' is missing (a {block.type} stage needs it)",
                )
            if isinstance(block, DefinedBlockSpec):  # a variant may gate it
                bdef = self.definition(block)
                joins = {bdef.join, *(v.join for v in bdef.variants)}
            else:
                joins = {block.join}
            if "gate" in joins and shortcut == "none":
                error(
                    at,
                    shortcut,
                    "gated joins need a shortcut to gate: use shortcut A, B, C or "
                    "identity, or join 'add'",
                )
        if self.zero_init_residual and not any(
            map(self._zero_initialisable, map(self.stage_block, range(len(self.stages))))
        ):
            error(
                ("zero_init_residual",),
                True,
                "no block has a BN at the end of its branch to zero (pre-activation branches "
                "end in a conv, dense layers in a concatenation)",
            )
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, list(errors.values()))
        return self

    def _zero_initialisable(self, block: AnyBlockSpec) -> bool:
        """Whether zero_init_residual has a norm to zero in blocks of this spec."""
        if isinstance(block, DefinedBlockSpec):
            return self.definition(block).zero_inits()
        return not isinstance(block, DenseBlockSpec) and not block.preactivation

    @model_validator(mode="after")
    def _option_combinations(self) -> ModelSpec:
        """Checks of the stem, norm, attention, anti-aliasing and per-block width options that
        need more than one field, each located at the value that makes the combination fail."""
        problems: list[tuple[tuple[str | int, ...], Any, str]] = []

        def error(path: tuple[str | int, ...], value: Any, message: str) -> None:
            if all(seen != path for seen, _, _ in problems):  # one problem per place
                problems.append((path, value, message))

        if self.base is not None:
            error(
                ("base",),
                self.base,
                "'base' is resolved when a spec file is loaded; load the file with load_spec",
            )
        self._check_stem(error)
        norm_at = ("norm", "groups")
        if self.norm.type in ("batch", "frn") and self.norm.groups is not None:
            error(norm_at, self.norm.groups, "groups are for group norm: set type 'group'")
        self._check_projection(error)
        norm_widths = [("stem", w) for w in self.stem.conv_widths()]
        for i in range(len(self.stages)):
            norm_widths += self._check_stage_options(i, error)
        groups = self.norm.group_count() if self.norm.type in ("group", "evonorm_s0") else 1
        if groups > 1:
            bad = next(((w, c) for w, c in norm_widths if c % groups), None)
            if bad:
                error(
                    norm_at if self.norm.groups is not None else ("norm",),
                    groups,
                    f"group norm with {groups} groups needs channel counts divisible by "
                    f"{groups}: {bad[0]} has a {bad[1]}-channel layer",
                )
        if problems:
            raise ValidationError.from_exception_data(
                type(self).__name__,
                [
                    InitErrorDetails(
                        type="value_error", loc=path, input=value, ctx={"error": message}
                    )
                    for path, value, message in problems
                ],
            )
        return self

    def _check_stem(self, error: Any) -> None:
        """A cifar stem has one conv and no pool; inner widths only for deep stems."""
        stem = self.stem
        if stem.layout == "cifar":
            for name, default in (("type", "single"), ("pool", "max"), ("anti_alias", None)):
                if getattr(stem, name) != default:
                    error(
                        ("stem", name),
                        getattr(stem, name),
                        f"a cifar stem is one 3x3 conv without a pool: '{name}' needs layout "
                        f"'imagenet'",
                    )
        if stem.type != "single" and stem.kernel is not None:
            error(
                ("stem", "kernel"),
                stem.kernel,
                f"a {stem.type} stem is 3x3 convs: kernel is for a single stem's conv",
            )
        elif stem.kernel is not None and stem.kernel % 2 == 0:
            error(
                ("stem", "kernel"),
                stem.kernel,
                f"must be odd (a centred kernel), got {stem.kernel}",
            )
        if stem.pool == "none" and stem.anti_alias is not None:
            error(
                ("stem", "anti_alias"),
                stem.anti_alias.type,
                "pool 'none' leaves no pool to anti-alias: remove anti_alias or set pool "
                "'max' or 'conv'",
            )
        elif stem.pool == "zero_pad_max" and stem.anti_alias is not None:
            error(
                ("stem", "anti_alias"),
                stem.anti_alias.type,
                "pool 'zero_pad_max' is not anti-aliased: remove anti_alias or set pool 'max'",
            )
        if stem.type == "single" and stem.inner_width is not None:
            error(
                ("stem", "inner_width"),
                stem.inner_width,
                "only deep and tiered stems have inner convs: remove inner_width or set "
                "type 'deep' or 'tiered'",
            )
        elif stem.type != "single" and min(stem.conv_widths()) < 1:
            at = ("stem", "inner_width") if stem.inner_width is not None else ("stem", "width")
            error(
                at,
                stem.inner_width or stem.width,
                f"a {stem.type} stem of inner width {stem.conv_widths()[1]} leaves a conv "
                f"with no channels ({stem.type} widths: {list(stem.conv_widths())})",
            )

    def _check_projection(self, error: Any) -> None:
        """projection_kernel: odd, and 1 wherever option D is used."""
        for kind, shortcut_at in [(self.shortcut, ("shortcut",))] + [
            (st.shortcut, ("stages", i, "shortcut")) for i, st in enumerate(self.stages)
        ]:
            if kind == "D" and self.projection_kernel != 1:
                error(
                    ("projection_kernel",),
                    self.projection_kernel,
                    f"option D projects with a 1x1 conv after its pool (used at "
                    f"{_dotted(shortcut_at)}): projection_kernel must be 1",
                )
        if self.conv != "conv":
            for i in range(len(self.stages)):
                if not isinstance(self.stage_block(i), DefinedBlockSpec):
                    error(
                        ("conv",),
                        self.conv,
                        f"stage {i}'s blocks are a built-in type, whose convs are plain: "
                        f"conv {self.conv!r} needs block types defined under 'blocks'",
                    )
                    break
        kinds = {self.shortcut} | {st.shortcut for st in self.stages if st.shortcut}
        if not self.projection_norm and not kinds & {"B", "C", "D"}:
            error(
                ("projection_norm",),
                False,
                f"no stage projects its shortcut (options B, C, D; here {', '.join(sorted(kinds))}"
                f"): leave projection_norm out",
            )
        if self.projection_kernel % 2 == 0:
            error(
                ("projection_kernel",),
                self.projection_kernel,
                f"must be odd (a centred kernel), got {self.projection_kernel}",
            )

    def _check_stage_options(self, i: int, error: Any) -> list[tuple[str, int]]:
        """Stage ``i``'s widths, anti-aliasing stride, groups and attention; the widths of
        the layers its norms normalise, as (where, channels), for the group-norm check."""
        stage, block = self.stages[i], self.stage_block(i)
        block_at = ("stages", i, "block") if stage.block else ("block",)
        if isinstance(block, DenseBlockSpec | DefinedBlockSpec):
            if stage.widths is not None:
                error(
                    ("stages", i, "widths"),
                    stage.widths,
                    f"a {block.type} stage has no conv widths to list: remove 'widths'",
                )
            return []
        if stage.widths is not None:
            widths = self._check_widths(i, block, error)
        elif stage.width is not None:
            widths = [block.conv_widths(stage.width * self.width_factor)] * stage.repeats
        else:
            return []
        if block.anti_alias is not None and stage.stride not in (1, ANTI_ALIAS_STRIDE):
            error(
                ("stages", i, "stride"),
                stage.stride,
                f"anti-aliasing filters downsample by {ANTI_ALIAS_STRIDE}: a "
                f"stride-{stage.stride} stage cannot use the block's anti_alias",
            )
        norm_widths: list[tuple[str, int]] = []
        for bi, convs in enumerate(widths):
            where = f"stages[{i}]" + (f" block {bi}" if stage.widths is not None else "")
            if min(convs) < 1:
                error(
                    block_at + ("reduce_first",) if block.reduce_first > 1 else block_at,
                    block.reduce_first,
                    f"{where}: a conv of the branch is left with no channels "
                    f"(widths {list(convs)})",
                )
                continue
            _check_block_widths(block, convs, where, block_at, error)
            norm_widths += [(where, c) for c in convs]
        return norm_widths

    def _check_widths(
        self, i: int, block: BasicBlockSpec | BottleneckBlockSpec, error: Any
    ) -> list[tuple[int, ...]]:
        """Structural checks of a stage's per-block widths; the widths if they pass."""
        stage = self.stages[i]
        assert stage.widths is not None
        at = ("stages", i, "widths")
        if stage.width is not None:
            error(
                ("stages", i, "width"),
                stage.width,
                "give either 'width' or per-block 'widths', not both",
            )
        if self.width_factor != 1:
            error(
                ("width_factor",),
                self.width_factor,
                f"stages[{i}] lists its conv widths exactly: width_factor cannot scale them",
            )
        if len(stage.widths) != stage.repeats:
            error(
                at,
                stage.widths,
                f"{len(stage.widths)} lists of widths for {stage.repeats} blocks (repeats): "
                f"give one per block",
            )
        convs = block.convs if isinstance(block, BasicBlockSpec) else 3
        out: list[tuple[int, ...]] = []
        for bi, widths in enumerate(stage.widths):
            if len(widths) != convs:
                error(
                    (*at, bi),
                    widths,
                    f"a {block.type} block has {convs} convs: give {convs} widths, got "
                    f"{len(widths)}",
                )
            elif widths[-1] != stage.widths[0][-1]:
                error(
                    (*at, bi, convs - 1),
                    widths[-1],
                    f"every block of a stage puts out the same width (they add up): block 0 "
                    f"has {stage.widths[0][-1]}, block {bi} has {widths[-1]}",
                )
            else:
                out.append(tuple(widths))
        return out

    def stage_block(self, index: int) -> AnyBlockSpec:
        """The block spec in force for stage ``index``."""
        return self.stages[index].block or self.block

    def stage_shortcut(self, index: int) -> str:
        """The shortcut option in force for stage ``index``."""
        return self.stages[index].shortcut or self.shortcut


def _check_block_widths(
    block: BasicBlockSpec | BottleneckBlockSpec,
    convs: tuple[int, ...],
    where: str,
    block_at: tuple[str | int, ...],
    error: Any,
) -> None:
    """One block's conv widths against its groups and its squeeze-and-excitation."""
    if isinstance(block, BottleneckBlockSpec) and block.groups > 1:
        for c in convs[:2]:
            if c % block.groups:
                error(
                    (*block_at, "groups"),
                    block.groups,
                    f"{where}: the grouped 3x3 conv has {c} input or output "
                    f"channels, not divisible by {block.groups} groups",
                )
                break
    attention = block.attention
    if isinstance(attention, SESpec) and attention.channels(convs[-1]) > convs[-1]:
        error(
            (*block_at, "attention"),
            attention.ratio,
            f"{where}: squeeze-and-excitation would widen its {convs[-1]} "
            f"channels to {attention.channels(convs[-1])} (ratio "
            f"{attention.ratio:g} rounded to a multiple of {attention.divisor}): "
            f"use a smaller divisor",
        )


def _nested(outer: str, inner: str) -> bool:
    """Whether module path ``inner`` is ``outer`` or lies inside it."""
    return f"{inner}.".startswith(f"{outer}.")


def _dotted(path: tuple[str | int, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
