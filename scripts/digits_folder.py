"""Write scikit-learn's bundled digits as an image folder (ImageFolder layout), to try
``resgraph train --dataset FOLDER`` without downloading anything.

    python scripts/digits_folder.py /tmp/digits-folder

``train/<word>/`` holds resgraph's 1,397 training digits and ``val/<word>/`` its 400 test
digits (the split the built-in 'digits' data set uses), every other file a PNG and the rest
JPEGs, 8x8 grey; classes are named by words.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

from resgraph.train.data import load_digits

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def write(root: Path) -> int:
    digits = load_digits(1, 8)
    count = 0
    for part, xs, ys in (
        ("train", digits.train_x, digits.train_y),
        ("val", digits.test_x, digits.test_y),
    ):
        for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
            folder = root / part / WORDS[y]
            folder.mkdir(parents=True, exist_ok=True)
            suffix = ".png" if i % 2 == 0 else ".jpg"
            Image.fromarray(x[0], "L").save(folder / f"{i:04d}{suffix}", quality=95)
            count += 1
    return count


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python scripts/digits_folder.py FOLDER")
    print(f"{write(Path(sys.argv[1]))} images written under {sys.argv[1]}")
