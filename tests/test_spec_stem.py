"""The stem's kernel and pool 'none': RegNet's stem (Radosavovic et al. 2020: one 3x3/2 conv,
BN, ReLU, no pool), the ops it lowers to, the two engines agreeing, and the located errors."""

from __future__ import annotations

import pytest
from test_families import _agree

from helpers import run_cli
from resgraph import SpecError, load_spec, lower
from resgraph.ops import BatchNorm, Conv, MaxPool

NET = """\
name: Stem test net
input: {channels: 3, size: SIZE}
num_classes: 10
stem: {STEM}
stages:
  - {width: 8, repeats: 1, stride: 1}
  - {width: 16, repeats: 1, stride: 2}
"""


def _text(stem: str, size: int = 32) -> str:
    return NET.replace("SIZE", str(size)).replace("STEM", stem)


def _stem_ops(ir) -> dict:
    return {n.name: n.op for n in ir.nodes() if n.name in ("conv1", "bn1", "relu", "maxpool")}


def test_regnet_stem_is_one_3x3_stride_2_conv_without_a_pool():
    ir = lower(load_spec(_text("width: 16, kernel: 3, pool: none", size=35)))
    ops = _stem_ops(ir)
    assert list(ops) == ["conv1", "bn1", "relu"]
    assert ops["conv1"] == Conv(3, 16, 3, 2, 1)
    assert ops["bn1"] == BatchNorm(16)
    assert ir.node("relu").shape == (16, 18, 18)  # 35 -> ceil(35 / 2) by the conv alone


def test_the_kernel_sets_the_conv_and_its_padding_and_keeps_the_layouts_stride():
    imagenet = lower(load_spec(_text("width: 16, kernel: 5")))
    assert _stem_ops(imagenet)["conv1"] == Conv(3, 16, 5, 2, 2)
    assert _stem_ops(imagenet)["maxpool"] == MaxPool(3, 2, 1)  # the pool stays
    cifar = lower(load_spec(_text("layout: cifar, width: 16, kernel: 5")))
    assert _stem_ops(cifar)["conv1"] == Conv(3, 16, 5, 1, 2)
    assert cifar.node("relu").shape == (16, 32, 32)


@pytest.mark.parametrize(("stem", "kernel"), [("width: 16", 7), ("layout: cifar, width: 16", 3)])
def test_a_stem_without_a_kernel_keeps_the_papers_conv(stem, kernel):
    conv = _stem_ops(lower(load_spec(_text(stem))))["conv1"]
    assert (conv.kernel, conv.padding) == (kernel, kernel // 2)


def test_engines_agree_on_the_regnet_stem():
    graph, _ = _agree(lower(load_spec(_text("width: 16, kernel: 3, pool: none", size=35))))
    assert not hasattr(graph, "maxpool")


@pytest.mark.parametrize(
    ("stem", "value", "message"),
    [
        ("width: 16, kernel: 4", "4", "stem.kernel: must be odd (a centred kernel), got 4"),
        ("width: 16, kernel: 13", "13", "stem.kernel: must be <= 11, got 13"),
        (
            "width: 16, type: deep, kernel: 3",
            "3",
            "stem.kernel: a deep stem is 3x3 convs: kernel is for a single stem's conv",
        ),
        (
            "width: 16, pool: none, anti_alias: avgpool",
            "avgpool",
            "stem.anti_alias: pool 'none' leaves no pool to anti-alias",
        ),
        (
            "layout: cifar, width: 16, pool: none",
            "none",
            "stem.pool: a cifar stem is one 3x3 conv without a pool",
        ),
    ],
)
def test_a_bad_kernel_or_pool_is_one_located_error_line(write_spec, stem, value, message):
    path = write_spec(_text(stem))
    where = f"{path}:4:{len('stem: {') + stem.rindex(value) + 1}: {message}"
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(info.value).startswith(where)
    assert len(info.value.problems) == 1


@pytest.mark.subprocess
def test_validate_prints_the_stem_error_as_one_line(write_spec):
    path = write_spec(_text("width: 16, kernel: 4"))
    res = run_cli("validate", str(path))
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert lines == [f"error: {path}:4:27: stem.kernel: must be odd (a centred kernel), got 4"]
