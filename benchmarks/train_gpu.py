"""Training speed and memory on a CUDA GPU, each configuration in its own process.

Rows: images/s (median of timed windows, after a warm-up that includes compilation) and
peak GPU memory of one training step without the data set, for CIFAR ResNets at batch 128:

- ``fp32 (TF32)``: fp32 weights and activations; convolutions and matmuls use TF32 on
  Ampere and later (set explicitly, so the row says what it measures);
- ``fp16``: autocast with a GradScaler and the fused SGD (no host sync per step);
- ``bf16``, ``bf16+cl`` (channels-last), ``bf16+cl+compile`` (torch.compile) and
  ``bf16+cl+cudagraphs`` (``--compile-mode reduce-overhead``);
- ``+ckpt``: activation checkpointing (ResNet-1202's memory with and without it);
- ``conventional``: a DataLoader with per-image transforms (mean, pad 4, random crop, flip,
  as the popular CIFAR reference trainers do) feeding the plain model in fp32 (TF32),
  measured in the same run as resgraph's rows;
- ``ddp xN``: the fp32 (TF32) step under torchrun on every GPU (only with more than one);
- ``epoch (real loop)``: ``resgraph train`` itself for one epoch on a synthetic
  CIFAR-shaped folder (50,000 images), from the images/s it logs and its wall time.

The data are synthetic uint8 images of CIFAR's shape (no download). ``--smoke`` runs the
same code on the CPU for 2 steps on a small set (the test suite runs it).

    python benchmarks/train_gpu.py [--specs cifar_resnet20 ...] [--rows fp32 bf16 ...]
    python benchmarks/train_gpu.py --smoke
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# row -> (amp, channels_last, compile mode or None, checkpoint activations)
ROWS = {
    "fp32": ("off", False, None, False),
    "fp16": ("fp16", False, None, False),
    "bf16": ("bf16", False, None, False),
    "bf16+cl": ("bf16", True, None, False),
    "bf16+cl+compile": ("bf16", True, "default", False),
    "bf16+cl+cudagraphs": ("bf16", True, "reduce-overhead", False),
    "fp32+ckpt": ("off", False, None, True),
    "bf16+cl+ckpt": ("bf16", True, None, True),
}
LABELS = {"fp32": "fp32 (TF32)", "fp32+ckpt": "fp32 (TF32) + ckpt"}
BATCH = 128


def synthetic(n: int, seed: int = 0):  # type: ignore[no-untyped-def]
    import numpy as np

    from resgraph.train.data import ImageSet

    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
    y = rng.integers(0, 10, size=n).astype(np.int64)
    return ImageSet("synthetic", x, y, x[:500], y[:500], mirror=True)


def _windows(step, warm: int, windows: int, steps: int, sync) -> float:  # type: ignore[no-untyped-def]
    """Median images/s over ``windows`` timed windows of ``steps`` steps."""
    i = 0
    for _ in range(warm):
        step(i)
        i += 1
    sync()
    rates = []
    for _ in range(windows):
        t = time.perf_counter()
        for _ in range(steps):
            step(i)
            i += 1
        sync()
        rates.append(steps * BATCH / (time.perf_counter() - t))
    return statistics.median(rates)


def measure_row(
    spec: str, row: str, device_name: str, n: int, warm: int, windows: int, steps: int
) -> dict[str, object]:
    """One configuration, in this process: images/s and peak memory less the data set."""
    import torch
    import torch.nn.functional as F

    import resgraph
    from resgraph.spec.train import TrainSpec
    from resgraph.train import device as dev
    from resgraph.train.batches import DeviceData
    from resgraph.train.evaluate import build

    device = torch.device(device_name)
    cuda = device.type == "cuda"
    dev.set_precision(device, tf32=True, deterministic=False)
    if row == "conventional":
        return measure_conventional(spec, device, n, warm, windows, steps)
    amp, channels_last, mode, ckpt = ROWS[row]
    images = synthetic(n)
    data = DeviceData(
        images, device, batch_size=BATCH, seed=0, augment=True, channels_last=channels_last
    )
    base = torch.cuda.memory_allocated(device) if cuda else 0  # the data set
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    ir = resgraph.lower(resgraph.load_spec(ROOT / "specs" / f"{spec}.yaml"))
    model = build(ir, "graph", seed=0).to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if ckpt:
        dev.checkpoint_blocks(model, ir)
    net = dev.compile_module(model, mode) if mode else model
    opt = dev.make_optimizer(model.parameters(), TrainSpec(), device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")
    cast = dev.autocast(amp, device)

    def step(i: int) -> None:
        x, y = data.train_batch(i)
        with cast():
            loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    sync = torch.cuda.synchronize if cuda else (lambda: None)
    rate = _windows(step, warm + (20 if mode else 0), windows, steps, sync)
    peak = (torch.cuda.max_memory_allocated(device) - base) if cuda else None
    return {"images_per_s": rate, "peak_bytes": peak}


def measure_conventional(
    spec: str,
    device,
    n: int,
    warm: int,
    windows: int,  # type: ignore[no-untyped-def]
    steps: int,
) -> dict[str, object]:
    """The conventional trainer: torch DataLoader, per-image transforms on the CPU, the
    plain model in fp32, SGD with the same settings."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, Dataset

    import resgraph
    from resgraph.train.evaluate import build

    images = synthetic(n)

    class PerImage(Dataset):
        def __init__(self) -> None:
            self.mean = torch.from_numpy(images.train_x.mean(0, dtype=np.float64) / 255).float()

        def __len__(self) -> int:
            return len(images.train_y)

        def __getitem__(self, i: int):  # type: ignore[no-untyped-def]
            img = torch.from_numpy(images.train_x[i]).float().div(255) - self.mean
            img = F.pad(img, (4, 4, 4, 4))
            dy, dx = random.randint(0, 8), random.randint(0, 8)
            img = img[:, dy : dy + 32, dx : dx + 32]
            if random.random() < 0.5:
                img = img.flip(-1)
            return img, int(images.train_y[i])

    cuda = device.type == "cuda"
    workers = min(4, os.cpu_count() or 1) if cuda else 0
    loader = DataLoader(
        PerImage(),
        batch_size=BATCH,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        pin_memory=cuda,
        persistent_workers=workers > 0,
    )
    batches = iter(loader)

    def next_batch():  # type: ignore[no-untyped-def]
        nonlocal batches
        try:
            return next(batches)
        except StopIteration:
            batches = iter(loader)
            return next(batches)

    ir = resgraph.lower(resgraph.load_spec(ROOT / "specs" / f"{spec}.yaml"))
    model = build(ir, "graph", seed=0).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)

    def step(i: int) -> None:
        x, y = next_batch()
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    rate = _windows(step, warm, windows, steps, sync)
    return {
        "images_per_s": rate,
        "peak_bytes": torch.cuda.max_memory_allocated(device) if cuda else None,
    }


def write_cifar_folder(folder: Path, n: int) -> None:
    """A CIFAR-10 python folder of ``n`` synthetic training images (5 files) and up to
    1,000 test images."""
    import numpy as np

    out = folder / "cifar-10-batches-py"
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    files = [(f"data_batch_{i}", n // 5) for i in range(1, 6)]
    for name, count in [*files, ("test_batch", min(1000, n // 5))]:
        data = rng.integers(0, 256, size=(count, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=count)]
        (out / name).write_bytes(pickle.dumps({b"data": data, b"labels": labels}, protocol=2))


def epoch_row(spec: str, device: str, n: int, flags: list[str]) -> dict[str, object]:
    """``resgraph train`` for one epoch (n / 128 iterations) on a synthetic folder."""
    import csv

    with tempfile.TemporaryDirectory() as tmp:
        write_cifar_folder(Path(tmp), n)
        iterations = n // BATCH
        command = [
            sys.executable,
            "-m",
            "resgraph",
            "train",
            str(ROOT / "specs" / f"{spec}.yaml"),
            "--data-dir",
            tmp,
            "--out",
            str(Path(tmp) / "run"),
            "--device",
            device,
            "--iterations",
            str(iterations),
            "--eval-every",
            str(iterations),
            "-q",
            *flags,
        ]
        t = time.perf_counter()
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={
                **os.environ,
                "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(
                    os.pathsep
                ),
            },
        )
        wall = time.perf_counter() - t
        if done.returncode:
            return {"error": (done.stderr.strip().splitlines() or ["?"])[-1]}
        with open(Path(tmp) / "run" / "metrics.csv", newline="") as f:
            row = list(csv.DictReader(f))[-1]
    return {"images_per_s": float(row["images_per_s"]), "wall_s": wall, "iterations": iterations}


def child(args: argparse.Namespace) -> int:
    spec, row = args.child
    try:
        result = measure_row(
            spec, row, args.device, args.images, args.warm, args.windows, args.steps
        )
    except Exception as exc:  # out of memory, a compile failure: one row says so
        kind = "out of memory" if "out of memory" in str(exc).lower() else type(exc).__name__
        result = {"error": f"{kind}: {str(exc).splitlines()[0][:120] if str(exc) else ''}"}
    print("RESULT " + json.dumps(result))
    return 0


def run_child(spec: str, row: str, args: argparse.Namespace) -> dict[str, object]:
    command = [
        sys.executable,
        __file__,
        "--child",
        spec,
        row,
        "--device",
        args.device,
        "--images",
        str(args.images),
        "--warm",
        str(args.warm),
        "--windows",
        str(args.windows),
        "--steps",
        str(args.steps),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": f"exit {done.returncode}: {tail[:150]}"}


def ddp_row(spec: str, args: argparse.Namespace, gpus: int) -> dict[str, object]:
    """The fp32 (TF32) step on every GPU under torchrun (per-process batch 128 / N)."""
    script = (
        "import os,sys,time,torch,torch.distributed as dist,torch.nn.functional as F\n"
        f"sys.path.insert(0,{str(ROOT)!r})\n"
        "import resgraph\n"
        "from resgraph.spec.train import TrainSpec\n"
        "from resgraph.train import device as dev, distributed\n"
        "from resgraph.train.batches import DeviceData\n"
        "from resgraph.train.evaluate import build\n"
        f"sys.path.insert(0,{str(ROOT / 'benchmarks')!r})\n"
        "from train_gpu import synthetic, _windows\n"
        "d=distributed.from_env(); device=torch.device('cuda',d.local_rank)\n"
        "distributed.init(d,device); dev.set_precision(device,tf32=True,deterministic=False)\n"
        f"data=DeviceData(synthetic({args.images}),device,batch_size=128,seed=0,augment=True,"
        "rank=d.rank,world=d.world)\n"
        f"ir=resgraph.lower(resgraph.load_spec({str(ROOT / 'specs')!r}+'/{spec}.yaml'))\n"
        "m=build(ir,'graph',seed=0).to(device)\n"
        "net=torch.nn.parallel.DistributedDataParallel(m,device_ids=[device.index])\n"
        "opt=dev.make_optimizer(m.parameters(),TrainSpec(),device)\n"
        "def step(i):\n"
        "    x,y=data.train_batch(i); loss=F.cross_entropy(net(x),y)\n"
        "    opt.zero_grad(set_to_none=True); loss.backward(); opt.step()\n"
        f"r=_windows(step,{args.warm},{args.windows},{args.steps},torch.cuda.synchronize)\n"
        "if d.is_main: print('RESULT', r)\n"
        "del net,opt,m; import gc; gc.collect(); d.close()\n"
    )
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(script)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        str(gpus),
        f.name,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
    os.unlink(f.name)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return {"images_per_s": float(line.split()[1])}
    return {"error": f"exit {done.returncode}"}


def fmt(spec: str, label: str, r: dict[str, object], ref: float | None = None) -> str:
    if "error" in r:
        return f"| {spec} | {label} | {r['error']} | | |"
    ips = float(r["images_per_s"])  # type: ignore[arg-type]
    peak = r.get("peak_bytes")
    mem = f"{int(peak) / 2**20:,.0f}" if peak is not None else "-"  # type: ignore[call-overload]
    ratio = f"{ips / ref:.2f}x" if ref else ""
    return f"| {spec} | {label} | {ips:,.0f} | {mem} | {ratio} |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--specs",
        nargs="+",
        default=["cifar_resnet20", "cifar_resnet56", "cifar_resnet110", "cifar_resnet1202"],
    )
    parser.add_argument(
        "--rows",
        nargs="+",
        default=["fp32", "fp16", "bf16", "bf16+cl", "bf16+cl+compile", "bf16+cl+cudagraphs"],
    )
    parser.add_argument(
        "--compile-specs",
        nargs="+",
        default=None,
        help="specs that get the compile rows [default: all]",
    )
    parser.add_argument(
        "--memory-spec",
        default="cifar_resnet1202",
        help="spec measured with and without activation checkpointing",
    )
    parser.add_argument("--baseline-spec", default="cifar_resnet110")
    parser.add_argument("--epoch-spec", default="cifar_resnet110")
    parser.add_argument("--epoch-flags", default="--amp bf16 --channels-last")
    parser.add_argument("--images", type=int, default=50000)
    parser.add_argument("--warm", type=int, default=5)
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20, help="steps per timed window")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--device", default="cuda")
    parser.add_argument(
        "--skip",
        nargs="+",
        default=[],
        choices=["baseline", "memory", "epoch"],
        help="leave out the conventional trainer, the memory rows or the epoch row",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="CPU, ResNet-20, 2 steps on 512 images: checks the code runs",
    )
    parser.add_argument("--child", nargs=2, metavar=("SPEC", "ROW"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    import torch

    if args.smoke:
        args.device, args.images, args.warm, args.windows, args.steps = "cpu", 512, 1, 1, 2
        args.specs, args.rows, args.memory_spec = ["cifar_resnet20"], ["fp32"], None
        args.baseline_spec = args.epoch_spec = "cifar_resnet20"
        args.epoch_flags = ""
    elif not torch.cuda.is_available():
        print(
            f"no CUDA GPU available (torch {torch.__version__}): nothing to measure "
            "(--smoke runs the code on the CPU)"
        )
        return 0
    where = (
        torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {os.cpu_count()} cores"
    )
    print(
        f"{where} | torch {torch.__version__} | batch {BATCH} | median of {args.windows} "
        f"windows of {args.steps} steps | memory: peak allocated less the data set"
    )
    print("| spec | configuration | images/s | peak memory (MiB) | vs conventional |")
    print("|---|---|---|---|---|")
    ref = None
    if "baseline" not in args.skip:
        base = run_child(args.baseline_spec, "conventional", args)
        ref = float(base["images_per_s"]) if "error" not in base else None  # type: ignore[arg-type]
        label = "conventional (DataLoader, per-image transforms)"
        print(fmt(args.baseline_spec, label, base, ref), flush=True)
    if "epoch" not in args.skip:
        epoch(args)
    for spec in args.specs:
        for row in args.rows:
            if ROWS[row][2] and args.compile_specs is not None and spec not in args.compile_specs:
                continue
            r = run_child(spec, row, args)
            print(
                fmt(spec, LABELS.get(row, row), r, ref if spec == args.baseline_spec else None),
                flush=True,
            )
    if args.memory_spec and "memory" not in args.skip:
        for row in ("fp32", "fp32+ckpt"):
            print(
                fmt(args.memory_spec, LABELS.get(row, row), run_child(args.memory_spec, row, args)),
                flush=True,
            )
    gpus = torch.cuda.device_count() if args.device == "cuda" else 0
    if gpus > 1:
        r = ddp_row(args.baseline_spec, args, gpus)
        print(fmt(args.baseline_spec, f"ddp x{gpus}, fp32 (TF32)", r), flush=True)
    return 0


def epoch(args: argparse.Namespace) -> None:
    e = epoch_row(args.epoch_spec, args.device, args.images, args.epoch_flags.split())
    label = f"epoch (real loop{', ' + args.epoch_flags if args.epoch_flags else ''})"
    if "error" in e:
        print(f"| {args.epoch_spec} | {label} | {e['error']} | | |", flush=True)
    else:
        print(
            f"| {args.epoch_spec} | {label} | {float(e['images_per_s']):,.0f} | | "  # type: ignore[arg-type]
            f"{e['iterations']} iterations in {float(e['wall_s']):.1f} s wall, start-up "  # type: ignore[arg-type]
            "included |",
            flush=True,
        )


if __name__ == "__main__":
    sys.exit(main())
