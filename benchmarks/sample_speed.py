"""How fast ``resgraph sample`` draws RegNetX networks at 400M MACs +-10%, against a plain
rejection sampler written from the paper's description (Radosavovic et al. 2020, sec. 3-4:
draw w0, wa, wm, d, g uniformly in the RegNetX ranges, turn them into stage widths with
eq. 2-4, build the network, measure it, keep it when it is inside the budget). The
comparison sampler is written here for this benchmark only and builds each network as a
PyTorch module, counting multiply-adds with forward hooks on one 224x224 image, as a model
library without a static compiler does.

    .venv/bin/python benchmarks/sample_speed.py [--count 100] [--baseline-draws 200] [--jobs 1]

Prints a Markdown table; benchmarks/sample_speed_RESULTS.md holds a run.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPACE = ROOT / "specs" / "spaces" / "regnetx.yaml"
BUDGET = (360_000_000, 440_000_000)
sys.path.insert(0, str(ROOT))
from resgraph.spec.schema import MAX_WIDTH  # noqa: E402


def resgraph_sampler(count: int, jobs: int) -> tuple[float, int]:
    """(seconds, draws) for ``count`` accepted samples from ``resgraph sample``'s code."""
    from resgraph.sample import sample
    from resgraph.spec.space import Space

    start = time.perf_counter()
    result = sample(Space(SPACE), count, {"macs": BUDGET}, 0, 10**6, jobs=jobs)
    assert len(result.accepted) == count
    return time.perf_counter() - start, result.draws


# --- the comparison sampler: from the paper's description, for this benchmark only ------


def paper_widths(w0: int, wa: float, wm: float, d: int, g: int) -> list[tuple[int, int, int]]:
    """(width, blocks, groups) per stage by eq. 2-4 with widths a multiple of 8."""
    ws = []
    for j in range(d):
        s = round(math.log((w0 + wa * j) / w0) / math.log(wm))
        ws.append(max(8, int(round(w0 * wm**s / 8) * 8)))
    stages: list[list[int]] = []
    for w in ws:
        if stages and stages[-1][0] == w:
            stages[-1][1] += 1
        else:
            stages.append([w, 1])
    out = []
    for w, n in stages:
        gw = min(g, w)
        w = max(gw, int(round(w / gw) * gw))
        out.append((w, n, w // gw))
    return out


def torch_network(stages: list[tuple[int, int, int]]):
    import torch.nn as nn

    def cbr(i, o, k, s, groups=1, relu=True):
        layers = [nn.Conv2d(i, o, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(o)]
        return layers + ([nn.ReLU()] if relu else [])

    class XBlock(nn.Module):
        def __init__(self, i, o, s, groups):
            super().__init__()
            self.f = nn.Sequential(
                *cbr(i, o, 1, 1), *cbr(o, o, 3, s, groups), *cbr(o, o, 1, 1, relu=False)
            )
            self.proj = nn.Sequential(*cbr(i, o, 1, s, relu=False)) if (i != o or s != 1) else None

        def forward(self, x):
            return (self.f(x) + (self.proj(x) if self.proj is not None else x)).relu()

    layers, width = cbr(3, 32, 3, 2), 32  # RegNet's stem: 3x3/2 conv, BN, ReLU, no pool
    for w, n, groups in stages:
        for b in range(n):
            layers.append(XBlock(width, w, 2 if b == 0 else 1, groups))
            width = w
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 1000)]
    return nn.Sequential(*layers)


def torch_macs(model) -> int:
    import torch
    import torch.nn as nn

    total = [0]

    def hook(module, inputs, output):
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            total[0] += output.numel() * k * module.in_channels // module.groups
        elif isinstance(module, nn.Linear):
            total[0] += module.in_features * module.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, 224, 224))
    for h in handles:
        h.remove()
    return total[0]


def baseline_sampler(draws: int) -> tuple[float, int]:
    """(seconds, accepted) for ``draws`` draws of the comparison sampler."""
    rng, accepted = random.Random(0), 0
    start = time.perf_counter()
    for _ in range(draws):
        w0 = rng.randint(1, 32) * 8
        wa = math.exp(rng.uniform(math.log(8), math.log(256)))
        wm, d, g = rng.uniform(1.5, 3.0), rng.randint(12, 28), rng.choice([1, 2, 4, 8, 16, 32])
        stages = paper_widths(w0, wa, wm, d, g)
        if max(w for w, _, _ in stages) > MAX_WIDTH:  # resgraph refuses these: so does this
            continue
        macs = torch_macs(torch_network(stages))
        accepted += BUDGET[0] <= macs <= BUDGET[1]
    return time.perf_counter() - start, accepted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--baseline-draws", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args()
    load = os.getloadavg()
    seconds, draws = resgraph_sampler(args.count, args.jobs)
    base_seconds, base_accepted = baseline_sampler(args.baseline_draws)
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load average before: {load[0]:.2f}, after: {os.getloadavg()[0]:.2f}"
    )
    print("| sampler | draws | accepted | seconds | draws/s | accepted/s |")
    print("|---|---|---|---|---|---|")
    print(
        f"| resgraph sample (--jobs {args.jobs}) | {draws} | {args.count} | {seconds:.1f} "
        f"| {draws / seconds:.0f} | {args.count / seconds:.2f} |"
    )
    print(
        f"| torch module + hooks | {args.baseline_draws} | {base_accepted} | "
        f"{base_seconds:.1f} | {args.baseline_draws / base_seconds:.1f} | "
        f"{base_accepted / base_seconds:.2f} |"
    )


if __name__ == "__main__":
    main()
