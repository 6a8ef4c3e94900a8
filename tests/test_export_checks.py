"""``resgraph export``'s checks made before any work: the example input's size."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from helpers import CIFAR20
from resgraph.cli import main
from resgraph.export import MAX_EXAMPLE_BYTES, ExportError, check_example_size
from resgraph.passes import lower
from resgraph.spec import load_spec

SAMPLE = 3 * 32 * 32 * 4  # one float32 input of CIFAR20


def test_the_largest_fixed_batch_within_the_limit_is_taken(tmp_path):
    ir = lower(load_spec(CIFAR20))
    largest = MAX_EXAMPLE_BYTES // SAMPLE
    check_example_size(ir, largest)
    check_example_size(ir, None)
    with pytest.raises(ExportError, match=f"--batch {largest + 1}: the example input"):
        check_example_size(ir, largest + 1)


def test_a_huge_batch_is_one_error_line_and_writes_nothing(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(CIFAR20)
    out = tmp_path / "m.onnx"
    result = CliRunner().invoke(main, ["export", str(spec), "-o", str(out), "--batch", "10**8"])
    assert result.exit_code == 1  # not an integer: the parser's own message
    result = CliRunner().invoke(main, ["export", str(spec), "-o", str(out), "--batch", "100000000"])
    assert result.exit_code == 1
    assert result.stderr == (
        "error: --batch 100000000: the example input (100000000 x 3x32x32 float32) would "
        "take 1144.41 GiB, over the 1 GiB limit; --batch dynamic exports one file for every "
        "batch size\n"
    )
    assert not out.exists()
