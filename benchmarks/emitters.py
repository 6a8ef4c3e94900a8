"""Speed of the emitted models on this machine's CPU.

    python benchmarks/emitters.py [--quick]

1. executed graph vs generated module: forward at batch 1 on cifar_resnet1202 (eval);
2. generated module vs a hand-written ResNet-56 (benchmarks/reference_resnet.py): one SGD
   training step at batch 128;
3. instantiating cifar_resnet1202: the generated file's build_model() vs the hand-written
   ResNet-1202, and the executed graph built from the IR.
Timings alternate between the contenders and report medians, so background load hits both.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_resnet import CifarResNet  # noqa: E402

from resgraph import load_spec, lower  # noqa: E402
from resgraph.emit.graph_module import build_module  # noqa: E402
from resgraph.emit.source import build_generated  # noqa: E402

SPECS = Path(__file__).resolve().parent.parent / "specs"


def alternate(fns: dict[str, object], rounds: int, inner: int = 1) -> dict[str, float]:
    """Median seconds per call of each function, taking turns; like timeit, the garbage
    collector is off while timing and results are freed outside the timed region."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            gc.collect()
            gc.disable()
            start = time.perf_counter()
            results = [fn() for _ in range(inner)]
            times[name].append((time.perf_counter() - start) / inner)
            gc.enable()
            del results
    return {k: statistics.median(v) for k, v in times.items()}


def forward_1202(rounds: int) -> dict[str, float]:
    ir = lower(load_spec(SPECS / "cifar_resnet1202.yaml"))
    gen, graph = build_generated(ir, seed=0).eval(), build_module(ir, seed=0).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        for m in (gen, graph):
            m(x)
        return alternate({"generated": lambda: gen(x), "graph": lambda: graph(x)}, rounds, 3)


def train_step_56(rounds: int) -> dict[str, float]:
    gen = build_generated(lower(load_spec(SPECS / "cifar_resnet56.yaml")), seed=0)
    ref = CifarResNet(9)
    x, y = torch.randn(128, 3, 32, 32), torch.randint(0, 10, (128,))

    def step(model, opt):
        def run() -> None:
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()

        return run

    fns = {
        name: step(m, torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9))
        for name, m in (("generated", gen), ("hand-written", ref))
    }
    for fn in fns.values():
        fn()
    return alternate(fns, rounds)


def instantiate_1202(rounds: int) -> dict[str, float]:
    """``build_model()`` of generated/cifar_resnet1202.py vs the hand-written constructor;
    for the executed graph, ``build_module`` from the checked IR (compilation included)."""
    path = SPECS.parent / "generated" / "cifar_resnet1202.py"
    spec = importlib.util.spec_from_file_location("cifar_resnet1202_generated", path)
    generated = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generated)
    ir = lower(load_spec(SPECS / "cifar_resnet1202.yaml"))
    fns = {
        "generated": generated.build_model,
        "hand-written": lambda: CifarResNet(200),
        "graph": lambda: build_module(ir),
    }
    return alternate(fns, rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args()
    rounds = 3 if args.quick else 9
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU\n")
    print("| benchmark | contender | median time | ratio |")
    print("|---|---|---|---|")
    for title, fn, base in (
        ("forward, batch 1, cifar_resnet1202", forward_1202, "generated"),
        ("train step, batch 128, ResNet-56", train_step_56, "hand-written"),
        ("instantiate cifar_resnet1202", instantiate_1202, "hand-written"),
    ):
        result = fn(rounds)
        for name, t in result.items():
            print(f"| {title} | {name} | {t * 1000:.1f} ms | {t / result[base]:.3f}x |")


if __name__ == "__main__":
    main()
