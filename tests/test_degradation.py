"""benchmarks/degradation.py: the specs it trains, and a smoke run of the whole script."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from helpers import ROOT, load_script
from resgraph import load_spec, summarize

SCRIPT = ROOT / "benchmarks" / "degradation.py"


@pytest.fixture(scope="module")
def deg():
    return load_script(SCRIPT)


def test_specs_carry_the_recipe(deg, tmp_path: Path) -> None:
    args = deg.parse_args(["--out", str(tmp_path), "--iterations", "40", "--seed", "3"])
    path = deg.write_spec(deg.Net("resnet", 56, 3), args, tmp_path)
    data = yaml.safe_load(path.read_text())
    assert data["input"]["size"] == 8
    assert data["train"] == {
        "dataset": "digits",
        "iterations": 40,
        "batch_size": args.batch_size,
        "lr": 0.1,
        "warmup_lr": 0.01,
        "warmup_until_error": 0.8,
        "eval_every": args.eval_every,
        "augment": False,
        "seed": 3,
    }
    spec = load_spec(path)  # a valid spec: the bundled ResNet-56 at 8x8
    assert spec.train.warmup_lr == 0.01
    assert summarize(spec).params == summarize(load_spec(ROOT / "specs/cifar_resnet56.yaml")).params


def test_plain_net_without_a_bundled_spec(deg, tmp_path: Path) -> None:
    args = deg.parse_args(["--out", str(tmp_path)])
    plain = load_spec(deg.write_spec(deg.Net("plain", 110, 0), args, tmp_path))
    residual = load_spec(deg.write_spec(deg.Net("resnet", 110, 0), args, tmp_path))
    assert {plain.stage_shortcut(i) for i in range(3)} == {"none"}
    assert {residual.stage_shortcut(i) for i in range(3)} == {"A"}
    # a plain net has the residual net's weights: option A shortcuts have none
    assert summarize(plain).params == summarize(residual).params


def test_bad_depth_is_refused(deg) -> None:
    with pytest.raises(SystemExit):
        deg.parse_args(["--depths", "21"])


def test_errors_average_the_last_rows(deg) -> None:
    rows = [{"train_error": e, "test_error": 2 * e} for e in (0.9, 0.3, 0.2, 0.1)]
    w = deg.last_window(rows)
    assert w["train_error"] == pytest.approx(0.2) and w["test_error"] == pytest.approx(0.4)


def test_rewriting_the_results_keeps_their_notes(deg, tmp_path: Path) -> None:
    results = tmp_path / "degradation_RESULTS.md"
    assert deg.with_notes("| new |\n", results) == "| new |\n"  # no file yet
    results.write_text("| old |\n\n" + deg.NOTES + "\n\nWhat it shows.\n")
    assert deg.with_notes("| new |\n", results) == (
        "| new |\n\n" + deg.NOTES + "\n\nWhat it shows.\n"
    )
    results.write_text("| old |\nno notes\n")
    assert deg.with_notes("| new |\n", results) == "| new |\n"


def test_the_committed_results_keep_their_notes(deg) -> None:
    assert deg.NOTES in deg.RESULTS.read_text()


@pytest.mark.subprocess  # the script trains each net with `python -m resgraph train`
def test_smoke_run_draws_the_figure(deg, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert deg.main(["--smoke", "--jobs", "2", "--out", str(tmp_path)]) == 0
    png = tmp_path / "degradation.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = (tmp_path / "degradation_RESULTS.md").read_text()
    assert "| plain-20 | 0 |" in results and "| ResNet-20 | 0 |" in results
    assert f"Machine: {deg.describe()}, Python" in results  # read from the machine
    for net in ("plain20_seed0", "resnet20_seed0"):
        lines = (tmp_path / net / "metrics.csv").read_text().splitlines()
        assert len(lines) == 3  # header and the evaluations at iterations 2 and 4
    # finished runs are reused: a second call trains nothing and redraws the same rows
    png.unlink()
    capsys.readouterr()
    assert deg.main(["--smoke", "--out", str(tmp_path)]) == 0
    assert "plain-20 seed 0: 0 s" in capsys.readouterr().out and png.exists()


def test_results_name_the_machine_they_ran_on(tmp_path: Path) -> None:
    machine = load_script(ROOT / "benchmarks" / "machine.py")
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Some CPU 9000\n\nprocessor\t: 1\n")
    assert machine.cpu_model(info) == "Some CPU 9000"
    assert machine.cpu_model(tmp_path / "missing")  # falls back to what Python knows
    text = machine.describe()
    assert text.startswith(f"{os.cpu_count()}-core ")
    assert text.endswith(machine.gpu_name() or "no GPU")
