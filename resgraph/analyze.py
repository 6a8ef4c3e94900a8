"""``resgraph analyze``: compare design spaces by the errors of their sweeps.

For each sweep folder (``SWEEP/results.csv`` from ``resgraph sweep``; one sweep per design
space) the error empirical distribution function (EDF) of its finished trials: F(e), the
fraction of its networks with an error below e (Radosavovic et al. 2019, "On Network Design
Spaces for Visual Recognition", sec. 3), every sweep on one plot; error against MACs and
against parameters; and the best specs. Written as PNGs (matplotlib, Agg) and one
self-contained HTML page with the images inlined.
"""

from __future__ import annotations

import base64
import csv
import html
import io
from dataclasses import dataclass
from pathlib import Path

import click

from resgraph.errors import ResgraphError
from resgraph.fsutil import atomic_write_bytes, atomic_write_text
from resgraph.options import FOLDER, bounded_option, folder_option

NEEDED = {"spec", "params", "macs", "error", "status"}
PLOTS = ("edf", "error_vs_macs", "error_vs_params")


class AnalyzeError(ResgraphError):
    """A sweep's results cannot be read, or hold nothing to analyse."""


@dataclass(frozen=True)
class Row:
    sweep: str  # the sweep (its folder as given): one design space
    spec: str
    params: int
    macs: int
    error: float


def read_sweep(folder: Path) -> list[Row]:
    """The finished trials of one sweep."""
    path = folder / "results.csv"
    try:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            missing = NEEDED - set(reader.fieldnames or ())
            if missing:
                raise AnalyzeError(
                    f"{path}: not a sweep's results (no column {sorted(missing)[0]!r})"
                )
            raw = list(reader)
    except FileNotFoundError:
        raise AnalyzeError(f"{path}: no such file (run resgraph sweep first)") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise AnalyzeError(f"{path}: cannot read: {exc}") from None
    rows = []
    for i, r in enumerate(raw, start=2):
        if r["status"] != "ok":
            continue
        try:
            rows.append(
                Row(str(folder), r["spec"], int(r["params"]), int(r["macs"]), float(r["error"]))
            )
        except (TypeError, ValueError):
            raise AnalyzeError(f"{path}:{i}: a finished trial without numbers") from None
    return rows


def edf(errors: list[float]) -> tuple[list[float], list[float]]:
    """The steps of F(e) = #{error <= e} / n: sorted errors and the fraction at each."""
    xs = sorted(errors)
    return xs, [(i + 1) / len(xs) for i in range(len(xs))]


def _figures(rows: list[Row]) -> dict[str, bytes]:
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    sweeps = sorted({r.sweep for r in rows})
    out = {}
    for name in PLOTS:
        fig = Figure(figsize=(5.5, 4), dpi=100)
        ax = fig.subplots()
        for sweep in sweeps:
            mine = [r for r in rows if r.sweep == sweep]
            label = f"{sweep} (n={len(mine)})"
            if name == "edf":
                xs, fs = edf([100 * r.error for r in mine])
                ax.step([xs[0], *xs], [0, *fs], where="post", label=label)
            else:
                key = "macs" if name == "error_vs_macs" else "params"
                ax.scatter(
                    [getattr(r, key) for r in mine],
                    [100 * r.error for r in mine],
                    s=12,
                    label=label,
                )
                ax.set_xscale("log")
        ax.set_xlabel("error (%)" if name == "edf" else name.split("_")[-1].replace("macs", "MACs"))
        ax.set_ylabel("cumulative fraction of networks" if name == "edf" else "error (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        out[name] = buf.getvalue()
    return out


def _page(rows: list[Row], images: dict[str, bytes], best: int) -> str:
    esc = html.escape
    top = sorted(rows, key=lambda r: r.error)[:best]
    table = "".join(
        f"<tr><td>{esc(r.sweep)}</td><td>{esc(r.spec)}</td><td>{100 * r.error:.2f}</td>"
        f"<td>{r.params:,}</td><td>{r.macs:,}</td></tr>"
        for r in top
    )
    figures = "".join(
        f'<img alt="{name}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'
        for name, data in images.items()
    )
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>Design spaces</title>'
        "<style>body{font-family:sans-serif}td,th{padding:2px 8px;text-align:right}"
        "</style></head><body><h1>Design spaces</h1>"
        f"{figures}<h2>Best {len(top)} networks</h2><table><tr><th>sweep</th><th>spec</th>"
        f"<th>error (%)</th><th>params</th><th>MACs</th></tr>{table}</table></body></html>\n"
    )


def analyze(sweeps: list[Path], out: Path, best: int = 10) -> list[Row]:
    """Write the plots and the page for ``sweeps`` into ``out``; the best rows."""
    rows = [r for folder in sweeps for r in read_sweep(folder)]
    if not rows:
        raise AnalyzeError("no finished trials to analyse in " + ", ".join(map(str, sweeps)))
    images = _figures(rows)
    for name, data in images.items():
        atomic_write_bytes(out / f"{name}.png", data)
    atomic_write_text(out / "index.html", _page(rows, images, best))
    return sorted(rows, key=lambda r: r.error)[:best]


@click.command()
@click.argument("sweeps", nargs=-1, required=True, type=FOLDER)
@folder_option("out", "Folder for the PNGs and index.html [default: FIRST/analysis].")
@bounded_option("--best", lo=1, hi=1000, default=10, help="How many of the best specs to list.")
def analyze_cmd(sweeps: tuple[Path, ...], out: Path | None, best: int) -> None:
    """Error EDF of each sweep (one per design space) on one plot, error against MACs and
    parameters, and the best specs: PNGs and one self-contained HTML page."""
    target = out if out is not None else sweeps[0] / "analysis"
    top = analyze(list(sweeps), target, best)
    click.echo(f"wrote {target / 'index.html'} and {len(PLOTS)} plots")
    for r in top:
        click.echo(
            f"  {100 * r.error:6.2f}%  {r.spec}  ({r.sweep}, {r.params:,} params, {r.macs:,} MACs)"
        )
