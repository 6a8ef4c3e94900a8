"""Where a crop read from a file spends its time, per image in one process: file read,
header, decode, Pillow's copy, resize, CHW copy, and the whole 'resized' and 'scale' crops.

    python benchmarks/input_steps.py [--images 150] [--repeats 5]

Uses the generated photo-sized JPEGs of benchmarks/input_pipeline.py; best of --repeats.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from input_pipeline import write_folder  # noqa: E402

from resgraph.train import folder as tfolder  # noqa: E402
from resgraph.train import stream  # noqa: E402

BOX = (50.3, 20.7, 350.2, 320.9)  # a 300-pixel box, resized to 224


def best(items: list, step: Callable[[object], object], repeats: int) -> float:
    """The fastest of ``repeats`` passes over ``items``, in ms per item."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for item in items:
            step(item)
        times.append((time.perf_counter() - t0) / len(items))
    return 1e3 * min(times)


def main() -> None:
    from PIL import Image

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        paths = sorted((write_folder(Path(tmp), args.images) / "train").rglob("*.jpg"))
        data = [p.read_bytes() for p in paths]
        decoded = tfolder.open_image(paths[0], 3, 10_000)  # full size
        pixels = np.array(decoded)
        rng = np.random.default_rng(0)
        crops = [tfolder.to_array(decoded.resize((224, 224)), 3)] * 32

        def header(d: bytes) -> None:
            with Image.open(io.BytesIO(d)) as head:
                head.getexif()

        def torch_resize(_: object) -> None:
            x = torch.from_numpy(pixels).permute(2, 0, 1)[None, :, 21:321, 50:350]
            F.interpolate(x, size=(224, 224), mode="bilinear", antialias=True)

        steps = {
            "read the file": (paths, lambda p: p.read_bytes()),
            "Pillow header and EXIF": (data, header),
            "decode, full size (simplejpeg, else Pillow)": (
                paths,
                lambda p: tfolder.open_image(p, 3, 10_000),
            ),
            "decode, DCT-scaled to a shorter side >= 224": (
                paths,
                lambda p: tfolder.open_image(p, 3, 224),
            ),
            "Image.fromarray": (data, lambda _: Image.fromarray(pixels)),
            "Pillow bilinear resize, 300-pixel box to 224": (
                data,
                lambda _: decoded.resize((224, 224), resample=2, box=BOX, reducing_gap=3.0),
            ),
            "torch antialiased uint8 resize, same box": (data, torch_resize),
            "CHW copy (to_array)": (data, lambda _: tfolder.to_array(decoded, 3)),
            "stacking a batch of 32 crops (ms per batch)": (data[:8], lambda _: np.stack(crops)),
            "whole 'resized' crop": (
                paths,
                lambda p: stream.augmented("resized", p, 3, 224, True, rng),
            ),
            "whole 'scale' crop": (
                paths,
                lambda p: stream.augmented("scale", p, 3, 224, True, rng),
            ),
        }
        print(f"{len(paths)} JPEGs of 500x375, one process, best of {args.repeats}")
        print("| step | ms per image |\n|---|---|")
        for name, (items, step) in steps.items():
            print(f"| {name} | {best(items, step, args.repeats):.2f} |")


if __name__ == "__main__":
    main()
