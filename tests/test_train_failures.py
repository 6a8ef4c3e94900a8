"""Training where it cannot go on: unwritable run folders and full disks as one line, a batch
that does not split over processes, repeated signals, and leaving the process group."""

from __future__ import annotations

import errno
import signal
import time
from pathlib import Path

import click
import pytest
import torch
from click.testing import CliRunner
from train_helpers import (
    one_thread,  # noqa: F401 (an autouse fixture: one thread)
    write_tiny_spec,
)

from resgraph.cli import main
from resgraph.errors import TrainError
from resgraph.train import checkpoint as ckpt_io
from resgraph.train import config as cfg
from resgraph.train import distributed, loop

pytestmark = pytest.mark.slow  # trains, exports or builds large networks


def invoke(*args: object):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, [str(a) for a in args])


# --- unwritable places ------------------------------------------------------------------


def test_out_below_a_file_is_one_line(tmp_path: Path) -> None:
    spec = write_tiny_spec(tmp_path)
    (tmp_path / "afile").write_text("mine")
    result = invoke("train", spec, "--out", tmp_path / "afile" / "run")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"cannot write the run folder {tmp_path / 'afile' / 'run'}: " in result.output
    assert (tmp_path / "afile").read_text() == "mine"


def test_full_disk_during_a_checkpoint_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(obj: object, path: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(ckpt_io, "save_atomic", full)
    spec, out = write_tiny_spec(tmp_path), tmp_path / "run"
    result = invoke("train", spec, "--out", out, "--iterations", "4")
    assert (
        result.exit_code == 1
        and result.exception is None
        or isinstance(result.exception, SystemExit)
    )
    assert (
        f"error: cannot write the checkpoint {out / 'last.pt'}: No space left on device"
        in result.output
    ), result.output


def test_read_only_run_folder_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = Path.write_bytes

    def read_only(self: Path, data: bytes) -> int:
        if self.name.startswith(".resgraph-write-test"):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", read_only)
    spec, out = write_tiny_spec(tmp_path), tmp_path / "run"
    result = invoke("train", spec, "--out", out)
    assert result.exit_code == 1
    assert f"cannot write the run folder {out}: Permission denied" in result.output


def test_batch_split_error_comes_from_rank0_only(tmp_path: Path) -> None:
    spec = write_tiny_spec(tmp_path)
    opts = cfg.TrainOptions(spec=spec, out=tmp_path / "run", batch_size=33)
    cpu = torch.device("cpu")
    with pytest.raises(click.exceptions.Exit):
        loop.Trainer(opts, distributed.Dist(rank=1, world=2), cpu)
    with pytest.raises(TrainError, match="batch size 33 does not split evenly over 2"):
        loop.Trainer(opts, distributed.Dist(rank=0, world=2), cpu)


# --- signals ----------------------------------------------------------------------------


def test_a_repeated_signal_is_the_same_request(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    stop = loop.StopRequest()
    stop._handle(signal.SIGTERM, None)
    assert stop.signum == signal.SIGTERM
    now[0] += loop.REPEAT_WINDOW_S - 0.5
    stop._handle(signal.SIGTERM, None)  # torchrun forwarding the scheduler's signal
    with pytest.raises(KeyboardInterrupt):
        stop._handle(signal.SIGINT, None)  # another signal: abort
    now[0] += 1.0
    with pytest.raises(KeyboardInterrupt):
        stop._handle(signal.SIGTERM, None)  # the same one, later: abort
    stop.saving = True
    stop._handle(signal.SIGINT, None)  # never in the middle of the checkpoint write
    assert stop.signum == signal.SIGTERM


def test_process_group_is_left_after_a_barrier(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(distributed.dist, "barrier", lambda: calls.append("barrier"))
    monkeypatch.setattr(distributed.dist, "destroy_process_group", lambda: calls.append("destroy"))
    distributed.Dist(rank=0, world=2).close()
    assert calls == ["barrier", "destroy"]
    calls.clear()
    distributed.Dist(rank=0, world=2).close(wait=False)  # after an error
    assert calls == ["destroy"]
    calls.clear()

    def gone() -> None:
        raise RuntimeError("Connection reset by peer")

    monkeypatch.setattr(distributed.dist, "barrier", gone)  # another process was killed
    distributed.Dist(rank=0, world=2).close()
    assert calls == ["destroy"]
