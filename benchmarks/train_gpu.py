"""Training speed and memory on a CUDA GPU: images/s, peak GPU memory and the time of one
epoch (50,000 CIFAR-sized images, batch 128, 390 iterations) for cifar_resnet56/110/1202,
in fp32 and with bf16 autocast, channels-last and torch.compile added one at a time, plus
ResNet-1202 with activation checkpointing.

It uses resgraph's own training pieces (the on-device batch pipeline with augmentation, the
network from the spec, SGD with the paper's settings) on synthetic uint8 data of CIFAR's
shape, so it needs no download and no internet. Without a GPU it says so and exits 0.

    python benchmarks/train_gpu.py [--specs cifar_resnet56 ...] [--steps 30] [--no-epoch]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONFIGS = {  # name -> (amp, channels_last, compile, checkpoint_activations)
    "fp32": ("off", False, False, False),
    "bf16": ("bf16", False, False, False),
    "bf16+channels_last": ("bf16", True, False, False),
    "bf16+channels_last+compile": ("bf16", True, True, False),
    "bf16+channels_last+ckpt": ("bf16", True, False, True),
}


def run_config(spec: str, config: str, steps: int, epoch: bool) -> str:
    import numpy as np

    import resgraph
    from resgraph.train.batches import DeviceData
    from resgraph.train.data import ImageSet
    from resgraph.train.device import autocast, checkpoint_blocks
    from resgraph.train.evaluate import build

    amp, channels_last, compile_, ckpt = CONFIGS[config]
    device = torch.device("cuda")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(50000, 3, 32, 32), dtype=np.uint8)
    y = rng.integers(0, 10, size=50000).astype(np.int64)
    data = DeviceData(ImageSet("synthetic", x, y, x[:10], y[:10], mirror=True), device,
                      batch_size=128, seed=0, augment=True, channels_last=channels_last)
    ir = resgraph.lower(resgraph.load_spec(ROOT / "specs" / f"{spec}.yaml"))
    model = build(ir, "graph", seed=0).to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if ckpt:
        checkpoint_blocks(model, ir)
    net = torch.compile(model) if compile_ else model
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    cast = autocast(amp, device)
    torch.backends.cudnn.benchmark = True

    def step(i: int) -> None:
        xb, yb = data.train_batch(i)
        with cast():
            loss = F.cross_entropy(net(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    warm = 15 if compile_ else 5
    for i in range(warm):
        step(i)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    for i in range(warm, warm + steps):
        step(i)
    torch.cuda.synchronize()
    rate = steps * 128 / (time.perf_counter() - t)
    peak = torch.cuda.max_memory_allocated() / 2**30
    epoch_s = 390 * 128 / rate
    measured = "extrapolated"
    if epoch:
        t = time.perf_counter()
        for i in range(data.steps_per_epoch):
            step(i)
        torch.cuda.synchronize()
        epoch_s, measured = time.perf_counter() - t, "measured"
    return f"| {spec} | {config} | {rate:,.0f} | {peak:.2f} | {epoch_s:.1f} ({measured}) |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", nargs="+",
                        default=["cifar_resnet56", "cifar_resnet110", "cifar_resnet1202"])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--steps", type=int, default=30, help="timed iterations per config")
    parser.add_argument("--no-epoch", action="store_true",
                        help="extrapolate the epoch time instead of timing 390 iterations")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print(f"no CUDA GPU available (torch {torch.__version__}): nothing to measure")
        return 0
    print(f"{torch.cuda.get_device_name()} | torch {torch.__version__} | batch 128")
    print("| spec | config | images/s | peak GPU memory (GiB) | one epoch (s) |")
    print("|---|---|---|---|---|")
    for spec in args.specs:
        for config in args.configs:
            if spec == "cifar_resnet1202" or not CONFIGS[config][3]:
                try:
                    print(run_config(spec, config, args.steps, not args.no_epoch), flush=True)
                except torch.cuda.OutOfMemoryError:
                    print(f"| {spec} | {config} | out of memory | | |", flush=True)
                torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
