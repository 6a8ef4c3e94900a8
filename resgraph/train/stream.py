"""Image folders read from their files at every step, for photos larger than the network's
input: the paper's ImageNet augmentation (He et al. 2015, sec. 3.4) or torchvision's
RandomResizedCrop, decoded in DataLoader worker processes.

A worker builds the whole of one iteration's batch for this process: the indices come from
the epoch's permutation (a function of seed and epoch, as in :mod:`resgraph.train.batches`)
and each image's crop, scale and flip from (seed, iteration, rank, position), so a resumed run
reads the same pixels as an uninterrupted one. Batches travel as uint8; the device subtracts
the mean and adds the PCA lighting noise (Krizhevsky et al. 2012), drawn from (seed,
iteration, rank). A file that fails to decode is left out of its batch and counted.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from resgraph.errors import TrainError
from resgraph.train.batches import DeviceData, epoch_order, mix_seed
from resgraph.train.data import ImageSet
from resgraph.train.folder import open_image, to_array

REFERENCE_CROP = 224  # the paper's crop; scales below are given for it
SCALE_RANGE = (256, 480)  # shorter side, at random (paper sec. 3.4)
EVAL_RESIZE = 256  # shorter side before the centre crop at test time
RESIZED_AREA = (0.08, 1.0)  # RandomResizedCrop's area share and aspect ratios
RESIZED_RATIO = (3 / 4, 4 / 3)
LIGHTING_STD = 0.1
# The principal components of ImageNet's RGB pixel values (Krizhevsky et al. 2012), in [0, 1]
# units: eigenvalues and the eigenvectors as columns.
EIGVAL = (0.2175, 0.0188, 0.0045)
EIGVEC = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)


def scaled(side: int, size: int) -> int:
    """A side given for 224-pixel crops, for crops of ``size`` pixels."""
    return round(side * size / REFERENCE_CROP)


def eval_resize(size: int) -> int:
    return scaled(EVAL_RESIZE, size)


def _scale_crop(
    path: Path, channels: int, size: int, rng: np.random.Generator, data: bytes | None = None
) -> np.ndarray:
    """Shorter side resized to a random side in the scaled SCALE_RANGE, then a random
    ``size`` crop: computed as the crop's box in the decoded image, resized alone."""
    low, high = scaled(SCALE_RANGE[0], size), scaled(SCALE_RANGE[1], size)
    side = int(rng.integers(low, high + 1))
    img = open_image(path, channels, side, data)
    w, h = img.size
    scale = side / min(w, h)
    sw, sh = max(size, round(w * scale)), max(size, round(h * scale))
    left, top = int(rng.integers(0, sw - size + 1)), int(rng.integers(0, sh - size + 1))
    box = (left * w / sw, top * h / sh, (left + size) * w / sw, (top + size) * h / sh)
    return to_array(img.resize((size, size), resample=2, box=box, reducing_gap=3.0), channels)


def _resized_crop(
    path: Path, channels: int, size: int, rng: np.random.Generator, data: bytes | None = None
) -> np.ndarray:
    img = open_image(path, channels, size, data)
    w, h = img.size
    box = (0, 0, w, h)
    for _ in range(10):  # a random area share and aspect ratio; the whole image if none fits
        area = w * h * rng.uniform(*RESIZED_AREA)
        ratio = math.exp(rng.uniform(math.log(RESIZED_RATIO[0]), math.log(RESIZED_RATIO[1])))
        cw, ch = round(math.sqrt(area * ratio)), round(math.sqrt(area / ratio))
        if 0 < cw <= w and 0 < ch <= h:
            left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            box = (left, top, left + cw, top + ch)
            break
    img = img.resize((size, size), resample=2, box=box, reducing_gap=3.0)  # bilinear
    return to_array(img, channels)


CROPS = {"scale": _scale_crop, "resized": _resized_crop}


def augmented(
    crop: str,
    path: Path,
    channels: int,
    size: int,
    flip: bool,
    rng: np.random.Generator,
    data: bytes | None = None,
) -> np.ndarray:
    """One training image: its random crop and, with ``flip``, a coin's horizontal flip."""
    x = CROPS[crop](path, channels, size, rng, data)
    return x[:, :, ::-1] if flip and rng.random() < 0.5 else x


class IterationBatches(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """Item ``i``: this process's uint8 batch of iteration ``i``, its labels and the paths
    that failed to decode."""

    def __init__(self, data: StreamData) -> None:
        self.files, self.labels = data.files, data.labels
        self.crop, self.channels, self.size = data.crop, data.channels, data.size
        self.flip, self.seed, self.rank, self.world = data.flip, data.seed, data.rank, data.world
        self.batch_size, self.steps = data.batch_size, data.steps_per_epoch
        self.n = data.train_size
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.int64)

    def __getitem__(self, iteration: int) -> tuple[Tensor, Tensor, list[str], float]:
        t0 = time.perf_counter()
        epoch, step = divmod(iteration, self.steps)
        if epoch != self._epoch:
            self._epoch, self._perm = epoch, epoch_order(self.seed, epoch, self.n)
        index = self._perm[step * self.batch_size : (step + 1) * self.batch_size]
        index = index[self.rank :: self.world].tolist()
        images, labels, failed = [], [], []
        for j, i in enumerate(index):
            rng = np.random.default_rng(mix_seed(self.seed, iteration, self.rank, j, 6))
            try:
                x = augmented(self.crop, self.files[i], self.channels, self.size, self.flip, rng)
            except Exception as exc:  # noqa: BLE001  (a bad file must not end the run)
                failed.append(f"{self.files[i]}: cannot decode ({type(exc).__name__}: {exc})")
                continue
            images.append(x)
            labels.append(self.labels[i])
        x = torch.from_numpy(np.stack(images)) if images else torch.empty(0, dtype=torch.uint8)
        return x, torch.tensor(labels, dtype=torch.int64), failed, time.perf_counter() - t0

    def __len__(self) -> int:
        return 2**62


class _From:
    """An endless sampler of iteration numbers from ``start``."""

    def __init__(self, start: int) -> None:
        self.start = start

    def __iter__(self) -> Iterator[int]:
        i = self.start
        while True:
            yield i
            i += 1


class StreamData(DeviceData):
    """:class:`DeviceData` whose training batches are read from files by worker processes;
    the test set (resized to :func:`eval_resize`, centre crop) stays on the device."""

    @property
    def nbytes(self) -> int:
        return super().nbytes - self.train_x.numel()  # the mean's sample is not the set

    def __init__(
        self,
        images: ImageSet,
        device: torch.device,
        *,
        crop: str,
        workers: int,
        batch_size: int,
        world: int = 1,
        **kw: object,
    ) -> None:
        # the base holds the test set and the mean's sample; batches come from the files
        super().__init__(images, device, batch_size=world, world=world, **kw)  # type: ignore[arg-type]
        self.batch_size, self.crop, self.workers = batch_size, crop, workers
        self._take_training_set(images, batch_size, world)
        self.channels, self.size = images.train_x.shape[1], images.train_x.shape[2]
        self.flip = images.mirror and self.augment
        self.failed: list[str] = []
        self.wait_s = self.decode_s = 0.0
        self._batches: Iterator[tuple[Tensor, Tensor, list[str], float]] | None = None
        self._next = -1
        vec = torch.tensor(EIGVEC) * torch.tensor(EIGVAL)
        self.lighting = vec.to(device) if self.channels == 3 else None

    def _take_training_set(self, images: ImageSet, batch_size: int, world: int) -> None:
        """The training files, their labels and the epoch's length."""
        if images.files is None:
            raise TrainError("crops read at every step need a folder's files")
        self.files = [p for p, _ in images.files]
        self.labels = [y for _, y in images.files]
        self.train_size = len(self.files)
        self.steps_per_epoch = self.train_size // batch_size
        if self.steps_per_epoch == 0:
            raise TrainError(
                f"batch size {batch_size} is larger than the {self.train_size} training images"
            )

    def _start(self, iteration: int) -> None:
        self._batches, self._next = self.uint8_batches(iteration), iteration

    def uint8_batches(self, start: int) -> Iterator[tuple[Tensor, Tensor, list[str], float]]:
        """The workers' output from iteration ``start`` on: uint8 batches as they leave the
        decoding processes, their labels, failed files and decoding seconds."""
        loader = torch.utils.data.DataLoader(
            IterationBatches(self),
            batch_size=None,
            sampler=_From(start),
            num_workers=self.workers,
            prefetch_factor=4 if self.workers else None,
            pin_memory=self.device.type == "cuda",
        )
        return iter(loader)

    def train_batch(self, iteration: int) -> tuple[Tensor, Tensor]:
        if self._batches is None or iteration != self._next:
            self._start(iteration)
        assert self._batches is not None
        t0 = time.perf_counter()
        x, y, failed, decode_s = next(self._batches)
        self.wait_s += time.perf_counter() - t0
        self.decode_s += decode_s
        self._next = iteration + 1
        self.failed += failed
        x = self.normalize(x.to(self.device, non_blocking=True))
        if self.augment and self.lighting is not None and len(x):
            g = torch.Generator(self.device).manual_seed(
                mix_seed(self.seed, iteration, self.rank, 7)
            )
            alpha = torch.randn((len(x), 3), device=self.device, generator=g) * LIGHTING_STD
            x += (alpha @ self.lighting.T).view(-1, 3, 1, 1)
        return x.contiguous(memory_format=self.memory_format), y.to(self.device)

    def close(self) -> None:
        """Stop the worker processes."""
        self._batches = None

    def __del__(self) -> None:
        self.close()


def default_workers() -> int:
    return min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


def describe(crop: str, size: int, flip: bool) -> str:
    """The start-up line that states the augmentation."""
    flips = ", flips" if flip else ""
    test = f"test: shorter side {eval_resize(size)}, centre {size} crop"
    if crop == "scale":
        low, high = scaled(SCALE_RANGE[0], size), scaled(SCALE_RANGE[1], size)
        return (
            f"scale augmentation: shorter side at random in [{low}, {high}], random {size} "
            f"crops{flips}, per-pixel mean, PCA lighting (He et al. 2015); {test}"
        )
    return (
        f"random resized crops (area {RESIZED_AREA[0]:.0%}-{RESIZED_AREA[1]:.0%}, aspect "
        f"3/4-4/3) to {size}{flips}, per-pixel mean, PCA lighting; {test}"
    )
