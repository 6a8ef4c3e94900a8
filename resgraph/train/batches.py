"""The input pipeline on the training device: no loader processes, no per-image Python.

The whole training set lives on the device as one uint8 tensor; a mini-batch is an index
gather from it, then mean subtraction, padding, random crops and flips done on the whole
batch at once. The data order is a function of (seed, epoch) and the augmentation of
(seed, iteration, rank), so a run resumed at any iteration sees the same batches as an
uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from resgraph.errors import TrainError
from resgraph.train.data import ImageSet

PAD = 4  # pixels on each side before the random crop (paper sec. 4.2)


def mix_seed(*parts: int) -> int:
    """A 63-bit seed from integers (splitmix64 steps), so nearby seeds give unrelated streams."""
    value = 0x9E3779B97F4A7C15
    for part in parts:
        value = (value ^ (int(part) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        value ^= value >> 31
    return value & 0x7FFFFFFFFFFFFFFF


def epoch_order(seed: int, epoch: int, n: int) -> Tensor:
    """The order of ``n`` training examples in ``epoch`` (on the CPU)."""
    generator = torch.Generator().manual_seed(mix_seed(seed, epoch, 1))
    return torch.randperm(n, generator=generator)


def pixel_mean(x: np.ndarray) -> np.ndarray:
    """Per-pixel mean of uint8 images in [0, 1] (paper sec. 4.2), as float32. The sums are
    accumulated in float64 without a float64 copy of the set (numpy casts in small
    buffers); sums of uint8 values are exact in float64, so the result does not depend on
    the summation order or the device."""
    return (x.mean(axis=0, dtype=np.float64) / 255.0).astype(np.float32)


def split_validation(
    images: ImageSet, holdout: int
) -> tuple[ImageSet, tuple[np.ndarray, np.ndarray] | None]:
    """Hold out ``holdout`` training examples (a fixed draw, the same for every seed)."""
    if holdout == 0:
        return images, None
    n = len(images.train_y)
    if holdout >= n:
        raise TrainError(
            f"train.validation_split is {holdout} but {images.name} has only {n} training images"
        )
    order = np.random.default_rng(12345).permutation(n)
    keep, held = np.sort(order[holdout:]), np.sort(order[:holdout])
    rest = ImageSet(
        images.name,
        images.train_x[keep],
        images.train_y[keep],
        images.test_x,
        images.test_y,
        images.mirror,
        images.num_classes,
    )
    return rest, (images.train_x[held], images.train_y[held])


class DeviceData:
    """Training and evaluation batches, built on ``device``."""

    def __init__(
        self,
        images: ImageSet,
        device: torch.device,
        *,
        batch_size: int,
        seed: int,
        augment: bool,
        rank: int = 0,
        world: int = 1,
        channels_last: bool = False,
        validation: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        n = len(images.train_y)
        if batch_size > n:
            raise TrainError(f"batch size {batch_size} is larger than the {n} training images")
        if batch_size % world:
            raise TrainError(
                f"batch size {batch_size} does not split evenly over {world} processes"
            )
        self.device, self.batch_size, self.seed = device, batch_size, seed
        self.rank, self.world = rank, world
        self.augment, self.mirror = augment, images.mirror
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.wait_s = 0.0  # time spent waiting for training batches (none: they are here)
        self.train_x = torch.from_numpy(images.train_x).to(device)
        self.train_y = torch.from_numpy(images.train_y).to(device)
        self.test = (
            torch.from_numpy(images.test_x).to(device),
            torch.from_numpy(images.test_y).to(device),
        )
        self.validation = (
            None
            if validation is None
            else (
                torch.from_numpy(validation[0]).to(device),
                torch.from_numpy(validation[1]).to(device),
            )
        )
        self.mean = torch.from_numpy(pixel_mean(images.train_x)).to(device)
        self.steps_per_epoch = n // batch_size  # the last partial batch of an epoch is dropped
        self.train_size = n
        self._epoch = -1
        self._perm: Tensor | None = None

    @property
    def nbytes(self) -> int:
        tensors = [self.train_x, self.train_y, *self.test, *(self.validation or ())]
        return sum(t.numel() * t.element_size() for t in tensors)

    def permutation(self, epoch: int) -> Tensor:
        """The order of the training set in ``epoch`` (on the CPU): a function of seed and epoch."""
        return epoch_order(self.seed, epoch, self.train_size)

    def position(self, iteration: int) -> dict[str, object]:
        """Where the data stands before ``iteration``: saved in checkpoints."""
        epoch, step = divmod(iteration, self.steps_per_epoch)
        return {
            "iteration": iteration,
            "epoch": epoch,
            "step": step,
            "seed": self.seed,
            "permutation": self.permutation(epoch),
        }

    def restore(self, position: dict[str, object]) -> None:
        """Take the saved permutation of the current epoch (it must be the one the seed gives)."""
        perm = position["permutation"]
        expected = self.permutation(int(position["epoch"]))  # type: ignore[arg-type]
        if not isinstance(perm, Tensor) or not torch.equal(perm.cpu(), expected):
            raise TrainError("the checkpoint's data order does not match this data set and seed")
        self._epoch, self._perm = int(position["epoch"]), perm.to(self.device)

    def train_batch(self, iteration: int) -> tuple[Tensor, Tensor]:
        """This process's share of the global mini-batch number ``iteration``."""
        epoch, step = divmod(iteration, self.steps_per_epoch)
        if epoch != self._epoch:
            self._perm = self.permutation(epoch).to(self.device)
            self._epoch = epoch
        assert self._perm is not None
        index = self._perm[step * self.batch_size : (step + 1) * self.batch_size]
        index = index[self.rank :: self.world]
        x = self.normalize(self.train_x[index])
        if self.augment:
            generator = torch.Generator(self.device).manual_seed(
                mix_seed(self.seed, iteration, self.rank, 2)
            )
            x = augment(x, generator, flip=self.mirror)
        return x.contiguous(memory_format=self.memory_format), self.train_y[index]

    def normalize(self, x: Tensor) -> Tensor:
        return x.float().div_(255.0).sub_(self.mean)

    def eval_batches(
        self, split: str = "test", batch_size: int = 500
    ) -> Iterator[tuple[Tensor, Tensor]]:
        xs, ys = self.test if split == "test" else self.validation  # type: ignore[misc]
        for start in range(0, len(ys), batch_size):
            x = self.normalize(xs[start : start + batch_size])
            yield x.contiguous(memory_format=self.memory_format), ys[start : start + batch_size]


def augment(x: Tensor, generator: torch.Generator, *, flip: bool, pad: int = PAD) -> Tensor:
    """Random ``pad``-pixel translations (zero padding, then a crop of the original size)
    and, with ``flip``, random horizontal flips of a B x C x H x W batch, as one gather.

    Padding is applied after mean subtraction, so the border is the mean image.
    """
    b, c, h, w = x.shape
    dev = x.device
    wp = w + 2 * pad
    padded = F.pad(x, (pad, pad, pad, pad)).view(b, c, (h + 2 * pad) * wp)
    dy = torch.randint(0, 2 * pad + 1, (b, 1, 1), device=dev, generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (b, 1, 1), device=dev, generator=generator)
    cols = torch.arange(w, device=dev).view(1, 1, w)
    if flip:
        flipped = torch.rand((b, 1, 1), device=dev, generator=generator) < 0.5
        cols = torch.where(flipped, w - 1 - cols, cols)
    rows = dy + torch.arange(h, device=dev).view(1, h, 1)
    index = (rows * wp + dx + cols).view(b, 1, h * w).expand(b, c, h * w)
    return padded.gather(2, index).view(b, c, h, w)
