"""CIFAR-10 reading and download, digits, and the on-device batch pipeline."""

from __future__ import annotations

import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from train_helpers import cifar_batch, make_cifar_archive, make_cifar_folder, serve

from resgraph.errors import TrainError
from resgraph.train import data as tdata
from resgraph.train.batches import DeviceData, augment, mix_seed

# --- reading a CIFAR folder -------------------------------------------------------------


def test_reads_python_layout(tmp_path: Path) -> None:
    make_cifar_folder(tmp_path, n=7)
    images = tdata.load_images("cifar10", tmp_path, 3, 32)
    assert images.train_x.shape == (35, 3, 32, 32) and images.train_x.dtype == np.uint8
    assert images.test_x.shape == (7, 3, 32, 32) and images.train_y.dtype == np.int64
    raw = pickle.loads(cifar_batch(7, 1))[b"data"]
    # R, G, B planes of 1024 values each, row-major within a plane
    assert np.array_equal(images.train_x[0, 1].reshape(-1), raw[0, 1024:2048])
    assert images.mirror


def test_missing_folder_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(TrainError) as err:
        tdata.load_images("cifar10", tmp_path / "nowhere", 3, 32)
    text = str(err.value)
    assert "cifar-10-batches-py" in text and "--download" in text
    assert tdata.CIFAR_URL in text and tdata.CIFAR_MD5 in text and "--dataset digits" in text


def test_missing_test_batch_is_named(tmp_path: Path) -> None:
    folder = make_cifar_folder(tmp_path)
    (folder / "test_batch").unlink()
    with pytest.raises(TrainError, match=r"test_batch: missing"):
        tdata.load_images("cifar10", tmp_path, 3, 32)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (
            pickle.dumps({b"data": np.zeros((4, 100), np.uint8), b"labels": [0] * 4}),
            r"shape \(N, 3072\), got uint8 \(4, 100\)",
        ),
        (
            pickle.dumps({b"data": np.zeros((4, 3072), np.float32), b"labels": [0] * 4}),
            r"must be a uint8 array",
        ),
        (
            pickle.dumps({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0] * 3}),
            r"4 images but 'labels' has shape \(3,\)",
        ),
        (
            pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 12]}),
            r"labels must lie in 0..9",
        ),
        (b"this is not a pickle", r"not a CIFAR-10 batch"),
        (pickle.dumps([1, 2, 3]), r"a list, not a dict"),
    ],
)
def test_bad_batch_file_is_named(tmp_path: Path, payload: bytes, message: str) -> None:
    folder = make_cifar_folder(tmp_path)
    (folder / "data_batch_3").write_bytes(payload)
    with pytest.raises(TrainError, match=message) as err:
        tdata.load_images("cifar10", tmp_path, 3, 32)
    assert str(err.value).startswith(str(folder / "data_batch_3"))


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("pwned",))


def test_pickles_cannot_run_code(tmp_path: Path) -> None:
    folder = make_cifar_folder(tmp_path)
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": _Evil(), b"labels": []}))
    with pytest.raises(TrainError, match=r"refusing to load builtins.print"):
        tdata.read_cifar(folder)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_numpy_pickles_of_any_protocol(tmp_path: Path, protocol: int) -> None:
    path = tmp_path / "batch"
    path.write_bytes(cifar_batch(3, 0, protocol=protocol))
    x, y = tdata.read_cifar_batch(path)
    assert x.shape == (3, 3, 32, 32) and y.shape == (3,)


def test_cifar_needs_a_cifar_shaped_spec(tmp_path: Path) -> None:
    with pytest.raises(TrainError, match=r"3x32x32 but the spec takes 3x224x224"):
        tdata.load_images("cifar10", tmp_path, 3, 224)


# --- download ---------------------------------------------------------------------------


def test_download_over_http_checks_md5_and_unpacks(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    md5 = make_cifar_archive(site / "cifar-10-python.tar.gz", n=5)
    data_dir = tmp_path / "data"
    with serve(site) as base:
        images = tdata.load_images(
            "cifar10", data_dir, 3, 32, download=True, url=f"{base}/cifar-10-python.tar.gz", md5=md5
        )
    assert images.train_x.shape == (25, 3, 32, 32)
    assert (data_dir / "cifar-10-batches-py" / "batches.meta").is_file()
    assert not list(data_dir.glob(".*"))  # no temporary files left


def test_download_url_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    site.mkdir()
    md5 = make_cifar_archive(site / "c.tgz", n=2)
    with serve(site) as base:
        monkeypatch.setenv(tdata.URL_ENV, f"{base}/c.tgz")
        folder = tdata.download_cifar(tmp_path / "data", md5=md5)
    assert tdata.read_cifar(folder).test_x.shape == (2, 3, 32, 32)


def test_corrupt_download_is_rejected_and_removed(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    md5 = make_cifar_archive(site / "good.tar.gz", n=2)
    blob = bytearray((site / "good.tar.gz").read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # one flipped byte
    (site / "cifar-10-python.tar.gz").write_bytes(bytes(blob))
    data_dir = tmp_path / "data"
    with serve(site) as base, pytest.raises(TrainError, match="corrupt") as err:
        tdata.download_cifar(data_dir, url=f"{base}/cifar-10-python.tar.gz", md5=md5)
    assert md5 in str(err.value)
    assert list(data_dir.iterdir()) == []  # neither the archive nor a partial file stays


def test_official_md5_is_the_default(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    make_cifar_archive(site / "cifar-10-python.tar.gz", n=2)
    with serve(site) as base, pytest.raises(TrainError, match=tdata.CIFAR_MD5):
        tdata.download_cifar(tmp_path / "data", url=f"{base}/cifar-10-python.tar.gz")


def test_unreachable_url_is_a_clear_error(tmp_path: Path) -> None:
    with serve(tmp_path) as base, pytest.raises(TrainError, match="cannot download"):
        tdata.download_cifar(tmp_path / "data", url=f"{base}/missing.tar.gz")
    with pytest.raises(TrainError, match="only http and https"):
        tdata.download_cifar(tmp_path / "data", url="file:///etc/passwd")


@pytest.mark.parametrize("name", ["/abs/evil", "../evil", "cifar-10-batches-py/../../evil"])
def test_unsafe_member_names_are_refused(tmp_path: Path, name: str) -> None:
    archive = tmp_path / "a.tar.gz"
    make_cifar_archive(archive, members={name: b"x"})
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(TrainError, match="unsafe member name"):
        tdata.extract_archive(archive, dest)
    assert list(dest.iterdir()) == [] and not (tmp_path / "evil").exists()


def test_links_are_refused(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("cifar-10-batches-py/test_batch")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(info)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(TrainError, match="not a regular file"):
        tdata.extract_archive(archive, dest)


# --- digits -----------------------------------------------------------------------------


def test_digits_resized_and_split() -> None:
    images = tdata.load_images("digits", Path("unused"), 3, 32)
    assert images.train_x.shape == (1397, 3, 32, 32) and images.test_x.shape == (400, 3, 32, 32)
    assert np.array_equal(images.train_x[:, 0], images.train_x[:, 2])  # grey in every channel
    assert not images.mirror and set(np.unique(images.test_y)) == set(range(10))
    again = tdata.load_digits(1, 8)
    assert again.train_x.shape == (1397, 1, 8, 8)
    assert np.array_equal(again.test_y, images.test_y)  # the split does not depend on the size


# --- batches ----------------------------------------------------------------------------


def _data(seed: int = 0, **kw: object) -> DeviceData:
    images = tdata.load_digits(3, 8)
    return DeviceData(images, torch.device("cpu"), batch_size=32, seed=seed, augment=True, **kw)


def test_augment_is_a_crop_of_the_padded_image() -> None:
    x = torch.randn(64, 3, 8, 8)
    out = augment(x, torch.Generator().manual_seed(0), flip=True)
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    flips = 0
    for i in range(64):
        found = False
        for dy in range(9):
            for dx in range(9):
                crop = padded[i, :, dy : dy + 8, dx : dx + 8]
                if torch.equal(out[i], crop):
                    found = True
                elif torch.equal(out[i], crop.flip(-1)):
                    found, flips = True, flips + 1
        assert found
    assert 10 < flips < 54


def test_data_order_is_a_function_of_seed_and_epoch() -> None:
    a, b = _data(), _data()
    steps = a.steps_per_epoch
    x1, y1 = a.train_batch(steps + 3)  # jump straight into epoch 1
    for it in range(steps + 4):
        x2, y2 = b.train_batch(it)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(a.permutation(0), a.permutation(1))
    assert not torch.equal(a.permutation(0), _data(seed=1).permutation(0))
    epoch = torch.cat([a.permutation(0)])
    assert sorted(epoch.tolist()) == list(range(a.train_size))


def test_ranks_split_the_global_batch() -> None:
    full = _data()
    full.augment = False
    parts = []
    for rank in range(2):
        part = _data(rank=rank, world=2)
        part.augment = False
        parts.append(part.train_batch(5))
    _, y = full.train_batch(5)
    merged = torch.empty_like(y)
    merged[0::2], merged[1::2] = parts[0][1], parts[1][1]
    assert torch.equal(merged, y)


def test_batch_size_checks() -> None:
    with pytest.raises(TrainError, match="does not split evenly over 3"):
        _data(world=3)
    with pytest.raises(TrainError, match="larger than the 1397 training images"):
        DeviceData(
            tdata.load_digits(3, 8), torch.device("cpu"), batch_size=5000, seed=0, augment=False
        )


def test_mix_seed_spreads() -> None:
    seeds = {mix_seed(s, e) for s in range(10) for e in range(10)}
    assert len(seeds) == 100 and all(0 <= s < 2**63 for s in seeds)
