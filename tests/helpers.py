"""Shared test helpers: the repository's paths, a CLI runner, small specs."""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import click.testing
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


def load_script(path: Path) -> types.ModuleType:
    """A script of the repository (scripts/, benchmarks/) imported as a module, so that a test
    calls its functions in this process."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def invoke(*args: object, input: str | None = None) -> click.testing.Result:
    """Run ``resgraph ARGS`` in this process through click's test runner: the exit code,
    stdout and stderr a user would see, without the seconds a new Python process takes to
    import torch. An exception the CLI lets escape fails the test (a user would have seen its
    traceback)."""
    from click.testing import CliRunner

    from resgraph.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], input=input, catch_exceptions=False)


@contextmanager
def layout_only() -> Iterator[None]:
    """Build models on the meta device without running torch.nn.init's initialisers: for a
    model whose every tensor is then given by ``load_state_dict(..., assign=True)``, or whose
    layout alone is read. (On the meta device an initialiser only costs time: each call goes
    through PyTorch's Python reference kernels, about 5 ms, over half of building a ResNet-50.)"""
    import torch

    init = torch.nn.init
    saved = {
        name: fn
        for name, fn in vars(init).items()
        if name.endswith("_") and not name.startswith("_") and callable(fn)
    }
    try:
        for name in saved:
            setattr(init, name, lambda tensor, *args, **kwargs: tensor)
        with torch.device("meta"):
            yield
    finally:
        for name, fn in saved.items():
            setattr(init, name, fn)


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
