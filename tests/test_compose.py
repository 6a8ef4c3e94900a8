"""Spec composition: `base:` chains merged key by key, errors located in the file that wrote
the value, cycles and missing or too-deep bases refused, and `resgraph show`."""

from __future__ import annotations

import pytest
import yaml

from helpers import ROOT, run_cli
from resgraph import SpecError, load_spec
from resgraph.spec.compose import MAX_BASE_DEPTH
from resgraph.spec.schema import ModelSpec

BASE = """\
name: Base net
input: {channels: 3, size: 32}
num_classes: 10
stem: {layout: cifar, width: 16}
block: {type: basic, convs: 2}
shortcut: A
stages:
  - {width: 16, repeats: 1, stride: 1}
  - {width: 32, repeats: 1, stride: 2}
"""


def _write(folder, name, text):
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _error_lines(path) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_spec(path)
    return str(info.value).splitlines()


def test_mappings_merge_key_by_key_and_lists_are_replaced_whole(tmp_path):
    _write(tmp_path, "base.yaml", BASE)
    child = _write(
        tmp_path,
        "child.yaml",
        "base: base.yaml\nname: Child\nblock: {convs: 3}\n"
        "stages:\n  - {width: 8, repeats: 2, stride: 1}\n",
    )
    spec = load_spec(child)
    assert spec.name == "Child"
    assert spec.block.type == "basic" and spec.block.convs == 3  # merged, type kept from base
    assert spec.stem.width == 16 and spec.shortcut == "A"  # untouched keys come from the base
    assert [(s.width, s.repeats) for s in spec.stages] == [(8, 2)]  # the list replaced whole


def test_a_child_that_changes_nothing_equals_its_base(tmp_path):
    base = _write(tmp_path, "base.yaml", BASE)
    child = _write(tmp_path, "sub/child.yaml", "base: ../base.yaml\n")
    assert load_spec(child).model_dump() == load_spec(base).model_dump()


def test_chains_apply_in_order_nearest_file_last(tmp_path):
    _write(tmp_path, "a.yaml", BASE)
    _write(tmp_path, "b.yaml", "base: a.yaml\nnum_classes: 20\nstem: {width: 24}\n")
    c = _write(tmp_path, "c.yaml", "base: b.yaml\nnum_classes: 30\n")
    spec = load_spec(c)
    assert spec.num_classes == 30 and spec.stem.width == 24 and spec.stem.layout == "cifar"


def test_the_repository_example_composes_onto_torchvision_resnet50(tmp_path):
    child = _write(
        tmp_path,
        "child.yaml",
        f"base: {ROOT / 'specs' / 'resnet50_torchvision.yaml'}\nname: Smaller\nnum_classes: 10\n",
    )
    spec, parent = load_spec(child), load_spec(ROOT / "specs" / "resnet50_torchvision.yaml")
    assert spec.num_classes == 10
    assert spec.stages == parent.stages and spec.block == parent.block


def test_an_error_in_the_base_points_at_the_base_file_and_line(tmp_path):
    base = _write(
        tmp_path, "base.yaml", BASE.replace("{width: 32, repeats: 1", "{width: -3, repeats: 1")
    )
    child = _write(tmp_path, "child.yaml", "base: base.yaml\nname: Child\n")
    assert _error_lines(child) == [
        f"{base}:9:13: stages[1].width: must be a positive integer, got -3"
    ]


def test_an_error_in_the_child_points_at_the_child(tmp_path):
    _write(tmp_path, "base.yaml", BASE)
    child = _write(tmp_path, "child.yaml", "base: base.yaml\nname: Child\nstem: {width: 0}\n")
    assert _error_lines(child) == [f"{child}:3:15: stem.width: must be a positive integer, got 0"]


def test_a_combination_error_is_located_where_the_deciding_value_was_written(tmp_path):
    base = _write(tmp_path, "base.yaml", BASE.replace("convs: 2", "convs: 2, join: gate"))
    child = _write(tmp_path, "child.yaml", "base: base.yaml\nshortcut: none\n")
    lines = _error_lines(child)
    assert lines == [
        f"{child}:2:11: shortcut: gated joins need a shortcut to gate: use shortcut A, B, C "
        "or identity, or join 'add'"
    ]
    assert str(base) not in lines[0]


def test_missing_base_is_located_at_the_base_key(tmp_path):
    child = _write(tmp_path, "child.yaml", "name: Child\nbase: nowhere.yaml\n")
    [line] = _error_lines(child)
    assert line.startswith(f"{child}:2:7: base: ")
    assert "nowhere.yaml: no such spec file" in line


def test_base_paths_are_relative_to_the_spec_not_the_working_folder(tmp_path, monkeypatch):
    _write(tmp_path, "specs/base.yaml", BASE)
    child = _write(tmp_path, "specs/timm/child.yaml", "base: ../base.yaml\nname: Child\n")
    monkeypatch.chdir(tmp_path / "specs" / "timm" / "..")  # anywhere but the child's folder
    assert load_spec(child).name == "Child"


def test_spec_text_resolves_its_base_from_the_working_folder(tmp_path, monkeypatch):
    _write(tmp_path, "base.yaml", BASE)
    monkeypatch.chdir(tmp_path)
    assert load_spec("base: base.yaml\nname: From text\n").stem.width == 16


def test_cycles_are_refused_with_the_chain(tmp_path):
    a = _write(tmp_path, "a.yaml", "base: b.yaml\nname: A\n")
    _write(tmp_path, "b.yaml", "base: a.yaml\nname: B\n")
    [line] = _error_lines(a)
    assert "the chain of bases comes back to a spec it started from" in line
    assert line.endswith(f"{a.resolve()} -> {(tmp_path / 'b.yaml').resolve()} -> {a.resolve()}")
    assert line.startswith(f"{tmp_path / 'b.yaml'}:1:7: base: ")  # where the loop closes


def test_a_spec_that_names_itself_is_a_cycle(tmp_path):
    a = _write(tmp_path, "a.yaml", "base: ./a.yaml\nname: A\n")
    assert "comes back" in _error_lines(a)[0]


def test_chains_deeper_than_the_limit_are_refused(tmp_path):
    _write(tmp_path, "s0.yaml", BASE)
    for i in range(1, MAX_BASE_DEPTH + 1):
        _write(tmp_path, f"s{i}.yaml", f"base: s{i - 1}.yaml\n")
    assert load_spec(tmp_path / f"s{MAX_BASE_DEPTH}.yaml").name == "Base net"  # at the limit
    top = _write(tmp_path, "top.yaml", f"base: s{MAX_BASE_DEPTH}.yaml\n")
    [line] = _error_lines(top)
    assert f"more than {MAX_BASE_DEPTH} levels of base" in line


@pytest.mark.parametrize("value", ["[a.yaml]", "{path: a.yaml}", "3", "''", "null"])
def test_base_must_be_a_path_string(tmp_path, value):
    child = _write(tmp_path, "child.yaml", f"name: Child\nbase: {value}\n")
    [line] = _error_lines(child)
    assert line.startswith(f"{child}:2:7: base: must be the path of a spec file")


def test_yaml_errors_in_the_base_are_located_in_the_base(tmp_path):
    base = _write(tmp_path, "base.yaml", BASE + "stem: {width: 8}\n")  # a duplicate key
    child = _write(tmp_path, "child.yaml", "base: base.yaml\n")
    [line] = _error_lines(child)
    assert line.startswith(f"{base}:10:1: ") and "duplicate key 'stem'" in line


def test_model_spec_refuses_an_unresolved_base():
    data = yaml.safe_load(BASE) | {"base": "other.yaml"}
    with pytest.raises(ValueError, match="'base' is resolved when a spec file is loaded"):
        ModelSpec.model_validate(data)


@pytest.mark.subprocess
def test_show_prints_the_merged_spec_that_loads_back_to_the_same_model(tmp_path):
    _write(tmp_path, "base.yaml", BASE)
    child = _write(tmp_path, "child.yaml", "base: base.yaml\nname: Child\nstem: {width: 8}\n")
    result = run_cli("show", str(child))
    assert result.returncode == 0, result.stderr
    assert "base" not in yaml.safe_load(result.stdout)
    merged = _write(tmp_path, "merged.yaml", result.stdout)
    assert load_spec(merged).model_dump() == load_spec(child).model_dump()
    assert "stem: {layout: cifar, width: 8}" in result.stdout  # the written flow style is kept


@pytest.mark.subprocess
def test_show_reports_a_bad_base_in_one_line(tmp_path):
    child = _write(tmp_path, "child.yaml", "base: missing.yaml\n")
    result = run_cli("show", str(child))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith(f"error: {child}:1:7: base: ")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
