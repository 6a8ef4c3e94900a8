"""The degradation experiment (He et al. 2015, sec. 4.2, Fig. 6) on scikit-learn's digits.

Trains plain and residual CIFAR networks of the same depths with ``resgraph train``, reads
each run's metrics.csv and draws one Fig. 6-style picture: plain networks on the left,
residual ones on the right, training error dashed and test error bold. The recipe is the
paper's, shortened to what a CPU does in minutes:

- SGD, momentum 0.9, weight decay 1e-4, lr 0.1 divided by 10 at 1/2 and 3/4 of the run;
- warm-up as the paper trains ResNet-110 (sec. 4.2): lr 0.01 until the training error is
  below 80%, then 0.1 (every net gets it, so plain and residual nets share one recipe);
- the digits at their own 8x8 resolution (the spec's input size set to 8; the stages then
  work at 8x8, 4x4 and 2x2), without the pad-4 random crops, which would shift an 8x8
  digit by half its width.

    nice -n 10 python benchmarks/degradation.py                 # 20 and 56 layers
    nice -n 10 python benchmarks/degradation.py --depths 20 56 110
    python benchmarks/degradation.py --smoke --out /tmp/deg     # two nets, a few iterations
    python benchmarks/degradation.py --plot-only                # redraw from runs/degradation

Networks are the bundled specs (specs/cifar_plain{N}.yaml, specs/cifar_resnet{N}.yaml); a
depth without a bundled plain spec gets the residual one with ``shortcut: none``. Each run
is a subprocess of ``python -m resgraph train``, so its folder is an ordinary run folder.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/: machine.py
from machine import describe  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
FIGURE = ROOT / "docs" / "images" / "degradation.png"
RESULTS = ROOT / "benchmarks" / "degradation_RESULTS.md"
# Everything after this line of an existing results file (what the figures mean) is kept
# when the script rewrites the file.
NOTES = "<!-- notes: kept as they are when benchmarks/degradation.py rewrites this file -->"
KINDS = ("plain", "resnet")
LABEL = {"plain": "plain", "resnet": "ResNet"}


@dataclass(frozen=True)
class Net:
    kind: str  # "plain" or "resnet"
    depth: int
    seed: int

    @property
    def name(self) -> str:
        return f"{self.kind}{self.depth}_seed{self.seed}"

    @property
    def label(self) -> str:
        return f"{LABEL[self.kind]}-{self.depth}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--depths",
        type=int,
        nargs="+",
        default=[20, 56],
        help="6n+2 depths of the CIFAR networks (default: 20 56)",
    )
    p.add_argument(
        "--seed",
        dest="seed_list",
        type=int,
        nargs="+",
        default=[0],
        help="one run per seed and net",
    )
    p.add_argument("--iterations", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--warmup-lr", type=float, default=0.01)
    p.add_argument("--no-warmup", action="store_true", help="lr --lr from the first iteration")
    p.add_argument("--warmup-until-error", type=float, default=0.8)
    p.add_argument("--eval-every", type=int, default=20)
    p.add_argument("--size", type=int, default=8, help="input size (digits are 8x8)")
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="runs at a time, each with one thread per job's share of the cores",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=ROOT / "runs" / "degradation",
        help="folder of the run folders (existing finished runs are reused)",
    )
    p.add_argument(
        "--figure",
        type=Path,
        default=None,
        help=f"the picture (default: {FIGURE.relative_to(ROOT)}; with --smoke, in --out)",
    )
    p.add_argument(
        "--results",
        type=Path,
        default=None,
        help=f"the results (default: {RESULTS.relative_to(ROOT)}; with --smoke, in --out)",
    )
    p.add_argument("--plot-only", action="store_true", help="only redraw from finished runs")
    p.add_argument(
        "--smoke",
        action="store_true",
        help="plain-20 and ResNet-20 for 4 iterations (a check that it all works)",
    )
    args = p.parse_args(argv)
    if args.out is None:
        args.out = ROOT / "runs" / ("degradation_no_warmup" if args.no_warmup else "degradation")
    if args.smoke:
        args.depths, args.seed_list, args.iterations, args.eval_every = [20], [0], 4, 2
        args.batch_size = min(args.batch_size, 16)
    if args.figure is None:
        args.figure = args.out / "degradation.png" if args.smoke else FIGURE
    if args.results is None:
        args.results = args.out / "degradation_RESULTS.md" if args.smoke else RESULTS
    for d in args.depths:
        if d < 8 or (d - 2) % 6:
            p.error(f"depth {d} is not 6n+2 with n >= 1")
    return args


def write_spec(net: Net, args: argparse.Namespace, folder: Path) -> Path:
    """The bundled spec of ``net`` with the input size and the recipe of this experiment."""
    source = SPECS / f"cifar_{net.kind}{net.depth}.yaml"
    data = None
    if source.exists():
        data = yaml.safe_load(source.read_text())
    else:
        residual = SPECS / f"cifar_resnet{net.depth}.yaml"
        if not residual.exists():
            raise SystemExit(f"error: no spec for depth {net.depth} ({residual} is missing)")
        data = yaml.safe_load(residual.read_text())
        if net.kind == "plain":
            data["shortcut"] = "none"
            data["name"] = f"CIFAR Plain-{net.depth}"
    data["input"]["size"] = args.size
    data["train"] = {
        "dataset": "digits",
        "iterations": args.iterations,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "warmup_lr": None if args.no_warmup else args.warmup_lr,
        "warmup_until_error": args.warmup_until_error,
        "eval_every": args.eval_every,
        "augment": False,
        "seed": net.seed,
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{net.name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def finished(run: Path, iterations: int) -> bool:
    rows = read_rows(run)
    return bool(rows) and rows[-1]["iteration"] >= iterations


def train(net: Net, args: argparse.Namespace, threads: int) -> tuple[Net, float]:
    run = args.out / net.name
    if finished(run, args.iterations):
        return net, 0.0
    spec = write_spec(net, args, args.out / "specs")
    cmd = [
        sys.executable,
        "-m",
        "resgraph",
        "train",
        str(spec),
        "--device",
        "cpu",
        "--out",
        str(run),
        "-q",
    ]
    if (run / "last.pt").exists():
        cmd.append("--resume")
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    t0 = time.monotonic()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(
            f"error: {net.label} failed ({done.returncode}): "
            f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}"
        )
    return net, time.monotonic() - t0


def read_rows(run: Path) -> list[dict[str, float]]:
    path = run / "metrics.csv"
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [
            {
                k: float(v)
                for k, v in row.items()
                if k in ("iteration", "train_error", "test_error", "lr", "time_s")
            }
            for row in csv.DictReader(f)
        ]


def last_window(rows: list[dict[str, float]], n: int = 3) -> dict[str, float]:
    """Mean training and test error of the last ``n`` rows (the curves are noisy)."""
    tail = rows[-n:]
    return {k: sum(r[k] for r in tail) / len(tail) for k in ("train_error", "test_error")}


def plot(nets: list[Net], args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    depths = sorted({n.depth for n in nets})
    colours = dict(zip(depths, ["tab:orange", "tab:red", "tab:purple", "tab:brown"], strict=False))
    fig = Figure(figsize=(10, 4), dpi=110)
    axes = fig.subplots(1, 2, sharey=True)
    top = 0.0
    for ax, kind in zip(axes, KINDS, strict=True):
        for net in (n for n in nets if n.kind == kind):
            rows = read_rows(args.out / net.name)
            its = [r["iteration"] for r in rows]
            first = net.seed == min(args.seed_list)
            tr = [100 * r["train_error"] for r in rows]
            te = [100 * r["test_error"] for r in rows]
            top = max([top, *tr, *te])
            c = colours[net.depth]
            ax.plot(
                its,
                tr,
                "--",
                color=c,
                lw=1,
                alpha=0.9,
                label=f"{net.label} train" if first else None,
            )
            ax.plot(its, te, "-", color=c, lw=2.2, label=f"{net.label} test" if first else None)
        ax.set_title(f"{LABEL[kind]} networks")
        ax.set_xlabel("iter.")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("error (%)")
    axes[0].set_ylim(0, min(100, max(5.0, top * 1.05)))
    fig.suptitle(
        f"digits ({args.size}x{args.size}), batch {args.batch_size}, "
        + (
            f"warm-up lr {args.warmup_lr:g} then {args.lr:g}: "
            if not args.no_warmup
            else f"lr {args.lr:g}, no warm-up: "
        )
        + "dashed training error, bold test error",
        fontsize=10,
    )
    fig.tight_layout()
    args.figure.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.figure.with_name(args.figure.name + ".tmp")
    fig.savefig(tmp, format="png")
    os.replace(tmp, args.figure)


def summarise(
    nets: list[Net], args: argparse.Namespace, wall: dict[str, float], argv: list[str]
) -> str:
    lines = [
        "# The degradation experiment on digits",
        "",
        f"Machine: {describe()}, Python {platform.python_version()}; shared with other "
        "work, runs at `nice -n 10`.",
        "",
        "Command:",
        "",
        "```sh",
        "nice -n 10 python benchmarks/degradation.py " + " ".join(shlex.quote(a) for a in argv),
        "```",
        "",
        f"Recipe: scikit-learn's digits (1,397 training, 400 test images) at {args.size}x"
        f"{args.size}, no augmentation, batch {args.batch_size}, {args.iterations} iterations, "
        "SGD momentum 0.9, weight decay 1e-4, "
        + (
            "no warm-up: "
            if args.no_warmup
            else f"warm-up lr {args.warmup_lr:g} until the training error is below "
            f"{100 * args.warmup_until_error:g}%, then "
        )
        + f"lr {args.lr:g}, divided by "
        "10 at 1/2 and 3/4 of the run; test error every "
        f"{args.eval_every} iterations. Seed(s): {', '.join(map(str, args.seed_list))}.",
        "",
        "Errors are the mean of the last three evaluations (training error: over the "
        "iterations since the previous evaluation; test error: the 400 test images).",
        "",
        "| network | seed | training error | test error | warm-up ended near iter. | wall time |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for net in nets:
        rows = read_rows(args.out / net.name)
        if not rows:
            continue
        w = last_window(rows)
        ended = next((int(r["iteration"]) for r in rows if r["lr"] > args.warmup_lr * 1.0001), None)
        secs = rows[-1]["time_s"]
        lines.append(
            f"| {net.label} | {net.seed} | {100 * w['train_error']:.1f}% | "
            f"{100 * w['test_error']:.1f}% | {ended if ended is not None else 'never'} | "
            f"{secs / 60:.1f} min |"
        )
    lines += [
        "",
        f"![degradation](../docs/images/{args.figure.name})"
        if not args.smoke
        else f"![degradation]({args.figure.name})",
        "",
    ]
    return "\n".join(lines)


def with_notes(text: str, results: Path) -> str:
    """The new results followed by the notes of the file they replace, if it has any."""
    old = results.read_text() if results.exists() else ""
    if NOTES not in old:
        return text
    return text.rstrip("\n") + "\n\n" + old[old.index(NOTES) :]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    nets = [Net(kind, d, s) for d in args.depths for kind in KINDS for s in args.seed_list]
    wall: dict[str, float] = {}
    if not args.plot_only:
        threads = max(1, (os.cpu_count() or 1) // max(1, args.jobs))
        # deepest first, so the longest runs start early when several run at once
        order = sorted(nets, key=lambda n: -n.depth)
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            for net, secs in pool.map(lambda n: train(n, args, threads), order):
                wall[net.name] = secs
                print(f"{net.label} seed {net.seed}: {secs:.0f} s", flush=True)
    missing = [n.label for n in nets if not read_rows(args.out / n.name)]
    if missing:
        raise SystemExit(f"error: no metrics for {', '.join(missing)} in {args.out}")
    plot(nets, args)
    text = summarise(nets, args, wall, [a for a in argv if a != "--plot-only"])
    text = with_notes(text, args.results)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
