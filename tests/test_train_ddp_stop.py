"""Stopping a two-process gloo run: every process waits for rank 0's checkpoint, a repeated
signal is one request, and stochastic depth drops the same blocks on every process."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_train_ddp import torchrun
from train_helpers import write_tiny_spec

from resgraph.train import checkpoint as ckpt_io


@pytest.mark.subprocess
@pytest.mark.slow
def test_stop_waits_for_rank0_checkpoint_and_ranks_drop_the_same_blocks(tmp_path: Path) -> None:
    spec = write_tiny_spec(tmp_path, "stochastic_depth: {final_survival: 0.5}\n")
    out, drops = tmp_path / "run", tmp_path / "drops"
    args = ["train", spec, "--out", out, "--iterations", "8", "--eval-every", "2"]
    # Each process gets SIGTERM twice after iteration 3 (a scheduler and torchrun both
    # signal it); writing a checkpoint takes 3 s, long enough for a process that does not
    # wait to exit and make torchrun kill rank 0 in the middle of its write.
    hooks = ["signal=SIGTERM@3,3", "slow-save=3", f"record-drops={drops}"]
    stopped = torchrun(args, tmp_path, hooks=hooks)
    log = stopped.stdout + stopped.stderr
    assert "stopped by SIGTERM after iteration 4" in stopped.stdout, log
    assert ckpt_io.load(out / "last.pt")["data"]["iteration"] == 4, log
    # torchrun lists each failed worker: both ended on their own with 128 + SIGTERM (none
    # killed by torchrun's SIGTERM, -15, nor aborted by a second signal, 130)
    assert log.count("exitcode  : 143") == 2, log
    assert "resgraph/train/" not in log  # no traceback from resgraph (torchrun prints its own)
    rank0, rank1 = (Path(f"{drops}.{r}").read_text().split() for r in (0, 1))
    assert len(rank0) == 4 and rank0 == rank1
    decisions = "".join(rank0)
    assert "1" in decisions and "0" in decisions  # some blocks dropped, some kept
