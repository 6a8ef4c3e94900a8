"""Two gloo processes (torchrun, CPU) train on WebDataset shards: each reads its own samples,
both take the same steps and end with identical parameters."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_train_ddp import torchrun

ROOT = Path(__file__).resolve().parents[1]
SPEC = """\
name: Grey Tiny
input: {channels: 1, size: 8}
num_classes: 10
stem: {layout: cifar, width: 8}
block: basic
shortcut: A
stages:
  - {width: 8, repeats: 1, stride: 1}
train: {batch_size: 32, iterations: 6, eval_every: 3, crop: resized}
"""


@pytest.mark.slow
@pytest.mark.subprocess
def test_two_processes_read_disjoint_samples_and_agree(tmp_path: Path) -> None:
    env = {"RESGRAPH_CACHE_DIR": str(tmp_path / "cache")}
    script = [sys.executable, str(ROOT / "scripts/digits_folder.py"), str(tmp_path / "digits")]
    subprocess.run(script, check=True, capture_output=True, cwd=ROOT)
    shards = tmp_path / "shards"
    pack = [sys.executable, "-m", "resgraph", "pack", tmp_path / "digits", "-o", shards]
    subprocess.run([*map(str, pack), "--shard-size", "300"], check=True, cwd=ROOT)
    (tmp_path / "spec.yaml").write_text(SPEC)
    out, keys = tmp_path / "run", tmp_path / "keys"
    args = ["train", "spec.yaml", "--dataset", shards, "--out", out, "--workers", "0"]
    result = torchrun(args, tmp_path, hooks=[f"record-keys={keys}"], **env)
    assert result.returncode == 0, result.stdout + result.stderr
    check = json.loads((out / "ddp_check.json").read_text())
    assert check["world_size"] == 2 and check["identical"]
    seen = []
    for rank in range(2):
        lines = (tmp_path / f"keys.{rank}").read_text().split("\n")[:-1]
        assert [int(line.split()[0]) for line in lines] == list(range(6))
        batches = [line.split()[1:] for line in lines]
        assert all(len(batch) == 16 for batch in batches)  # 32 over two processes
        seen.append({key for batch in batches for key in batch})
    assert len(seen[0]) == len(seen[1]) == 6 * 16
    assert not seen[0] & seen[1]
    shards_of = [{key.split("/")[0] for key in keys} for keys in seen]
    assert shards_of[0] <= {"train-000000.tar", "train-000002.tar", "train-000004.tar"}
    assert shards_of[1] <= {"train-000001.tar", "train-000003.tar"}
