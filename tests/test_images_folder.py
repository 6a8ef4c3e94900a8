"""Training and evaluating on an image folder: real data written from the bundled digits."""

from __future__ import annotations

import signal
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from train_helpers import (
    GREY_TINY_SPEC,
    one_thread,  # noqa: F401  (one compute thread in this module)
)
from train_hooks import SignalAfter, with_callbacks

from helpers import invoke
from resgraph.train import checkpoint as ckpt_io
from resgraph.train import data as tdata
from resgraph.train import folder as tfolder

# Words that sort in digit order, so the folder's labels are the digits' own.
WORDS = ["apple", "banana", "cherry", "date", "elder", "fig", "grape", "hazel", "iris", "jade"]
SPEC = GREY_TINY_SPEC


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv(tfolder.CACHE_ENV, str(cache))
    return cache


def write_digits(root: Path, suffix: str) -> Path:
    """The built-in digits (train and test split as resgraph draws them) as image files."""
    digits = tdata.load_digits(1, 8)
    for part, xs, ys in (
        ("train", digits.train_x, digits.train_y),
        ("val", digits.test_x, digits.test_y),
    ):
        for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
            folder = root / part / WORDS[y]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(x[0], "L").save(folder / f"{i:04d}{suffix}", quality=95)
    (root / "train" / WORDS[0] / ".DS_Store").write_bytes(b"\0\1")
    (root / "train" / "README.txt").write_text("digits\n")
    return root


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("folders")
    spec = tmp / "grey.yaml"
    spec.write_text(SPEC)
    return {
        "png": write_digits(tmp / "png", ".png"),
        "jpg": write_digits(tmp / "jpg", ".jpg"),
        "spec": spec,
    }


@pytest.fixture(scope="module")
def digits_run(folders: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "digits"
    result = invoke("train", folders["spec"], "--dataset", "digits", "--out", out, "-q")
    assert result.exit_code == 0, result.output
    return out


def test_png_folder_holds_the_built_in_digits(folders: dict[str, Path]) -> None:
    built_in = tdata.load_digits(1, 8)
    images = tdata.load_images(str(folders["png"]), Path("."), 1, 8)
    assert images.classes == WORDS and images.num_classes == 10
    layout = tfolder.find_layout(folders["png"], 0.1)
    index = [int(p.stem) for p, _ in layout.train]
    assert np.array_equal(images.train_x, built_in.train_x[index])
    assert np.array_equal(images.train_y, built_in.train_y[index])
    assert len(images.test_y) == len(built_in.test_y)
    assert "2 other files ignored (not images by their names)" in images.notes


def test_jpeg_folder_is_close_to_the_digits(folders: dict[str, Path]) -> None:
    png = tdata.load_images(str(folders["png"]), Path("."), 1, 8)
    jpg = tdata.load_images(str(folders["jpg"]), Path("."), 1, 8)
    assert np.array_equal(png.train_y, jpg.train_y)
    diff = np.abs(png.train_x.astype(int) - jpg.train_x.astype(int))
    assert 0 < diff.mean() < 6  # lossy, yet the same images


def test_eval_on_the_folder_gives_the_built_in_error(
    folders: dict[str, Path], digits_run: Path
) -> None:
    weights = digits_run / "last.pt"
    built_in = invoke("eval", folders["spec"], "--weights", weights, "--dataset", "digits")
    png = invoke("eval", folders["spec"], "--weights", weights, "--dataset", folders["png"])
    jpg = invoke("eval", folders["spec"], "--weights", weights, "--dataset", folders["jpg"])
    assert built_in.exit_code == png.exit_code == jpg.exit_code == 0, png.output

    def error(output: str) -> float:
        return float(output.split("error ")[1].split("%")[0])

    assert error(png.output) == error(built_in.output)
    assert abs(error(jpg.output) - error(built_in.output)) <= 3.0
    assert "top-5 error" in png.output and "worst classes: " in png.output
    assert "top-5" not in built_in.output


def test_training_on_the_folder_learns_like_the_built_in_path(
    folders: dict[str, Path], digits_run: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    result = invoke("train", folders["spec"], "--dataset", folders["png"], "--out", out)
    assert result.exit_code == 0, result.output
    ours = ckpt_io.load(out / "last.pt")["history"][-1]["test_error"]
    theirs = ckpt_io.load(digits_run / "last.pt")["history"][-1]["test_error"]
    assert ours < 0.5 and theirs < 0.5, (ours, theirs)  # both learn (chance is 0.9) ...
    assert abs(ours - theirs) < 0.15  # ... to about the same error (another data order)
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["classes"] == WORDS
    assert ckpt_io.load(out / "last.pt")["config"]["classes"] == WORDS


def _folder(root: Path, classes: dict[str, int], size: int = 8) -> Path:
    for name, count in classes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            value = (37 * i + 11 * len(name)) % 256
            Image.new("L", (size, size), value).save(root / name / f"{i}.png")
    return root


def test_eval_refuses_a_folder_with_other_classes(folders: dict[str, Path], tmp_path: Path) -> None:
    run = tmp_path / "run"
    data = _folder(tmp_path / "a", {w: 6 for w in WORDS})
    assert (
        invoke(
            "train", folders["spec"], "--dataset", data, "--out", run, "--iterations", "1"
        ).exit_code
        == 0
    )
    other = _folder(tmp_path / "b", {w: 6 for w in [*WORDS[:9], "zebra"]})
    result = invoke("eval", folders["spec"], "--weights", run / "last.pt", "--dataset", other)
    assert result.exit_code == 1
    assert "classes differ from those" in result.output, result.output
    assert "(the run's 'jade' missing; 'zebra' new)" in result.output
    assert "Traceback" not in result.output


def test_resume_keeps_the_class_list_and_continues_exactly(
    folders: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _folder(tmp_path / "a", {w: 6 for w in WORDS})
    args = ("train", folders["spec"], "--dataset", data, "--iterations", "4")
    whole = invoke(*args, "--out", tmp_path / "whole")
    assert whole.exit_code == 0, whole.output
    run = tmp_path / "run"
    with monkeypatch.context() as m:
        with_callbacks(m, SignalAfter(signal.SIGINT, 2))
        assert invoke(*args, "--out", run).exit_code == 130
    (data / "jade").rename(data / "zebra")  # now the folder's classes differ from the run's
    again = invoke("train", folders["spec"], "--out", run, "--resume")
    assert again.exit_code == 1, again.output
    assert "classes: the run's 'jade' missing; 'zebra' new" in again.output
    (data / "zebra").rename(data / "jade")
    fine = invoke("train", folders["spec"], "--out", run, "--resume")
    assert fine.exit_code == 0, fine.output
    ours, theirs = ckpt_io.load(run / "last.pt"), ckpt_io.load(tmp_path / "whole" / "last.pt")
    assert ours["data"]["iteration"] == 4 and ours["config"]["classes"] == WORDS
    assert all(torch.equal(ours["model"][k], v) for k, v in theirs["model"].items())


def test_num_classes_that_differ_say_how_to_fix_it(
    folders: dict[str, Path], tmp_path: Path
) -> None:
    data = _folder(tmp_path / "five", {w: 8 for w in WORDS[:5]})
    out = tmp_path / "run"
    result = invoke("train", folders["spec"], "--dataset", data, "--out", out)
    assert result.exit_code == 1
    line = result.output.strip()
    assert line.startswith("error: the spec has num_classes 10 but") and "\n" not in line
    assert "--set num_classes=5" in line and "import-weights" in line
    assert not out.exists()
    fixed = invoke(
        "train",
        folders["spec"],
        "--dataset",
        data,
        "--out",
        out,
        "--set",
        "num_classes=5",
        "--iterations",
        "1",
    )
    assert fixed.exit_code == 0, fixed.output


def test_a_folder_without_val_is_split_per_class(tmp_path: Path) -> None:
    root = _folder(tmp_path / "flat", {"cat": 20, "dog": 10, "eel": 2})
    layout = tfolder.find_layout(root, 0.1)
    test = {(p.parent.name, p.name) for p, _ in layout.test}
    train = {(p.parent.name, p.name) for p, _ in layout.train}
    assert not test & train and len(test | train) == 32
    counts = {c: sum(1 for d, _ in test if d == c) for c in ("cat", "dog", "eel")}
    assert counts == {"cat": 2, "dog": 1, "eel": 1}
    again = tfolder.find_layout(root, 0.1)
    assert [p for p, _ in again.test] == [p for p, _ in layout.test]  # a fixed draw
    assert layout.split is not None and "10% of each class held out" in layout.split
    assert [y for _, y in layout.test] == [0, 0, 1, 2]
    half = tfolder.find_layout(root, 0.5)
    assert sum(1 for p, _ in half.test if p.parent.name == "cat") == 10


def test_the_split_is_stated_at_start(folders: dict[str, Path], tmp_path: Path) -> None:
    data = _folder(tmp_path / "flat", {w: 5 for w in WORDS})
    result = invoke(
        "train", folders["spec"], "--dataset", data, "--out", tmp_path / "r", "--iterations", "1"
    )
    assert result.exit_code == 0, result.output
    assert "no val/ folder: 10% of each class held out as the test set" in result.output
    assert "40 train / 10 test images" in result.output
