"""The progress line: what it keeps on a narrow terminal, and what it drops first."""

from __future__ import annotations

from train_helpers import (
    one_thread,  # noqa: F401 (an autouse fixture: one thread)
)

from resgraph.train import report

# --- output -----------------------------------------------------------------------------


ROW = {
    "epoch": 1.0,
    "iteration": 10,
    "lr": 0.1,
    "train_loss": 2.5,
    "train_error": 0.85,
    "test_loss": 2.619,
    "test_error": 0.9125,
    "val_error": None,
    "images_per_s": 111.0,
    "time_s": 14.0,
}


def test_progress_line_keeps_the_test_error_on_80_columns() -> None:
    full = report.row_line(ROW, 640)
    assert "test err 91.25%" in full and "img/s" in full and len(full) > 80
    narrow = report.row_line(ROW, 640, width=80, eta="3m00s")
    assert len(narrow) <= 80 and "test err 91.25%" in narrow and "iter 10/640" in narrow
    assert "train err 85.00%" in narrow and "ETA 3m00s" in narrow
    tiny = report.row_line(ROW, 640, width=40)
    assert "test err 91.25%" in tiny and len(tiny) <= 40


def test_fit_drops_least_important_first() -> None:
    parts = [("a" * 5, 0), ("b" * 5, 2), ("c" * 5, 1)]
    assert report.fit(parts, None) == "aaaaa  bbbbb  ccccc"
    assert report.fit(parts, 12) == "aaaaa  ccccc"
    assert report.fit(parts, 3) == "aaa"
    assert report.plural(1, "iteration") == "1 iteration"
    assert report.plural(1000, "iteration") == "1,000 iterations"


# --- the run's header ---------------------------------------------------------------------


class _Opts:
    amp, compile, compile_mode = "off", False, "default"
    channels_last = checkpoint_activations = sync_bn = False


def test_device_line_names_the_processes_and_the_settings_that_are_on() -> None:
    one = report.device_line("cpu", 1, _Opts(), "memory about 1 MiB", "runs/a")
    assert one == "device cpu, memory about 1 MiB; run folder runs/a"
    opts = _Opts()
    opts.amp, opts.channels_last, opts.sync_bn = "bf16", True, True
    two = report.device_line("cuda:0", 2, opts, "memory about 1 MiB", "runs/a")
    assert two.startswith("device cuda:0 x 2 processes (amp bf16, channels-last, sync-bn), ")
    # sync-bn means nothing in one process: not shown
    assert "(amp bf16, channels-last)," in report.device_line("cpu", 1, opts, "m", "r")


class _Config:
    iterations, steps_per_epoch, milestones = 100, 100, [50, 75]


class _Recipe:
    lr, gamma, schedule, label_smoothing, batch_size = 0.1, 0.1, "step", 0.0, 128
    momentum, weight_decay, warmup_lr, warmup_until_error = 0.9, 1e-4, 0.0, 0.8


def test_schedule_line_states_length_lr_and_warm_up() -> None:
    line = report.schedule_line(_Config(), _Recipe())
    assert line == (
        "100 iterations (1 epoch of 100 iterations), batch 128, lr 0.1 x0.1 at 50, 75, "
        "momentum 0.9, weight decay 0.0001"
    )
    config, recipe = _Config(), _Recipe()
    config.iterations, config.milestones = 250, []
    recipe.warmup_lr, recipe.label_smoothing = 0.01, 0.1
    line = report.schedule_line(config, recipe)
    assert "(2.5 epochs of 100 iterations)" in line
    assert "lr 0.1 (no milestones), label smoothing 0.1," in line
    assert line.endswith(", warm-up at lr 0.01 until training error < 80%")
    recipe.schedule = "cosine"
    assert "lr 0.1 along a cosine to 0" in report.schedule_line(config, recipe)
