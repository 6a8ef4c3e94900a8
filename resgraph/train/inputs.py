"""A run's data, set up from its recipe: the data set read (rank 0 first), checked against
the spec's classes, split, and handed to the pipeline that feeds the device (in-memory
batches, crops decoded from files, or WebDataset shards)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import click
import torch

from resgraph.errors import TrainError
from resgraph.train import config as cfg
from resgraph.train import dali, distributed, shards
from resgraph.train import stream as stream_io
from resgraph.train.batches import DeviceData, split_validation
from resgraph.train.data import ImageSet, load_images
from resgraph.train.evaluate import check_classes
from resgraph.train.report import progress

_pipelines = {"cpu": stream_io.StreamData, "dali": dali.DaliData}


def read(
    recipe: Any,
    opts: cfg.TrainOptions,
    spec_input: Any,
    d: distributed.Dist,
    echo: Callable[..., None],
    resize: int | None,
) -> ImageSet:
    """The data set, read by rank 0 first (it downloads, scans and fills the cache), then
    by the others; an error is rank 0's to report."""
    loader: dict[str, Any] = {
        "download": opts.download,
        "url": opts.cifar_url,
        "log": echo,
        "holdout": recipe.holdout,
        "skip_unreadable": opts.skip_unreadable,
        "progress": progress(not opts.quiet),
        "resize": resize,
    }
    if opts.cifar_md5:
        loader["md5"] = opts.cifar_md5
    where = (recipe.dataset, opts.data_dir, spec_input.channels, spec_input.size)
    images, error = None, None
    if d.is_main:
        try:
            images = load_images(*where, **loader)
        except TrainError as exc:
            error = str(exc)
    error = d.from_main(error)
    if error:
        if not d.is_main:
            raise click.exceptions.Exit(1)
        raise TrainError(error)
    if images is None:
        del loader["download"], loader["log"], loader["progress"]  # rank 0 has read it
        images = load_images(*where, **loader)
    return images


def _check_batch(batch_size: int, d: distributed.Dist) -> None:
    if batch_size % d.world:
        message = f"batch size {batch_size} does not split evenly over {d.world} processes"
        if not d.is_main:  # every process finds it: rank 0 alone says so
            raise click.exceptions.Exit(1)
        raise TrainError(message)


def setup(
    recipe: Any,
    opts: cfg.TrainOptions,
    spec: Any,
    d: distributed.Dist,
    device: torch.device,
    echo: Callable[..., None],
) -> tuple[ImageSet, DeviceData]:
    """The run's data set (with its classes and notes) and the pipeline that feeds it."""
    _check_batch(recipe.batch_size, d)
    stream = recipe.crop in stream_io.CROPS
    if stream and recipe.validation_split:
        raise TrainError(
            f"validation_split holds out in-memory images: it needs crop 'pad', not "
            f"'{recipe.crop}' (an image folder's val/ is its test set)"
        )
    resize = stream_io.eval_resize(spec.input.size) if stream else None
    images = read(recipe, opts, spec.input, d, echo, resize)
    if recipe.flip is not None:
        images = dataclasses.replace(images, mirror=recipe.flip)
    unused = check_classes(spec.num_classes, images)
    if unused and d.is_main:
        click.echo(f"warning: {unused}", err=True)
    images, validation = split_validation(images, recipe.validation_split)
    common: dict[str, Any] = {
        "batch_size": recipe.batch_size,
        "seed": recipe.seed,
        "augment": recipe.augment,
        "rank": d.rank,
        "world": d.world,
        "channels_last": opts.channels_last,
    }
    loader = dali.choose(opts.loader, device, stream and images.shards is None)
    if stream:
        workers = opts.workers if opts.workers is not None else stream_io.default_workers()
        kind = _pipelines[loader] if images.shards is None else shards.ShardData
        if loader == "dali":
            images.notes.append(
                f"decoded by NVIDIA DALI ({'GPU' if device.type == 'cuda' else 'CPU'})"
            )
        data = kind(images, device, crop=recipe.crop, workers=workers, **common)
        return images, data
    return images, DeviceData(images, device, validation=validation, **common)
