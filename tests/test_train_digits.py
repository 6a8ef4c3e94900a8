"""The built-in real data set: ResNet-20 learns scikit-learn's digits on the CPU.

Measured (benchmarks/train_RESULTS.md): this exact run (200 iterations, batch 64, one
thread) ends at 2.0%, 1.0% and 2.0% test error for seeds 0, 1, 2, in about 50 s on an idle
2-core machine; the README's 300-iteration demo reaches 1.75%. The last figure moves with
the number of threads (3.25% was seen for seed 0 with two), so the bar is set at 5%.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from train_helpers import SPECS, resgraph

from resgraph.train import checkpoint as ckpt_io


@pytest.mark.subprocess
@pytest.mark.slow
def test_resnet20_learns_digits(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = resgraph(
        [
            "train",
            SPECS / "cifar_resnet20.yaml",
            "--dataset",
            "digits",
            "--iterations",
            "200",
            "--batch-size",
            "64",
            "--eval-every",
            "50",
            "--seed",
            "0",
            "--out",
            out,
        ],
        tmp_path,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    history = ckpt_io.load(out / "last.pt")["history"]
    errors = [row["test_error"] for row in history]
    assert [row["iteration"] for row in history] == [50, 100, 150, 200]
    assert errors[-1] <= 0.05, errors
    assert history[-1]["train_error"] < history[0]["train_error"]
