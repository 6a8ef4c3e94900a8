"""resgraph sample: distinct valid networks inside every budget, counted rejections, a clear
error when the budgets cannot be met, reproducible draws, and no torch."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
import yaml
from click.testing import CliRunner

from helpers import ROOT, run_cli
from resgraph import load_spec
from resgraph.options import bounded_option, folder_option
from resgraph.sample import (
    Draw,
    _verdict,
    evaluate,
    parse_amount,
    parse_budget,
    sample,
)
from resgraph.spec import spec_hash
from resgraph.spec.space import Space
from resgraph.summary import summarize

pytestmark = pytest.mark.subprocess  # these tests run the command in its own process

SPACE = """\
name: Small space
input: {size: 32}
num_classes: 10
stem: {layout: cifar, width: 16}
block: basic
stages:
  - {width: {range: [8, 64], step: 8}, repeats: {range: [1, 3]}, stride: 1}
  - {width: {range: [16, 128], log: true}, repeats: 1, stride: 2}
"""

TWO = (
    SPACE.replace("{range: [8, 64], step: 8}", "{choice: [8, 16]}")
    .replace("{range: [1, 3]}", "1")
    .replace("{range: [16, 128], log: true}", "16")
)


@pytest.fixture
def space_file(tmp_path):
    path = tmp_path / "small.yaml"
    path.write_text(SPACE)
    return path


def test_sample_writes_distinct_valid_specs_inside_every_budget(space_file, tmp_path):
    out = tmp_path / "out"
    result = run_cli(
        "sample",
        str(space_file),
        "-n",
        "6",
        "--params",
        "20K:120K",
        "--macs",
        ":30M",
        "--seed",
        "7",
        "-o",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    files = sorted(out.glob("*.yaml"))
    assert [f.name for f in files] == [f"small_{k:04d}.yaml" for k in range(6)]
    hashes = set()
    for f in files:
        info = summarize(load_spec(f))
        assert 20_000 <= info.params <= 120_000 and info.macs <= 30_000_000
        hashes.add(spec_hash(load_spec(f)))
        first = f.read_text().splitlines()[0]
        assert first.startswith(f'# drawn by resgraph sample from the design space "{space_file}"')
        assert "(seed 7, draw " in first
    assert len(hashes) == 6
    draws = int(result.stdout.split("(")[1].split(" draws")[0])
    rejected = sum(int(line.split(":")[0].split()[-1]) for line in result.stdout.splitlines()[1:])
    assert draws == 6 + rejected


def test_a_written_sample_is_the_draw_its_header_names(space_file, tmp_path):
    out = tmp_path / "out"
    assert (
        run_cli("sample", str(space_file), "-n", "3", "--seed", "5", "-o", str(out)).returncode == 0
    )
    for f in sorted(out.glob("*.yaml")):
        header = f.read_text().splitlines()[0]
        index = int(header.split("draw ")[1].rstrip(")"))
        draw = evaluate(Space(space_file), 5, index, {}, 1)
        assert isinstance(draw, Draw)
        written = yaml.safe_load(f.read_text())
        assert written.pop("name") == f"Small space d{index}"
        assert written == {k: v for k, v in draw.data.items() if k != "name"}


def test_every_accepted_network_meets_the_budgets_and_rejections_add_up(space_file):
    budgets = {"params": (40_000, 90_000), "memory": (None, 3 << 20)}
    result = sample(Space(space_file), 8, budgets, seed=1, max_draws=5000)
    assert len(result.accepted) == 8
    for draw in result.accepted:
        assert 40_000 <= draw.measures["params"] <= 90_000
        assert draw.measures["memory"] <= 3 << 20
    assert len({d.digest for d in result.accepted}) == 8
    assert result.draws == 8 + sum(result.rejected.values())
    assert result.rejected["params below the budget"] > 0
    assert result.rejected["params above the budget"] > 0


def test_budget_ends_are_included():
    values = {"params": 100, "macs": 5, "memory": 7}
    assert _verdict(values, {"params": (100, 100), "macs": (5, 5), "memory": (7, 7)}) == ""
    assert _verdict(values, {"params": (101, None)}) == "params below the budget"
    assert _verdict(values, {"params": (None, 99)}) == "params above the budget"
    assert _verdict(values, {"macs": (6, None)}) == "macs below the budget"
    assert _verdict(values, {"memory": (None, 6)}) == "memory above the budget"


def test_the_result_does_not_depend_on_the_number_of_processes(space_file):
    one = sample(Space(space_file), 5, {"params": (30_000, 80_000)}, 3, 2000, jobs=1)
    two = sample(Space(space_file), 5, {"params": (30_000, 80_000)}, 3, 2000, jobs=2)
    assert [d.index for d in one.accepted] == [d.index for d in two.accepted]
    assert one.rejected == two.rejected


def test_a_budget_that_cannot_be_met_is_one_error_and_nothing_is_written(space_file, tmp_path):
    out = tmp_path / "out"
    result = run_cli(
        "sample", str(space_file), "-n", "2", "--params", "1G:", "--max-draws", "50", "-o", str(out)
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: only 0 of 2 networks met the budgets in 50 draws (rejected: 50 params below "
        "the budget); widen the budgets or the space, or allow more draws with --max-draws"
    ]
    assert not out.exists()


def test_a_space_with_too_few_networks_says_they_repeat(tmp_path):
    path = tmp_path / "two.yaml"
    path.write_text(TWO)
    result = sample(Space(path), 3, {}, seed=0, max_draws=40)
    assert len(result.accepted) == 2
    assert result.rejected == {"a network already drawn": 38}


def test_existing_samples_are_kept_without_force(space_file, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "small_0001.yaml").write_text("mine\n")
    result = run_cli("sample", str(space_file), "-n", "2", "-o", str(out))
    assert result.returncode == 1
    assert (
        result.stderr
        == f"error: {out / 'small_0001.yaml'}: it exists; pass --force to overwrite it\n"
    )
    assert (out / "small_0001.yaml").read_text() == "mine\n"
    assert run_cli("sample", str(space_file), "-n", "2", "-o", str(out), "--force").returncode == 0
    assert (out / "small_0001.yaml").read_text().startswith("# drawn by resgraph sample")


def test_a_range_with_no_valid_value_stops_sample_at_its_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(SPACE.replace("[1, 3]", "[0, 0]"))
    result = run_cli("sample", str(path), "-n", "2", "-o", str(tmp_path / "out"))
    assert result.returncode == 1
    assert result.stderr.startswith(
        f"error: {path}:7:49: stages[0].repeats: no value of this range is valid:"
    )
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    ("text", "amount"),
    [("400M", 400_000_000), ("5.5K", 5500), ("1200", 1200), ("2GiB", 2 << 30), ("3 mib", 3 << 20)],
)
def test_amounts(text, amount):
    assert parse_amount(text) == amount


def test_budgets_parse_and_refuse():
    assert parse_budget("360M:440M") == (360_000_000, 440_000_000)
    assert parse_budget(":6M") == (None, 6_000_000)
    assert parse_budget("1K:") == (1000, None)
    for bad in ("400M", "5:3", "4X:5", "-1:5"):
        with pytest.raises(ValueError):
            parse_budget(bad)


def test_a_bad_budget_flag_is_one_error_line(space_file, tmp_path):
    result = run_cli("sample", str(space_file), "-n", "2", "--macs", "400M", "-o", str(tmp_path))
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1
    assert "'400M' is not LO:HI" in result.stderr


def test_sample_never_imports_torch(space_file, tmp_path):
    out = str(tmp_path / "o")
    code = (
        "import sys\n"
        "from resgraph.cli import main\n"
        f"sys.argv = ['resgraph', 'sample', {str(space_file)!r}, '-n', '2', '-o', {out!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "o").glob("*.yaml"))) == 2


def test_the_header_names_the_overrides_on_one_line(space_file, tmp_path):
    out = tmp_path / "out"
    flag = "name=Two\nlines"  # a newline in a value stays inside the comment
    result = run_cli("sample", str(space_file), "-n", "1", "--set", "block=basic", "-o", str(out))
    assert result.returncode == 0, result.stderr
    first = (out / "small_0000.yaml").read_text().splitlines()[0]
    assert f'"{space_file}" --set "block=basic" (seed 0, draw ' in first
    from resgraph.sample import _header

    draw = Draw(3, {}, "x", "h", {"params": 1, "macs": 2, "memory": 3})
    header = _header("a\nb.yaml", [flag], 0, draw)
    assert header.count("\n") == 2 and all(line.startswith("# ") for line in header.splitlines())


def test_the_memory_budget_is_counted_at_the_batch_size(space_file):
    one = evaluate(Space(space_file), 0, 0, {}, 1)
    four = evaluate(Space(space_file), 0, 0, {}, 4)
    assert isinstance(one, Draw) and isinstance(four, Draw)
    assert four.measures["memory"] == 4 * one.measures["memory"] > 0
    assert four.measures["params"] == one.measures["params"]


def test_an_output_folder_that_is_a_file_is_one_error(space_file, tmp_path):
    (tmp_path / "taken").write_text("mine\n")
    result = run_cli("sample", str(space_file), "-n", "1", "-o", str(tmp_path / "taken"))
    assert result.returncode == 2  # a usage mistake, as click reports it
    assert result.stderr.startswith("error: ") and "is a file" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert (tmp_path / "taken").read_text() == "mine\n"


@click.command()
@bounded_option("--n", lo=1, hi=4, default=2, help="A count.")
@bounded_option("--share", lo=0, hi=1, default=0.5)
@bounded_option("--cap", lo=1, hi=8)
@folder_option("out", "A folder.")
def _numbers(n, share, cap, out):
    click.echo(f"{n!r} {share!r} {cap!r} {out!r}")


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        ([], "2 0.5 None None"),
        (["--n", "1", "--share", "0", "--cap", "8"], "1 0.0 8 None"),
        (["--n", "4", "--share", "0.25", "-o", "x"], "4 0.25 None PosixPath('x')"),
    ],
)
def test_the_shared_options_take_numbers_inside_their_bounds(args, shown):
    result = CliRunner().invoke(_numbers, args)
    assert (result.exit_code, result.output.strip()) == (0, shown)


@pytest.mark.parametrize(
    "args", [["--n", "0"], ["--n", "5"], ["--n", "2.5"], ["--share", "1.5"], ["--cap", "9"]]
)
def test_the_shared_options_refuse_numbers_outside_their_bounds(args):
    result = CliRunner().invoke(_numbers, args)
    assert result.exit_code == 2 and f"Invalid value for '{args[0]}'" in result.output


def test_the_shared_options_show_their_defaults_and_bounds():
    text = CliRunner().invoke(_numbers, ["--help"]).output
    assert "[default: 2; 1<=x<=4]" in text and "[default: 0.5; 0<=x<=1]" in text
    cap = next(line for line in text.splitlines() if "--cap" in line)
    assert cap.split() == ["--cap", "INTEGER", "RANGE", "[1<=x<=8]"]  # no default to show
