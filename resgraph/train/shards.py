"""Image folders packed into WebDataset tar shards (the ``webdataset`` library), for data sets
too large to read file by file from shared storage.

``resgraph pack FOLDER -o SHARDS/`` reads a folder as training does (the same layout, classes,
split and bad-file rules), shuffles the training images once (a fixed draw) and writes them,
undecoded, into ``train-NNNNNN.tar`` shards of ``--shard-size`` samples, the test images into
``test-NNNNNN.tar``, and ``index.json``: the classes, each shard's name and sample count, so a
run knows the classes and the length without opening a tar. A sample is the image file's
bytes under its suffix (``jpg``, ``png``, ...) and its label as text under ``cls``.

Training on shards: shard ``j`` belongs to process ``j mod world``, so the processes read
disjoint samples; each process's shards are divided among its worker processes. Every
process takes the same number of steps per epoch: the smallest share's samples over the
per-process batch. The order is a function of (seed, epoch, rank, workers), so a run resumed
with the same ``--workers`` reads the same samples as an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from resgraph.errors import TrainError
from resgraph.fsutil import atomic_write_text
from resgraph.train.batches import mix_seed
from resgraph.train.data import ImageSet
from resgraph.train.folder import (
    MEAN_SAMPLE,
    Progress,
    _key,
    decode_in_threads,
    find_layout,
    refuse_or_skip,
    scan,
)
from resgraph.train.stream import StreamData, augmented

INDEX = "index.json"
FORMAT = "resgraph-shards"
PACK_SEED = 0  # the training images' order in the shards: the same for every pack
SHUFFLE_BUFFER = 256  # samples mixed across shard boundaries while streaming
INSTALL = "pip install 'resgraph[shards]' (or: pip install webdataset)"

Record = tuple[str, str, bytes, int]  # key, suffix, the file's bytes, label


def _webdataset() -> Any:
    try:
        import webdataset
    except ImportError:
        raise TrainError(f"WebDataset shards need the webdataset library: {INSTALL}") from None
    return webdataset


@dataclass
class ShardSet:
    """A packed data set as its index describes it."""

    root: Path
    classes: list[str]
    train: list[tuple[str, int]]  # shard file name, samples
    test: list[tuple[str, int]]
    notes: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def train_size(self) -> int:
        return sum(n for _, n in self.train)

    def shares(self, world: int) -> list[list[int]]:
        """The shard numbers each of ``world`` processes reads: shard j goes to j mod world."""
        return [list(range(rank, len(self.train), world)) for rank in range(world)]


def is_shard_set(path: Path) -> bool:
    return (Path(path) / INDEX).is_file()


# --- packing ------------------------------------------------------------------------------


def _write_shards(
    webdataset: Any, folder: Path, prefix: str, pairs: list[tuple[Path, int]], size: int
) -> list[tuple[str, int]]:
    shards: list[tuple[str, int]] = []
    for start in range(0, len(pairs), size):
        name = f"{prefix}-{len(shards):06d}.tar"
        part = pairs[start : start + size]
        with webdataset.TarWriter(str(folder / name), encoder=False, mtime=0.0) as sink:
            for i, (path, label) in enumerate(part, start):
                suffix = path.suffix.lower().lstrip(".")
                sink.write({"__key__": f"{i:08d}", suffix: path.read_bytes(), "cls": b"%d" % label})
        shards.append((name, len(part)))
    return shards


def pack(
    root: Path,
    out: Path,
    *,
    shard_size: int,
    holdout: float,
    skip_unreadable: bool,
    force: bool,
    progress: Progress,
) -> ShardSet:
    """Pack an image folder into shards under ``out``, written beside it and renamed into
    place when complete; an existing ``out`` is replaced only with ``force`` and only when
    it is itself a shard set."""
    webdataset = _webdataset()
    out = Path(out)
    if out.exists() and not force:
        raise TrainError(f"{out}: already exists; give --force to replace it, or another -o")
    if out.exists() and not (out.is_dir() and (is_shard_set(out) or not any(out.iterdir()))):
        raise TrainError(f"{out}: exists and is not a shard set; --force replaces only shard sets")
    layout = find_layout(root, holdout)
    paths = [p for p, _ in layout.train + layout.test]
    layout = refuse_or_skip(layout, scan(paths, _key(paths), progress), skip_unreadable)
    order = np.random.default_rng(PACK_SEED).permutation(len(layout.train))
    train = [layout.train[i] for i in order]
    out.parent.mkdir(parents=True, exist_ok=True)
    work = out.parent / f".{out.name}.packing-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        notes = [layout.split] if layout.split else []
        shards = ShardSet(
            out,
            layout.classes,
            _write_shards(webdataset, work, "train", train, shard_size),
            _write_shards(webdataset, work, "test", layout.test, shard_size),
            notes,
            layout.skipped,
        )
        atomic_write_text(work / INDEX, json.dumps(_index(shards), indent=1) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(work, out)
    except OSError as exc:
        raise TrainError(f"cannot pack {root} into {out}: {exc}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return shards


def _index(s: ShardSet) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": 1,
        "classes": s.classes,
        "train": [{"name": n, "samples": k} for n, k in s.train],
        "test": [{"name": n, "samples": k} for n, k in s.test],
        "notes": s.notes,
        "skipped": s.skipped,
    }


# --- reading ------------------------------------------------------------------------------


def _parts(data: dict[str, Any], part: str) -> list[tuple[str, int]]:
    items = data.get(part)
    if not isinstance(items, list):
        raise ValueError(f"'{part}' is not a list")
    out = []
    for item in items:
        name, n = item["name"], item["samples"]
        if not isinstance(name, str) or "/" in name or not isinstance(n, int) or n < 0:
            raise ValueError(f"bad shard entry {item!r}")
        out.append((name, n))
    return out


def read_index(root: Path) -> ShardSet:
    """The shard set under ``root``, from its index; every listed shard must be there."""
    path = Path(root) / INDEX
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} index")
        classes = [str(c) for c in data["classes"]]
        s = ShardSet(Path(root), classes, _parts(data, "train"), _parts(data, "test"))
        s.notes, s.skipped = list(data.get("notes", [])), list(data.get("skipped", []))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TrainError(
            f"{path}: not a shard set's index ({exc}); 'resgraph pack FOLDER -o SHARDS/' writes one"
        ) from None
    missing = [n for n, _ in s.train + s.test if not (s.root / n).is_file()]
    if missing:
        raise TrainError(f"{s.root / missing[0]}: a shard the index lists is missing")
    if not s.train or not s.classes:
        raise TrainError(f"{path}: the shard set holds no training samples")
    return s


def records(paths: list[Path]) -> Iterator[Record]:
    """The samples of ``paths``, in order, undecoded."""
    webdataset = _webdataset()
    for path in paths:
        with open(path, "rb") as stream:
            tar = webdataset.tariterators.tar_file_expander([{"url": str(path), "stream": stream}])
            for sample in webdataset.tariterators.group_by_keys(tar):
                suffix = next(k for k in sample if not k.startswith("__") and k != "cls")
                label = int(sample["cls"])
                yield f"{path.name}/{sample['__key__']}", suffix, sample[suffix], label


def decode_records(
    items: list[Record], channels: int, size: int, resize: int | None, ten: bool = False
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Decode (centre crops, as for a folder's test images) in threads; failures are named."""
    jobs = ((Path(f"{k}.{s}"), channels, size, resize, ten, b) for k, s, b, _ in items)
    names = [r[0] for r in items]
    return decode_in_threads(jobs, names, [r[3] for r in items], (channels, size, ten))


def load(
    root: Path, channels: int, size: int, resize: int | None, ten_crop: bool
) -> tuple[ShardSet, dict[str, np.ndarray], list[str]]:
    """The index and the decoded arrays: all test samples, and all training samples (for
    in-memory batches) or, with ``resize``, the first :data:`MEAN_SAMPLE` of them for the
    mean (the pack shuffled them)."""
    s = read_index(root)
    train_paths = [s.root / n for n, _ in s.train]
    items = []
    for item in records(train_paths):
        if resize is not None and len(items) == MEAN_SAMPLE:
            break
        items.append(item)
    tx, ty, bad = decode_records(items, channels, size, resize)
    test = list(records([s.root / n for n, _ in s.test]))
    vx, vy, more = decode_records(test, channels, size, resize, ten_crop)
    arrays = {"train_x": tx, "train_y": ty, "test_x": vx, "test_y": vy}
    return s, arrays, bad + more


# --- streaming ----------------------------------------------------------------------------


def _shuffled(items: Iterator[Record], rng: np.random.Generator) -> Iterator[Record]:
    """A shuffle buffer of :data:`SHUFFLE_BUFFER` samples (seeded: the same every time)."""
    buffer: list[Record] = []
    for item in items:
        buffer.append(item)
        if len(buffer) >= SHUFFLE_BUFFER:
            j = int(rng.integers(len(buffer)))
            buffer[j], buffer[-1] = buffer[-1], buffer[j]
            yield buffer.pop()
    order = rng.permutation(len(buffer))
    yield from (buffer[i] for i in order)


class ShardBatches(torch.utils.data.IterableDataset):  # type: ignore[type-arg]
    """This process's batches from its shards, from iteration ``start`` on, as
    ``(iteration, uint8 images, labels, keys, failed, decoding seconds)``. The shards are
    read by ``streams`` readers: in each epoch reader ``k`` takes the shards ``k::streams``
    of that epoch's order and makes the steps ``k, k + streams, ...``; worker ``w`` of ``W``
    runs the readers ``w::W``, so the samples do not depend on the number of workers."""

    def __init__(self, data: Any, start: int) -> None:
        self.paths = data.shard_paths
        self.streams, self.start = data.streams, start
        self.batch, self.steps = data.batch_size // data.world, data.steps_per_epoch
        self.seed, self.rank = data.seed, data.rank
        self.crop, self.channels, self.size = data.crop, data.channels, data.size
        self.flip = data.flip

    def _stream(self, epoch: int, reader: int) -> Iterator[Record]:
        """A reader's samples in ``epoch``; a reader whose shards run out starts again."""
        order = np.random.default_rng(mix_seed(self.seed, epoch, self.rank, 8))
        mine = [self.paths[i] for i in order.permutation(len(self.paths))[reader :: self.streams]]
        rng = np.random.default_rng(mix_seed(self.seed, epoch, self.rank, reader, 9))
        while True:
            yield from _shuffled(records(mine), rng)

    def __iter__(self) -> Iterator[tuple[int, Tensor, Tensor, list[str], list[str], float]]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        epoch, first = divmod(self.start, self.steps)
        while True:
            readers = {k: self._stream(epoch, k) for k in range(worker, self.streams, workers)}
            for step in range(self.steps):
                reader = readers.get(step % self.streams)
                if reader is None:
                    continue
                items = [next(reader) for _ in range(self.batch)]
                if step >= first:
                    yield self._batch(epoch * self.steps + step, items)
            epoch, first = epoch + 1, 0

    def _batch(
        self, iteration: int, items: list[Record]
    ) -> tuple[int, Tensor, Tensor, list[str], list[str], float]:
        t0 = time.perf_counter()
        images, labels, keys, failed = [], [], [], []
        for j, (key, suffix, data, label) in enumerate(items):
            rng = np.random.default_rng(mix_seed(self.seed, iteration, self.rank, j, 6))
            path = Path(f"{key}.{suffix}")
            try:
                images.append(
                    augmented(self.crop, path, self.channels, self.size, self.flip, rng, data)
                )
            except Exception as exc:  # noqa: BLE001  (a bad sample must not end the run)
                failed.append(f"{self.paths[0].parent / key}: cannot decode ({exc})")
                continue
            labels.append(label)
            keys.append(key)
        x = torch.from_numpy(np.stack(images)) if images else torch.empty(0, dtype=torch.uint8)
        y = torch.tensor(labels, dtype=torch.int64)
        return iteration, x, y, keys, failed, time.perf_counter() - t0


def in_order(
    batches: Iterator[tuple[int, Tensor, Tensor, list[str], list[str], float]], start: int
) -> Iterator[tuple[Tensor, Tensor, list[str], float]]:
    """The workers' batches in iteration order from ``start``."""
    pending: dict[int, tuple[Tensor, Tensor, list[str], float]] = {}
    want = start
    for iteration, x, y, _, failed, seconds in batches:
        pending[iteration] = (x, y, failed, seconds)
        while want in pending:
            yield pending.pop(want)
            want += 1


class ShardData(StreamData):
    """:class:`StreamData` whose training batches stream from this process's shards."""

    def _take_training_set(self, images: ImageSet, batch_size: int, world: int) -> None:
        s = images.shards
        if s is None:
            raise TrainError("shard batches need a shard set")
        shares = s.shares(world)
        if not shares[-1]:
            raise TrainError(
                f"{s.root}: {len(s.train)} training shards for {world} processes; every "
                "process needs one: pack with a smaller --shard-size"
            )
        counts = [sum(s.train[j][1] for j in share) for share in shares]
        self.streams = max(1, min(self.workers, len(shares[-1])))  # the same in every process
        self.shard_paths = [s.root / s.train[j][0] for j in shares[self.rank]]
        self.train_size = s.train_size
        self.steps_per_epoch = min(counts) // (batch_size // world)
        if self.steps_per_epoch == 0:
            raise TrainError(
                f"batch size {batch_size} is larger than the {min(counts) * world} training "
                f"samples {world} processes read from equal shares of {s.root}"
            )

    def uint8_batches(self, start: int) -> Iterator[tuple[Tensor, Tensor, list[str], float]]:
        loader = torch.utils.data.DataLoader(
            ShardBatches(self, start),
            batch_size=None,
            num_workers=min(self.workers, self.streams),
            prefetch_factor=4 if self.workers else None,
            pin_memory=self.device.type == "cuda",
        )
        return in_order(iter(loader), start)

    def position(self, iteration: int) -> dict[str, object]:
        return {**super().position(iteration), "streams": self.streams}

    def restore(self, position: dict[str, object]) -> None:
        """A resumed run keeps its readers (the samples depend on them, not on --workers)."""
        super().restore(position)
        self.streams = int(position["streams"])  # type: ignore[call-overload]
