"""Input pipeline throughput on photo-sized JPEGs: the limit, resgraph's, torchvision's.

Writes a folder of photo-sized JPEGs (about 500x375, smooth random colour fields with noise,
quality 90; 3 classes) unless --folder names one, then measures images/s of

- bare decoding: Pillow, and simplejpeg (libjpeg-turbo) where installed, decode every file
  to RGB at full size in --workers processes (the limit of any pipeline that decodes on the
  CPU with these cores; resgraph decodes JPEGs with simplejpeg when it is installed);
- resgraph: StreamData batches (decode, random crop, flip in DataLoader workers; uint8 to
  the device, mean and PCA lighting there), for the 'scale' (the paper's) and 'resized'
  (RandomResizedCrop) crops;
- torchvision: ImageFolder + RandomResizedCrop(224) + RandomHorizontalFlip + ToTensor +
  Normalize in a DataLoader with the same workers (only where torchvision imports);
- end to end: resgraph's 'resized' batches training a tiny network (so the data side decides);
- resgraph on WebDataset shards of the same folder ('resgraph pack', 100 images a shard):
  'resized' uint8 batches streamed from the tars.

    python benchmarks/input_pipeline.py [--images 600] [--workers 2] [--batch 32] [--rounds 3]

Rounds alternate between the contenders; the median of each is reported.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from resgraph.train import folder as tfolder  # noqa: E402
from resgraph.train.data import load_images  # noqa: E402
from resgraph.train.shards import ShardData, pack  # noqa: E402
from resgraph.train.stream import StreamData, eval_resize  # noqa: E402

SIZE = 224


def write_folder(root: Path, n: int) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        folder = root / "train" / f"class{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((500, 375), Image.Resampling.BICUBIC)
        noise = rng.normal(0, 12, (375, 500, 3))
        pixels = (np.asarray(img, dtype=np.float64) + noise).clip(0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:05d}.jpg", quality=90)
    for c in range(3):  # a val/ part so the layout needs no split
        (root / "val" / f"class{c}").mkdir(parents=True, exist_ok=True)
        src = next((root / "train" / f"class{c}").iterdir())
        (root / "val" / f"class{c}" / src.name).write_bytes(src.read_bytes())
    return root


def _decode(path: Path) -> int:
    from PIL import Image

    with Image.open(path) as img:
        return len(img.convert("RGB").tobytes())


def _decode_simplejpeg(path: Path) -> int:
    import simplejpeg

    return simplejpeg.decode_jpeg(path.read_bytes()).nbytes


def bare_decode(paths: list[Path], workers: int, decoder: object = _decode) -> float | None:
    if decoder is _decode_simplejpeg and tfolder.simplejpeg is None:
        return None
    t0 = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(max(1, workers)) as pool:
        pool.map(decoder, paths, chunksize=8)  # type: ignore[arg-type]
    return len(paths) / (time.perf_counter() - t0)


def ours(folder: Path, crop: str, workers: int, batch: int, steps: int, mode: str) -> float:
    """images/s of the workers' output ('loader'), of normalised batches on the CPU as the
    device ('batches'), or of training a tiny network on them ('train'); a shard set's
    folder is streamed from its tars."""
    train = mode == "train"
    images = load_images(str(folder), Path("."), 3, SIZE, resize=eval_resize(SIZE))
    cpu = torch.device("cpu")
    kind = ShardData if images.shards is not None else StreamData
    data = kind(images, cpu, crop=crop, workers=workers, batch_size=batch, seed=0, augment=True)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 7, stride=4),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 3),
    )
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    if mode == "loader":  # the workers' uint8 batches, as they reach the training process
        batches = data.uint8_batches(0)
        next(batches)
        t0 = time.perf_counter()
        n = sum(len(next(batches)[1]) for _ in range(steps))
        return n / (time.perf_counter() - t0)
    data.train_batch(0)  # workers started, first batch in
    t0, n = time.perf_counter(), 0
    for it in range(1, steps + 1):
        x, y = data.train_batch(it)
        n += len(y)
        if train:
            opt.zero_grad()
            F.cross_entropy(net(x), y).backward()
            opt.step()
    rate = n / (time.perf_counter() - t0)
    data.close()
    return rate


def torchvision_rate(folder: Path, workers: int, batch: int, steps: int) -> float | None:
    try:
        from torchvision import datasets, transforms
    except Exception:  # noqa: BLE001  (not installed, or not beside this torch)
        return None
    tf = transforms.Compose(
        [
            transforms.RandomResizedCrop(SIZE),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ]
    )
    loader = torch.utils.data.DataLoader(
        datasets.ImageFolder(str(folder / "train"), tf),
        batch_size=batch,
        shuffle=True,
        num_workers=workers,
        drop_last=True,
        persistent_workers=workers > 0,
    )
    it = iter(loader)
    next(it)
    t0, n = time.perf_counter(), 0
    for _ in range(steps):
        try:
            x, y = next(it)
        except StopIteration:
            it = iter(loader)
            x, y = next(it)
        n += len(y)
    return n / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--folder", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=3, help="median of this many rounds")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder or write_folder(Path(tmp) / "photos", args.images)
        paths = sorted((folder / "train").rglob("*.jpg"))
        steps = max(1, len(paths) // args.batch - 2)
        bare_decode(paths, args.workers)  # warms the page cache
        shards = Path(tmp) / "shards"
        pack(
            folder,
            shards,
            shard_size=100,
            holdout=0.1,
            skip_unreadable=False,
            force=False,
            progress=lambda items, what: iter(items),
        )
        w, b = args.workers, args.batch
        contenders = {
            "bare decoding (Pillow, full size)": lambda: bare_decode(paths, w),
            "bare decoding (simplejpeg, full size)": lambda: bare_decode(
                paths, w, _decode_simplejpeg
            ),
            "resgraph 'scale': uint8 batches from the workers": lambda: ours(
                folder, "scale", w, b, steps, "loader"
            ),
            "resgraph 'resized': uint8 batches from the workers": lambda: ours(
                folder, "resized", w, b, steps, "loader"
            ),
            "resgraph 'resized': + mean and lighting on the CPU": lambda: ours(
                folder, "resized", w, b, steps, "batches"
            ),
            "torchvision ImageFolder + RandomResizedCrop": lambda: torchvision_rate(
                folder, w, b, steps
            ),
            "resgraph 'resized', training a tiny network": lambda: ours(
                folder, "resized", w, b, steps, "train"
            ),
            "resgraph 'resized' from shards: uint8 batches": lambda: ours(
                shards, "resized", w, b, steps, "loader"
            ),
        }
        runs: dict[str, list[float | None]] = {name: [] for name in contenders}
        for _ in range(args.rounds):  # rounds alternate: a busy machine slows all alike
            for name, measure in contenders.items():
                runs[name].append(measure())
    rows = [
        (name, None if None in r else statistics.median(r))  # type: ignore[type-var]
        for name, r in runs.items()
    ]
    limit = rows[0][1] or 1.0
    tv = rows[5][1]
    print(
        f"{len(paths)} JPEGs of 500x375, {args.workers} workers, batch {args.batch}, "
        f"torch {torch.__version__}"
    )
    print("| pipeline | images/s | of bare decoding |")
    print("|---|---|---|")
    for name, rate in rows:
        if rate is None:
            print(f"| {name} | (does not import here) | |")
        else:
            print(f"| {name} | {rate:.0f} | {rate / limit:.0%} |")
    if tv:
        print(f"resgraph 'resized' (uint8 batches) / torchvision: {rows[3][1] / tv:.2f}x")  # type: ignore[operator]


if __name__ == "__main__":
    main()
