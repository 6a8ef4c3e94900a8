"""Image files as they come: formats, modes, EXIF orientation, bad files, hostile folders,
and the scan's cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from train_helpers import one_thread  # noqa: F401  (one compute thread in this module)

from helpers import invoke
from resgraph.errors import TrainError
from resgraph.train import data as tdata
from resgraph.train import folder as tfolder

COLOUR = (200, 100, 50)
GREY = round(0.299 * 200 + 0.587 * 100 + 0.114 * 50)  # Pillow's L = ITU-R 601-2 luma
SPEC = """\
name: Tiny
input: {channels: 3, size: 8}
num_classes: 2
stem: {layout: cifar, width: 4}
block: basic
shortcut: A
stages:
  - {width: 4, repeats: 1, stride: 1}
train: {batch_size: 4, iterations: 2}
"""


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv(tfolder.CACHE_ENV, str(cache))
    return cache


def _save(img: Image.Image, path: Path, **kw: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kw)
    return path


# --- formats and modes ------------------------------------------------------------------


def _modes(tmp_path: Path) -> dict[str, Path]:
    rgb = Image.new("RGB", (12, 8), COLOUR)
    return {
        "png rgb": _save(rgb, tmp_path / "a.png"),
        "jpeg rgb": _save(rgb, tmp_path / "a.jpg", quality=100),
        "webp": _save(rgb, tmp_path / "a.webp", lossless=True),
        "bmp": _save(rgb, tmp_path / "a.bmp"),
        "tiff": _save(rgb, tmp_path / "a.tiff"),
        "rgba": _save(rgb.convert("RGBA"), tmp_path / "rgba.png"),
        "palette": _save(rgb.convert("P"), tmp_path / "p.png"),
        "gif first frame": _save(
            rgb.convert("P"),
            tmp_path / "a.gif",
            save_all=True,
            append_images=[Image.new("RGB", (12, 8), (0, 0, 255)).convert("P")],
        ),
        "cmyk jpeg": _save(rgb.convert("CMYK"), tmp_path / "cmyk.jpg", quality=100),
    }


def test_every_format_and_mode_decodes_to_the_colour(tmp_path: Path) -> None:
    for what, path in _modes(tmp_path).items():
        x = tfolder.decode(path, 3, 8)
        assert x.shape == (3, 8, 8) and x.dtype == np.uint8, what
        got = x.reshape(3, -1).mean(axis=1)
        assert np.abs(got - COLOUR).max() <= 3, (what, got)
        grey = tfolder.decode(path, 1, 8)
        assert grey.shape == (1, 8, 8) and abs(float(grey.mean()) - GREY) <= 3, what


def test_grey_and_16_bit_images_are_scaled_not_clipped(tmp_path: Path) -> None:
    sixteen = Image.fromarray(np.full((8, 8), 32768, dtype=np.uint16))  # half of 65535
    path = _save(sixteen, tmp_path / "deep.png")
    with Image.open(path) as opened:
        assert opened.mode.startswith("I")
    assert abs(int(tfolder.decode(path, 1, 8)[0, 0, 0]) - 128) <= 1
    rgb = tfolder.decode(path, 3, 8)
    assert rgb.shape == (3, 8, 8) and abs(int(rgb[2, 3, 3]) - 128) <= 1
    bits = _save(Image.new("1", (8, 8), 1), tmp_path / "one.png")
    assert int(tfolder.decode(bits, 1, 8).min()) == 255
    grey = _save(Image.new("LA", (8, 8), (77, 10)), tmp_path / "la.png")
    assert set(tfolder.decode(grey, 3, 8).reshape(-1).tolist()) == {77}


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    img = Image.new("L", (8, 8), 0)
    img.paste(255, (0, 0, 8, 4))  # white top half
    exif = Image.Exif()
    exif[0x0112] = 3  # stored upside down: rotate 180 degrees to show it
    path = _save(img, tmp_path / "turned.png", exif=exif)
    x = tfolder.decode(path, 1, 8)[0]
    assert x[:4].max() == 0 and x[4:].min() == 255
    plain = tfolder.decode(_save(img, tmp_path / "plain.png"), 1, 8)[0]
    assert plain[:4].min() == 255


def test_shorter_side_resized_then_centre_crop(tmp_path: Path) -> None:
    img = Image.new("L", (32, 16), 0)
    img.paste(255, (6, 0, 26, 16))  # a white middle across the width
    x = tfolder.decode(_save(img, tmp_path / "wide.png"), 1, 8)[0]  # 16x8, crop the middle 8
    assert x.min() == 255


# --- bad files and hostile folders ------------------------------------------------------


def _classes(root: Path, n: int = 3, names: tuple[str, ...] = ("cat", "dog")) -> Path:
    for name in names:
        for i in range(n):
            _save(Image.new("RGB", (8, 8), (i * 40, 0, 0)), root / name / f"{i}.png")
    return root


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # pytest resets
def test_bad_files_are_named_and_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _classes(tmp_path / "set")
    (root / "cat" / "empty.jpg").write_bytes(b"")
    (root / "dog" / "notes.png").write_text("not an image")
    _save(Image.new("L", (40, 40)), root / "dog" / "huge.png")  # over the limit: refused
    _save(Image.new("L", (80, 80)), root / "dog" / "bomb.png")  # over twice: Pillow refuses
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(TrainError) as err:
        tdata.load_images(str(root), Path("."), 3, 8)
    text = str(err.value)
    assert text.startswith(f"{root}: 4 files cannot be used: ")
    assert f"{root / 'cat' / 'empty.jpg'}: empty file" in text
    assert f"{root / 'dog' / 'notes.png'}: not an image" in text
    assert "huge.png: 40x40 pixels, more than Pillow's decompression-bomb limit of 1,000" in text
    assert "bomb.png: more than Pillow's decompression-bomb limit of 1,000 pixels" in text
    assert "--skip-unreadable" in text
    images = tdata.load_images(str(root), Path("."), 3, 8, skip_unreadable=True)
    assert len(images.train_y) + len(images.test_y) == 6
    assert len(images.skipped) == 4 and "4 unreadable files left out" in images.notes


def test_only_the_first_bad_files_are_listed(tmp_path: Path) -> None:
    root = _classes(tmp_path / "set")
    for i in range(tfolder.SHOW_BAD + 2):
        (root / "cat" / f"bad{i}.png").write_bytes(b"")
    with pytest.raises(TrainError, match=r"7 files cannot be used: .*\(and 2 more\)") as err:
        tdata.load_images(str(root), Path("."), 3, 8)
    assert str(err.value).count("empty file") == tfolder.SHOW_BAD


def test_a_file_that_fails_to_decode_is_left_out_and_listed(tmp_path: Path) -> None:
    root = _classes(tmp_path / "set", n=4)
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    whole = _save(Image.fromarray(noise), tmp_path / "noise.png").read_bytes()
    (root / "cat" / "cut.png").write_bytes(whole[: len(whole) // 2])  # a header, cut short
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SPEC)
    out = tmp_path / "run"
    result = invoke("train", spec, "--dataset", root, "--out", out)
    assert result.exit_code == 0, result.output
    assert "1 unreadable file left out" in result.output
    listed = (out / "unreadable.txt").read_text().splitlines()
    assert len(listed) == 1 and listed[0].startswith(f"{root / 'cat' / 'cut.png'}: cannot decode")


def test_skip_unreadable_runs_and_lists_the_files(tmp_path: Path) -> None:
    root = _classes(tmp_path / "set", n=4)
    (root / "dog" / "empty.png").write_bytes(b"")
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SPEC)
    refused = invoke("train", spec, "--dataset", root, "--out", tmp_path / "no")
    assert refused.exit_code == 1 and "1 file cannot be used" in refused.output
    assert not (tmp_path / "no").exists()
    out = tmp_path / "run"
    result = invoke("train", spec, "--dataset", root, "--out", out, "--skip-unreadable")
    assert result.exit_code == 0, result.output
    assert (out / "unreadable.txt").read_text() == f"{root / 'dog' / 'empty.png'}: empty file\n"


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda r: None, "no such folder"),
        (lambda r: r.write_text("x") and None, "not a folder"),
        (lambda r: r.mkdir(), "holds no class folders"),
        (lambda r: (_classes(r), (r / "eel").mkdir()), "eel: the class folder holds no images"),
        (
            lambda r: (_classes(r / "train"), _classes(r / "val", names=("cat", "cow"))),
            "val/cow: a class that",
        ),
        (lambda r: (_classes(r), _classes(r / "validation")), "has validation/ but no train/"),
        (
            lambda r: (_classes(r, n=1), (r / "cat" / "x.png").write_bytes(b"")),
            "class 'cat' has no usable training image",
        ),
    ],
)
def test_hostile_folders_are_one_error_line(tmp_path: Path, build: object, message: str) -> None:
    root = tmp_path / "data"
    build(root)  # type: ignore[operator]
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SPEC)
    out = tmp_path / "run"
    result = invoke("train", spec, "--dataset", root, "--out", out, "--skip-unreadable")
    assert result.exit_code == 1, result.output
    assert result.output.startswith("error: ") and result.output.count("\n") == 1, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_an_existing_run_is_never_touched_by_a_refused_start(tmp_path: Path) -> None:
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SPEC)
    out = tmp_path / "run"
    good = _classes(tmp_path / "good", n=4)
    assert invoke("train", spec, "--dataset", good, "--out", out).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    (good / "cat" / "bad.png").write_bytes(b"")
    refused = invoke("train", spec, "--dataset", good, "--out", out, "--resume")
    assert refused.exit_code == 1 and "cannot be used" in refused.output
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_channels_other_than_grey_or_rgb_are_refused(tmp_path: Path) -> None:
    root = _classes(tmp_path / "set")
    with pytest.raises(TrainError, match="set input.channels to 1 or 3"):
        tdata.load_images(str(root), Path("."), 4, 8)


# --- the cache --------------------------------------------------------------------------


def test_the_second_start_reads_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, own_cache: Path
) -> None:
    root = _classes(tmp_path / "set")
    first = tdata.load_images(str(root), Path("."), 3, 8)
    assert list((own_cache / "resgraph" / "scans").iterdir())

    def fail(*a: object) -> None:
        raise AssertionError("decoded again")

    with monkeypatch.context() as m:
        m.setattr(tfolder, "_check", fail)
        m.setattr(tfolder, "decode", fail)
        again = tdata.load_images(str(root), Path("."), 3, 8)
    assert np.array_equal(first.train_x, again.train_x)
    # a changed file (another size) is a different folder: scanned and decoded again
    _save(Image.new("RGB", (9, 9), (1, 2, 3)), root / "cat" / "0.png")
    seen: list[Path] = []
    real = tfolder._check
    monkeypatch.setattr(tfolder, "_check", lambda p: seen.append(p) or real(p))
    changed = tdata.load_images(str(root), Path("."), 3, 8)
    assert len(seen) == 6 and not np.array_equal(first.train_x, changed.train_x)


@pytest.mark.skipif(tfolder.simplejpeg is None, reason="simplejpeg is not installed")
def test_fast_jpeg_decoding_agrees_with_pillow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(0)
    small = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8))
    photo = small.resize((80, 60), Image.Resampling.BICUBIC)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees clockwise to show it
    path = _save(photo, tmp_path / "side.jpg", quality=95, exif=exif)
    grey = _save(photo.convert("L"), tmp_path / "grey.jpg", quality=95)
    for p, channels in ((path, 3), (path, 1), (grey, 3), (grey, 1)):
        fast = tfolder.open_image(p, channels, 60)
        with monkeypatch.context() as m:
            m.setattr(tfolder, "simplejpeg", None)
            slow = tfolder.open_image(p, channels, 60)
        assert fast.size == slow.size and fast.mode == slow.mode, (p, channels)
        diff = np.abs(np.asarray(fast, dtype=int) - np.asarray(slow, dtype=int))
        assert diff.mean() < 2, (p, channels, diff.mean())
    assert tfolder.open_image(path, 3, 60).size == (60, 80)  # upright: taller than wide
    big = _save(photo.resize((800, 600)), tmp_path / "big.jpg", quality=90)
    reduced = tfolder.open_image(big, 3, 200)
    assert 200 <= min(reduced.size) < 600  # decoded at a reduced scale
    assert min(tfolder.open_image(big, 3, 400).size) >= 400  # never below what was asked
