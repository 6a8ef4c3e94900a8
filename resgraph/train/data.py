"""Data sets as uint8 arrays: CIFAR-10 from its python archive layout, and scikit-learn's digits.

CIFAR-10 is read from ``DATA_DIR/cifar-10-batches-py/`` (``data_batch_1..5``, ``test_batch``:
pickled dicts with ``data``, uint8 N x 3072 in R, G, B planes, and ``labels``). The pickles
are read with an unpickler that only builds numpy arrays and plain values, so a foreign file
cannot run code. ``download_cifar`` fetches the official archive, checks its md5 and unpacks
it without trusting member names.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from resgraph.errors import TrainError
from resgraph.spec.train import BUILT_IN
from resgraph.train.folder import Progress, read_folder
from resgraph.train.report import plural

CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR_BYTES = 170_498_071
CIFAR_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST_FILE = "test_batch"
URL_ENV = "RESGRAPH_CIFAR_URL"
MAX_EXTRACTED_BYTES = 1 << 30  # the real archive unpacks to 178 MB
DIGITS_TEST = 400  # of 1,797: a fixed split, the same for every run


@dataclass
class ImageSet:
    """A classification data set held as uint8 N x C x H x W arrays with int64 labels."""

    name: str
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    mirror: bool  # a horizontally flipped image keeps its class
    num_classes: int = 10
    classes: list[str] | None = None  # an image folder's class names, in label order
    notes: list[str] = field(default_factory=list)  # start-up lines about how it was read
    skipped: list[str] = field(default_factory=list)  # "path: reason" of files left out
    files: list[tuple[Path, int]] | None = None  # training files, when read at every step
    shards: Any = None  # the ShardSet whose training shards are streamed at every step

    def describe(self) -> str:
        c, h, w = self.train_x.shape[1:]
        n = len(self.files) if self.files is not None else len(self.train_x)
        if self.shards is not None:
            n = self.shards.train_size
        return f"{self.name}: {n:,} train / {len(self.test_x):,} test images {c}x{h}x{w}"


def load_images(
    dataset: str,
    data_dir: Path,
    channels: int,
    size: int,
    *,
    download: bool = False,
    url: str | None = None,
    md5: str = CIFAR_MD5,
    log: Callable[[str], None] | None = None,
    holdout: float = 0.1,
    skip_unreadable: bool = False,
    progress: Progress | None = None,
    resize: int | None = None,
    ten_crop: bool = False,
) -> ImageSet:
    """The data set fitted to a spec's input (``channels`` x ``size`` x ``size``): a built-in
    one by name, else an image folder by path."""
    if dataset == "digits":
        return load_digits(channels, size)
    from resgraph.train import shards

    if dataset not in BUILT_IN and shards.is_shard_set(Path(dataset).expanduser()):
        return load_shard_set(Path(dataset).expanduser(), channels, size, resize, ten_crop)
    if dataset not in BUILT_IN:
        return load_folder(
            Path(dataset),
            channels,
            size,
            holdout,
            skip_unreadable,
            progress or _no_progress,
            resize,
            ten_crop,
        )
    if (channels, size) != (3, 32):
        raise TrainError(
            f"CIFAR-10 images are 3x32x32 but the spec takes {channels}x{size}x{size}: train a "
            "CIFAR spec (specs/cifar_*.yaml) on it, or use --dataset digits"
        )
    folder = Path(data_dir) / CIFAR_FOLDER
    if download and not _complete(folder):
        download_cifar(data_dir, url=url, md5=md5, log=log)
    return read_cifar(folder)


def class_difference(run: Sequence[str], now: Sequence[str]) -> str:
    """How two class lists differ, naming the classes (a few of each side)."""

    def names(items: list[str]) -> str:
        more = f" and {len(items) - 3} more" if len(items) > 3 else ""
        return ", ".join(repr(c) for c in items[:3]) + more

    gone = [c for c in run if c not in now]
    new = [c for c in now if c not in run]
    parts = [f"the run's {names(gone)} missing"] if gone else []
    parts += [f"{names(new)} new"] if new else []
    return "; ".join(parts) or "the same classes in another order"


def _no_progress(paths: Sequence[Path], what: str) -> Iterator[Path]:
    return iter(paths)


def load_folder(
    root: Path,
    channels: int,
    size: int,
    holdout: float,
    skip: bool,
    progress: Progress,
    resize: int | None = None,
    ten_crop: bool = False,
) -> ImageSet:
    """An image folder (:mod:`resgraph.train.folder`) as an ImageSet with its class names."""
    if channels not in (1, 3):
        raise TrainError(
            f"the spec takes {channels}-channel images; image folders are read as grey (1) "
            "or RGB (3): set input.channels to 1 or 3"
        )
    layout, a = read_folder(
        root,
        channels,
        size,
        holdout=holdout,
        skip_unreadable=skip,
        progress=progress,
        resize=resize,
        ten_crop=ten_crop,
    )
    notes = [layout.split] if layout.split else []
    if layout.ignored:
        notes.append(f"{plural(layout.ignored, 'other file')} ignored (not images by their names)")
    if layout.skipped:
        notes.append(f"{plural(len(layout.skipped), 'unreadable file')} left out")
    return ImageSet(
        name=str(root),
        mirror=True,
        num_classes=len(layout.classes),
        classes=layout.classes,
        notes=notes,
        skipped=layout.skipped,
        files=layout.train if resize is not None else None,
        **a,
    )


def load_shard_set(
    root: Path, channels: int, size: int, resize: int | None = None, ten_crop: bool = False
) -> ImageSet:
    """A packed shard set (:mod:`resgraph.train.shards`) as an ImageSet: with ``resize``
    its training shards are streamed, else every sample is decoded into memory."""
    from resgraph.train import shards

    s, arrays, failed = shards.load(root, channels, size, resize, ten_crop)
    notes = [f"WebDataset shards: {len(s.train)} training, {len(s.test)} test"] + s.notes
    return ImageSet(
        name=str(root),
        mirror=True,
        num_classes=len(s.classes),
        classes=s.classes,
        notes=notes,
        skipped=s.skipped + failed,
        shards=s if resize is not None else None,
        **arrays,
    )


# --- CIFAR-10 ---------------------------------------------------------------------------


def missing_message(folder: Path) -> str:
    parent = folder.parent
    return (
        f"CIFAR-10 not found: expected {folder}/ holding {', '.join(CIFAR_TRAIN_FILES[:1])}.."
        f"{CIFAR_TRAIN_FILES[-1][-1]} and {CIFAR_TEST_FILE} (the python version of the data "
        f"set). Get it with --download (fetches {CIFAR_URL}, {CIFAR_BYTES / 2**20:.0f} MiB, "
        f"md5 {CIFAR_MD5}), or download that file yourself and unpack it with "
        f"'tar xzf {CIFAR_ARCHIVE} -C {parent}'; --data-dir chooses another folder. "
        "No internet? --dataset digits trains on scikit-learn's bundled digits."
    )


def _complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in (*CIFAR_TRAIN_FILES, CIFAR_TEST_FILE))


def read_cifar(folder: Path) -> ImageSet:
    """Read and check the python-version batches; errors name the offending file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise TrainError(missing_message(folder))
    missing = [n for n in (*CIFAR_TRAIN_FILES, CIFAR_TEST_FILE) if not (folder / n).is_file()]
    if missing:
        raise TrainError(
            f"{folder / missing[0]}: missing from the CIFAR-10 folder "
            f"(missing: {', '.join(missing)}). {missing_message(folder)}"
        )
    parts = [read_cifar_batch(folder / name) for name in CIFAR_TRAIN_FILES]
    test_x, test_y = read_cifar_batch(folder / CIFAR_TEST_FILE)
    return ImageSet(
        name="cifar10",
        train_x=np.concatenate([x for x, _ in parts]),
        train_y=np.concatenate([y for _, y in parts]),
        test_x=test_x,
        test_y=test_y,
        mirror=True,
    )


class _ArrayUnpickler(pickle.Unpickler):
    """Builds dicts, lists, strings, numbers and numpy arrays; refuses everything else."""

    ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
    }

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if module.startswith("numpy.core.") and hasattr(np, "_core"):
            module = "numpy._core." + module.removeprefix("numpy.core.")  # numpy 2 name
        return super().find_class(module, name)


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file as (uint8 N x 3 x 32 x 32, int64 labels)."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise TrainError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        obj = _ArrayUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except Exception as exc:  # a broken pickle raises almost anything
        raise TrainError(f"{path}: not a CIFAR-10 batch (cannot unpickle it: {exc})") from None
    if not isinstance(obj, dict):
        raise TrainError(f"{path}: not a CIFAR-10 batch (a {type(obj).__name__}, not a dict)")
    obj = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}
    data, labels = obj.get("data"), obj.get("labels")
    if not isinstance(data, np.ndarray) or labels is None:
        raise TrainError(f"{path}: not a CIFAR-10 batch (needs a 'data' array and 'labels')")
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise TrainError(
            f"{path}: 'data' must be a uint8 array of shape (N, 3072), got {data.dtype} "
            f"{tuple(data.shape)}"
        )
    try:
        y = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise TrainError(f"{path}: 'labels' must be a list of integers") from None
    if y.shape != (data.shape[0],):
        raise TrainError(f"{path}: {len(data)} images but 'labels' has shape {tuple(y.shape)}")
    if len(y) and (y.min() < 0 or y.max() > 9):
        raise TrainError(f"{path}: labels must lie in 0..9, found {y.min()}..{y.max()}")
    return np.ascontiguousarray(data.reshape(-1, 3, 32, 32)), y


def download_cifar(
    data_dir: Path,
    *,
    url: str | None = None,
    md5: str = CIFAR_MD5,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Fetch the CIFAR-10 archive into ``data_dir``, check its md5, unpack it safely.

    ``url`` defaults to ``$RESGRAPH_CIFAR_URL`` or the official address; ``md5`` is the
    expected digest (tests serve a small archive and pass its own). A download whose md5
    differs is deleted and reported. Returns the ``cifar-10-batches-py`` folder.
    """
    url = url or os.environ.get(URL_ENV) or CIFAR_URL
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise TrainError(f"cannot download {url}: only http and https addresses are fetched")
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    archive = data_dir / CIFAR_ARCHIVE
    if not (archive.is_file() and _md5(archive) == md5):
        if log:
            log(f"downloading {url} to {archive}")
        _fetch(url, archive, md5)
    folder = data_dir / CIFAR_FOLDER
    extract_archive(archive, data_dir)
    if log:
        log(f"md5 checked; unpacked into {folder}")
    return folder


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch(url: str, archive: Path, md5: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{archive.name}.", suffix=".part", dir=archive.parent)
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=60) as resp:
            while chunk := resp.read(1 << 20):
                digest.update(chunk)
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
    except (urllib.error.URLError, OSError) as exc:
        Path(tmp).unlink(missing_ok=True)
        reason = getattr(exc, "reason", None) or exc
        raise TrainError(
            f"cannot download {url}: {reason}. Download {CIFAR_ARCHIVE} elsewhere and unpack "
            f"it into {archive.parent}, or use --dataset digits"
        ) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if digest.hexdigest() != md5:
        Path(tmp).unlink(missing_ok=True)
        raise TrainError(
            f"the download from {url} is corrupt or not the CIFAR-10 archive: md5 "
            f"{digest.hexdigest()}, expected {md5}. It was deleted; try again"
        )
    os.replace(tmp, archive)


def extract_archive(archive: Path, dest: Path) -> None:
    """Unpack the regular files and folders of a .tar.gz under ``dest``.

    Member names that are absolute or contain '..', links, devices and archives that
    unpack to more than 1 GiB are refused. Files are written by this function (never by
    tarfile's extractor) into a temporary folder that is renamed into place at the end.
    """
    dest = Path(dest)
    work = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest))
    try:
        total = 0
        try:
            with tarfile.open(archive, "r:gz") as tar:
                for member in tar:
                    parts = PurePosixPath(member.name).parts
                    if member.name.startswith(("/", "\\")) or ".." in parts or ":" in member.name:
                        raise TrainError(f"{archive}: refusing unsafe member name {member.name!r}")
                    if member.isdir():
                        (work / member.name).mkdir(parents=True, exist_ok=True)
                        continue
                    if not member.isfile():
                        raise TrainError(
                            f"{archive}: refusing {member.name!r} (not a regular file)"
                        )
                    total += member.size
                    if total > MAX_EXTRACTED_BYTES:
                        raise TrainError(f"{archive}: unpacks to more than 1 GiB; refusing it")
                    target = work / member.name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    source = tar.extractfile(member)
                    assert source is not None
                    with source, open(target, "wb") as out:
                        shutil.copyfileobj(source, out)
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise TrainError(f"{archive}: not a readable .tar.gz archive: {exc}") from None
        tops = {PurePosixPath(p.relative_to(work)).parts[0] for p in work.rglob("*")}
        for top in sorted(tops):
            final = dest / top
            if final.exists():
                shutil.rmtree(final) if final.is_dir() else final.unlink()
            os.replace(work / top, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --- scikit-learn's digits --------------------------------------------------------------


def load_digits(channels: int, size: int) -> ImageSet:
    """The 1,797 8x8 grey digits bundled with scikit-learn, resized to ``size`` (bilinear)
    and repeated over ``channels``; a fixed split of 1,397 train and 400 test images."""
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits as sk_digits

    digits = sk_digits()
    x = torch.from_numpy(digits.images * (255.0 / 16.0)).float()[:, None]  # 0..16 -> 0..255
    if size != x.shape[-1]:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = x.round().clamp_(0, 255).to(torch.uint8).expand(-1, channels, -1, -1).contiguous()
    images, labels = x.numpy(), digits.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(labels))
    test, train = order[:DIGITS_TEST], order[DIGITS_TEST:]
    return ImageSet(
        name="digits",
        train_x=images[train],
        train_y=labels[train],
        test_x=images[test],
        test_y=labels[test],
        mirror=False,
    )
