"""``--set``, ``--input-size`` and ``--outputs`` apply in the order they were typed: of two
flags on one field, the later wins, whatever their kinds."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from helpers import CIFAR20
from resgraph.cli import main
from resgraph.options import spec_overrides


@click.command()
@spec_overrides()
def echo_overrides(overrides):
    for o in overrides:
        click.echo(f"{o} | {o.flag}")


def overrides_of(*args):
    result = CliRunner().invoke(echo_overrides, list(args))
    assert result.exit_code == 0, result.output
    return [line.split(" | ")[0] for line in result.stdout.splitlines()]


def test_every_flag_is_kept_in_the_order_typed():
    got = overrides_of(
        "--set", "input.size=32", "--input-size", "16", "--outputs", "layer1",
        "--set", "input.size=64", "--input-size", "48", "--set", "a=1",
    )  # fmt: skip
    assert got == [
        "input.size=32",
        "input.size=16",
        "outputs=[layer1]",
        "input.size=64",
        "input.size=48",
        "a=1",
    ]
    assert overrides_of() == []


@pytest.mark.parametrize(
    ("args", "size"),
    [
        (["--input-size", "16", "--set", "input.size=64"], "3x64x64"),
        (["--set", "input.size=64", "--input-size", "16"], "3x16x16"),
        (["--input-size", "16", "--set", "input.size=64", "--input-size", "48"], "3x48x48"),
    ],
)
def test_the_later_input_size_wins(tmp_path, args, size):
    spec = tmp_path / "s.yaml"
    spec.write_text(CIFAR20)
    result = CliRunner().invoke(main, ["summary", str(spec), *args])
    assert result.exit_code == 0, result.output
    assert f"input {size}" in result.stdout


@pytest.mark.parametrize(
    ("args", "key"),
    [
        (["--set", "outputs=[layer1]", "--outputs", "layer2"], "layer2"),
        (["--outputs", "layer2", "--set", "outputs=[layer1]"], "layer1"),
    ],
)
def test_the_later_outputs_win(tmp_path, args, key):
    spec = tmp_path / "s.yaml"
    spec.write_text(CIFAR20)
    result = CliRunner().invoke(main, ["summary", str(spec), *args])
    assert result.exit_code == 0, result.output
    assert f"backbone ({key})" in result.stdout


# --- an index into a field the spec does not write ---------------------------------------
@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("stgaes[0].repeats=2", "unknown key 'stgaes' (did you mean 'stages'?)"),
        ("stages[0].withd[0]=2", "unknown key 'withd' (did you mean 'width'?)"),
        (
            "outputs[0]=layer1",
            "outputs is not written in the spec, so it has no [0]; set the whole list "
            "instead (--set 'outputs=[...]')",
        ),
        (
            "train.milestones[1]=3",
            "train.milestones is not written in the spec, so it has no [1]; set the whole "
            "list instead (--set 'train.milestones=[...]')",
        ),
    ],
)
def test_an_index_into_a_missing_field_names_the_field(tmp_path, flag, message):
    spec = tmp_path / "s.yaml"
    spec.write_text(CIFAR20)
    result = CliRunner().invoke(main, ["validate", str(spec), "--set", flag])
    assert result.exit_code == 1
    assert result.stderr.endswith(f"--set '{flag}': {message}\n"), result.stderr
