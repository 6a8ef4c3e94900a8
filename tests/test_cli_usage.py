"""Usage mistakes (unknown options, bad values, unknown commands) are one ``error:`` line
that names the help to read, with click's usage exit status 2 and no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
R20 = str(ROOT / "specs" / "cifar_resnet20.yaml")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "resgraph", *args], capture_output=True, text=True, cwd=ROOT
    )


@pytest.mark.subprocess
@pytest.mark.parametrize(
    ("args", "message", "help_of"),
    [
        (["summary", "--bogus", R20], "No such option '--bogus'", "summary"),
        (["build", R20, "-o", str(ROOT / "README.md")], "is a file", "build"),
        (["render", R20, "--level", "layer"], "'layer' is not one of", "render"),
        (["nosuch"], "No such command 'nosuch'", ""),
    ],
)
def test_a_usage_mistake_is_one_error_line(args: list[str], message: str, help_of: str) -> None:
    res = run(*args)
    assert res.returncode == 2
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: ") and message in lines[0]
    assert lines[0].endswith(f"-m resgraph {help_of} --help')".replace("  ", " "))
    assert res.stdout == ""


@pytest.mark.subprocess
def test_a_bare_command_shows_its_help() -> None:
    res = run()
    assert res.returncode == 2
    assert "Commands:" in res.stderr and "error:" not in res.stderr
