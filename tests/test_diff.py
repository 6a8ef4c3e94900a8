"""``resgraph diff``: stage-by-stage differences between two specs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import ROOT, run_cli
from resgraph import load_spec, summarize
from resgraph.diff import diff_specs

SPECS = ROOT / "specs"


def diff(a: str | Path, b: str | Path):
    pa = a if isinstance(a, Path) else SPECS / f"{a}.yaml"
    pb = b if isinstance(b, Path) else SPECS / f"{b}.yaml"
    return diff_specs(load_spec(pa), load_spec(pb), str(pa), str(pb))


def fields(d) -> dict[str, dict]:
    return {s.name: s.fields for s in d.stages}


def test_paper_and_torchvision_resnet50_differ_in_stride_placement_only() -> None:
    d = diff("resnet50", "resnet50_torchvision")
    f = fields(d)
    assert not d.same_ir
    assert set(f) == {"layer1", "layer2", "layer3", "layer4"}
    # layer1 has no stride: only the option differs
    assert f["layer1"] == {"block": ("stride_on=1x1", "stride_on=3x3")}
    for stage in ("layer2", "layer3", "layer4"):
        assert set(f[stage]) == {"block", "strided layers", "MACs"}
        a, b = f[stage]["strided layers"]
        assert f"{stage}.0.conv1 (1x1 conv" in a and f"{stage}.0.conv2 (3x3 conv" in b
        assert f[stage]["MACs"][1] > f[stage]["MACs"][0]
    pa, pb = d.totals["params"]
    ma, mb = d.totals["MACs"]
    assert pa == pb == summarize(load_spec(SPECS / "resnet50.yaml")).params
    assert mb - ma == sum(f[s]["MACs"][1] - f[s]["MACs"][0] for s in ("layer2", "layer3", "layer4"))


def test_residual_and_plain_differ_in_shortcuts() -> None:
    d = diff("cifar_resnet20", "cifar_plain20")
    f = fields(d)
    assert set(f) == {"layer1", "layer2", "layer3"}
    assert f["layer1"]["shortcut"] == ("A", "none")
    assert f["layer1"]["shortcut outcome"] == ("identity x3", "none x3")
    assert f["layer2"]["shortcut outcome"] == ("zero-pad 16->32, /2 x1, identity x2", "none x3")
    assert "params" not in f["layer2"] and "MACs" not in f["layer2"]
    assert d.totals["params"][0] == d.totals["params"][1] == 269_722
    assert d.totals["ops"][0] > d.totals["ops"][1]  # the adds and the padding shortcuts


@pytest.mark.subprocess
def test_same_network_under_another_name(tmp_path: Path) -> None:
    data = yaml.safe_load((SPECS / "cifar_resnet20.yaml").read_text())
    data["name"] = "Another name"
    data["description"] = "the same network"
    data["train"] = {"lr": 0.05}
    copy = tmp_path / "copy.yaml"
    copy.write_text(yaml.safe_dump(data))
    d = diff("cifar_resnet20", copy)
    assert d.same_ir and d.stages == []
    r = run_cli("diff", str(SPECS / "cifar_resnet20.yaml"), str(copy))
    assert r.returncode == 0 and "lower to the same network" in r.stdout


def test_one_changed_width(tmp_path: Path) -> None:
    data = yaml.safe_load((SPECS / "cifar_resnet20.yaml").read_text())
    data["stages"][2]["width"] = 96
    other = tmp_path / "wide3.yaml"
    other.write_text(yaml.safe_dump(data))
    d = diff("cifar_resnet20", other)
    f = fields(d)
    assert not d.same_ir
    assert set(f) == {"layer3", "head"}
    assert f["layer3"]["width"] == (64, 96)
    assert f["layer3"]["output"] == ("64x8x8", "96x8x8")
    assert f["layer3"]["shortcut outcome"][1].startswith("zero-pad 32->96")
    assert f["head"]["params"] == (650, 970)


def test_network_options_and_added_ops() -> None:
    d = diff("cifar_resnet110", "cifar_resnet110_stochastic_depth")
    f = fields(d)
    assert "stochastic_depth" in f["network"]["options"][1]
    assert all(f[s]["ops"][1] > f[s]["ops"][0] for s in ("layer1", "layer2", "layer3"))
    assert d.totals["params"][0] == d.totals["params"][1]


def test_extra_stage(tmp_path: Path) -> None:
    data = yaml.safe_load((SPECS / "cifar_resnet20.yaml").read_text())
    data["stages"].append({"width": 128, "repeats": 1, "stride": 2})
    other = tmp_path / "four.yaml"
    other.write_text(yaml.safe_dump(data))
    f = fields(diff("cifar_resnet20", other))
    assert f["layer4"]["stage"] == ("absent", "present")
    assert f["layer4"]["output"] == (None, "128x4x4")


@pytest.mark.subprocess
def test_cli_json_and_errors(tmp_path: Path) -> None:
    a, b = str(SPECS / "resnet50.yaml"), str(SPECS / "resnet50_torchvision.yaml")
    r = run_cli("diff", a, b, "--json")
    assert r.returncode == 1, r.stderr  # they differ
    data = json.loads(r.stdout)
    assert r.stdout == json.dumps(data, indent=2) + "\n"  # two-space indents
    assert data["same_ir"] is False
    assert [s["name"] for s in data["stages"]] == ["layer1", "layer2", "layer3", "layer4"]
    assert data["totals"]["params"][0] == data["totals"]["params"][1]
    text = run_cli("diff", a, b)
    assert "stride_on=1x1" in text.stdout and "total MACs" in text.stdout
    missing = run_cli("diff", a, str(tmp_path / "missing.yaml"))
    lines = missing.stderr.strip().splitlines()
    assert missing.returncode == 2 and len(lines) == 1 and lines[0].startswith("error:")


@pytest.mark.subprocess
def test_diff_answers_without_torch() -> None:
    code = (
        "import sys\n"
        "from resgraph import load_spec\n"
        "from resgraph.diff import diff_specs, format_text\n"
        f"d = diff_specs(load_spec({str(SPECS / 'cifar_resnet20.yaml')!r}), "
        f"load_spec({str(SPECS / 'cifar_plain20.yaml')!r}))\n"
        "format_text(d)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr


def test_the_text_table_names_each_stage_once_and_shows_macs_in_si() -> None:
    from resgraph.diff import format_text

    text = format_text(diff(SPECS / "resnet18.yaml", SPECS / "resnet34.yaml"))
    lines = text.splitlines()
    starts = [line.split()[0] for line in lines if line.startswith("layer")]
    assert starts == ["layer1", "layer2", "layer3", "layer4"]
    layer1 = lines.index(next(line for line in lines if line.startswith("layer1")))
    assert lines[layer1 + 1].startswith("        blocks ")  # a stage's later rows: no name
    macs = next(line for line in lines[layer1:] if line.split()[:1] == ["MACs"])
    assert macs.split()[1:] == ["462.42M", "693.63M", "+231.21M", "(+50.0%)"]
    assert "total MACs: 1.81G vs 3.66G  +1.85G (+102.0%)" in text


def test_a_stem_change_shows_the_stem_options() -> None:
    d = diff_specs(
        load_spec(SPECS / "resnet18.yaml"), load_spec(SPECS / "resnet18.yaml", ["stem.width=32"])
    )
    stem = next(s for s in d.stages if s.name == "stem")
    assert stem.fields["block"] == ("width=64", "width=32")
