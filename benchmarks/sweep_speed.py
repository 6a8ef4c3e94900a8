"""Trials per hour of a digits sweep: ``resgraph sweep`` (Ray Tune, one CPU per trial)
against the same specs trained one after another by ``resgraph train``, on the same cores.

Draws N networks from specs/spaces/cifar_regnet.yaml made digits-sized (16x16 input, an
8-channel stem, at most 200K parameters), then times both ways of training them all for
ITERATIONS iterations at batch 32, each from a fresh process as a user runs them (Ray's start
included in the sweep's time).

    PYTHONPATH=. .venv/bin/python benchmarks/sweep_speed.py [--count 8] [--iterations 100]

Prints a Markdown table; benchmarks/sweep_speed_RESULTS.md holds a run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPACE = ROOT / "specs" / "spaces" / "cifar_regnet.yaml"
SIZE = ["--set", "input.size=16", "--set", "stem.width=8"]


def resgraph(*args: str, cwd: Path) -> float:
    start = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(
        [sys.executable, "-m", "resgraph", *args], cwd=cwd, env=env, check=True, capture_output=True
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=100)
    args = parser.parse_args()
    train = [
        "--dataset",
        "digits",
        "--iterations",
        str(args.iterations),
        "--batch-size",
        "32",
        "--device",
        "cpu",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        resgraph(
            "sample",
            str(SPACE),
            "-n",
            str(args.count),
            *SIZE,
            "--params",
            ":200K",
            "-o",
            "specs",
            cwd=work,
        )
        load = os.getloadavg()[0]
        swept = resgraph("sweep", "specs", "--out", "sweep", *train, cwd=work)
        sequential = sum(
            resgraph("train", str(spec), *train, "-q", "--out", f"seq/{spec.stem}", cwd=work)
            for spec in sorted((work / "specs").glob("*.yaml"))
        )
    print(f"{os.cpu_count()} cores, load average {load:.2f} before, {os.getloadavg()[0]:.2f} after")
    print("| way | trials | seconds | trials per hour |")
    print("|---|---|---|---|")
    for name, seconds in (
        ("resgraph sweep (Ray Tune, 1 CPU a trial)", swept),
        ("resgraph train, one after another", sequential),
    ):
        print(f"| {name} | {args.count} | {seconds:.1f} | {3600 * args.count / seconds:.0f} |")


if __name__ == "__main__":
    main()
