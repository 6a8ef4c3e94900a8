"""Crops read from an image folder's files, decoded by NVIDIA DALI (an optional extra,
``resgraph[dali]``): on a CUDA device the decoder is DALI's "mixed" one (nvJPEG on the GPU),
else its CPU decoder. The batches hold the same files as the worker pipeline's
(:mod:`resgraph.train.stream`: the epoch's permutation, this process's share), fed through an
external source; DALI draws the crops (the paper's scale augmentation or RandomResizedCrop)
and flips, and the device subtracts the mean and adds the PCA lighting as for the workers'
batches. DALI's random draws are its own: a resumed run reads the same files, not the same
crops.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor

from resgraph.errors import TrainError
from resgraph.train.batches import epoch_order, mix_seed
from resgraph.train.stream import RESIZED_AREA, RESIZED_RATIO, SCALE_RANGE, StreamData, scaled

LOADERS = ("auto", "cpu", "dali")
INSTALL = "pip install 'resgraph[dali]' (NVIDIA DALI: nvidia-dali-cuda120 or nvidia-dali-cuda130)"
THREADS = 2  # DALI's CPU threads per process


def installed() -> bool:
    try:
        import nvidia.dali  # noqa: F401
    except ImportError:
        return False
    return True


def choose(loader: str, device: torch.device, streamed: bool) -> str:
    """The loader in force: DALI when asked, or for ``auto`` when it is installed and the
    run trains on a CUDA device; refusals name what is missing."""
    if loader == "cpu" or (loader == "auto" and not (installed() and device.type == "cuda")):
        return "cpu"
    if not streamed:
        if loader == "auto":
            return "cpu"
        raise TrainError(
            "--loader dali decodes crops read from an image folder's files (crop 'scale' or "
            "'resized'); this run's images are held in memory or streamed from shards: "
            "leave --loader out"
        )
    if not installed():
        raise TrainError(f"--loader dali needs NVIDIA DALI: {INSTALL}")
    return "dali"


class DaliData(StreamData):
    """:class:`StreamData` whose training batches DALI decodes and crops."""

    def uint8_batches(self, start: int) -> Iterator[tuple[Tensor, Tensor, list[str], float]]:
        pipe = self._pipeline(start)
        pipe.build()
        for iteration in itertools.count(start):
            try:
                images, labels = pipe.run()
            except RuntimeError as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else "no message"
                raise TrainError(
                    f"DALI could not decode a file of iteration {iteration + 1} ({first}); "
                    "--loader cpu leaves such files out and lists them"
                ) from None
            labels = _to_torch(labels, torch.device("cpu")).view(-1)
            yield _to_torch(images, self.device), labels, [], 0.0

    def _files(self, start: int) -> Iterator[tuple[list[np.ndarray], np.ndarray]]:
        """This process's encoded files and labels of iterations ``start``, ``start + 1``, ..."""
        iteration, per = start, self.batch_size // self.world
        while True:
            epoch, step = divmod(iteration, self.steps_per_epoch)
            order = epoch_order(self.seed, epoch, self.train_size)
            index = order[step * self.batch_size : (step + 1) * self.batch_size]
            index = index[self.rank :: self.world].tolist()[:per]
            data = [np.fromfile(self.files[i], dtype=np.uint8) for i in index]
            yield data, np.array([self.labels[i] for i in index], dtype=np.int64)
            iteration += 1

    def _pipeline(self, start: int) -> Any:
        from nvidia.dali import fn, pipeline_def, types

        gpu = self.device.type == "cuda"
        size, files = self.size, self._files(start)

        @pipeline_def(
            batch_size=self.batch_size // self.world,
            num_threads=THREADS,
            device_id=(self.device.index or 0) if gpu else None,
            seed=mix_seed(self.seed, start, self.rank, 10) % 2**31,
            prefetch_queue_depth=2,
        )
        def pipe() -> Any:
            data, labels = fn.external_source(source=files, num_outputs=2, batch=True)
            colour = types.GRAY if self.channels == 1 else types.RGB
            images = fn.decoders.image(data, device="mixed" if gpu else "cpu", output_type=colour)
            images = _crop(fn, images, self.crop, size)
            mirror = fn.random.coin_flip(probability=0.5) if self.flip else 0
            images = fn.crop_mirror_normalize(
                images, dtype=types.UINT8, output_layout="CHW", mirror=mirror
            )
            return images, labels

        return pipe()


def _crop(fn: Any, images: Any, crop: str, size: int) -> Any:
    """DALI's form of :data:`resgraph.train.stream.CROPS`."""
    if crop == "resized":
        return fn.random_resized_crop(
            images,
            size=(size, size),
            random_area=RESIZED_AREA,
            random_aspect_ratio=RESIZED_RATIO,
        )
    low, high = scaled(SCALE_RANGE[0], size), scaled(SCALE_RANGE[1], size)
    side = fn.random.uniform(range=(low, high + 1))
    images = fn.resize(images, resize_shorter=side)
    x, y = fn.random.uniform(range=(0, 1)), fn.random.uniform(range=(0, 1))
    return fn.crop(images, crop=(size, size), crop_pos_x=x, crop_pos_y=y)


def _to_torch(out: Any, device: torch.device) -> Tensor:
    """A DALI batch (a TensorList on the CPU or the GPU) copied into a torch tensor on
    ``device`` by DALI's PyTorch plugin (on the current CUDA stream)."""
    from nvidia.dali.plugin.pytorch import feed_ndarray, to_torch_type

    batch = out.as_tensor()
    x = torch.empty(batch.shape(), dtype=to_torch_type[batch.dtype], device=device)
    stream = torch.cuda.current_stream(device) if device.type == "cuda" else None
    return feed_ndarray(batch, x, cuda_stream=stream)
