"""zero_init_residual is refused where it could zero nothing, and kept where it can."""

from __future__ import annotations

import pytest

from resgraph import load_spec
from resgraph.errors import SpecError

SPEC = """\
name: t
input: {{channels: 3, size: 32}}
num_classes: 10
stem: {{layout: cifar, width: 16}}
block: {block}
zero_init_residual: true
shortcut: {shortcut}
stages:
  - {{width: 16, repeats: 1}}
  - {stage2}
"""
PLAIN_STAGE = "{width: 32, repeats: 1, stride: 2}"


@pytest.mark.parametrize(
    ("block", "shortcut"),
    [
        ("{type: basic, preactivation: true}", "B"),
        ("{type: bottleneck, preactivation: true}", "none"),
    ],
)
def test_nothing_to_zero_is_refused_at_the_flag(block: str, shortcut: str) -> None:
    text = SPEC.format(block=block, shortcut=shortcut, stage2=PLAIN_STAGE)
    with pytest.raises(SpecError) as info:
        load_spec(text)
    assert len(info.value.problems) == 1
    problem = info.value.problems[0]
    assert problem.loc is not None and problem.loc.line == 6
    assert problem.loc.path == "zero_init_residual"
    assert problem.message.startswith("no block has a BN at the end of its branch to zero")


@pytest.mark.parametrize(
    ("block", "shortcut", "stage2"),
    [
        ("basic", "B", PLAIN_STAGE),
        ("{type: bottleneck}", "A", PLAIN_STAGE),
        # a plain counterpart of a residual spec keeps the flag (its blocks are left alone)
        ("basic", "none", PLAIN_STAGE),
        # one post-activation stage among pre-activation ones still has a BN to zero
        (
            "{type: basic, preactivation: true}",
            "B",
            "{width: 32, repeats: 1, stride: 2, block: {type: basic}}",
        ),
    ],
)
def test_a_block_with_a_last_bn_keeps_the_flag(block: str, shortcut: str, stage2: str) -> None:
    spec = load_spec(SPEC.format(block=block, shortcut=shortcut, stage2=stage2))
    assert spec.zero_init_residual
