"""The `subprocess` marker is kept honest: an unmarked test cannot start a Python process,
so the fast tier (`make check`) cannot hold one by mistake."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import starts_python, worker_threads


def test_python_command_lines_are_recognised() -> None:
    assert starts_python([sys.executable, "-c", "pass"])
    assert starts_python(["/usr/bin/python3.11", "x.py"])
    assert starts_python("torchrun --nproc_per_node 2 train.py")
    assert starts_python(["scripts/demo.sh"]) and starts_python(["scripts/spec_table.py"])
    assert not starts_python(["dot", "-Tsvg"]) and not starts_python([])


def test_an_unmarked_test_cannot_start_python() -> None:
    with pytest.raises(AssertionError, match="mark it @pytest.mark.subprocess"):
        subprocess.run([sys.executable, "-c", "pass"], check=True)


@pytest.mark.subprocess
def test_a_marked_test_can() -> None:
    done = subprocess.run([sys.executable, "-c", "print(6 * 7)"], capture_output=True, text=True)
    assert done.stdout == "42\n"


def test_each_test_worker_gets_its_share_of_the_cores() -> None:
    assert worker_threads(2, 2) == 1  # `make test` on two cores: one thread each
    assert worker_threads(16, 2) == 8 and worker_threads(8, 3) == 2
    assert worker_threads(2, 4) == 1 and worker_threads(None, 2) == 1  # never none
    assert worker_threads(4, 0) == 4


@pytest.mark.xdist_group("markers")
def test_a_group_is_tagged_so_that_one_worker_runs_it(request: pytest.FixtureRequest) -> None:
    """`make test` runs with `--dist loadgroup`: the tests of a group (a sweep, a training
    run their fixture shares) must reach one worker, which needs the group in the test's id."""
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("only under pytest-xdist's --dist loadgroup")
    assert request.node.nodeid.endswith("@markers")
