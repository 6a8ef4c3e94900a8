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
