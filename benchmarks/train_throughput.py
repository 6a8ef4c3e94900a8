"""Training throughput on the CPU: resgraph's on-device batch pipeline against a
straightforward reference loop (torch DataLoader, per-image transforms written with torch ops,
as torchvision's RandomCrop(32, padding=4) + RandomHorizontalFlip would do them).

Both train the same network (built from the same spec and seed) with the same SGD step on
CIFAR-shaped synthetic uint8 data (50,000 images), in the same process. Rounds alternate
between the pipelines so that a busy machine slows both alike; the median round is reported.

    .venv/bin/python benchmarks/train_throughput.py [--specs cifar_resnet20 ...] [--steps 8]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import resgraph  # noqa: E402
from resgraph.train.batches import DeviceData  # noqa: E402
from resgraph.train.data import ImageSet  # noqa: E402
from resgraph.train.evaluate import build  # noqa: E402


def synthetic_cifar(n: int = 50000, seed: int = 0) -> ImageSet:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
    y = rng.integers(0, 10, size=n).astype(np.int64)
    return ImageSet("synthetic", x, y, x[:1000], y[:1000], mirror=True)


class ReferenceCIFAR(Dataset):
    """One image at a time: to float, subtract the mean, pad 4, random crop, random flip."""

    def __init__(self, images: ImageSet) -> None:
        self.x, self.y = images.train_x, images.train_y
        self.mean = torch.from_numpy(images.train_x.astype(np.float64).mean(0) / 255).float()

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img = torch.from_numpy(self.x[i]).float().div(255) - self.mean
        img = F.pad(img, (4, 4, 4, 4))
        dy, dx = random.randint(0, 8), random.randint(0, 8)
        img = img[:, dy : dy + 32, dx : dx + 32]
        if random.random() < 0.5:
            img = img.flip(-1)
        return img, int(self.y[i])


def sgd_step(
    model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor
) -> None:
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def pipeline_only(images: ImageSet, batches: int = 20) -> tuple[float, float, float]:
    """Images/s of producing augmented batches alone (no network)."""
    ours = DeviceData(images, torch.device("cpu"), batch_size=128, seed=0, augment=True)
    t = time.perf_counter()
    for i in range(batches):
        ours.train_batch(i)
    fast = batches * 128 / (time.perf_counter() - t)
    rates = []
    for workers in (0, 2):
        loader = DataLoader(
            ReferenceCIFAR(images),
            batch_size=128,
            shuffle=True,
            drop_last=True,
            num_workers=workers,
        )
        it = iter(loader)
        next(it)  # start the workers
        t = time.perf_counter()
        for _ in range(batches):
            next(it)
        rates.append(batches * 128 / (time.perf_counter() - t))
        del it
    return fast, rates[0], rates[1]


def measure(spec_name: str, images: ImageSet, steps: int, rounds: int) -> dict[str, float]:
    ir = resgraph.lower(resgraph.load_spec(ROOT / "specs" / f"{spec_name}.yaml"))
    results: dict[str, list[float]] = {"resgraph": [], "reference": []}
    ours = DeviceData(images, torch.device("cpu"), batch_size=128, seed=0, augment=True)
    ref_iter = iter(
        DataLoader(
            ReferenceCIFAR(images), batch_size=128, shuffle=True, drop_last=True, num_workers=0
        )
    )
    models = {}
    for name in results:
        model = build(ir, "graph", seed=0)
        models[name] = (
            model,
            torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4),
        )
    it = 0
    for r in range(rounds + 1):  # round 0 warms up both
        for name in results:
            model, opt = models[name]
            t = time.perf_counter()
            for _ in range(steps):
                if name == "resgraph":
                    x, y = ours.train_batch(it)
                    it += 1
                else:
                    x, y = next(ref_iter)
                sgd_step(model, opt, x, y)
            if r:
                results[name].append(steps * 128 / (time.perf_counter() - t))
    return {name: statistics.median(v) for name, v in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--specs", nargs="+", default=["cifar_resnet20", "cifar_resnet56", "cifar_resnet110"]
    )
    parser.add_argument("--steps", type=int, default=4, help="iterations per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    random.seed(0)
    images = synthetic_cifar()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch 128, "
        f"{args.rounds} rounds of {args.steps} iterations (median)"
    )
    fast, ref0, ref2 = pipeline_only(images)
    print(
        f"input pipeline alone: resgraph {fast:,.0f} img/s; reference DataLoader "
        f"{ref0:,.0f} img/s (0 workers), {ref2:,.0f} img/s (2 workers)"
    )
    print("| spec | resgraph img/s | reference img/s | ratio |")
    print("|---|---|---|---|")
    for spec in args.specs:
        r = measure(spec, images, args.steps, args.rounds)
        print(
            f"| {spec} | {r['resgraph']:.1f} | {r['reference']:.1f} | "
            f"{r['resgraph'] / r['reference']:.2f}x |",
            flush=True,
        )


if __name__ == "__main__":
    main()
