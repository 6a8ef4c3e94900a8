"""RegNet's quantised-linear stage widths (Radosavovic et al. 2020, "Designing Network Design
Spaces", sec. 3.3, eq. 2-4), as a spec-level generator.

A spec may write ``regnet: {w0, wa, wm, depth, group_width}`` (and ``bottleneck_ratio``)
instead of ``stages``: the loader replaces it with the stages the rule gives, so a RegNet is
validated, lowered, summarised and built like any other spec. The rule:

* per block j < depth, a linear width u_j = w0 + wa * j (eq. 2);
* s_j = round(log(u_j / w0) / log(wm)) (eq. 3), and the width w0 * wm^s_j rounded to a
  multiple of ``quantum`` (8) (eq. 4); blocks of one width form a stage;
* each stage's bottleneck width w / b is made a multiple of its group width, the group width
  first capped at the bottleneck width, and the stage width follows from it.

Each stage is a run of X blocks: 1x1, 3x3 with groups of ``group_width`` channels, 1x1, each
followed by batch norm, the stride on the 3x3 (torchvision's ``stride_on: 3x3``), a
projection shortcut where the shape changes; every stage after the first halves the size.
"""

from __future__ import annotations

import math
from typing import Any

import yaml
from pydantic import Field, ValidationError

from resgraph.errors import Problem, SpecError
from resgraph.spec.base import StrictModel
from resgraph.spec.blocks import MAX_FIELD as MAX_WIDTH
from resgraph.spec.compose import construct
from resgraph.spec.expr import make_divisible

MAX_DEPTH = 100
MAP_TAG, SEQ_TAG = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"
INT_TAG, STR_TAG = "tag:yaml.org,2002:int", "tag:yaml.org,2002:str"
FLOAT_TAG, BOOL_TAG = "tag:yaml.org,2002:float", "tag:yaml.org,2002:bool"


class XStage(StrictModel):
    """One stage of X blocks (pycls's AnyNetX: d_i, w_i, b_i, g_i)."""

    depth: int = Field(ge=1, le=MAX_DEPTH, description="Blocks d_i.")
    width: int = Field(ge=1, le=MAX_WIDTH, description="Output width w_i.")
    bottleneck_ratio: float = Field(
        1.0, ge=1.0, le=16.0, description="b_i: the 1x1 reduces to width / b_i."
    )
    group_width: int = Field(ge=1, le=1024, description="Channels per group g_i of the 3x3.")


class AnyNetParams(StrictModel):
    """AnyNetX (Radosavovic et al. 2020, sec. 3.1): X-block stages given one by one."""

    stages: list[XStage] = Field(
        min_length=1, max_length=16, description="The stages, input to output."
    )
    first_stride: int = Field(
        2, ge=1, le=2, description="Stride of the first stage (1 after a stem that pools)."
    )
    block: dict[str, Any] | None = Field(
        None,
        description="A block type defined under 'blocks' (with its options) for every stage "
        "instead of X blocks: each stage sets its width and the type's group_width param.",
    )


class RegNetParams(StrictModel):
    """The quantised-linear rule's inputs (the paper's notation)."""

    w0: int = Field(ge=1, le=1024, description="Initial width w0 (> 0).")
    wa: float = Field(gt=0.0, le=1024.0, description="Slope wa of the linear widths.")
    wm: float = Field(gt=1.0, le=16.0, description="Width multiplier wm (> 1) between stages.")
    depth: int = Field(ge=1, le=MAX_DEPTH, description="Blocks d in all.")
    group_width: int = Field(ge=1, le=1024, description="Channels per group g of the 3x3.")
    bottleneck_ratio: float = Field(
        1.0, ge=1.0, le=16.0, description="b: the 1x1 reduces to width / b (RegNetX: 1)."
    )
    quantum: int = Field(8, ge=1, le=64, description="Widths are multiples of it (8).")
    first_stride: int = Field(
        2, ge=1, le=2, description="Stride of the first stage (1 after a stem that pools)."
    )
    stages: int | None = Field(
        None, ge=1, le=16, description="The number of stages the rule must give, if any."
    )
    group_min_ratio: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Above 0, a bottleneck width is made a multiple of the group width by "
        "rounding half up and never more than 10% down (torchvision's RegNets, timm's '_tv' "
        "models), not to the nearest multiple.",
    )
    block: dict[str, Any] | None = Field(
        None,
        description="A block type defined under 'blocks' (with its options) for every stage "
        "instead of X blocks: each stage sets its width and the type's group_width param.",
    )


# the generators a spec may write instead of ``stages``: key -> (parameters, description)
GENERATORS: dict[str, tuple[type[StrictModel], str]] = {
    "regnet": (
        RegNetParams,
        "Instead of 'stages': the stages of X blocks that RegNet's quantised-linear rule "
        "gives (Radosavovic et al. 2020, eq. 2-4).",
    ),
    "anynet": (
        AnyNetParams,
        "Instead of 'stages': AnyNetX's stages of X blocks, given one by one (Radosavovic "
        "et al. 2020, sec. 3.1).",
    ),
}
KEYS = tuple(GENERATORS)


def regnet_stages(p: RegNetParams) -> list[XStage]:
    """The stages (before group compatibility) that the quantised-linear rule gives; raises
    ValueError for a width above the limit."""
    widths: list[int] = []
    for j in range(p.depth):
        u = p.w0 + p.wa * j
        s = round(math.log(u / p.w0) / math.log(p.wm))
        widths.append(max(p.quantum, round(p.w0 * p.wm**s / p.quantum) * p.quantum))
    if max(widths) > MAX_WIDTH:
        raise ValueError(f"the rule gives a width of {max(widths)}, above {MAX_WIDTH}")
    runs: list[list[int]] = []  # [width, blocks] of each stage
    for w in widths:
        if runs and runs[-1][0] == w:
            runs[-1][1] += 1
        else:
            runs.append([w, 1])
    b, g = p.bottleneck_ratio, p.group_width
    return [XStage(depth=n, width=w, bottleneck_ratio=b, group_width=g) for w, n in runs]


def compatible(stage: XStage, min_ratio: float = 0.0) -> tuple[int, int, int]:
    """(bottleneck width, output width, group width) of a stage: the group width capped at
    the bottleneck width, the bottleneck width rounded to a multiple of it (to the nearest,
    or with ``min_ratio`` as :func:`~resgraph.spec.expr.make_divisible` does), and the
    output width following from it."""
    inner = max(1, int(stage.width / stage.bottleneck_ratio))
    g = min(stage.group_width, inner)
    inner = make_divisible(inner, g, 1) if min_ratio else max(g, round(inner / g) * g)
    return inner, int(inner * stage.bottleneck_ratio), g


def stage_widths(p: RegNetParams) -> list[tuple[int, int, int]]:
    """(width, blocks, group width) of each stage that ``p`` gives, input to output."""
    out = []
    for stage in regnet_stages(p):
        _, width, g = compatible(stage)
        out.append((width, stage.depth, g))
    return out


def stages_data(
    stages: list[XStage],
    first_stride: int,
    block: dict[str, Any] | None = None,
    min_ratio: float = 0.0,
) -> list[dict[str, Any]]:
    """The ``stages`` list of a spec, as plain data: of X blocks, or of the defined ``block``
    with each stage's width and group width."""
    out = []
    for i, stage in enumerate(stages):
        inner, width, g = compatible(stage, min_ratio)
        stride = first_stride if i == 0 else 2
        if block is not None:
            options = {**block, "group_width": g}
            out.append({"width": width, "repeats": stage.depth, "stride": stride, "block": options})
            continue
        out.append(
            {
                "widths": [[inner, inner, width]] * stage.depth,
                "repeats": stage.depth,
                "stride": stride,
                "block": {
                    "type": "bottleneck",
                    "expansion": 1,
                    "groups": inner // g,
                    "stride_on": "3x3",
                },
            }
        )
    return out


def generate(key: str, data: Any) -> list[dict[str, Any]]:
    """The stages that the generator ``key`` gives for its value ``data``; raises
    ValidationError for a bad parameter and ValueError for a stage count not met."""
    p = GENERATORS[key][0].model_validate(data)
    if isinstance(p, AnyNetParams):
        return stages_data(p.stages, p.first_stride, p.block)
    assert isinstance(p, RegNetParams)
    stages = regnet_stages(p)
    if p.stages is not None and len(stages) != p.stages:
        raise ValueError(f"the rule gives {len(stages)} stages, not {p.stages}")
    return stages_data(stages, p.first_stride, p.block, p.group_min_ratio)


def _node(value: Any, mark: Any) -> yaml.Node:
    """Plain data as a YAML node tree whose every node is at ``mark``."""
    if isinstance(value, dict):
        pairs = [(_node(k, mark), _node(v, mark)) for k, v in value.items()]
        return yaml.MappingNode(MAP_TAG, pairs, mark, mark)
    if isinstance(value, list):
        return yaml.SequenceNode(SEQ_TAG, [_node(v, mark) for v in value], mark, mark)
    if isinstance(value, bool):
        return yaml.ScalarNode(BOOL_TAG, "true" if value else "false", mark, mark)
    if isinstance(value, float):
        return yaml.ScalarNode(FLOAT_TAG, repr(value), mark, mark)
    tag = INT_TAG if isinstance(value, int) else STR_TAG
    return yaml.ScalarNode(tag, str(value), mark, mark)


def expand(root: yaml.MappingNode, smap: Any) -> yaml.MappingNode:
    """``root`` with its ``regnet`` or ``anynet`` entry (if any) replaced by the ``stages`` it
    gives, every generated node at the position of the generator's value; a bad parameter,
    or ``stages`` written beside it, is a located SpecError."""
    entries = [i for i, (k, _) in enumerate(root.value) if k.value in KEYS]
    if not entries:
        return root
    key, value = root.value[entries[0]]
    if len(entries) > 1 or any(k.value == "stages" for k, _ in root.value):
        others = " or ".join(["stages", *KEYS])
        raise SpecError(Problem(f"write one of {others}", smap.locate((key.value,), key=True)))
    try:
        stages = generate(key.value, construct(value))
    except ValidationError as exc:
        raise SpecError([_problem(key.value, err, smap) for err in exc.errors()]) from None
    except ValueError as exc:
        raise SpecError(Problem(str(exc), smap.locate((key.value, "stages")))) from None
    name = yaml.ScalarNode(STR_TAG, "stages", key.start_mark, key.end_mark)
    pairs = list(root.value)
    pairs[entries[0]] = (name, _node(stages, value.start_mark))
    out = yaml.MappingNode(root.tag, pairs, root.start_mark, root.end_mark)
    if hasattr(root, "merged_by"):
        out.merged_by = root.merged_by  # type: ignore[attr-defined]  # read by SourceMap
    return out


def _problem(key: str, err: Any, smap: Any) -> Problem:
    from resgraph.spec.loader import format_path

    loc = (key, *err["loc"])
    if err["type"] == "extra_forbidden":
        message = f"unknown key {str(loc[-1])!r}"
    elif err["type"] == "missing":
        message = f"required field '{loc[-1]}' is missing"
        loc = loc[:-1]
    else:
        message = f"{err['msg'][0].lower()}{err['msg'][1:]}, got {err.get('input')!r}"
    return Problem(message, smap.locate(loc), format_path(loc))
