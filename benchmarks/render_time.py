"""Time ``resgraph render`` at the default level for every spec in specs/.

For each spec: lowering (load + all passes), DOT generation (``to_dot``), the ``dot`` layout
to SVG, and the whole command end to end in a fresh process (Python start-up and imports
included). Lowering, DOT and layout are the median of ``--repeat`` runs. Prints a Markdown
table.

    .venv/bin/python benchmarks/render_time.py [--repeat 3] [SPEC ...]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import graphviz

from resgraph import load_spec, lower
from resgraph.render import build, default_level

ROOT = Path(__file__).resolve().parents[1]


def median_time(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("specs", nargs="*", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    specs = args.specs or sorted((ROOT / "specs").glob("*.yaml"))
    has_dot = shutil.which("dot") is not None
    cli = Path(sys.executable).with_name("resgraph")

    print(
        f"python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"graphviz {graphviz.version() if has_dot else 'not installed'}; "
        f"median of {args.repeat} runs, seconds\n"
    )
    print(
        "| spec | ops | blocks | default level | nodes drawn | lower | DOT | dot -Tsvg "
        "| CLI end to end |"
    )
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for path in specs:
            t_lower, ir = median_time(lambda p=path: lower(load_spec(p)), args.repeat)
            level = default_level(ir)
            t_dot, (graph, shown) = median_time(lambda ir=ir: build(ir), args.repeat)
            source = graph.source.encode("utf-8")
            t_layout, cli_time = float("nan"), float("nan")
            if has_dot:
                t_layout, _ = median_time(
                    lambda s=source: graphviz.pipe("dot", "svg", s), args.repeat
                )
                start = time.perf_counter()
                subprocess.run(
                    [str(cli), "render", str(path), "-o", f"{tmp}/{path.stem}.svg"],
                    check=True,
                    capture_output=True,
                )
                cli_time = time.perf_counter() - start
            print(
                f"| {path.stem} | {len(ir.graph)} | {len(ir.blocks)} | {level} | {shown} | "
                f"{t_lower:.3f} | {t_dot:.3f} | {t_layout:.3f} | {cli_time:.2f} |"
            )


if __name__ == "__main__":
    main()
