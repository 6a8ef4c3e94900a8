"""DistributedDataParallel with 2 CPU processes (gloo on 127.0.0.1), started by torchrun."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from train_helpers import HOOKS, free_port, run_env, write_tiny_spec

from resgraph.train import checkpoint as ckpt_io


def torchrun(
    args: list[object], cwd: Path, hooks: list[str] | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """``torchrun --nproc_per_node 2 -m resgraph ARGS`` on the loopback interface (through
    tests/train_hooks.py with ``hooks``)."""
    entry = [str(HOOKS), *hooks, "--"] if hooks is not None else ["-m", "resgraph"]
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "1",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(free_port()),
        *entry,
        *map(str, args),
    ]
    return subprocess.run(
        command,
        cwd=cwd,
        env=run_env(GLOO_SOCKET_IFNAME="lo", **env),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.subprocess
@pytest.mark.slow
def test_two_gloo_processes_train_resume_and_agree(tmp_path: Path) -> None:
    spec = write_tiny_spec(tmp_path)
    out = tmp_path / "run"
    args = ["train", spec, "--out", out, "--iterations", "8", "--eval-every", "2"]
    # Both processes get SIGTERM during iteration 4; they agree to stop at the next
    # statistics read (iteration 4), rank 0 checkpoints, both exit 143.
    stopped = torchrun(args, tmp_path, hooks=["signal=SIGTERM@3"])
    assert stopped.returncode != 0
    assert "stopped by SIGTERM after iteration 4" in stopped.stdout, stopped.stdout + stopped.stderr
    ck = ckpt_io.load(out / "last.pt")
    assert ck["data"]["iteration"] == 4 and len(ck["rng"]) == 2
    # torch's generator is seeded from (seed, iteration) on every process (random layers
    # agree across processes); Python's and numpy's are per process
    assert torch.equal(ck["rng"][0]["torch"], ck["rng"][1]["torch"])
    assert ck["rng"][0]["python"] != ck["rng"][1]["python"]

    resumed = torchrun([*args, "--resume"], tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert resumed.stdout.count("resuming at iteration 4") == 1  # rank 0 alone prints
    check = json.loads((out / "ddp_check.json").read_text())
    assert check["world_size"] == 2 and check["identical"]
    assert check["param_sha256"][0] == check["param_sha256"][1]
    assert {p.name for p in out.iterdir()} == {
        "config.yaml",
        "metrics.csv",
        "curves.png",
        "last.pt",
        "ddp_check.json",
    }
    final = ckpt_io.load(out / "last.pt")
    assert final["complete"] and [r["iteration"] for r in final["history"]] == [2, 4, 6, 8]
    assert final["config"]["world_size"] == 2
