"""train's flags take their ranges, defaults and wording from the recipe model; config.yaml's
command is a shell line; --init-from refuses weights that are not finite."""

from __future__ import annotations

import shlex
from pathlib import Path

import click
import pytest
import torch
import yaml
from train_helpers import one_thread, write_tiny_spec  # noqa: F401

from helpers import invoke
from resgraph.spec.train import TrainSpec
from resgraph.train import cli as tcli


def _option(name: str) -> click.Option:
    return next(p for p in tcli.train.params if p.name == name)  # type: ignore[return-value]


@pytest.mark.parametrize(
    "name", ["lr", "momentum", "weight_decay", "batch_size", "seed", "holdout"]
)
def test_each_recipe_flag_says_what_the_model_says(name: str) -> None:
    info = TrainSpec.model_fields[name]
    option = _option(name)
    assert option.help is not None and option.help.startswith(info.description.rstrip("."))
    assert f"[default: the spec's train.{name}, else {info.default:g}]" in option.help


def test_ranges_follow_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    lr = _option("lr").type
    assert isinstance(lr, click.FloatRange) and (lr.min, lr.max) == (0.0, 10.0)
    assert lr.min_open and not lr.max_open
    momentum = _option("momentum").type
    assert isinstance(momentum, click.FloatRange) and momentum.max_open and not momentum.min_open
    batch = _option("batch_size").type
    assert isinstance(batch, click.IntRange) and (batch.min, batch.max) == (1, 65536)
    assert "in (0, 10]" in (_option("lr").help or "")
    assert "1 to 1e8" in (_option("iterations").help or "")
    # a bound changed in the model changes the flag
    field = TrainSpec.model_fields["batch_size"]
    monkeypatch.setattr(
        field, "metadata", [type(m)(2) if hasattr(m, "ge") else m for m in field.metadata]
    )
    kind, wording = tcli._range("batch_size")
    assert isinstance(kind, click.IntRange) and kind.min == 2 and wording.startswith("2 to ")


def test_config_records_a_shell_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = write_tiny_spec(tmp_path)
    out = tmp_path / "my run"
    argv = ["train", str(spec), "--out", str(out), "--iterations", "1", "--set", "name=My net"]
    monkeypatch.setattr("sys.argv", ["resgraph", *argv])
    assert invoke(*argv).exit_code == 0
    command = yaml.safe_load((out / "config.yaml").read_text())["command"]
    assert shlex.split(command) == ["resgraph", *argv]


def test_init_from_refuses_weights_with_nan(tmp_path: Path) -> None:
    spec = write_tiny_spec(tmp_path)
    out = tmp_path / "first"
    assert invoke("train", spec, "--out", out, "--iterations", "1").exit_code == 0
    state = torch.load(out / "last.pt", weights_only=True)["model"]
    key = next(k for k, v in state.items() if v.is_floating_point())
    state[key] = state[key].clone().fill_(float("nan"))
    bad = tmp_path / "bad.pt"
    torch.save(state, bad)
    result = invoke("train", spec, "--out", tmp_path / "second", "--init-from", bad)
    assert result.exit_code == 1
    assert f"the weights hold NaN or infinite values in {key}" in result.output
    assert "--lr" not in result.output and not (tmp_path / "second").exists()
