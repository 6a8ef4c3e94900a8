"""The spec language's documented limits hold at their exact boundary: blocks, stages,
widths, repeats, input size and classes."""

from __future__ import annotations

import pytest

import resgraph
from helpers import CIFAR20

# --- limits at their boundary ---------------------------------------------------------------


def _stages(*repeats: int) -> str:
    head = CIFAR20.split("stages:")[0]
    return head + "stages:\n" + "".join(f"  - {{width: 16, repeats: {r}}}\n" for r in repeats)


def _refused(text: str) -> str:
    with pytest.raises(resgraph.SpecError) as info:
        resgraph.load_spec(text)
    return str(info.value)


def test_two_thousand_blocks_are_accepted_two_thousand_and_one_refused() -> None:
    assert sum(s.repeats for s in resgraph.load_spec(_stages(1000, 1000)).stages) == 2000
    message = _refused(_stages(1000, 1000, 1))
    assert "2000" in message and "2001" in message


@pytest.mark.parametrize(
    "old, limit",
    [
        ("num_classes: 10", "num_classes: {}"),
        ("{width: 16, repeats: 1, stride: 1}", "{{width: {}, repeats: 1, stride: 1}}"),
        ("{width: 16, repeats: 1, stride: 1}", "{{width: 16, repeats: {}, stride: 1}}"),
        ("size: 32", "size: {}"),
    ],
    ids=["classes", "width", "repeats", "input size"],
)
def test_documented_limits_hold_at_their_boundary(old: str, limit: str) -> None:
    """docs/spec.md: width <= 65,536, repeats <= 1000, input size <= 2048, classes <= 100,000."""
    value = {"classes": 100_000, "width": 65_536, "repeats": 1000, "input size": 2048}[
        {"num_classes: {}": "classes", "size: {}": "input size"}.get(
            limit, "width" if "width: {}" in limit else "repeats"
        )
    ]
    resgraph.load_spec(CIFAR20.replace(old, limit.format(value)))
    assert str(value + 1) in _refused(CIFAR20.replace(old, limit.format(value + 1)))


def test_sixteen_stages_are_accepted_seventeen_refused() -> None:
    assert len(resgraph.load_spec(_stages(*[1] * 16)).stages) == 16
    assert "16" in _refused(_stages(*[1] * 17))


def _anynet(depth: int, first_stride: int) -> str:
    head = CIFAR20.split("stages:")[0]
    stage = f"{{depth: {depth}, width: 16, group_width: 8}}"
    return head + f"anynet: {{stages: [{stage}], first_stride: {first_stride}}}\n"


def test_anynet_depth_and_first_stride_hold_at_their_boundary() -> None:
    spec = resgraph.load_spec(_anynet(1, 2))
    assert [(s.repeats, s.stride) for s in spec.stages] == [(1, 2)]
    assert resgraph.load_spec(_anynet(1, 1)).stages[0].stride == 1
    assert "anynet.stages[0].depth: input should be greater than or equal to 1" in _refused(
        _anynet(0, 2)
    )
    assert "anynet.first_stride: input should be less than or equal to 2" in _refused(_anynet(1, 3))


def _regnet(w0: int, wa: float, depth: int) -> str:
    head = CIFAR20.split("stages:")[0]
    return head + f"regnet: {{w0: {w0}, wa: {wa}, wm: 2.0, depth: {depth}, group_width: 8}}\n"


def test_the_regnet_rule_gives_widths_up_to_the_width_limit() -> None:
    """timm's regnety_2560 reaches 10,444 channels; the limit is an op field's, 65,536."""
    stages = resgraph.load_spec(_regnet(1024, 1024.0, 48)).stages
    assert max(s.widths[0][-1] for s in stages) == 65_536  # type: ignore[index]
    message = _refused(_regnet(1024, 1024.0, 100))
    assert "regnet.stages: the rule gives a width of 131072, above 65536" in message
