"""Callbacks that disturb a training run (kill it, poison its loss, slow it down), and a
command-line entry that runs ``resgraph`` with them: ``python tests/train_hooks.py
[signal=SIGKILL@6] [nan-at=7] [sleep=0.2] [slow-save=2] [record-drops=FILE]
[record-keys=FILE] -- train SPEC
...`` (also under torchrun).
Production code reads no test hooks; these reach the run through ``train(callbacks=...)``."""

from __future__ import annotations

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
    """``NAME=VALUE`` words before ``--`` pick callbacks (words, not options: torchrun
    would read options as its own); the rest is resgraph's command line."""
    if "--" not in argv:
        return [], argv
    ours, rest = argv[: argv.index("--")], argv[argv.index("--") + 1 :]
    hooks: list[loop.Callback] = []
    for word in ours:
        name, _, value = word.partition("=")
        if name == "signal":
            sig, _, at = value.partition("@")
            for when in at.split(","):
                hooks.append(SignalAfter(getattr(signal, sig), int(when)))
        elif name == "nan-at":
            hooks.append(NanAt(int(value)))
        elif name == "sleep":
            hooks.append(Sleep(float(value)))
        elif name == "slow-save":
            slow_saves(float(value))
        elif name == "record-drops":
            hooks.append(RecordDrops(Path(value)))
        elif name == "record-keys":
            record_keys(Path(value))
        else:
            raise SystemExit(f"train_hooks.py: unknown hook {word!r}")
    return hooks, rest


def record_keys(path: Path) -> None:
    """Write, per process (``FILE.RANK``), the shard samples of each training batch: one line
    per iteration, the iteration and the keys (batches built in the process: --workers 0)."""
    from resgraph.train import shards

    batch = shards.ShardBatches._batch

    def recorded(self: shards.ShardBatches, iteration: int, items: list) -> tuple:
        out = batch(self, iteration, items)
        with open(f"{path}.{os.environ.get('RANK', '0')}", "a") as f:
            f.write(f"{iteration} {' '.join(out[3])}\n")
        return out

    shards.ShardBatches._batch = recorded  # type: ignore[method-assign]


def slow_saves(seconds: float) -> None:
    """Make every checkpoint write take ``seconds`` longer (a large checkpoint)."""
    from resgraph.train import checkpoint as ckpt_io

    save = ckpt_io.save_atomic

    def slow(obj: object, path: Path) -> None:
        time.sleep(seconds)
        save(obj, path)

    ckpt_io.save_atomic = slow  # type: ignore[assignment]


class RecordDrops(loop.Callback):
    """Write, per process (``FILE.RANK``), which stochastic-depth branches each iteration
    dropped: one line per iteration of 0/1 per DropPath module."""

    def __init__(self, path: Path) -> None:
        self.path, self.installed, self.row = path, False, []  # type: list[int]
        self.lines: list[str] = []

    def on_loss(self, trainer: loop.Trainer, iteration: int, loss: torch.Tensor) -> torch.Tensor:
        return loss

    def after_iteration(self, trainer: loop.Trainer, iteration: int) -> None:
        if not self.installed:
            return
        self.lines.append("".join(map(str, self.row)))
        self.row = []
        Path(f"{self.path}.{trainer.d.rank}").write_text("\n".join(self.lines) + "\n")

    def install(self, model: torch.nn.Module) -> None:
        from resgraph.nn import DropPath

        for m in model.modules():
            if isinstance(m, DropPath):
                m.register_forward_hook(self._hook)
        self.installed = True

    def _hook(self, module: torch.nn.Module, args: tuple, out: torch.Tensor) -> None:
        if module.training:
            self.row.append(int(bool((out == 0).all())))


def with_callbacks(monkeypatch, *callbacks: loop.Callback) -> None:  # type: ignore[no-untyped-def]
    """Make ``resgraph train`` (in this process) run with ``callbacks``."""
    monkeypatch.setattr(loop, "train", functools.partial(loop.train, callbacks=callbacks))


def main(argv: list[str]) -> int:
    hooks, rest = parse(argv)
    drops = [h for h in hooks if isinstance(h, RecordDrops)]
    if drops:  # hook the model as soon as the trainer has built it
        init = loop.Trainer._model

        def model(self: loop.Trainer) -> None:
            init(self)
            for d in drops:
                d.install(self.raw)

        loop.Trainer._model = model  # type: ignore[method-assign]
    loop.train = functools.partial(loop.train, callbacks=hooks)  # type: ignore[assignment]
    from resgraph.cli import main as cli

    return cli.main(rest, prog_name="resgraph")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
