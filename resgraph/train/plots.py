"""What a run leaves in its folder besides checkpoints: metrics.csv and curves.png."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from resgraph.fsutil import atomic_write_bytes, atomic_write_text

COLUMNS = (
    "epoch",
    "iteration",
    "lr",
    "train_loss",
    "train_error",
    "test_loss",
    "test_error",
    "images_per_s",
    "time_s",
    "val_loss",
    "val_error",
)


def write_metrics(path: Path, rows: list[dict[str, Any]]) -> None:
    """All evaluation rows so far (errors are fractions; val_* empty without a split)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _fmt(row.get(k)) for k in COLUMNS})
    atomic_write_text(path, out.getvalue())


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def read_metrics(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_curves(path: Path, rows: list[dict[str, Any]], title: str) -> None:
    """Training (dashed) and test (bold) error against iterations, like the paper's Fig. 6."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), dpi=120)
    ax = fig.add_subplot()
    its = [r["iteration"] for r in rows]
    scale, unit = (1e4, " (1e4)") if its and max(its) >= 20000 else (1, "")
    x = [i / scale for i in its]
    ax.plot(x, [100 * r["train_error"] for r in rows], "--", color="tab:blue", label="train error")
    ax.plot(
        x, [100 * r["test_error"] for r in rows], "-", color="tab:blue", lw=2, label="test error"
    )
    if any(r.get("val_error") is not None for r in rows):
        ax.plot(
            x,
            [100 * r["val_error"] for r in rows],
            ":",
            color="tab:orange",
            label="validation error",
        )
    ax.set_xlabel(f"iter.{unit}")
    ax.set_ylabel("error (%)")
    ax.set_title(title)
    top = max([100 * r["train_error"] for r in rows] + [100 * r["test_error"] for r in rows] + [1])
    ax.set_ylim(0, min(100, top * 1.05))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())
