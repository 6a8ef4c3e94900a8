"""Peak CPU memory of training steps with and without --checkpoint-activations.

Each configuration runs in its own subprocess, which builds the network, takes two SGD steps
on a batch of CIFAR-shaped data and reports its peak resident set size (``ru_maxrss``) and
the resident size just before the first step; their difference is what training needs on
top of the weights and libraries. The children run with MALLOC_MMAP_THRESHOLD_=65536 so that
freed tensors leave the resident set at once (see main()). The estimate resgraph prints
before training is shown beside it.

    .venv/bin/python benchmarks/train_memory.py                 # cifar_resnet110, batch 128
    .venv/bin/python benchmarks/train_memory.py --configs cifar_resnet1202:128:ckpt
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT = [
    "cifar_resnet110:128:plain",
    "cifar_resnet110:128:ckpt",
    "cifar_resnet110:128:plain:bf16",
    "cifar_resnet110:128:ckpt:bf16",
]


def rss_now() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child(spec: str, batch: int, ckpt: bool, amp: str, steps: int) -> dict[str, float]:
    import torch
    import torch.nn.functional as F

    import resgraph
    from resgraph.train.device import autocast, checkpoint_blocks, memory_plan
    from resgraph.train.evaluate import build

    ir = resgraph.lower(resgraph.load_spec(ROOT / "specs" / f"{spec}.yaml"))
    model = build(ir, "graph", seed=0)
    if ckpt:
        checkpoint_blocks(model, ir)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    x = torch.randn(batch, 3, 32, 32)
    y = torch.randint(0, 10, (batch,))
    cast = autocast(amp, torch.device("cpu"))
    plan = memory_plan(ir, model, batch, amp, torch.device("cpu"), 0)
    before = rss_now()
    t = time.perf_counter()
    for _ in range(steps):
        with cast():
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    seconds = (time.perf_counter() - t) / steps
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"before": before, "peak": peak, "estimate": plan.need(ckpt), "s_per_step": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--configs", nargs="+", default=DEFAULT, help="spec:batch:plain|ckpt[:bf16] entries"
    )
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        spec, batch, mode, *amp = args.child.split(":")
        print(json.dumps(child(spec, int(batch), mode == "ckpt", (amp or ["off"])[0], args.steps)))
        return
    gib = 2**30
    # glibc keeps freed blocks below its (self-raising) mmap threshold in the heap, so the
    # peak RSS would count memory that is free again; a fixed 64 KiB threshold returns every
    # large tensor to the system when it is freed, and RSS then follows live memory.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    print(
        "| spec | batch | activations | amp | peak RSS | peak - RSS before step | "
        "resgraph estimate | s/step |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for config in args.configs:
        out = subprocess.run(
            [sys.executable, __file__, "--child", config, "--steps", str(args.steps)],
            capture_output=True,
            text=True,
            env=env,
        )
        if out.returncode:
            print(f"| {config} | failed: {out.stderr.strip().splitlines()[-1:]} |")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        spec, batch, mode, *amp = config.split(":")
        print(
            f"| {spec} | {batch} | {'checkpointed' if mode == 'ckpt' else 'kept'} | "
            f"{(amp or ['off'])[0]} | {r['peak'] / gib:.2f} GiB | "
            f"{(r['peak'] - r['before']) / gib:.2f} GiB | {r['estimate'] / gib:.2f} GiB | "
            f"{r['s_per_step']:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
