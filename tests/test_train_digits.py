"""The built-in real data set: ResNet-20 learns scikit-learn's digits on the CPU.

The digits are trained at their own 8x8 size (the spec's input size set to 8, as
benchmarks/degradation.py does) without the pad-and-crop augmentation, which would shift an
8x8 digit by half its width: 16 times fewer multiply-adds than at 32x32, so the run takes
about 7 s instead of 50-120 s. Resizing to 32x32 and augmenting are tested in
tests/test_train_data.py. Measured: this exact run (200 iterations, batch 64, one thread)
ends at 2.25%, 1.75% and 0.75% test error for seeds 0, 1, 2, in 7.0 s each on the 2-core
machine (load average 1.7-1.9). The last figure moves with the number of threads, so the
bar is set at 5%.
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
            "--set",
            "input.size=8",
            "--no-augment",
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
