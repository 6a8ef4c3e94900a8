"""The spec language: pydantic models of one network.

Field descriptions are the documentation: ``resgraph schema`` exports them as JSON Schema,
which YAML-aware editors use to validate and complete specs. Every model forbids unknown
keys and coerces nothing (``strict``): ``width: "64"`` is an error, not 64.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, PrivateAttr, ValidationError, model_validator
from pydantic_core import InitErrorDetails

from resgraph.spec.base import StrictModel
from resgraph.spec.train import TrainSpec

# Documented limits (README, "Limits"). They stop absurd specs early, before any lowering.
MAX_WIDTH = 8192
MAX_REPEATS = 1000
MAX_BLOCKS = 2000
MAX_STAGES = 16
MAX_INPUT_SIZE = 2048
MAX_CLASSES = 100_000
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 _.,+()/-]{0,79}$"

ShortcutOption = Literal["A", "B", "C", "identity", "none"]
SHORTCUT_HELP = (
    "Shortcut connections (He et al. 2015, sec. 3.3): 'A' parameter-free (subsample + zero-pad "
    "extra channels where dimensions grow), 'B' 1x1-conv+BN projection only where dimensions "
    "change, 'C' projection on every block, 'identity' identity only (a shape change is an "
    "error), 'none' no shortcut at all (a plain network)."
)


class InputSpec(StrictModel):
    """The input tensor of one example."""

    channels: int = Field(3, ge=1, le=64, description="Input channels (3 for RGB).")
    size: int = Field(
        ge=1, le=MAX_INPUT_SIZE, description="Height and width of the (square) input in pixels."
    )


class StemSpec(StrictModel):
    """The layers before the first stage."""

    kind: Literal["imagenet", "cifar"] = Field(
        "imagenet",
        description="'imagenet': 7x7/2 conv, BN, ReLU, 3x3/2 max pool (paper Table 1). "
        "'cifar': 3x3/1 conv, BN, ReLU (paper sec. 4.2).",
    )
    width: int = Field(64, ge=1, le=MAX_WIDTH, description="Output channels of the stem conv.")
    activation: bool = Field(
        True,
        description="BN and ReLU after the stem conv. Pre-activation networks set false: "
        "their first block normalises its own input.",
    )


class _ResidualBlockBase(StrictModel):
    join: Literal["add", "gate"] = Field(
        "add",
        description="How branch F(x) and shortcut x meet: 'add' F(x) + x (ResNet); 'gate' "
        "T(x)*F(x) + (1-T(x))*x with a learned sigmoid gate T (highway networks).",
    )


class BasicBlockSpec(_ResidualBlockBase):
    """3x3 convolutions with BN and ReLU, and a shortcut around them (paper Fig. 2)."""

    type: Literal["basic"] = "basic"
    convs: int = Field(
        2,
        ge=1,
        le=16,
        description="3x3 convolutions the residual branch spans (2 in the paper; more gives "
        "the 'longer skips' the seeds ask about).",
    )
    dropout: float = Field(
        0.0, ge=0.0, lt=1.0, description="Dropout probability between the convolutions (WRN)."
    )
    preactivation: bool = Field(
        False,
        description="BN-ReLU-conv order inside the branch and nothing after the addition "
        "(He et al. 2016, 'Identity Mappings').",
    )


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


def _block_shorthand(value: Any) -> Any:
    """Accept ``block: bottleneck`` as shorthand for ``block: {type: bottleneck}``."""
    return {"type": value} if isinstance(value, str) else value


BlockSpec = Annotated[
    BasicBlockSpec | BottleneckBlockSpec | DenseBlockSpec,
    Field(discriminator="type"),
    BeforeValidator(_block_shorthand),
]


class StageSpec(StrictModel):
    """A run of blocks at one resolution: torchvision's layerN, the paper's convN_x."""

    width: int | None = Field(
        None,
        ge=1,
        le=MAX_WIDTH,
        description="Channels of the stage (a bottleneck's inner width; its output is "
        "width x expansion). Multiplied by the spec's width_factor. Required for basic and "
        "bottleneck stages; left out for dense stages, whose width follows from the growth "
        "rate.",
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


class ModelSpec(StrictModel):
    """One network. Defaults follow He et al. 2015 so paper specs stay short."""

    name: str = Field(pattern=NAME_PATTERN, description="Human-readable name, e.g. 'ResNet-50'.")
    description: str = Field("", max_length=2000, description="Free text: what the spec is for.")
    input: InputSpec = Field(description="Input tensor of one example.")
    num_classes: int = Field(ge=1, le=MAX_CLASSES, description="Outputs of the classifier.")
    stem: StemSpec = Field(default_factory=StemSpec, description="Layers before the stages.")
    block: BlockSpec = Field(
        default_factory=BasicBlockSpec,
        description="Default block type: 'basic', 'bottleneck' or 'dense', or a mapping with "
        "'type' and options.",
    )
    shortcut: ShortcutOption = Field("B", description=SHORTCUT_HELP)
    width_factor: int = Field(
        1,
        ge=1,
        le=64,
        description="Multiplies every stage width (Wide ResNets' k); dense stages have none.",
    )
    zero_init_residual: bool = Field(
        False,
        description="Initialise the last BN of each residual branch to zero, so every block "
        "starts as the identity (Goyal et al. 2017).",
    )
    stochastic_depth: StochasticDepthSpec | None = Field(
        None, description="Randomly drop residual branches in training (Huang et al. 2016)."
    )
    stages: list[StageSpec] = Field(
        min_length=1, max_length=MAX_STAGES, description="Stages in order, input to output."
    )
    head: HeadSpec = Field(default_factory=HeadSpec, description="Classifier head.")
    train: TrainSpec = Field(
        default_factory=TrainSpec, description="Training recipe (defaults: the paper's CIFAR one)."
    )

    _source: Any = PrivateAttr(default=None)

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
    def _stage_combinations(self) -> ModelSpec:
        """Checks that need a stage and the defaults together, each reported once, at the key
        of the stage (or of the default) that set the conflicting value."""
        errors: dict[tuple[tuple[str | int, ...], str], InitErrorDetails] = {}

        def error(path: tuple[str | int, ...], value: Any, message: str) -> None:
            errors.setdefault((path, message), InitErrorDetails(
                type="value_error", loc=path, input=value, ctx={"error": message}
            ))

        for i, stage in enumerate(self.stages):
            block, shortcut = self.stage_block(i), self.stage_shortcut(i)
            at = ("stages", i, "shortcut") if stage.shortcut else ("shortcut",)
            if isinstance(block, DenseBlockSpec):
                if stage.width is not None:
                    error(("stages", i, "width"), stage.width,
                          "a dense stage has no width: each layer adds growth_rate maps; "
                          "remove 'width'")
                if shortcut in ("C", "none"):
                    error(at, shortcut,
                          f"dense layers carry their input forward by concatenation: "
                          f"shortcut '{shortcut}' cannot apply to them")
                continue
            if stage.width is None:
                error(("stages", i), None,
                      f"required field 'width' is missing (a {block.type} stage needs it)")
            if block.join == "gate" and shortcut == "none":
                error(at, shortcut,
                      "gated joins need a shortcut to gate: use shortcut A, B, C or "
                      "identity, or join 'add'")
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, list(errors.values()))
        return self

    def stage_block(self, index: int) -> BasicBlockSpec | BottleneckBlockSpec | DenseBlockSpec:
        """The block spec in force for stage ``index``."""
        return self.stages[index].block or self.block

    def stage_shortcut(self, index: int) -> str:
        """The shortcut option in force for stage ``index``."""
        return self.stages[index].shortcut or self.shortcut
