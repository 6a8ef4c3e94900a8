"""Fixtures shared by the test files."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest


def worker_threads(cpus: int | None, workers: int) -> int:
    """Threads for each of ``workers`` test processes sharing ``cpus`` cores: one process's
    OpenMP threads spinning on the cores another process needs slow both down severalfold."""
    return max(1, (cpus or 1) // max(1, workers))


if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    # Before torch is imported here, and inherited by the processes the tests start.
    threads = worker_threads(os.cpu_count(), int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))


@pytest.fixture
def write_spec(tmp_path: Path):
    """Write YAML text to a spec file in a temporary folder and return its path."""

    def write(text: str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


def starts_python(args: object) -> bool:
    """Whether a command line starts a Python interpreter: the CLI, a script, torchrun."""
    argv = shlex.split(args) if isinstance(args, str) else [str(a) for a in args]  # type: ignore[attr-defined]
    if not argv:
        return False
    name = Path(argv[0]).name
    return (
        argv[0] == sys.executable
        or name.startswith("python")
        or name == "torchrun"
        or name.endswith((".py", ".sh"))
    )


@pytest.fixture(autouse=True)
def _python_processes_are_marked(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """A test that starts a Python process carries the `subprocess` marker, so that the fast
    tier (`make check`, which deselects it) holds only tests that run in this process."""
    if request.node.get_closest_marker("subprocess") is not None:
        return
    real = subprocess.Popen.__init__

    def init(self: subprocess.Popen, args: object, *rest: object, **kw: object) -> None:
        if starts_python(args):
            raise AssertionError(f"this test starts {args!r}: mark it @pytest.mark.subprocess")
        real(self, args, *rest, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(subprocess.Popen, "__init__", init)
