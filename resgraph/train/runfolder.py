"""The run folder: created and probed before anything is written, files replaced atomically,
and an OS error (read-only folder, full disk) reported as one line naming the file."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from resgraph.errors import TrainError
from resgraph.fsutil import atomic_write_text
from resgraph.train import checkpoint as ckpt_io
from resgraph.train import plots
from resgraph.train.config import UNREADABLE


def write(path: Path, what: str, writer: Callable[[], object]) -> None:
    """Run ``writer()``; an OS error becomes one line."""
    try:
        writer()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise TrainError(f"cannot write {what} {path}: {reason}") from None


def make(folder: Path) -> None:
    """Create the folder, drop half-written checkpoints, and fail early when it is read-only."""

    def create() -> None:
        folder.mkdir(parents=True, exist_ok=True)
        ckpt_io.remove_stale_temporaries(folder)
        probe = folder / ".resgraph-write-test.tmp"
        probe.write_bytes(b"")
        probe.unlink()

    write(folder, "the run folder", create)


def write_text(path: Path, what: str, text: str) -> None:
    write(path, what, lambda: atomic_write_text(path, text))


def write_config(folder: Path, data: dict[str, Any]) -> None:
    write_text(
        folder / "config.yaml", "the run configuration", yaml.safe_dump(data, sort_keys=False)
    )


def write_unreadable(folder: Path, lines: list[str]) -> None:
    """unreadable.txt: the image files left out of the run, one ``path: reason`` a line."""
    text = "".join(f"{line}\n" for line in lines)
    write_text(folder / UNREADABLE, "the unreadable files' list", text)


def write_metrics(folder: Path, history: list[dict[str, Any]]) -> None:
    path = folder / "metrics.csv"
    write(path, "the metrics", lambda: plots.write_metrics(path, history))


def write_curves(folder: Path, history: list[dict[str, Any]], title: str) -> None:
    path = folder / "curves.png"
    write(path, "the curves", lambda: plots.write_curves(path, history, title))


def write_replica_check(folder: Path, digests: list[str]) -> bool:
    """ddp_check.json: every process's parameter digest; returns whether they agree."""
    same = len(set(digests)) == 1
    data = {"world_size": len(digests), "param_sha256": digests, "identical": same}
    write_text(folder / "ddp_check.json", "the replica check", json.dumps(data, indent=2) + "\n")
    return same
