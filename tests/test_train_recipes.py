"""Selectable recipe parts: the cosine schedule and label smoothing, stated at start, recorded
in config.yaml and continued exactly by --resume."""

from __future__ import annotations

import math
import signal
from pathlib import Path

import pytest
import torch
import yaml
from train_helpers import one_thread, write_tiny_spec  # noqa: F401
from train_hooks import SignalAfter, with_callbacks

from helpers import invoke
from resgraph.train import checkpoint as ckpt_io
from resgraph.train.schedule import Schedule


def test_cosine_falls_from_the_lr_to_zero() -> None:
    s = Schedule(0.4, [5], 0.1, cosine_over=10)
    lrs = [s.lr(i) for i in range(11)]
    assert lrs[0] == 0.4 and math.isclose(lrs[5], 0.2) and math.isclose(lrs[10], 0.0, abs_tol=1e-12)
    assert all(a > b for a, b in zip(lrs, lrs[1:], strict=False))  # milestones unused
    assert math.isclose(lrs[2], 0.2 * (1 + math.cos(math.pi * 0.2)))
    assert Schedule(0.4, [5], 0.1).lr(5) == pytest.approx(0.04)


def test_cosine_and_smoothing_are_stated_recorded_and_resumed_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = write_tiny_spec(tmp_path)
    args = ("train", spec, "--iterations", "6", "--schedule", "cosine", "--label-smoothing", "0.2")
    whole = invoke(*args, "--out", tmp_path / "whole")
    assert whole.exit_code == 0, whole.output
    assert "lr 0.1 along a cosine to 0, label smoothing 0.2" in whole.output
    config = yaml.safe_load((tmp_path / "whole" / "config.yaml").read_text())
    assert config["train"]["schedule"] == "cosine" and config["train"]["label_smoothing"] == 0.2
    run = tmp_path / "run"
    with monkeypatch.context() as m:
        with_callbacks(m, SignalAfter(signal.SIGINT, 3))
        assert invoke(*args, "--out", run).exit_code == 130
    changed = invoke("train", spec, "--out", run, "--resume", "--schedule", "step")
    assert changed.exit_code == 1 and "schedule: the run has 'cosine'" in changed.output
    resumed = invoke("train", spec, "--out", run, "--resume")
    assert resumed.exit_code == 0, resumed.output
    ours, theirs = ckpt_io.load(run / "last.pt"), ckpt_io.load(tmp_path / "whole" / "last.pt")
    assert all(torch.equal(ours["model"][k], v) for k, v in theirs["model"].items())


def test_label_smoothing_changes_the_training_loss(tmp_path: Path) -> None:
    spec = write_tiny_spec(tmp_path)
    losses = []
    for smoothing in ("0", "0.5"):
        out = tmp_path / smoothing
        result = invoke(
            "train", spec, "--out", out, "--iterations", "4", "--label-smoothing", smoothing
        )
        assert result.exit_code == 0, result.output
        losses.append(ckpt_io.load(out / "last.pt")["history"][-1]["train_loss"])
    assert losses[1] != losses[0]
    bad = invoke("train", spec, "--out", tmp_path / "x", "--label-smoothing", "1")
    assert bad.exit_code == 2 and "--label-smoothing" in bad.output
