"""Progress output: a rich progress bar on a terminal, plain periodic lines otherwise."""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import click

T = TypeVar("T")
PLAIN_EVERY_S = 30.0  # plain mode: a progress line at most this often between evaluations


def _duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def plural(n: int, word: str) -> str:
    """'1 iteration', '2 iterations', '1,000 iterations'."""
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def fit(parts: list[tuple[str, int]], width: int | None) -> str:
    """Join ``(text, priority)`` parts with two spaces, dropping the least important parts
    (highest priority number) until the line fits ``width`` (None: no limit)."""
    parts = list(parts)
    while width is not None and len(parts) > 1 and len("  ".join(t for t, _ in parts)) > width:
        parts.remove(max(parts, key=lambda p: p[1]))
    line = "  ".join(t for t, _ in parts)
    return line if width is None or len(line) <= width else line[:width]


def _stats(s: dict[str, Any], width: int | None = None) -> str:
    return fit(
        [
            (f"err {100 * s['error']:.1f}%", 0),
            (f"loss {s['loss']:.3f}", 2),
            (f"lr {s['lr']:.3g}", 1),
            (f"{s['images_per_s']:.0f} img/s", 3),
            *([(f"data wait {100 * s['data_wait']:.0f}%", 2)] if "data_wait" in s else []),
        ],
        width,
    )


def row_line(row: dict[str, Any], total: int, width: int | None = None, eta: str = "") -> str:
    """An evaluation's line; on a narrow terminal the test error is the last thing to go."""
    parts = [
        (f"iter {row['iteration']}/{total} (epoch {row['epoch']:.1f})", 0),
        (f"lr {row['lr']:.3g}", 4),
        (f"train loss {row['train_loss']:.3f}", 6),
        (f"train err {100 * row['train_error']:.2f}%", 1),
        (f"test loss {row['test_loss']:.3f}", 5),
        (f"test err {100 * row['test_error']:.2f}%", 0),
    ]
    if row.get("val_error") is not None:
        parts.append((f"val err {100 * row['val_error']:.2f}%", 2))
    parts += [(f"{row['images_per_s']:.0f} img/s", 7), (_duration(row["time_s"]), 8)]
    if eta:
        parts.append((f"ETA {eta}", 3))
    return fit(parts, width)


def schedule_line(config: Any, recipe: Any) -> str:
    """The run's length, mini-batch, learning-rate schedule and optimizer in one line."""
    c, r = config, recipe
    ms = ", ".join(map(str, c.milestones))
    lr = f"lr {r.lr:g} x{r.gamma:g} at {ms}" if ms else f"lr {r.lr:g} (no milestones)"
    if r.schedule == "cosine":
        lr = f"lr {r.lr:g} along a cosine to 0"
    if r.label_smoothing:
        lr += f", label smoothing {r.label_smoothing:g}"
    epochs = c.iterations / c.steps_per_epoch
    unit = "epoch" if epochs == 1 else "epochs"
    warmup = (
        f", warm-up at lr {r.warmup_lr:g} until training error < {100 * r.warmup_until_error:g}%"
        if r.warmup_lr
        else ""
    )
    return (
        f"{plural(c.iterations, 'iteration')} ({epochs:.3g} {unit} of "
        f"{plural(c.steps_per_epoch, 'iteration')}), batch {r.batch_size}, {lr}, "
        f"momentum {r.momentum:g}, weight decay {r.weight_decay:g}{warmup}"
    )


def device_line(device: object, world: int, opts: Any, memory: str, folder: object) -> str:
    """Where the run trains (``world`` processes), the execution settings that are on, the
    memory it needs and its folder."""
    procs = f" x {world} processes" if world > 1 else ""
    extras = [f"amp {opts.amp}"] if opts.amp != "off" else []
    extras += [
        name
        for name, on in (
            ("channels-last", opts.channels_last),
            (f"compile {opts.compile_mode}", opts.compile),
            ("checkpoint-activations", opts.checkpoint_activations),
            ("sync-bn", opts.sync_bn and world > 1),
        )
        if on
    ]
    extra = f" ({', '.join(extras)})" if extras else ""
    return f"device {device}{procs}{extra}, {memory}; run folder {folder}"


def progress(show: bool) -> Callable[[Sequence[T], str], Iterator[T]]:
    """Wrap a sequence in a transient rich progress bar on a terminal (when ``show``)."""

    def bar(items: Sequence[T], what: str) -> Iterator[T]:
        if not (show and sys.stderr.isatty()):
            return iter(items)
        from rich.console import Console
        from rich.progress import track

        console = Console(stderr=True)
        return iter(track(items, description=what, transient=True, console=console))

    return bar


def terminal_width() -> int | None:
    """The terminal's width when stdout is one, else None (log files take any length)."""
    return shutil.get_terminal_size().columns if sys.stdout.isatty() else None


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
        head = f"iter {iteration}/{self.total}"
        width = terminal_width()
        room = None if width is None else max(10, width - len(head) - 2)
        self.note(f"{head}  {_stats(stats, room)}  ETA {self.eta(iteration)}"[:width])

    def row(self, row: dict[str, Any]) -> None:
        self.note(row_line(row, self.total, self.width(), self.eta(row["iteration"])))

    def width(self) -> int | None:
        return terminal_width()

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
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TextColumn("ETA"),
            TimeRemainingColumn(),
        )
        self.task: Any = None

    def start(self, total: int, done: int) -> None:
        super().start(total, done)
        self.progress.start()
        self.task = self.progress.add_task("train", total=total, completed=done, stats="")

    def step(self, iteration: int, stats: dict[str, Any] | None) -> None:
        # Room for the statistics: the width less the label, a 10-column bar, "N/N", the
        # ETA and the gaps between columns, so nothing else gets cut.
        fixed = len("train") + 10 + 2 * len(str(self.total)) + 1 + len("ETA 0:00:00") + 5
        fields = {"stats": _stats(stats, max(0, self.width() - fixed))} if stats else {}
        self.progress.update(self.task, completed=iteration, **fields)

    def width(self) -> int:
        return int(self.progress.console.width)

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
