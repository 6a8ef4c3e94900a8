"""Golden IR dumps: the IR of two specs after every pass, compared line by line with the
files in tests/data/ir/. A change to lowering or a pass that moves any node, shape, edge or
block fact shows up here as a readable diff.

If such a change is intended, regenerate the files with
    PYTHONPATH=. python tests/test_ir_golden.py
and review the diff of tests/data/ir/ before committing it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "ir"
GOLDEN_SPECS = ("cifar_resnet20", "cifar_wrn_40_4")


def _dumps(stem: str) -> dict[str, str]:
    from resgraph.passes import PASS_NAMES, lower
    from resgraph.spec import load_spec

    out: dict[str, str] = {}
    for name in PASS_NAMES:
        lines: list[str] = []
        lower(load_spec(ROOT / "specs" / f"{stem}.yaml"), dump_after=name, dump=lines.append)
        out[name] = "\n".join(lines) + "\n"
    return out


@pytest.mark.parametrize("stem", GOLDEN_SPECS)
def test_ir_after_every_pass_matches_the_golden_dump(stem):
    for name, text in _dumps(stem).items():
        path = DATA / f"{stem}.{name}.txt"
        assert path.is_file(), f"{path} is missing: regenerate with PYTHONPATH=. python {__file__}"
        expected = path.read_text()
        assert text == expected, (
            f"the IR of {stem} after {name} differs from {path.name}; if this change is "
            f"intended, regenerate with PYTHONPATH=. python tests/test_ir_golden.py"
        )


def test_every_pass_has_a_golden_dump():
    from resgraph.passes import PASS_NAMES

    files = {p.name for p in DATA.glob("*.txt")}
    assert files == {f"{s}.{n}.txt" for s in GOLDEN_SPECS for n in PASS_NAMES}


if __name__ == "__main__":
    DATA.mkdir(parents=True, exist_ok=True)
    for stem in GOLDEN_SPECS:
        for name, text in _dumps(stem).items():
            (DATA / f"{stem}.{name}.txt").write_text(text)
    sys.exit(0)
