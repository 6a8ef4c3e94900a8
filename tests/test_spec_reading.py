"""Reading spec files and ``--set`` values: a device or a pipe is read only up to the size
limit, and characters YAML refuses are one ``error:`` line, in a file or in a flag."""

from __future__ import annotations

import os
import threading

import pytest
from click.testing import CliRunner

from helpers import CIFAR20
from resgraph.cli import main
from resgraph.spec.loader import MAX_SPEC_BYTES

CHUNK = b"# " + b"x" * 65534 + b"\n"


def _feed(fifo, total, sent):
    """Write ``total`` bytes of YAML comments into ``fifo``; a reader that stops early
    closes the pipe, which ends the writing."""
    try:
        with open(fifo, "wb") as f:
            while sent[0] < total:
                f.write(CHUNK)
                sent[0] += len(CHUNK)
    except BrokenPipeError:
        pass


@pytest.mark.parametrize("via_base", [False, True])
def test_a_pipe_is_read_only_up_to_the_limit(tmp_path, via_base):
    fifo = tmp_path / "endless.yaml"
    os.mkfifo(fifo)
    sent = [0]
    total = 4 * MAX_SPEC_BYTES
    writer = threading.Thread(target=_feed, args=(fifo, total, sent), daemon=True)
    writer.start()
    target = fifo
    if via_base:
        target = tmp_path / "child.yaml"
        target.write_text(f"base: {fifo.name}\nname: child\n")
    result = CliRunner().invoke(main, ["validate", str(target)])
    writer.join(timeout=30)
    assert result.exit_code == 1
    assert f"spec file is larger than the limit of {MAX_SPEC_BYTES} bytes" in result.stderr
    assert "Traceback" not in result.output
    assert sent[0] < total  # the reader stopped, the writer did not get rid of everything


def test_a_control_character_in_a_file_is_one_error_line(tmp_path):
    spec = tmp_path / "ctl.yaml"
    spec.write_text(CIFAR20.replace("Test net", "Test\x01net"))
    result = CliRunner().invoke(main, ["validate", str(spec)])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: {spec}: invalid YAML: unacceptable character #x0001")


def test_a_control_character_in_a_flag_is_one_error_line(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(CIFAR20)
    result = CliRunner().invoke(main, ["validate", str(spec), "--set", "description=a\x0bb"])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "--set 'description=a\x0bb': the value is not valid YAML: unacceptable" in (
        result.stderr
    )
