"""Image folders in torchvision's ImageFolder layout, read into a uint8 :class:`ImageSet`.

``PATH/train/<class>/*`` and ``PATH/val/<class>/*`` (or ``validation/``); a folder of class
folders alone is split per class (a fixed draw). Classes are the sorted folder names of the
training part. Before anything is decoded, a scan names every file that is empty, not an
image, or larger than Pillow's decompression-bomb limit; its result is cached under a key
made of the folder's file list, sizes and modification times, so a second start skips it.
Images are decoded once (Pillow; EXIF orientation applied; JPEGs decoded at a reduced size
where the target allows) to the spec's channels and input size: the shorter side resized to
the input size, then a centre crop.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

try:  # libjpeg-turbo's decoder without Pillow's overhead; Pillow decodes JPEGs without it
    import simplejpeg
except ImportError:  # pragma: no cover
    simplejpeg = None

from resgraph.errors import TrainError
from resgraph.fsutil import atomic_write_text

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
TEST_FOLDERS = ("val", "validation")
CACHE_ENV = "RESGRAPH_CACHE_DIR"
SHOW_BAD = 5  # bad files named in an error; the rest are counted
SPLIT_SEED = 0  # the held-out draw is the same for every run
MEAN_SAMPLE = 256  # training images whose mean stands for the set's when read per step
# Files over the limit are named by the scan (and refused or left out); Pillow's warning
# for each would only repeat it.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

Progress = Callable[[Sequence[Path], str], Iterator[Path]]


@dataclass
class Layout:
    """Where a folder's images are: (path, label) pairs and the class names."""

    root: Path
    classes: list[str]
    train: list[tuple[Path, int]]
    test: list[tuple[Path, int]]
    split: str | None = None  # how the test set was made when there is no val/ folder
    ignored: int = 0  # files that are not images by their suffix
    skipped: list[str] = field(default_factory=list)  # "path: reason" of files left out


def _class_folders(folder: Path) -> list[Path]:
    return sorted(
        (p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: p.name,
    )


def _files(folder: Path) -> tuple[list[Path], int]:
    """Image files under a class folder (recursively, sorted) and the count of others."""
    images, others = [], 0
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.suffix.lower() in IMAGE_SUFFIXES and not name.startswith("."):
                images.append(path)
            else:
                others += 1
    return images, others


def _part(folder: Path, classes: list[str], what: str) -> tuple[list[tuple[Path, int]], int]:
    pairs, others = [], 0
    for label, name in enumerate(classes):
        files, extra = _files(folder / name)
        if not files:
            raise TrainError(
                f"{folder / name}: the class folder holds no images "
                f"({', '.join(sorted(IMAGE_SUFFIXES))}); remove it or add its {what} images"
            )
        pairs += [(p, label) for p in files]
        others += extra
    return pairs, others


def find_layout(root: Path, holdout: float) -> Layout:
    """The class list and the train/test files of an image folder; refuses bad layouts."""
    root = Path(root).expanduser()
    if not root.exists():
        raise TrainError(
            f"{root}: no such folder (data sets: 'cifar10', 'digits', or an image folder)"
        )
    if not root.is_dir():
        raise TrainError(f"{root}: not a folder; --dataset takes an image folder's path")
    test_dir = next((root / n for n in TEST_FOLDERS if (root / n).is_dir()), None)
    train_dir = root / "train" if (root / "train").is_dir() else root
    if test_dir is not None and train_dir == root:
        raise TrainError(f"{root}: has {test_dir.name}/ but no train/ folder beside it")
    classes = [p.name for p in _class_folders(train_dir)]
    if not classes:
        raise TrainError(
            f"{train_dir}: holds no class folders; expected {train_dir}/<class>/<image> "
            "(torchvision's ImageFolder layout)"
        )
    train, ignored = _part(train_dir, classes, "training")
    ignored += sum(1 for p in train_dir.iterdir() if p.is_file())
    if test_dir is None:
        train, test, split = _split(train, len(classes), holdout)
        return Layout(root, classes, train, test, split, ignored)
    extra = sorted(set(p.name for p in _class_folders(test_dir)) - set(classes))
    if extra:
        raise TrainError(
            f"{test_dir / extra[0]}: a class that {train_dir} lacks (test classes must be "
            f"training classes; {len(extra)} such folder{'s' if len(extra) > 1 else ''})"
        )
    present = [c for c in classes if (test_dir / c).is_dir()]
    test, more = _part(test_dir, present, "test")
    lookup = {c: i for i, c in enumerate(classes)}
    test = [(p, lookup[present[label]]) for p, label in test]
    return Layout(root, classes, train, test, None, ignored + more)


def _split(
    pairs: list[tuple[Path, int]], n_classes: int, holdout: float
) -> tuple[list[tuple[Path, int]], list[tuple[Path, int]], str]:
    """Hold out ``holdout`` of each class (at least one image of every class with two or
    more) as the test set: a fixed draw per class."""
    rng = np.random.default_rng(SPLIT_SEED)
    train, test = [], []
    for label in range(n_classes):
        own = [p for p in pairs if p[1] == label]
        order = rng.permutation(len(own))
        k = min(max(1, math.floor(holdout * len(own) + 0.5)), len(own) - 1)
        test += [own[i] for i in sorted(order[:k])]
        train += [own[i] for i in sorted(order[k:])]
    note = (
        f"no val/ folder: {100 * holdout:g}% of each class held out as the test set "
        f"(a fixed draw, seed {SPLIT_SEED})"
    )
    return train, test, note


# --- the scan -----------------------------------------------------------------------------


def _check(path: Path) -> str | None:
    """Why ``path`` cannot be used, or None. Reads the header only."""
    from PIL import UnidentifiedImageError

    try:
        if path.stat().st_size == 0:
            return "empty file"
        with Image.open(path) as img:
            w, h = img.size
    except UnidentifiedImageError:
        return "not an image"
    except Image.DecompressionBombError:
        return f"more than Pillow's decompression-bomb limit of {Image.MAX_IMAGE_PIXELS:,} pixels"
    except (OSError, ValueError, SyntaxError) as exc:
        return f"unreadable ({exc})"
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and w * h > limit:
        return f"{w}x{h} pixels, more than Pillow's decompression-bomb limit of {limit:,} pixels"
    return None


def cache_dir() -> Path:
    base = os.environ.get(CACHE_ENV) or os.environ.get("XDG_CACHE_HOME")
    return Path(base) / "resgraph" if base else Path.home() / ".cache" / "resgraph"


def _key(paths: Sequence[Path]) -> str:
    digest = hashlib.sha256()
    for p in paths:
        st = p.stat()
        digest.update(f"{p.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def scan(paths: Sequence[Path], key: str, progress: Progress) -> dict[str, str]:
    """``{path: reason}`` of every unusable file, from the cache when the files are unchanged
    (``key``: :func:`_key` of ``paths``)."""
    cached = cache_dir() / "scans" / f"{key}.json"
    try:
        return dict(json.loads(cached.read_text()))
    except (OSError, ValueError, TypeError):
        pass
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        reasons = list(pool.map(_check, progress(paths, "checking images")))
    bad = {str(p): r for p, r in zip(paths, reasons, strict=True) if r is not None}
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(cached, json.dumps(bad))
    except OSError:
        pass  # a read-only cache only costs the next start another scan
    return bad


def refuse_or_skip(layout: Layout, bad: dict[str, str], skip: bool) -> Layout:
    """Refuse a folder with unusable files (the first few named) unless ``skip``."""
    if not bad:
        return layout
    if not skip:
        shown = "; ".join(f"{p}: {r}" for p, r in list(bad.items())[:SHOW_BAD])
        more = f" (and {len(bad) - SHOW_BAD} more)" if len(bad) > SHOW_BAD else ""
        raise TrainError(
            f"{layout.root}: {len(bad)} file{'s' if len(bad) > 1 else ''} cannot be used: "
            f"{shown}{more}; fix or remove them, or leave them out with --skip-unreadable"
        )
    layout.train = [(p, y) for p, y in layout.train if str(p) not in bad]
    layout.test = [(p, y) for p, y in layout.test if str(p) not in bad]
    layout.skipped += [f"{p}: {r}" for p, r in bad.items()]
    left = {y for _, y in layout.train}
    empty = [c for i, c in enumerate(layout.classes) if i not in left]
    if empty:
        raise TrainError(
            f"{layout.root}: class '{empty[0]}' has no usable training image once the "
            "unreadable files are left out"
        )
    return layout


# --- decoding -----------------------------------------------------------------------------


def _to_mode(img: Image.Image, channels: int) -> Image.Image:
    """Any Pillow mode as 'L' (channels 1) or 'RGB' (channels 3). 16- and 32-bit integer
    images are scaled to 8 bits, not clipped; transparency is dropped."""
    from PIL import Image

    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = (
            65535.0 if img.mode != "F" and arr.max() > 255 else (1.0 if img.mode == "F" else 255.0)
        )
        img = Image.fromarray((arr * (255.0 / top)).round().clip(0, 255).astype(np.uint8), "L")
    if img.mode == "P":
        img = img.convert("RGBA")
    mode = "L" if channels == 1 else "RGB"
    return img if img.mode == mode else img.convert(mode)


def open_image(path: Path, channels: int, min_side: int, data: bytes | None = None) -> Image.Image:
    """An image in 'L' or 'RGB' with its EXIF orientation applied; a JPEG is decoded at the
    smallest reduced scale whose shorter side keeps at least ``min_side`` pixels (by
    simplejpeg, libjpeg-turbo's decoder, where it is installed and takes the file). ``data``:
    the file's bytes when they are already read (``path`` then only names the type)."""
    from PIL import ImageOps

    if simplejpeg is not None and path.suffix.lower() in (".jpg", ".jpeg"):
        img = _fast_jpeg(path.read_bytes() if data is None else data, channels, min_side)
        if img is not None:
            return img
    with Image.open(path if data is None else io.BytesIO(data)) as img:
        img.draft("L" if channels == 1 else "RGB", (min_side, min_side))  # JPEG only
        img.load()
        ImageOps.exif_transpose(img, in_place=True)  # no copy when there is nothing to turn
        return _to_mode(img, channels)


# EXIF orientation -> the transpose that shows the image upright (EXIF 2.3, tag 0x0112)
ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _fast_jpeg(data: bytes, channels: int, min_side: int) -> Image.Image | None:
    """A grey or RGB JPEG decoded by simplejpeg (about twice Pillow's speed here), or None
    for anything else (CMYK, broken files: Pillow decides)."""
    with Image.open(io.BytesIO(data)) as head:  # the header and EXIF only
        if head.mode not in ("L", "RGB"):
            return None
        turn = ORIENTATION.get(head.getexif().get(0x0112, 1))
    try:
        arr = simplejpeg.decode_jpeg(
            data,
            colorspace="GRAY" if channels == 1 else "RGB",
            min_height=min_side,
            min_width=min_side,
        )
    except ValueError:
        return None
    img = Image.fromarray(arr[:, :, 0] if channels == 1 else arr)
    return img.transpose(turn) if turn is not None else img


def resize_shorter(img: Image.Image, side: int) -> Image.Image:
    """Resize (bilinear) so that the shorter side is ``side`` pixels."""
    w, h = img.size
    scale = side / min(w, h)
    nw, nh = max(side, round(w * scale)), max(side, round(h * scale))
    if (nw, nh) == (w, h):
        return img
    return img.resize((nw, nh), Image.Resampling.BILINEAR, reducing_gap=3.0)


def to_array(img: Image.Image, channels: int) -> np.ndarray:
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if channels == 1 else np.ascontiguousarray(arr.transpose(2, 0, 1))


def decode(
    path: Path, channels: int, size: int, resize: int | None = None, data: bytes | None = None
) -> np.ndarray:
    """One image as uint8 ``channels x size x size``: the shorter side resized to ``resize``
    (default ``size``), then the centre crop."""
    side = resize or size
    img = resize_shorter(open_image(path, channels, side, data), side)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    return to_array(img.crop((left, top, left + size, top + size)), channels)


def ten_crops(
    path: Path, channels: int, size: int, resize: int, data: bytes | None = None
) -> np.ndarray:
    """The paper's 10-crop testing (He et al. 2015 sec. 3.4, after Krizhevsky et al. 2012):
    the four corner and the centre ``size`` crops of the image resized to ``resize`` (shorter
    side), and their mirror images, as uint8 ``10 x channels x size x size``."""
    img = to_array(resize_shorter(open_image(path, channels, resize, data), resize), channels)
    h, w = img.shape[1:]
    corners = [(0, 0), (0, w - size), (h - size, 0), (h - size, w - size)]
    corners.append(((h - size) // 2, (w - size) // 2))
    crops = [img[:, t : t + size, left : left + size] for t, left in corners]
    return np.stack(crops + [c[:, :, ::-1] for c in crops])


def decode_or_reason(
    args: tuple[Path, int, int, int | None, bool, bytes | None],
) -> np.ndarray | str:
    """An image as :func:`decode` or :func:`ten_crops` (with ``ten``) gives it, or why not."""
    path, channels, size, resize, ten, data = args
    try:
        if ten and resize is not None:
            return ten_crops(path, channels, size, resize, data)
        return decode(path, channels, size, resize, data)
    except Exception as exc:  # a file that passed the scan can still be truncated
        return f"cannot decode ({type(exc).__name__}: {exc})"


def decode_all(
    pairs: list[tuple[Path, int]],
    channels: int,
    size: int,
    progress: Progress,
    what: str,
    resize: int | None = None,
    ten: bool = False,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Decode ``pairs`` in threads; failures are left out and returned as 'path: reason'."""
    paths = [p for p, _ in pairs]
    jobs = ((p, channels, size, resize, ten, None) for p in progress(paths, what))
    return decode_in_threads(jobs, paths, [label for _, label in pairs], (channels, size, ten))


def decode_in_threads(
    jobs: Iterable[tuple[Any, ...]],
    names: Sequence[object],
    labels: Sequence[int],
    shape: tuple[int, int, bool],
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Run :func:`decode_or_reason` over ``jobs`` in threads into one uint8 array of
    (channels, size, ten crops or not) ``shape``; the images that fail are left out (with
    their labels) and returned as 'name: reason'."""
    channels, size, ten = shape
    x = np.zeros((len(labels), *((10,) if ten else ()), channels, size, size), dtype=np.uint8)
    keep = np.ones(len(labels), dtype=bool)
    failed: list[str] = []
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        for i, out in enumerate(pool.map(decode_or_reason, jobs)):
            if isinstance(out, str):
                keep[i] = False
                failed.append(f"{names[i]}: {out}")
            else:
                x[i] = out
    y = np.array(labels, dtype=np.int64)
    return x[keep], y[keep], failed


def _cached_arrays(key: str, build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The decoded arrays stored under ``key``, or ``build()``'s, stored for the next start."""
    path = cache_dir() / "arrays" / f"{key}.npz"
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, KeyError):
        pass
    arrays = build()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    except OSError:
        pass
    return arrays


def read_folder(
    root: Path,
    channels: int,
    size: int,
    *,
    holdout: float,
    skip_unreadable: bool,
    progress: Progress,
    resize: int | None = None,
    ten_crop: bool = False,
) -> tuple[Layout, dict[str, np.ndarray]]:
    """The layout and the decoded ``train_x, train_y, test_x, test_y`` arrays of a folder.
    With ``resize`` (images read from their files at every step), the test images are
    resized to it before the centre crop and ``train_x`` is only a sample of
    :data:`MEAN_SAMPLE` training images, decoded the same way, for the mean; ``ten_crop``
    gives each test image as its ten crops (:func:`ten_crops`)."""
    layout = find_layout(root, holdout)
    paths = [p for p, _ in layout.train + layout.test]
    key = _key(paths)
    layout = refuse_or_skip(layout, scan(paths, key, progress), skip_unreadable)
    what = f"{key} {channels}x{size} {resize} {ten_crop} {holdout!r} {SPLIT_SEED}"

    def build() -> dict[str, np.ndarray]:
        train = layout.train
        if resize is not None:
            train = train[:: max(1, len(train) // MEAN_SAMPLE)][:MEAN_SAMPLE]
        tx, ty, bad = decode_all(train, channels, size, progress, "decoding train", resize)
        vx, vy, more = decode_all(
            layout.test, channels, size, progress, "decoding test", resize, ten_crop
        )
        failed = np.array(bad + more, dtype=str)
        return {"train_x": tx, "train_y": ty, "test_x": vx, "test_y": vy, "failed": failed}

    arrays = _cached_arrays(hashlib.sha256(what.encode()).hexdigest(), build)
    layout.skipped += [str(f) for f in arrays.pop("failed")]
    return layout, arrays
