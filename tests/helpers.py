"""Shared test helpers: the repository's paths, a CLI runner, small specs."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.yaml"))


def run_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m resgraph ARGS`` in a fresh process, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "resgraph", *args],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


CIFAR20 = """\
name: Test net
input: {channels: 3, size: 32}
num_classes: 10
stem: {layout: cifar, width: 16}
block: basic
shortcut: A
stages:
  - {width: 16, repeats: 1, stride: 1}
  - {width: 32, repeats: 1, stride: 2}
"""


def fill(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Deterministic weights without a random generator: sines scaled per tensor kind.
    (scripts/torchvision_fixture.py fills torchvision's models with it too.)"""
    import torch

    out = {}
    for i, (name, t) in enumerate(state.items()):
        if t.dtype == torch.long:
            out[name] = torch.zeros_like(t)
            continue
        wave = torch.sin(torch.arange(t.numel(), dtype=torch.float64) * 0.37 + i).reshape(t.shape)
        if name.endswith("running_var"):
            value = 1.0 + 0.5 * (1 + wave)
        elif name.endswith("running_mean") or name.endswith("bias"):
            value = 0.05 * wave
        elif t.dim() == 1:  # BN weight
            value = 0.5 + 0.1 * wave
        else:  # conv / fc weight: He-like scale from the fan-in
            fan_in = t[0].numel()
            value = wave * math.sqrt(4.0 / fan_in)
        out[name] = value.to(t.dtype)
    return out


def reference_input() -> torch.Tensor:
    import torch

    return torch.sin(torch.arange(2 * 3 * 64 * 64, dtype=torch.float32) * 0.01).reshape(
        2, 3, 64, 64
    )
