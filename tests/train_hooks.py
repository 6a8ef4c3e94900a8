"""Callbacks that disturb a training run (kill it, poison its loss, slow it down), and a
command-line entry that runs ``resgraph`` with them: ``python tests/train_hooks.py
[--signal SIGKILL@6] [--nan-at 7] [--sleep 0.2] -- train SPEC ...`` (also under torchrun).
Production code reads no test hooks; these reach the run through ``train(callbacks=...)``."""

from __future__ import annotations

import argparse
import functools
import os
import signal
import sys
import time
from pathlib import Path

import torch

if __name__ == "__main__":  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from resgraph.train import loop  # noqa: E402


class SignalAfter(loop.Callback):
    """Send this process ``signum`` right after iteration ``at`` (and its checkpoint)."""

    def __init__(self, signum: int, at: int) -> None:
        self.signum, self.at = signum, at

    def after_iteration(self, trainer: loop.Trainer, iteration: int) -> None:
        if iteration == self.at:
            os.kill(os.getpid(), self.signum)


class NanAt(loop.Callback):
    """Make the loss of iteration ``at`` (1-based) NaN."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_loss(self, trainer: loop.Trainer, iteration: int, loss: torch.Tensor) -> torch.Tensor:
        return loss * float("nan") if iteration + 1 == self.at else loss


class Sleep(loop.Callback):
    """Sleep after every iteration (a slow step)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def after_iteration(self, trainer: loop.Trainer, iteration: int) -> None:
        time.sleep(self.seconds)


def parse(argv: list[str]) -> tuple[list[loop.Callback], list[str]]:
    ours, _, rest = (
        (argv[: argv.index("--")], None, argv[argv.index("--") + 1 :])
        if "--" in argv
        else ([], None, argv)
    )
    parser = argparse.ArgumentParser()
    parser.add_argument("--signal", default=None)
    parser.add_argument("--nan-at", type=int, default=None)
    parser.add_argument("--sleep", type=float, default=None)
    args = parser.parse_args(ours)
    hooks: list[loop.Callback] = []
    if args.signal:
        name, _, at = args.signal.partition("@")
        hooks.append(SignalAfter(getattr(signal, name), int(at)))
    if args.nan_at:
        hooks.append(NanAt(args.nan_at))
    if args.sleep:
        hooks.append(Sleep(args.sleep))
    return hooks, rest


def with_callbacks(monkeypatch, *callbacks: loop.Callback) -> None:  # type: ignore[no-untyped-def]
    """Make ``resgraph train`` (in this process) run with ``callbacks``."""
    monkeypatch.setattr(loop, "train", functools.partial(loop.train, callbacks=callbacks))


def main(argv: list[str]) -> int:
    hooks, rest = parse(argv)
    loop.train = functools.partial(loop.train, callbacks=hooks)  # type: ignore[assignment]
    from resgraph.cli import main as cli

    return cli.main(rest, prog_name="resgraph")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
