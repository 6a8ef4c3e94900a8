"""``--loader``: NVIDIA DALI decoding crops from an image folder's files (on the CPU here),
against the worker pipeline, and the choice between them."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from train_helpers import one_thread  # noqa: F401

from helpers import invoke
from resgraph.errors import TrainError
from resgraph.train import dali, stream
from resgraph.train import folder as tfolder
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
train: {batch_size: 12, iterations: 4, eval_every: 4}
"""
COLOURS = {"red": (200, 40, 40), "green": (40, 200, 40), "blue": (40, 40, 200)}
CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(tfolder.CACHE_ENV, str(tmp_path / "cache"))


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """Noisy 80x60 JPEGs of three colours, train/ and val/."""
    rng = np.random.default_rng(0)
    for part, count in (("train", 12), ("val", 2)):
        for name, colour in COLOURS.items():
            (tmp_path / "photos" / part / name).mkdir(parents=True)
            for i in range(count):
                a = (np.array(colour) + rng.normal(0, 30, (60, 80, 3))).clip(0, 255)
                Image.fromarray(a.astype(np.uint8)).save(
                    tmp_path / "photos" / part / name / f"{i}.jpg"
                )
    (tmp_path / "spec.yaml").write_text(SPEC)
    return tmp_path / "photos"


def _data(kind: type, photos: Path, crop: str) -> stream.StreamData:
    images = load_images(str(photos), Path("."), 3, 32, resize=stream.eval_resize(32))
    common = {"batch_size": 12, "seed": 3, "augment": True, "workers": 0}
    return kind(images, CPU, crop=crop, **common)


@pytest.mark.parametrize("crop", ["resized", "scale"])
def test_dali_batches_match_the_workers(photos: Path, crop: str) -> None:
    pytest.importorskip("nvidia.dali")
    ours, theirs = _data(dali.DaliData, photos, crop), _data(stream.StreamData, photos, crop)
    a, b = ours.uint8_batches(0), theirs.uint8_batches(0)
    for _ in range(4):  # more than an epoch (3 steps): the next epoch's order too
        (xa, ya, fa, _), (xb, yb, fb, _) = next(a), next(b)
        assert xa.dtype == xb.dtype == torch.uint8 and xa.shape == xb.shape == (12, 3, 32, 32)
        assert torch.equal(ya, yb) and fa == fb == []  # the same files, so the same labels
        # the same colours: each image's channel means agree within the crops' differences
        ma, mb = xa.float().mean((2, 3)), xb.float().mean((2, 3))
        assert (ma - mb).abs().max() < 25, (ma - mb).abs().max()
        channel = torch.tensor([2, 1, 0])[ya]  # classes blue, green, red: their bright channel
        assert torch.equal(ma.argmax(1), channel) and torch.equal(mb.argmax(1), channel)
    x, y = ours.train_batch(4)  # normalised on the device as the workers' batches are
    assert x.dtype == torch.float32 and x.shape == (12, 3, 32, 32) and y.dtype == torch.int64


def test_training_with_dali_on_the_cpu(photos: Path, tmp_path: Path) -> None:
    pytest.importorskip("nvidia.dali")
    out = tmp_path / "run"
    result = invoke(
        "train", tmp_path / "spec.yaml", "--dataset", photos, "--out", out, "--loader", "dali"
    )
    assert result.exit_code == 0, result.output
    assert "decoded by NVIDIA DALI (CPU)" in result.output
    result = invoke("train", tmp_path / "spec.yaml", "--dataset", photos, "--out", tmp_path / "b")
    assert result.exit_code == 0 and "DALI" not in result.output  # auto on the CPU: workers


def test_auto_picks_dali_only_when_installed_and_on_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    cuda = torch.device("cuda")
    monkeypatch.setattr(dali, "installed", lambda: True)
    assert dali.choose("auto", cuda, True) == "dali"
    assert dali.choose("auto", CPU, True) == "cpu"
    assert dali.choose("auto", cuda, False) == "cpu"  # nothing to decode from files
    assert dali.choose("cpu", cuda, True) == "cpu"
    assert dali.choose("dali", CPU, True) == "dali"
    monkeypatch.setattr(dali, "installed", lambda: False)
    assert dali.choose("auto", cuda, True) == "cpu"
    with pytest.raises(TrainError, match=r"needs NVIDIA DALI: pip install 'resgraph\[dali\]'"):
        dali.choose("dali", cuda, True)


def _one_error(result) -> str:  # type: ignore[no-untyped-def]
    lines = result.output.strip().splitlines()
    assert result.exit_code != 0 and len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def test_dali_without_dali_installed_is_one_line(
    photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "nvidia.dali", None)
    args = ("train", tmp_path / "spec.yaml", "--dataset", photos, "--out", tmp_path / "r")
    line = _one_error(invoke(*args, "--loader", "dali"))
    assert "pip install 'resgraph[dali]'" in line and "nvidia-dali-cuda120" in line
    assert not (tmp_path / "r").exists()


def test_dali_for_images_in_memory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text(
        SPEC.replace("stem: {layout: imagenet", "stem: {layout: cifar")
    )
    args = ("train", tmp_path / "spec.yaml", "--dataset", "digits", "--set", "num_classes=10")
    line = _one_error(invoke(*args, "--out", tmp_path / "r", "--loader", "dali"))
    assert "--loader dali decodes crops read from an image folder's files" in line


def test_a_file_dali_cannot_decode_is_one_error(photos: Path) -> None:
    pytest.importorskip("nvidia.dali")
    data = _data(dali.DaliData, photos, "resized")
    broken = photos / "train" / "red" / "0.jpg"
    broken.write_bytes(broken.read_bytes()[:40])  # cut short after the scan
    with pytest.raises(
        TrainError, match="DALI could not decode a file of iteration .*--loader cpu"
    ):
        batches = data.uint8_batches(0)
        for _ in range(4):
            next(batches)
