"""Crops read from the files at every step: the paper's ImageNet scale augmentation and
RandomResizedCrop, chosen by the stem, stated, recorded, resumed exactly, robust to bad files."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from train_helpers import one_thread  # noqa: F401
from train_hooks import SignalAfter, with_callbacks

from helpers import invoke
from resgraph.train import checkpoint as ckpt_io
from resgraph.train import folder as tfolder
from resgraph.train import stream
from resgraph.train.data import load_images

SPEC = """\
name: Tiny ImageNet-kind
input: {channels: 3, size: 32}
num_classes: 3
stem: {layout: imagenet, width: 8}
block: basic
shortcut: B
stages:
  - {width: 8, repeats: 1, stride: 1}
train: {batch_size: 12, iterations: 6, eval_every: 3}
"""
COLOURS = {"red": (200, 40, 40), "green": (40, 200, 40), "blue": (40, 40, 200)}


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(tfolder.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def photos(root: Path, n: int = 8) -> Path:
    """Noisy 80x60 JPEG 'photos' of three colours, train/ and val/."""
    rng = np.random.default_rng(0)
    for part, count in (("train", n), ("val", 2)):
        for name, colour in COLOURS.items():
            (root / part / name).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                a = (np.array(colour) + rng.normal(0, 40, (60, 80, 3))).clip(0, 255)
                Image.fromarray(a.astype(np.uint8)).save(root / part / name / f"{i}.jpg")
    return root


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    spec = tmp_path / "inet.yaml"
    spec.write_text(SPEC)
    return spec, photos(tmp_path / "photos")


def test_an_imagenet_stem_on_a_folder_takes_the_papers_recipe(
    setup: tuple[Path, Path], tmp_path: Path
) -> None:
    spec, data = setup
    out = tmp_path / "run"
    result = invoke("train", spec, "--dataset", data, "--out", out, "--workers", "0")
    assert result.exit_code == 0, result.output
    assert (
        "scale augmentation: shorter side at random in [37, 69], random 32 crops, flips"
        in result.output
    )
    assert "test: shorter side 37, centre 32 crop" in result.output
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["train"]["crop"] == "scale" and config["train"]["batch_size"] == 12
    unset = tmp_path / "unset.yaml"
    unset.write_text(SPEC.replace("batch_size: 12, ", ""))
    big = invoke("train", unset, "--dataset", data, "--out", tmp_path / "big", "--workers", "0")
    assert big.exit_code == 1 and "batch size 256 is larger than the 24 training" in big.output
    cifar = tmp_path / "cifar.yaml"
    cifar.write_text(
        SPEC.replace("layout: imagenet", "layout: cifar").replace("shortcut: B", "shortcut: A")
    )
    small = invoke("train", cifar, "--dataset", data, "--out", tmp_path / "c", "--iterations", "1")
    assert small.exit_code == 0, small.output
    assert "scale augmentation" not in small.output
    assert yaml.safe_load((tmp_path / "c" / "config.yaml").read_text())["train"]["crop"] == "pad"
    chosen = invoke(
        "train",
        spec,
        "--dataset",
        data,
        "--out",
        tmp_path / "r",
        "--iterations",
        "1",
        "--crop",
        "resized",
        "--workers",
        "0",
    )
    assert chosen.exit_code == 0 and "random resized crops (area 8%-100%" in chosen.output


def test_batches_are_a_function_of_seed_iteration_and_rank(setup: tuple[Path, Path]) -> None:
    _, data = setup
    images = load_images(str(data), Path("."), 3, 32, resize=stream.eval_resize(32))
    assert images.files is not None and len(images.files) == 24
    assert images.test_x.shape == (6, 3, 32, 32)
    cpu = torch.device("cpu")
    for crop in ("scale", "resized"):
        d = stream.StreamData(
            images, cpu, crop=crop, workers=0, batch_size=6, seed=1, world=2, rank=1, augment=True
        )
        items = stream.IterationBatches(d)
        x, y, failed, _ = items[5]
        assert x.shape == (3, 3, 32, 32) and x.dtype == torch.uint8 and not failed
        again = stream.IterationBatches(d)[5]
        assert torch.equal(x, again[0]) and torch.equal(y, again[1])
        assert not torch.equal(x, items[6][0])
        other = stream.StreamData(
            images, cpu, crop=crop, workers=0, batch_size=6, seed=1, world=2, rank=0, augment=True
        )
        mine = set(d.permutation(0)[5 * 6 : 6 * 6][1::2].tolist())
        theirs = set(other.permutation(0)[5 * 6 : 6 * 6][0::2].tolist())
        assert not mine & theirs  # the two processes read disjoint images


def test_lighting_moves_colours_along_the_principal_components(setup: tuple[Path, Path]) -> None:
    _, data = setup
    images = load_images(str(data), Path("."), 3, 32, resize=stream.eval_resize(32))
    cpu = torch.device("cpu")
    on = stream.StreamData(images, cpu, crop="scale", workers=0, batch_size=6, seed=0, augment=True)
    off = stream.StreamData(
        images, cpu, crop="scale", workers=0, batch_size=6, seed=0, augment=False
    )
    x_on = on.train_batch(0)[0]
    raw = stream.IterationBatches(on)[0][0]
    shift = x_on - on.normalize(raw)
    per_image = shift.mean(dim=(2, 3))
    assert torch.allclose(shift, per_image[:, :, None, None], atol=1e-6)  # one shift an image
    basis = torch.tensor(stream.EIGVEC)
    alpha = torch.linalg.solve(basis, per_image.T).T / torch.tensor(stream.EIGVAL)
    assert alpha.abs().max() < 6 * stream.LIGHTING_STD and alpha.abs().max() > 0
    plain = off.train_batch(0)[0]
    assert plain.shape == x_on.shape


def test_a_stopped_run_resumes_bit_exactly_with_workers(
    setup: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec, data = setup
    args = ("train", spec, "--dataset", data, "--workers", "2")
    whole = invoke(*args, "--out", tmp_path / "whole")
    assert whole.exit_code == 0, whole.output
    run = tmp_path / "run"
    with monkeypatch.context() as m:
        with_callbacks(m, SignalAfter(signal.SIGINT, 2))
        assert invoke(*args, "--out", run).exit_code == 130
    resumed = invoke("train", spec, "--out", run, "--resume", "--workers", "1")
    assert resumed.exit_code == 0, resumed.output
    ours, theirs = ckpt_io.load(run / "last.pt"), ckpt_io.load(tmp_path / "whole" / "last.pt")
    assert all(torch.equal(ours["model"][k], v) for k, v in theirs["model"].items())


def test_a_file_that_breaks_after_the_scan_is_skipped_and_listed(
    setup: tuple[Path, Path], tmp_path: Path
) -> None:
    spec, data = setup
    first = invoke(
        "train",
        spec,
        "--dataset",
        data,
        "--out",
        tmp_path / "a",
        "--iterations",
        "1",
        "--workers",
        "0",
    )
    assert first.exit_code == 0, first.output
    victim = data / "train" / "red" / "3.jpg"
    st = victim.stat()
    victim.write_bytes(b"\xff\xd8" + b"\0" * (st.st_size - 2))  # same size, broken data
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))  # the scan's cache still holds
    out = tmp_path / "b"
    result = invoke(
        "train", spec, "--dataset", data, "--out", out, "--iterations", "6", "--workers", "0"
    )
    assert result.exit_code == 0, result.output
    listed = (out / "unreadable.txt").read_text().splitlines()
    assert listed and all(line.startswith(f"{victim}: cannot decode") for line in listed)


def test_validation_split_needs_in_memory_crops(setup: tuple[Path, Path], tmp_path: Path) -> None:
    spec, data = setup
    result = invoke(
        "train",
        spec,
        "--dataset",
        data,
        "--out",
        tmp_path / "x",
        "--set",
        "train.validation_split=3",
    )
    assert result.exit_code == 1 and "validation_split holds out in-memory images" in result.output
    assert not (tmp_path / "x").exists()


def test_the_progress_line_shows_the_wait_for_data(setup: tuple[Path, Path]) -> None:
    from resgraph.train import report

    line = report._stats(
        {"loss": 1.0, "error": 0.5, "lr": 0.1, "images_per_s": 9, "data_wait": 0.42}
    )
    assert "data wait 42%" in line
    assert "data wait" not in report._stats(
        {"loss": 1.0, "error": 0.5, "lr": 0.1, "images_per_s": 9}
    )
    _, data = setup
    images = load_images(str(data), Path("."), 3, 32, resize=stream.eval_resize(32))
    d = stream.StreamData(
        images, torch.device("cpu"), crop="scale", workers=0, batch_size=6, seed=0, augment=True
    )
    assert d.wait_s == 0.0
    d.train_batch(0)
    assert d.wait_s > 0.0 and d.decode_s > 0.0


def test_ten_crops_are_the_corners_the_centre_and_their_mirrors(tmp_path: Path) -> None:
    pixels = np.arange(40 * 50, dtype=np.int64).reshape(40, 50) % 251
    path = tmp_path / "grid.png"
    Image.fromarray(pixels.astype(np.uint8), "L").save(path)
    crops = tfolder.ten_crops(path, 1, 16, 40)  # already 40 on the shorter side: no resize
    assert crops.shape == (10, 1, 16, 16)
    whole = pixels.astype(np.uint8)
    assert np.array_equal(crops[0, 0], whole[:16, :16])
    assert np.array_equal(crops[1, 0], whole[:16, -16:])
    assert np.array_equal(crops[2, 0], whole[-16:, :16])
    assert np.array_equal(crops[3, 0], whole[-16:, -16:])
    assert np.array_equal(crops[4, 0], whole[12:28, 17:33])
    assert np.array_equal(crops[5:], crops[:5, :, :, ::-1])


def test_average_crops_averages_probabilities() -> None:
    from resgraph.train.evaluate import AverageCrops

    class Fixed(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.flatten(1)[:, :3]  # the first three pixels are the scores

    x = torch.randn(2, 10, 1, 2, 2)
    out = AverageCrops(Fixed())(x)
    expected = x.flatten(2)[:, :, :3].softmax(-1).mean(1).log()
    assert torch.allclose(out, expected, atol=1e-6)


def test_eval_ten_crop(setup: tuple[Path, Path], tmp_path: Path) -> None:
    spec, data = setup
    out = tmp_path / "run"
    assert invoke("train", spec, "--dataset", data, "--out", out, "--workers", "0").exit_code == 0
    ten = invoke("eval", spec, "--weights", out / "last.pt", "--ten-crop")
    assert ten.exit_code == 0, ten.output
    assert "on the " + str(data) + " (10 crops) test set: error" in ten.output
    cifar = tmp_path / "cifar.yaml"
    cifar.write_text(
        SPEC.replace("layout: imagenet", "layout: cifar").replace("shortcut: B", "shortcut: A")
    )
    small = tmp_path / "small"
    assert (
        invoke("train", cifar, "--dataset", data, "--out", small, "--iterations", "1").exit_code
        == 0
    )
    refused = invoke("eval", cifar, "--weights", small / "last.pt", "--ten-crop")
    assert (
        refused.exit_code == 1
        and "needs an image folder and the 'scale' or 'resized'" in refused.output
    )
