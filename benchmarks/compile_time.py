"""Compile time per spec: loading + validation, lowering with every pass, and source
emission, median of several runs in-process. Also the CLI's wall time for `validate`
(a fresh process: import time included, torch never imported).

    python benchmarks/compile_time.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from resgraph import load_spec, lower  # noqa: E402
from resgraph.emit.source import emit_source  # noqa: E402


def median_time(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    print("| spec | IR nodes | load + validate | lower + passes | emit source |")
    print("|---|---:|---:|---:|---:|")
    for path in sorted((ROOT / "specs").glob("*.yaml")):
        spec = load_spec(path)
        ir = lower(spec)
        load_t = median_time(lambda path=path: load_spec(path), args.runs)
        lower_t = median_time(lambda spec=spec: lower(spec), args.runs)
        emit_t = median_time(lambda ir=ir: emit_source(ir), args.runs)
        print(
            f"| {path.stem} | {len(ir.graph):,} | {load_t * 1e3:.1f} ms | "
            f"{lower_t * 1e3:.1f} ms | {emit_t * 1e3:.1f} ms |"
        )
    cli = [
        sys.executable,
        "-m",
        "resgraph",
        "validate",
        str(ROOT / "specs" / "cifar_resnet1202.yaml"),
    ]
    wall = median_time(lambda: subprocess.run(cli, check=True, capture_output=True), 5)
    print(f"\n`resgraph validate specs/cifar_resnet1202.yaml` (fresh process): {wall * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
