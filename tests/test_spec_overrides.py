"""``--set PATH=VALUE`` and ``--input-size N``: validated like the file, errors at the flag."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

import resgraph
from helpers import ROOT, invoke, run_cli
from resgraph.cli import COMMANDS
from resgraph.spec.overrides import Override

R50 = ROOT / "specs" / "resnet50.yaml"
R20 = ROOT / "specs" / "cifar_resnet20.yaml"


def load(*overrides: str, spec: Path = R50) -> resgraph.ModelSpec:
    return resgraph.load_spec(spec, list(overrides))


# --- what an override sets ---------------------------------------------------------------


def test_overrides_set_nested_fields_by_path() -> None:
    spec = load("stages[2].repeats=23", "block.groups=32", "block.base_width=4", "input.size=160")
    assert [s.repeats for s in spec.stages] == [3, 4, 23, 3]
    assert (spec.block.groups, spec.block.base_width, spec.input.size) == (32, 4, 160)
    assert spec.stages[1].repeats == 4  # neighbours untouched
    assert resgraph.load_spec(R50).stages[2].repeats == 6  # the file is not changed


def test_negative_indices_count_from_the_end() -> None:
    spec = load("stages[-1].width=1024", "stages[-4].width=32")
    assert [s.width for s in spec.stages] == [32, 128, 256, 1024]


def test_values_are_yaml_lists_mappings_and_null() -> None:
    spec = load("stages[0]={width: 48, repeats: 1, stride: 1}", "block={type: basic}", "shortcut=A")
    assert (spec.stages[0].width, spec.stages[0].repeats) == (48, 1)
    assert spec.block.type == "basic" and spec.shortcut == "A"
    assert load("stages=[{width: 8, repeats: 1, stride: 1}]").stages[0].width == 8


def test_a_later_override_wins_and_a_missing_mapping_is_created() -> None:
    assert load("input.size=64", "input.size=96").input.size == 96
    text = "name: n\ninput: {channels: 3, size: 32}\nnum_classes: 10\nstem: {layout: cifar}\n"
    text += "block: basic\nstages:\n  - {width: 16, repeats: 1, stride: 1}\n"
    spec = resgraph.load_spec(text, ["train.batch_size=8", "head.dropout=0.5"])
    assert spec.train.batch_size == 8 and spec.head.dropout == 0.5


def test_overrides_apply_after_the_base_chain(tmp_path: Path) -> None:
    child = tmp_path / "child.yaml"
    child.write_text(
        f"base: {R50}\nname: child\nstages:\n"
        + "".join(f"  - {{width: {w}, repeats: 1, stride: {s}}}\n" for w, s in [(64, 1), (128, 2)])
    )
    spec = resgraph.load_spec(child, ["block.groups=8", "stages[1].repeats=3"])
    assert spec.name == "child" and spec.block.groups == 8 and spec.block.type == "bottleneck"
    assert [s.repeats for s in spec.stages] == [1, 3]


def test_one_string_is_one_override() -> None:
    assert resgraph.load_spec(R50, "input.size=128").input.size == 128


def test_overrides_change_the_lowered_network() -> None:
    base = resgraph.summarize(load())
    deeper = resgraph.summarize(load("stages[2].repeats=23"))
    assert deeper.params > base.params
    assert [s.name for s in deeper.stages] == [s.name for s in base.stages]
    small = resgraph.summarize(load("input.size=112"))
    assert small.params == base.params and small.macs < base.macs / 3.5


# --- mistakes are located at the flag ----------------------------------------------------


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "stages[2].repeats=x",
            "--set 'stages[2].repeats=x': stages[2].repeats: must be an integer",
        ),
        ("stages[4].width=3", "--set 'stages[4].width=3': stages has 4 entries, so [4] is out of"),
        ("stages[-5].width=3", "stages has 4 entries, so [-5] is out of range"),
        ("base.name=x", "'base' is read from the file"),
        (
            "stages[0]={width: x, repeats: 1}",
            "--set 'stages[0]={width: x, repeats: 1}': stages[0].width: must be an integer",
        ),
        (
            "block={type: bottleneck, grups: 2}",
            "--set 'block={type: bottleneck, grups: 2}': block: unknown key 'grups'",
        ),
        (
            "stages=[{width: 8, repeats: x}]",
            "--set 'stages=[{width: 8, repeats: x}]': stages[0].repeats: must be an integer",
        ),
        ("stages[7].width=3", "--set 'stages[7].width=3': stages has 4 entries, so [7] is out of"),
        ("block.grups=3", "--set block.grups=3: block: unknown key 'grups' (did you mean 'groups'"),
        ("nonsense", "--set nonsense: expected PATH=VALUE"),
        ("=3", "--set =3: expected PATH=VALUE"),
        ("stages.width=1", "--set stages.width=1: stages is a list of 4, not a mapping"),
        ("name[0]=x", "--set 'name[0]=x': name is a single value, not a list"),
        ("a..b=1", "--set a..b=1: 'a..b' is not a field path"),
        ("block.type=[1,", "--set 'block.type=[1,': the value is not valid YAML"),
        ("block={a: 1, a: 2}", "duplicate key 'a'"),
        ("block=*x", "aliases"),
        ("block=!!python/object:os.system 1", "not valid YAML"),
        ("base=other.yaml", "'base' is read from the file"),
        ("block=" + "[" * 5000 + "]" * 5000, "the value is nested too deeply"),
        ("name=" + "x" * ((1 << 20) + 1), "the value is larger than 1048576 bytes"),
        ("stages[1].stride=0", "--set 'stages[1].stride=0': stages[1].stride: must be a positive"),
    ],
)
def test_a_bad_override_is_reported_at_its_flag(override: str, message: str) -> None:
    with pytest.raises(resgraph.SpecError) as info:
        load(override)
    assert message in str(info.value), str(info.value)
    assert "resnet50.yaml:" not in str(info.value)  # not at a line of the file


def test_a_lowering_error_from_an_override_points_at_the_flag() -> None:
    with pytest.raises(resgraph.ResgraphError) as info:
        resgraph.lower(load("stem.width=0"))
    assert str(info.value).startswith("--set stem.width=0: stem.width"), str(info.value)


def test_the_input_size_flag_is_named_in_its_errors() -> None:
    res = invoke("summary", R20, "--input-size", "0")
    assert res.exit_code == 1
    assert res.output.startswith("error: --input-size 0: input.size"), res.output
    assert len(res.output.strip().splitlines()) == 1


@pytest.mark.subprocess
def test_a_cli_mistake_is_one_error_line_without_traceback() -> None:
    res = run_cli("summary", str(R50), "--set", "stages[2].repeats=-1")
    assert res.returncode == 1 and res.stdout == ""
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --set 'stages[2].repeats=-1': "), lines


def test_a_non_string_override_is_refused() -> None:
    with pytest.raises(resgraph.SpecError, match="PATH=VALUE"):
        resgraph.load_spec(R50, [3])  # type: ignore[list-item]


# --- every command that reads a spec takes --set ----------------------------------------


def test_every_spec_command_takes_set() -> None:
    # pack takes a folder, analyze sweep folders
    takes_spec = {n for n in COMMANDS if n not in ("schema", "pack", "analyze")}
    for name in takes_spec:
        res = invoke(name, "--help")
        assert "--set PATH=VALUE" in res.output, name


@pytest.mark.parametrize(
    "args",
    [
        ["validate", R20],
        ["summary", R20, "--json"],
        ["show", R20],
        ["lower", R20],
        ["render", R20, "--format", "dot", "-o", "{tmp}/x.dot"],
        ["build", R20, "-o", "{tmp}"],
        ["diff", R20, R20],
    ],
)
def test_each_command_applies_the_override(args: list[object], tmp_path: Path) -> None:
    args = [str(a).replace("{tmp}", str(tmp_path)) for a in args]
    res = invoke(*args, "--set", "stages[0].width=24", "--set", "stages[2].repeats=5")
    differs = args[0] == "diff"  # diff's status says that the networks differ, as diff(1)
    assert res.exit_code == (1 if differs else 0), res.output
    out = res.output + "".join(p.read_text() for p in tmp_path.iterdir())
    bad = invoke(*args, "--set", "stages[0].width=-3")
    assert bad.exit_code == (2 if differs else 1) and "--set 'stages[0].width=-3'" in bad.output
    # each command's output shows the overridden network, not the file's
    params = resgraph.summarize(load("stages[0].width=24", "stages[2].repeats=5", spec=R20)).params
    assert params != resgraph.summarize(load(spec=R20)).params
    width = {"validate": f"{params:,} parameters", "summary": f'"params": {params}'}
    width |= {"show": "width: 24", "lower": "24x32x32", "render": "24x32x32"}
    width |= {"build": f"Parameters: {params:,}", "diff": f"{params:,}"}
    assert width[args[0]] in out, out[:2000]


def test_build_records_the_flags_and_its_regenerate_command_reproduces_the_file(
    tmp_path: Path,
) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    res = invoke("build", R20, "-o", first, "--set", "stages[2].repeats=1", "--input-size", "64")
    assert res.exit_code == 0, res.output
    text = (first / "cifar_resnet20.py").read_text()
    assert "--set 'stages[2].repeats=1' --input-size 64" in text  # in the order typed
    assert "per 3x64x64 input" in text
    line = next(x for x in text.splitlines() if x.strip().startswith("resgraph build"))
    command = shlex.split(line.replace("-o DIR", f"-o {second}"))[1:]
    assert invoke(*command).exit_code == 0
    assert (second / "cifar_resnet20.py").read_text() == text


def test_input_size_changes_macs_not_parameters(tmp_path: Path) -> None:
    import json

    small = json.loads(invoke("summary", R50, "--json", "--input-size", "160").output)
    spec = tmp_path / "r50_160.yaml"
    spec.write_text(R50.read_text().replace("size: 224", "size: 160"))
    written = json.loads(invoke("summary", spec, "--json").output)
    assert small["input"] == "3x160x160"
    assert (small["params"], small["macs"]) == (written["params"], written["macs"])
    full = json.loads(invoke("summary", R50, "--json").output)
    assert small["params"] == full["params"] and small["macs"] < full["macs"]


def test_render_states_the_input_size(tmp_path: Path) -> None:
    out = tmp_path / "r.dot"
    assert invoke("render", R50, "--input-size", "192", "--format", "dot", "-o", out).exit_code == 0
    assert "input 3x192x192" in out.read_text()


def test_diff_sets_change_b_only_and_input_size_both() -> None:
    res = invoke("diff", R50, R50, "--json", "--set", "block.groups=32")
    import json

    data = json.loads(res.output)
    assert data["b"].endswith("--set block.groups=32") and data["a"] == str(R50)
    assert data["totals"]["params"][0] < data["totals"]["params"][1]
    same = json.loads(invoke("diff", R50, R50, "--json", "--input-size", "128").output)
    assert same["same_ir"] and same["totals"]["input"] == ["3x128x128", "3x128x128"]
    assert same["totals"]["MACs"][1] == resgraph.summarize(load("input.size=128")).macs


def test_override_objects_keep_the_flag_that_made_them() -> None:
    assert Override("input.size=64", "--input-size 64").flag == "--input-size 64"
    assert Override("stages[1].width=3").flag == "--set 'stages[1].width=3'"
    assert Override("block.groups=3") == "block.groups=3"


@pytest.mark.slow
def test_export_applies_overrides(tmp_path: Path) -> None:
    import torch

    from resgraph.export import export_spec

    out = tmp_path / "net.pt2"
    export_spec(R20, out, batch=1, overrides=["stages[0].width=24", "input.size=16"])
    program = torch.export.load(str(out))
    assert program.state_dict["layer1.0.conv1.weight"].shape == (24, 16, 3, 3)
    logits = program.module()(torch.zeros(1, 3, 16, 16))
    assert logits.shape == (1, 10)


def test_outputs_flag_makes_a_backbone_and_its_mistakes_name_the_flag() -> None:
    import json

    res = invoke("summary", R50, "--json", "--outputs", "layer3, layer2")
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["backbone"] is True
    assert [(f["name"], f["channels"], f["stride"]) for f in data["feature_info"]] == [
        ("layer2", 512, 8),
        ("layer3", 1024, 16),
    ]
    assert data["params"] == resgraph.summarize(load("outputs=[layer2, layer3]")).params
    bad = invoke("summary", R50, "--outputs", "layer2,layr3")
    assert bad.exit_code == 1
    assert bad.output.startswith("error: --outputs layer2,layr3: outputs[1]: unknown feature map")
    assert "did you mean 'layer3'" in bad.output


def test_a_partial_import_into_an_overridden_spec(tmp_path: Path) -> None:
    import json

    import torch

    source = tmp_path / "r20.pt"
    torch.save(resgraph.build_model(R20, seed=0).state_dict(), source)
    out = tmp_path / "grey.pt"
    res = invoke("import-weights", R20, source, "-o", out, "--partial", "--set", "input.channels=1")
    assert res.exit_code == 0, res.output
    report = json.loads(out.with_suffix(".transfer.json").read_text())
    assert report["spec"].endswith("--set input.channels=1")
    assert report["totals"]["adapted"]["tensors"] == 1
    state = torch.load(out, weights_only=True)
    assert state["conv1.weight"].shape == (16, 1, 3, 3)


def test_a_very_long_flag_is_shortened_in_the_message() -> None:
    with pytest.raises(resgraph.SpecError) as info:
        load("name=" + "y" * 5000)
    text = str(info.value)
    assert text.startswith("--set name=yyyy") and " ...: name: " in text
    assert len(text.split(": name: ")[0]) == 100
