"""benchmarks/train_gpu.py runs its rows (each in its own process) on the CPU in smoke mode."""

from __future__ import annotations

import re
import sys

import pytest
from train_helpers import ROOT

from helpers import load_script


@pytest.mark.subprocess  # each row runs in a process of its own
@pytest.mark.slow
def test_gpu_benchmark_smoke_mode_runs_every_kind_of_row(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    script = load_script(ROOT / "benchmarks" / "train_gpu.py")
    monkeypatch.setattr(sys, "argv", ["train_gpu.py", "--smoke"])
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the rows' processes: one thread each
    assert script.main() == 0
    out = capsys.readouterr().out
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in out.splitlines()
        if line.startswith("| cifar")
    ]
    labels = [row[1] for row in rows]
    assert labels[0].startswith("conventional") and labels[-1] == "fp32 (TF32)"
    assert labels[1].startswith("epoch (real loop")
    for row in rows:
        assert re.fullmatch(r"[\d,]+", row[2]) and int(row[2].replace(",", "")) > 0, row
    assert "4 iterations in" in rows[1][4]  # 512 images, batch 128: one epoch
