"""A located error names the flags and other files that wrote part of what it points at,
so that a line that looks right is never the only place shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import CIFAR20, ROOT
from resgraph.errors import LocatedError
from resgraph.spec import load_spec


def _located(spec, overrides=()):
    from resgraph.passes import lower

    with pytest.raises(LocatedError) as info:
        lower(load_spec(spec, list(overrides)))
    return str(info.value)


def test_a_flag_inside_the_located_stage_is_named(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(CIFAR20)
    text = _located(spec, ["stages[0].width=8"])
    assert text.startswith(f"{spec}:8:5 (with --set 'stages[0].width=8'): stages[0] (layer1.0)")


def test_the_input_flag_is_named_at_a_shape_error(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(CIFAR20)
    text = _located(spec, ["shortcut=D", "input.size=1", "stages[1].repeats=1"])
    assert "(with --set input.size=1, --set 'stages[1].repeats=1'): stages[1] (layer2.0)" in text


def test_a_child_s_key_merged_over_its_base_s_is_named_with_it(tmp_path):
    (tmp_path / "base.yaml").write_text(
        CIFAR20.replace("block: basic", "block: {type: bottleneck, groups: 4}")
    )
    child = tmp_path / "child.yaml"
    child.write_text("base: base.yaml\nblock: {type: basic}\n")
    text = _located(child)
    assert f"{tmp_path / 'base.yaml'}:5:" in text
    assert f"(with {child}:2:15)" in text


def test_nothing_else_is_named_when_one_place_wrote_it(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(CIFAR20.replace("width: 32", "width: 8"))
    assert "(with" not in _located(spec)
    child = tmp_path / "child.yaml"
    (tmp_path / "base.yaml").write_text(CIFAR20.replace("width: 32", "width: 8"))
    child.write_text("base: base.yaml\nname: child\n")
    assert "(with" not in _located(child)  # the root the child wrote is not the place


def test_a_base_path_is_shown_without_dot_dots(monkeypatch):
    monkeypatch.chdir(ROOT)
    text = _located(Path("specs/timm/ecaresnet50d.yaml"), ["input.size=8"])
    assert "specs/resnet50_torchvision.yaml:" in text and ".." not in text


def test_a_flag_merged_into_a_mapping_is_named_at_the_file_s_key(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(CIFAR20.replace("block: basic", "block: {type: bottleneck, groups: 4}"))
    text = _located(spec, ["block.type=basic"])
    assert text.startswith(f"{spec}:5:") and "(with --set block.type=basic): block" in text
    own = _located(spec, ["block.groups=0"])  # the flag's own value: nothing else to name
    assert own.startswith("--set block.groups=0: ")
