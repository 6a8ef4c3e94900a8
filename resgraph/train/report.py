"""Progress output: a rich progress bar on a terminal, plain periodic lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

PLAIN_EVERY_S = 30.0  # plain mode: a progress line at most this often between evaluations


def _duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def _stats(s: dict[str, Any]) -> str:
    return (f"loss {s['loss']:.3f}  err {100 * s['error']:.1f}%  lr {s['lr']:.3g}  "
            f"{s['images_per_s']:.0f} img/s")


def row_line(row: dict[str, Any], total: int) -> str:
    val = (f"  val err {100 * row['val_error']:.2f}%" if row.get("val_error") is not None else "")
    return (
        f"iter {row['iteration']}/{total} (epoch {row['epoch']:.1f})  lr {row['lr']:.3g}  "
        f"train loss {row['train_loss']:.3f} err {100 * row['train_error']:.2f}%  "
        f"test loss {row['test_loss']:.3f} err {100 * row['test_error']:.2f}%{val}  "
        f"{row['images_per_s']:.0f} img/s  {_duration(row['time_s'])}"
    )


class Reporter:
    """Plain lines on stdout (also the base of the other two)."""

    def __init__(self) -> None:
        self.total = self.first = 0
        self.t0 = self.last_line = time.monotonic()

    def start(self, total: int, done: int) -> None:
        self.total, self.first = total, done
        self.t0 = self.last_line = time.monotonic()

    def eta(self, iteration: int) -> str:
        rate = (iteration - self.first) / max(1e-9, time.monotonic() - self.t0)
        return _duration((self.total - iteration) / rate) if rate > 0 else "?"

    def step(self, iteration: int, stats: dict[str, Any] | None) -> None:
        if stats is None or time.monotonic() - self.last_line < PLAIN_EVERY_S:
            return
        self.note(f"iter {iteration}/{self.total}  {_stats(stats)}  ETA {self.eta(iteration)}")

    def row(self, row: dict[str, Any]) -> None:
        self.note(row_line(row, self.total) + f"  ETA {self.eta(row['iteration'])}")

    def note(self, text: str) -> None:
        click.echo(text)
        sys.stdout.flush()
        self.last_line = time.monotonic()

    def close(self) -> None:
        pass


class QuietReporter(Reporter):
    def step(self, iteration: int, stats: dict[str, Any] | None) -> None:
        pass

    def row(self, row: dict[str, Any]) -> None:
        pass

    def note(self, text: str) -> None:
        pass


class BarReporter(Reporter):
    """A rich progress bar: iterations, loss, error, lr, images/s, ETA."""

    def __init__(self) -> None:
        super().__init__()
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"), TextColumn("ETA"), TimeRemainingColumn(),
        )
        self.task: Any = None

    def start(self, total: int, done: int) -> None:
        super().start(total, done)
        self.progress.start()
        self.task = self.progress.add_task("train", total=total, completed=done, stats="")

    def step(self, iteration: int, stats: dict[str, Any] | None) -> None:
        fields = {"stats": _stats(stats)} if stats else {}
        self.progress.update(self.task, completed=iteration, **fields)

    def note(self, text: str) -> None:
        self.progress.console.print(text, markup=False, highlight=False)

    def close(self) -> None:
        if self.task is not None:
            self.progress.stop()
            self.task = None


def make_reporter(quiet: bool, main: bool) -> Reporter:
    if quiet or not main:
        return QuietReporter()
    if sys.stdout.isatty():
        return BarReporter()
    return Reporter()
