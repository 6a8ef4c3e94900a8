"""Runs checked against their spec: class counts, changed architectures on resume and eval,
resuming with the saved recipe, the printed continue command, and --set on eval and resume."""

from __future__ import annotations

import shlex
import signal
from pathlib import Path

import pytest
from click.testing import CliRunner
from train_helpers import (
    one_thread,  # noqa: F401 (an autouse fixture: one thread)
    write_tiny_spec,
)
from train_hooks import SignalAfter, with_callbacks

from helpers import invoke
from resgraph.cli import main
from resgraph.errors import TrainError
from resgraph.train import checkpoint as ckpt_io
from resgraph.train.data import load_digits
from resgraph.train.evaluate import check_classes

pytestmark = pytest.mark.slow  # trains, exports or builds large networks
pytestmark = [pytestmark, pytest.mark.xdist_group("resume_eval")]  # one worker trains once


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("fixes")
    spec, out = write_tiny_spec(tmp), tmp / "run"
    result = invoke("train", spec, "--out", out, "--iterations", "4")
    assert result.exit_code == 0, result.output
    return spec, out


# --- class counts -----------------------------------------------------------------------


def test_fewer_outputs_than_classes_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    spec = write_tiny_spec(tmp_path)
    spec.write_text(spec.read_text().replace("num_classes: 10", "num_classes: 8"))
    result = invoke("train", spec, "--out", tmp_path / "run")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "num_classes 8 but digits has 10 classes" in result.output, result.output
    assert not (tmp_path / "run").exists()


def test_more_outputs_than_classes_warns() -> None:
    digits = load_digits(3, 8)
    assert check_classes(10, digits) is None
    assert "outputs 10..11 are never a label" in str(check_classes(12, digits))
    with pytest.raises(TrainError, match="set num_classes: 10"):
        check_classes(9, digits)


# --- a changed spec ---------------------------------------------------------------------


def test_resume_with_another_architecture_is_refused(
    finished: tuple[Path, Path], tmp_path: Path
) -> None:
    spec, out = finished
    changed = write_tiny_spec(tmp_path, "stochastic_depth: {final_survival: 0.5}\n")
    before = (out / "config.yaml").read_bytes()
    result = invoke("train", changed, "--out", out, "--resume")
    assert result.exit_code == 1, result.output
    assert "trained from another architecture (stochastic_depth: the run has null" in result.output
    assert (out / "config.yaml").read_bytes() == before  # nothing overwritten


def test_eval_with_another_architecture_warns_when_the_weights_fit(
    finished: tuple[Path, Path], tmp_path: Path
) -> None:
    spec, out = finished
    same = CliRunner().invoke(main, ["eval", str(spec), "--weights", str(out / "last.pt")])
    assert same.exit_code == 0 and "another architecture" not in same.output
    changed = write_tiny_spec(tmp_path, "head: {dropout: 0.2}\n")
    result = CliRunner().invoke(main, ["eval", str(changed), "--weights", str(out / "last.pt")])
    assert result.exit_code == 0, result.output
    assert "warning:" in result.output and "head.dropout: the run has" in result.output
    assert "error" in result.output.splitlines()[-1]


def test_recipe_change_lists_each_field_once(finished: tuple[Path, Path]) -> None:
    spec, out = finished
    result = invoke("train", spec, "--out", out, "--resume", "--iterations", "6")
    assert result.exit_code == 1
    assert result.output.count("iterations:") == 1, result.output
    assert result.output.count("milestones:") == 1


# --- resume takes the saved recipe ------------------------------------------------------


def test_continue_command_works_as_printed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec, out = write_tiny_spec(tmp_path), tmp_path / "run"
    with monkeypatch.context() as m:
        with_callbacks(m, SignalAfter(signal.SIGINT, 2))
        stopped = invoke(
            "train",
            spec,
            "--out",
            out,
            "--iterations",
            "6",
            "--lr",
            "0.05",
            "--momentum",
            "0.5",
            "--milestones",
            "none",
            "--set",
            "stages[1].repeats=1",
        )
    assert stopped.exit_code == 130, stopped.output
    # the architecture came from --set: a command without it would be refused on resume
    command = shlex.split(stopped.output.split("continue with: resgraph ")[1].splitlines()[0])
    assert "stages[1].repeats=1" in command
    resumed = invoke(*command)
    assert resumed.exit_code == 0, resumed.output
    ck = ckpt_io.load(out / "last.pt")
    assert ck["complete"] and ck["data"]["iteration"] == 6
    assert (ck["config"]["train"]["lr"], ck["config"]["train"]["momentum"]) == (0.05, 0.5)
    assert ck["config"]["milestones"] == []
    assert ck["config"]["architecture"]["stages"][1]["repeats"] == 1


def test_eval_and_resume_apply_set(finished: tuple[Path, Path]) -> None:
    spec, out = finished
    weights = str(out / "last.pt")
    warned = CliRunner().invoke(
        main, ["eval", str(spec), "--weights", weights, "--set", "head.dropout=0.2"]
    )
    assert warned.exit_code == 0, warned.output
    assert "warning:" in warned.output and "head.dropout: the run has" in warned.output
    refused = invoke("train", spec, "--out", out, "--resume", "--set", "stages[0].repeats=1")
    assert refused.exit_code == 1
    assert "another architecture (stages[0].repeats: the run has" in refused.output
