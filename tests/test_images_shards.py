"""WebDataset shards: 'resgraph pack' of the digits folder (scripts/digits_folder.py), training
and evaluation on the shards against the folder, the processes' disjoint shares, resumes, and
the mistakes a user makes."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from train_helpers import (
    GREY_TINY_SPEC,
    one_thread,  # noqa: F401
)
from train_hooks import SignalAfter, with_callbacks

from helpers import load_script
from resgraph.cli import main
from resgraph.train import checkpoint as ckpt_io
from resgraph.train import data as tdata
from resgraph.train import folder as tfolder
from resgraph.train import shards, stream

ROOT = Path(__file__).resolve().parents[1]
SPEC = GREY_TINY_SPEC
pytestmark = pytest.mark.xdist_group("images_shards")  # one worker writes the shards once


def invoke(*args: object):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, [str(a) for a in args])


def error_line(result) -> str:  # type: ignore[no-untyped-def]
    lines = result.output.strip().splitlines()
    assert result.exit_code != 0 and len(lines) == 1 and lines[0].startswith("error: "), lines
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return lines[0]


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(tfolder.CACHE_ENV, str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The digits folder, its shards (300 samples each) and a spec."""
    tmp = tmp_path_factory.mktemp("shards")
    load_script(ROOT / "scripts" / "digits_folder.py").write(tmp / "digits")
    out = tmp / "shards"
    result = invoke("pack", tmp / "digits", "-o", out, "--shard-size", "300")
    assert result.exit_code == 0, result.output
    assert "1,397 training samples in 5 shards, 400 test samples in 2 shards" in result.output
    (tmp / "spec.yaml").write_text(SPEC)
    return {"folder": tmp / "digits", "shards": out, "spec": tmp / "spec.yaml"}


def test_the_index_knows_classes_counts_and_shards(packed: dict[str, Path]) -> None:
    s = shards.read_index(packed["shards"])
    layout = tfolder.find_layout(packed["folder"], 0.1)
    assert s.classes == layout.classes
    assert [n for _, n in s.train] == [300, 300, 300, 300, 197]
    assert s.train_size == len(layout.train) and sum(n for _, n in s.test) == len(layout.test)
    on_disk = sorted(p.name for p in packed["shards"].glob("*.tar"))
    assert on_disk == sorted(n for n, _ in s.train + s.test)


def test_shards_hold_the_folders_images_once_each(packed: dict[str, Path]) -> None:
    folder = tdata.load_images(str(packed["folder"]), Path("."), 1, 8)
    packed_set = tdata.load_images(str(packed["shards"]), Path("."), 1, 8)
    assert packed_set.classes == folder.classes
    assert np.array_equal(packed_set.test_x, folder.test_x)  # the test order is kept
    assert np.array_equal(packed_set.test_y, folder.test_y)

    def rows(x: np.ndarray, y: np.ndarray) -> list[bytes]:
        return sorted(xi.tobytes() + bytes([yi]) for xi, yi in zip(x, y, strict=True))

    # the training images are shuffled once, none lost or repeated
    assert not np.array_equal(packed_set.train_y, folder.train_y)
    assert rows(packed_set.train_x, packed_set.train_y) == rows(folder.train_x, folder.train_y)


def _error(output: str) -> float:
    return float(output.split("error ")[1].split("%")[0])


def test_eval_on_the_shards_matches_the_folder(packed: dict[str, Path], tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = ("train", packed["spec"], "--out", run, "--iterations", "20", "-q")
    assert invoke(*args, "--dataset", packed["folder"]).exit_code == 0
    weights = run / "last.pt"
    on_folder = invoke("eval", packed["spec"], "--weights", weights, "--dataset", packed["folder"])
    on_shards = invoke("eval", packed["spec"], "--weights", weights, "--dataset", packed["shards"])
    assert on_folder.exit_code == on_shards.exit_code == 0, on_shards.output
    assert _error(on_shards.output) == _error(on_folder.output)
    assert "worst classes: " in on_shards.output


@pytest.mark.slow
def test_training_on_the_shards_learns_like_the_folder(
    packed: dict[str, Path], tmp_path: Path
) -> None:
    errors = {}
    for name in ("folder", "shards"):
        result = invoke(
            "train", packed["spec"], "--dataset", packed[name], "--out", tmp_path / name
        )
        assert result.exit_code == 0, result.output
        errors[name] = ckpt_io.load(tmp_path / name / "last.pt")["history"][-1]["test_error"]
    assert max(errors.values()) < 0.5, errors  # both learn (chance is 0.9) ...
    assert abs(errors["folder"] - errors["shards"]) < 0.15, errors  # ... about equally


def _shard_data(packed: dict[str, Path], rank: int, world: int, workers: int = 0):  # type: ignore[no-untyped-def]
    images = tdata.load_images(str(packed["shards"]), Path("."), 1, 8, resize=9)
    return shards.ShardData(
        images,
        torch.device("cpu"),
        crop="resized",
        workers=workers,
        batch_size=32,
        world=world,
        rank=rank,
        seed=0,
        augment=True,
    )


def _keys(data: shards.ShardData, start: int, count: int) -> list[list[str]]:
    batches = iter(shards.ShardBatches(data, start))
    return [next(batches)[3] for _ in range(count)]


def test_processes_read_disjoint_shares_for_the_same_number_of_steps(
    packed: dict[str, Path],
) -> None:
    ranks = [_shard_data(packed, rank, 2) for rank in range(2)]
    # shards 0, 2, 4 (797 samples) and 1, 3 (600): both take 600 // 16 steps
    assert [r.steps_per_epoch for r in ranks] == [37, 37]
    seen = []
    for data in ranks:
        keys = _keys(data, 0, data.steps_per_epoch)
        flat = [k for batch in keys for k in batch]
        assert all(len(batch) == 16 for batch in keys)
        assert len(set(flat)) == len(flat)  # no sample twice in an epoch
        assert {k.split("/")[0] for k in flat} == {p.name for p in data.shard_paths}
        seen.append(set(flat))
    assert not seen[0] & seen[1]


def test_the_order_depends_on_epoch_not_on_workers(packed: dict[str, Path]) -> None:
    data = _shard_data(packed, 0, 1, workers=3)
    assert data.streams == 3
    steps = data.steps_per_epoch
    first = _keys(data, 0, 2 * steps)
    assert first[:steps] != first[steps:]  # another order in the next epoch
    assert first[0] != sorted(first[0])  # the shuffle buffer mixes a shard's samples
    assert _keys(data, 5, 3) == first[5:8]  # a start mid-epoch reads the same batches
    in_process = iter(shards.ShardBatches(data, 5))
    expected = [next(in_process)[1] for _ in range(4)]
    data.workers = 2  # two worker processes run the three readers
    batches = data.uint8_batches(5)
    got = [next(batches)[0] for _ in range(4)]
    assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))


def test_a_stopped_run_on_shards_resumes_bit_exactly(
    packed: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ("train", packed["spec"], "--dataset", packed["shards"], "--crop", "resized")
    args += ("--iterations", "6", "--eval-every", "3", "--workers", "2")
    whole = invoke(*args, "--out", tmp_path / "whole")
    assert whole.exit_code == 0, whole.output
    assert "WebDataset shards: 5 training, 2 test" in whole.output
    run = tmp_path / "run"
    with monkeypatch.context() as m:
        with_callbacks(m, SignalAfter(signal.SIGINT, 2))
        assert invoke(*args, "--out", run).exit_code == 130
    assert ckpt_io.load(run / "last.pt")["data"]["streams"] == 2
    resumed = invoke("train", packed["spec"], "--out", run, "--resume", "--workers", "0")
    assert resumed.exit_code == 0, resumed.output
    ours, theirs = ckpt_io.load(run / "last.pt"), ckpt_io.load(tmp_path / "whole" / "last.pt")
    assert all(torch.equal(ours["model"][k], v) for k, v in theirs["model"].items())


# --- mistakes -----------------------------------------------------------------------------


def test_pack_refuses_an_existing_output_without_force(
    packed: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    line = error_line(invoke("pack", packed["folder"], "-o", out))
    assert "already exists; give --force" in line
    line = error_line(invoke("pack", packed["folder"], "-o", out, "--force"))
    assert "is not a shard set" in line
    assert (out / "notes.txt").read_text() == "mine"


def test_force_replaces_a_shard_set(packed: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert invoke("pack", packed["folder"], "-o", out, "--shard-size", "700").exit_code == 0
    assert len(shards.read_index(out).train) == 2
    assert (
        invoke("pack", packed["folder"], "-o", out, "--shard-size", "1000", "--force").exit_code
        == 0
    )
    assert len(shards.read_index(out).train) == 2 and len(list(out.glob("*.tar"))) == 3
    assert not list(tmp_path.glob(".out.packing-*"))


def test_pack_refuses_bad_files_as_training_does(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for i in range(3):
            tfolder.Image.new("L", (8, 8), 40 * i).save(root / name / f"{i}.png")
    (root / "a" / "broken.png").write_bytes(b"not a png")
    line = error_line(invoke("pack", root, "-o", tmp_path / "out"))
    assert "broken.png: not an image" in line and "--skip-unreadable" in line
    assert not (tmp_path / "out").exists()
    result = invoke("pack", root, "-o", tmp_path / "out", "--skip-unreadable", "--shard-size", "2")
    assert result.exit_code == 0 and "1 unreadable file left out" in result.output


def test_a_folder_that_is_not_a_shard_set(packed: dict[str, Path], tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "index.json").write_text('{"format": "something else"}')
    line = error_line(invoke("train", packed["spec"], "--dataset", bad, "--out", tmp_path / "r"))
    assert "not a shard set's index" in line and "resgraph pack" in line
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "index.json").write_text((packed["shards"] / "index.json").read_text())
    line = error_line(invoke("train", packed["spec"], "--dataset", copy, "--out", tmp_path / "r"))
    assert "train-000000.tar: a shard the index lists is missing" in line
    assert not (tmp_path / "r").exists()


def test_more_processes_than_shards(packed: dict[str, Path]) -> None:
    with pytest.raises(shards.TrainError, match="5 training shards for 6 processes"):
        _shard_data(packed, 0, 6)


def test_a_missing_library_is_one_line(
    packed: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "webdataset", None)
    line = error_line(invoke("pack", packed["folder"], "-o", tmp_path / "out"))
    assert "need the webdataset library: pip install 'resgraph[shards]'" in line
    args = ("--dataset", packed["shards"], "--out", tmp_path / "r")
    assert "pip install 'resgraph[shards]'" in error_line(invoke("train", packed["spec"], *args))


def test_the_start_up_line_counts_the_shard_sets_samples(packed: dict[str, Path]) -> None:
    images = tdata.load_images(str(packed["shards"]), Path("."), 1, 8, resize=9)
    assert images.shards is not None and len(images.train_x) == tfolder.MEAN_SAMPLE
    assert "1,397 train / 400 test images" in images.describe()
    assert stream.eval_resize(8) == 9
