"""`train`'s options against the recipe: a data set's own length, SGD flags with their
ranges in --help, the header's counts, and the pixel mean's precision."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from train_helpers import (
    one_thread,  # noqa: F401 (an autouse fixture: one thread)
    write_tiny_spec,
)

import resgraph
from helpers import invoke
from resgraph.errors import TrainError
from resgraph.train import config as cfg

# --- lengths and flags ------------------------------------------------------------------


def _opts(tmp_path: Path, **kw: object) -> cfg.TrainOptions:
    return cfg.TrainOptions(spec=write_tiny_spec(tmp_path), **kw)  # type: ignore[arg-type]


def test_a_data_set_brings_its_length_and_explicit_lengths_win(tmp_path: Path) -> None:
    path = Path(resgraph.__file__).parents[1] / "specs/cifar_resnet20.yaml"
    paper = resgraph.load_spec(path)

    def length(spec: Path, **kw: object) -> tuple[int, list[int]]:
        opts = _opts(tmp_path, **kw)
        train = cfg.override(resgraph.load_spec(spec).train, opts)
        c = cfg.resolve(spec, paper, train, opts, 10, 1, "cpu", "x")
        return c.iterations, c.milestones

    assert length(path, dataset="digits") == (300, [150, 225])
    assert length(path)[0] == 64000
    assert length(path, dataset="digits", iterations=40)[0] == 40
    assert length(write_tiny_spec(tmp_path))[0] == 12  # the spec says iterations: 12
    assert length(path, dataset="digits", epochs=2)[0] == 20  # 10 steps per epoch
    assert length(path, dataset=str(tmp_path))[0] == 30 * 10  # a folder: 30 epochs


def test_sgd_flags_override_and_show_their_ranges(tmp_path: Path) -> None:
    t = cfg.override(
        cfg.TrainSpec(),
        _opts(
            tmp_path,
            momentum=0.5,
            weight_decay=0.001,
            milestones=[10, 20],
            warmup_lr=0.01,
            iterations=30,
        ),
    )
    assert (t.momentum, t.weight_decay, t.milestones, t.warmup_lr) == (0.5, 0.001, [10, 20], 0.01)
    with pytest.raises(TrainError, match="--milestones: milestones must lie between"):
        cfg.override(cfg.TrainSpec(), _opts(tmp_path, milestones=[50], iterations=30))
    help_text = " ".join(invoke("train", "--help").output.split())
    for text in (
        "in (0, 10]",
        "in [0, 1)",
        "in [0, 1]",
        "'none' for a constant lr",
        "1 to 1e8",
        "300 for digits",
    ):
        assert text in help_text, text
    spec = write_tiny_spec(tmp_path)
    for flag, value in (("--momentum", "1"), ("--lr", "0"), ("--milestones", "3,x")):
        bad = invoke("train", spec, flag, value, "--out", tmp_path / "never")
        assert bad.exit_code == 2 and flag in bad.output, bad.output
    assert not (tmp_path / "never").exists()


@pytest.mark.slow
def test_header_counts_and_constant_lr(tmp_path: Path) -> None:
    spec = write_tiny_spec(tmp_path)
    result = invoke("train", spec, "--out", tmp_path / "run", "--iterations", "1")
    assert result.exit_code == 0, result.output
    assert "1 iteration (0.0233 epochs of 43 iterations)" in result.output, result.output
    assert "lr 0.1 (no milestones)" in result.output and "at none" not in result.output
    assert "after 1 iteration (" in result.output


def test_pixel_mean_needs_no_float64_copy() -> None:
    import tracemalloc

    from resgraph.train.batches import pixel_mean

    x = np.random.default_rng(0).integers(0, 256, (4000, 3, 8, 8), dtype=np.uint8)
    tracemalloc.start()
    mean = pixel_mean(x)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < x.size  # a float64 copy takes 8 * x.size bytes
    np.testing.assert_array_equal(
        mean, (x.astype(np.float64).mean(axis=0) / 255.0).astype(np.float32)
    )
