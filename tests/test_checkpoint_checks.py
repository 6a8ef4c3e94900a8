"""Every command that reads weights compares the architecture a run's checkpoint records
with its own spec, with one message that names each differing field and the flags that
give the run's network."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from helpers import CIFAR20
from resgraph.cli import main
from resgraph.emit.graph_module import build_module
from resgraph.emit.source import spec_hash
from resgraph.errors import TrainError
from resgraph.passes import lower
from resgraph.spec import load_spec
from resgraph.weights import architecture, architecture_mismatch, check_architecture, differences

RUN_FLAG = "stages[1].stride=1"  # same tensor shapes, another network


def _record(spec):
    return {"arch_sha256": spec_hash(spec), "architecture": architecture(spec)}


@pytest.fixture
def files(tmp_path):
    """The spec file, and a run's checkpoint trained with --set stages[1].stride=1."""
    spec_path = tmp_path / "net.yaml"
    spec_path.write_text(CIFAR20)
    run = load_spec(spec_path, [RUN_FLAG])
    state = build_module(lower(run), seed=0).state_dict()
    ckpt = tmp_path / "last.pt"
    torch.save({"format": "resgraph-train/1", "model": state, "config": _record(run)}, ckpt)
    return spec_path, ckpt


WARNING = "trained from another architecture (stages[1].stride: the run has 1, the spec 2"


def test_differences_name_nested_fields_and_whole_lists_of_another_length():
    old = {"a": {"b": 1, "c": [1, 2]}, "d": [1], "gone": 0}
    new = {"a": {"b": 2, "c": [1, 3]}, "d": [1, 2]}
    found = differences(old, new)
    assert [p for p, *_ in found] == ["a.b", "a.c[1]", "d", "gone"]
    assert found[0][1:] == (1, 2) and found[2][1:] == ([1], [1, 2])


def test_the_message_names_the_field_and_the_run_s_flags():
    spec = load_spec(CIFAR20)
    run = load_spec(CIFAR20, [RUN_FLAG, "head.dropout=0.5"])
    text = architecture_mismatch(_record(run), spec)
    assert text == (
        "stages[1].stride: the run has 1, the spec 2; head.dropout: the run has 0.5, the spec "
        "0.0 (the run's network: --set 'stages[1].stride=1' --set head.dropout=0.5)"
    )
    assert architecture_mismatch(_record(spec), spec) is None
    again = load_spec(CIFAR20, ["stages[1].stride=1", "head.dropout=0.5"])
    assert spec_hash(again) == spec_hash(run)  # the suggested flags give the run's network


def test_a_long_or_missing_value_is_named_but_no_flag_is_suggested():
    spec = load_spec(CIFAR20)
    record = _record(spec)
    record["arch_sha256"] = "other"
    record["architecture"]["extra"] = 1
    text = architecture_mismatch(record, spec)
    assert text == "extra: the run has 1, the spec no such field"
    record = _record(load_spec(CIFAR20, ["description=" + "x" * 200]))
    text = architecture_mismatch(record, spec)
    assert text.startswith('description: the run has "xxx') and "--set" not in text


def test_resume_refuses_and_other_readers_warn():
    spec, run = load_spec(CIFAR20), load_spec(CIFAR20, [RUN_FLAG])
    seen = []
    check_architecture({"config": _record(run)}, spec, "last.pt", echo=seen.append)
    assert len(seen) == 1 and seen[0].startswith(f"warning: last.pt was {WARNING}")
    with pytest.raises(TrainError, match=r"stages\[1\]\.stride: the run has 1"):
        check_architecture({"config": _record(run)}, spec, "last.pt", resume=True)
    check_architecture({"model": {}}, spec, "plain.pt", resume=True)  # records nothing


def test_export_warns_about_weights_of_another_network(files, tmp_path):
    spec, ckpt = files
    out = tmp_path / "m.pt2"
    result = CliRunner().invoke(main, ["export", str(spec), "-o", str(out), "--weights", str(ckpt)])
    assert result.exit_code == 0, result.output
    assert WARNING in result.stderr
    same = CliRunner().invoke(
        main,
        ["export", str(spec), "-o", str(out), "--force", "--weights", str(ckpt), "--set", RUN_FLAG],
    )
    assert same.exit_code == 0 and "warning" not in same.stderr


def test_import_weights_warns_strict_and_with_a_source_spec(files, tmp_path):
    spec, ckpt = files
    strict = CliRunner().invoke(
        main, ["import-weights", str(spec), str(ckpt), "-o", str(tmp_path / "a.pt")]
    )
    assert strict.exit_code == 0, strict.output
    assert WARNING in strict.stderr
    args = ["import-weights", str(spec), str(ckpt), "-o", str(tmp_path / "b.pt"), "--partial"]
    partial = CliRunner().invoke(main, args)
    assert partial.exit_code == 0 and "warning" not in partial.stderr  # differs on purpose
    sourced = CliRunner().invoke(
        main, [*args, "--force", "--source-spec", str(spec), "--set", "num_classes=7"]
    )
    assert sourced.exit_code == 0, sourced.output
    assert WARNING in sourced.stderr


def test_init_from_warns_about_weights_of_another_network(tmp_path):
    from train_helpers import write_tiny_spec

    spec = write_tiny_spec(tmp_path)
    run = load_spec(spec, [RUN_FLAG])
    ckpt = tmp_path / "last.pt"
    state = build_module(lower(run), seed=0).state_dict()
    torch.save({"format": "resgraph-train/1", "model": state, "config": _record(run)}, ckpt)
    args = ["train", str(spec), "--out", str(tmp_path / "run"), "--init-from", str(ckpt)]
    result = CliRunner().invoke(main, [*args, "--iterations", "1", "--eval-every", "1"])
    assert result.exit_code == 0, result.output
    assert f"warning: {ckpt} was {WARNING}" in result.output


def test_a_record_written_under_older_rules_is_read_by_today_s():
    """A run recorded before the stem's ``kind`` became ``layout`` and before the stem's later
    keys existed (another hash rule too) describes the same network: no difference. A real
    difference in such a record is still named."""
    spec = load_spec(CIFAR20)
    record = _record(spec)
    record["arch_sha256"] = "an-older-rule"
    stem = record["architecture"]["stem"]
    stem["kind"] = stem.pop("layout")
    for key in ("type", "inner_width", "pool", "anti_alias"):
        stem.pop(key)
    assert architecture_mismatch(record, spec) is None
    record["architecture"]["stages"][1]["width"] = 24
    text = architecture_mismatch(record, spec)
    assert text.startswith("stages[1].width: the run has 24, the spec 32")
