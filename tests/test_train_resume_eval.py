"""Training defects fixed at their cause: class counts, changed specs on resume and eval,
resuming with the saved recipe, data-set lengths, recipe flags, unwritable folders, the
progress line's width, messages, and the repeated-signal rule."""

from __future__ import annotations

import errno
import shlex
import signal
import time
from pathlib import Path

import click
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from train_helpers import (
    one_thread,  # noqa: F401 (an autouse fixture: one thread)
    write_tiny_spec,
)
from train_hooks import SignalAfter, with_callbacks

import resgraph
from resgraph.cli import main
from resgraph.errors import TrainError
from resgraph.train import checkpoint as ckpt_io
from resgraph.train import config as cfg
from resgraph.train import distributed, loop, report
from resgraph.train.data import load_digits
from resgraph.train.evaluate import check_classes


def invoke(*args: object):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("fixes")
    spec, out = write_tiny_spec(tmp), tmp / "run"
    result = invoke("train", spec, "--out", out, "--iterations", "4")
    assert result.exit_code == 0, result.output
    return spec, out


# --- class counts -----------------------------------------------------------------------


def test_fewer_outputs_than_classes_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    spec = write_tiny_spec(tmp_path)
    spec.write_text(spec.read_text().replace("num_classes: 10", "num_classes: 8"))
    result = invoke("train", spec, "--out", tmp_path / "run")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "num_classes 8 but digits has 10 classes" in result.output, result.output
    assert not (tmp_path / "run").exists()


def test_more_outputs_than_classes_warns() -> None:
    digits = load_digits(3, 8)
    assert check_classes(10, digits) is None
    assert "outputs 10..11 are never a label" in str(check_classes(12, digits))
    with pytest.raises(TrainError, match="set num_classes: 10"):
        check_classes(9, digits)


# --- a changed spec ---------------------------------------------------------------------


def test_resume_with_another_architecture_is_refused(
    finished: tuple[Path, Path], tmp_path: Path
) -> None:
    spec, out = finished
    changed = write_tiny_spec(tmp_path, "stochastic_depth: {final_survival: 0.5}\n")
    before = (out / "config.yaml").read_bytes()
    result = invoke("train", changed, "--out", out, "--resume")
    assert result.exit_code == 1, result.output
    assert "trained from another architecture (stochastic_depth: the run has null" in result.output
    assert (out / "config.yaml").read_bytes() == before  # nothing overwritten


def test_eval_with_another_architecture_warns_when_the_weights_fit(
    finished: tuple[Path, Path], tmp_path: Path
) -> None:
    spec, out = finished
    same = CliRunner().invoke(main, ["eval", str(spec), "--weights", str(out / "last.pt")])
    assert same.exit_code == 0 and "another architecture" not in same.output
    changed = write_tiny_spec(tmp_path, "head: {dropout: 0.2}\n")
    result = CliRunner().invoke(main, ["eval", str(changed), "--weights", str(out / "last.pt")])
    assert result.exit_code == 0, result.output
    assert "warning:" in result.output and "head: the run has" in result.output
    assert "error" in result.output.splitlines()[-1]


def test_recipe_change_lists_each_field_once(finished: tuple[Path, Path]) -> None:
    spec, out = finished
    result = invoke("train", spec, "--out", out, "--resume", "--iterations", "6")
    assert result.exit_code == 1
    assert result.output.count("iterations:") == 1, result.output
    assert result.output.count("milestones:") == 1


# --- resume takes the saved recipe ------------------------------------------------------


def test_continue_command_works_as_printed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec, out = write_tiny_spec(tmp_path), tmp_path / "run"
    with monkeypatch.context() as m:
        with_callbacks(m, SignalAfter(signal.SIGINT, 2))
        stopped = invoke(
            "train",
            spec,
            "--out",
            out,
            "--iterations",
            "6",
            "--lr",
            "0.05",
            "--momentum",
            "0.5",
            "--milestones",
            "none",
            "--set",
            "stages[1].repeats=1",
        )
    assert stopped.exit_code == 130, stopped.output
    # the architecture came from --set: a command without it would be refused on resume
    command = shlex.split(stopped.output.split("continue with: resgraph ")[1].splitlines()[0])
    assert "stages[1].repeats=1" in command
    resumed = invoke(*command)
    assert resumed.exit_code == 0, resumed.output
    ck = ckpt_io.load(out / "last.pt")
    assert ck["complete"] and ck["data"]["iteration"] == 6
    assert (ck["config"]["train"]["lr"], ck["config"]["train"]["momentum"]) == (0.05, 0.5)
    assert ck["config"]["milestones"] == []
    assert ck["config"]["architecture"]["stages"][1]["repeats"] == 1


# --- lengths and flags ------------------------------------------------------------------


def _opts(tmp_path: Path, **kw: object) -> cfg.TrainOptions:
    return cfg.TrainOptions(spec=write_tiny_spec(tmp_path), **kw)  # type: ignore[arg-type]


def test_a_data_set_brings_its_length_and_explicit_lengths_win(tmp_path: Path) -> None:
    paper = resgraph.load_spec(Path(resgraph.__file__).parents[1] / "specs/cifar_resnet20.yaml")
    digits = cfg.override(paper.train, _opts(tmp_path, dataset="digits"))
    assert digits.iterations == 300 and digits.scaled_milestones() == [150, 225]
    assert cfg.override(paper.train, _opts(tmp_path)).iterations == 64000
    flag = cfg.override(paper.train, _opts(tmp_path, dataset="digits", iterations=40))
    assert flag.iterations == 40
    own = resgraph.load_spec(write_tiny_spec(tmp_path)).train  # says iterations: 12
    assert cfg.override(own, _opts(tmp_path)).iterations == 12
    epochs = cfg.override(paper.train, _opts(tmp_path, dataset="digits", epochs=2))
    assert epochs.iterations == 64000  # --epochs decides the length later, in resolve()


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


def test_header_counts_and_constant_lr(tmp_path: Path) -> None:
    spec = write_tiny_spec(tmp_path)
    result = invoke("train", spec, "--out", tmp_path / "run", "--iterations", "1")
    assert result.exit_code == 0, result.output
    assert "1 iteration (0.0233 epochs of 43 iterations)" in result.output, result.output
    assert "lr 0.1 (no milestones)" in result.output and "at none" not in result.output
    assert "after 1 iteration (" in result.output


# --- unwritable places ------------------------------------------------------------------


def test_out_below_a_file_is_one_line(tmp_path: Path) -> None:
    spec = write_tiny_spec(tmp_path)
    (tmp_path / "afile").write_text("mine")
    result = invoke("train", spec, "--out", tmp_path / "afile" / "run")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"cannot write the run folder {tmp_path / 'afile' / 'run'}: " in result.output
    assert (tmp_path / "afile").read_text() == "mine"


def test_full_disk_during_a_checkpoint_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(obj: object, path: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(ckpt_io, "save_atomic", full)
    spec, out = write_tiny_spec(tmp_path), tmp_path / "run"
    result = invoke("train", spec, "--out", out, "--iterations", "4")
    assert (
        result.exit_code == 1
        and result.exception is None
        or isinstance(result.exception, SystemExit)
    )
    assert (
        f"error: cannot write the checkpoint {out / 'last.pt'}: No space left on device"
        in result.output
    ), result.output


def test_read_only_run_folder_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = Path.write_bytes

    def read_only(self: Path, data: bytes) -> int:
        if self.name.startswith(".resgraph-write-test"):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", read_only)
    spec, out = write_tiny_spec(tmp_path), tmp_path / "run"
    result = invoke("train", spec, "--out", out)
    assert result.exit_code == 1
    assert f"cannot write the run folder {out}: Permission denied" in result.output


# --- output -----------------------------------------------------------------------------


ROW = {
    "epoch": 1.0,
    "iteration": 10,
    "lr": 0.1,
    "train_loss": 2.5,
    "train_error": 0.85,
    "test_loss": 2.619,
    "test_error": 0.9125,
    "val_error": None,
    "images_per_s": 111.0,
    "time_s": 14.0,
}


def test_progress_line_keeps_the_test_error_on_80_columns() -> None:
    full = report.row_line(ROW, 640)
    assert "test err 91.25%" in full and "img/s" in full and len(full) > 80
    narrow = report.row_line(ROW, 640, width=80, eta="3m00s")
    assert len(narrow) <= 80 and "test err 91.25%" in narrow and "iter 10/640" in narrow
    assert "train err 85.00%" in narrow and "ETA 3m00s" in narrow
    tiny = report.row_line(ROW, 640, width=40)
    assert "test err 91.25%" in tiny and len(tiny) <= 40


def test_fit_drops_least_important_first() -> None:
    parts = [("a" * 5, 0), ("b" * 5, 2), ("c" * 5, 1)]
    assert report.fit(parts, None) == "aaaaa  bbbbb  ccccc"
    assert report.fit(parts, 12) == "aaaaa  ccccc"
    assert report.fit(parts, 3) == "aaa"
    assert report.plural(1, "iteration") == "1 iteration"
    assert report.plural(1000, "iteration") == "1,000 iterations"


def test_batch_split_error_comes_from_rank0_only(tmp_path: Path) -> None:
    spec = write_tiny_spec(tmp_path)
    opts = cfg.TrainOptions(spec=spec, out=tmp_path / "run", batch_size=33)
    cpu = torch.device("cpu")
    with pytest.raises(click.exceptions.Exit):
        loop.Trainer(opts, distributed.Dist(rank=1, world=2), cpu)
    with pytest.raises(TrainError, match="batch size 33 does not split evenly over 2"):
        loop.Trainer(opts, distributed.Dist(rank=0, world=2), cpu)


# --- signals ----------------------------------------------------------------------------


def test_a_repeated_signal_is_the_same_request(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    stop = loop.StopRequest()
    stop._handle(signal.SIGTERM, None)
    assert stop.signum == signal.SIGTERM
    now[0] += loop.REPEAT_WINDOW_S - 0.5
    stop._handle(signal.SIGTERM, None)  # torchrun forwarding the scheduler's signal
    with pytest.raises(KeyboardInterrupt):
        stop._handle(signal.SIGINT, None)  # another signal: abort
    now[0] += 1.0
    with pytest.raises(KeyboardInterrupt):
        stop._handle(signal.SIGTERM, None)  # the same one, later: abort
    stop.saving = True
    stop._handle(signal.SIGINT, None)  # never in the middle of the checkpoint write
    assert stop.signum == signal.SIGTERM


def test_process_group_is_left_after_a_barrier(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(distributed.dist, "barrier", lambda: calls.append("barrier"))
    monkeypatch.setattr(distributed.dist, "destroy_process_group", lambda: calls.append("destroy"))
    distributed.Dist(rank=0, world=2).close()
    assert calls == ["barrier", "destroy"]
    calls.clear()
    distributed.Dist(rank=0, world=2).close(wait=False)  # after an error
    assert calls == ["destroy"]
    calls.clear()

    def gone() -> None:
        raise RuntimeError("Connection reset by peer")

    monkeypatch.setattr(distributed.dist, "barrier", gone)  # another process was killed
    distributed.Dist(rank=0, world=2).close()
    assert calls == ["destroy"]


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


def test_eval_and_resume_apply_set(finished: tuple[Path, Path]) -> None:
    spec, out = finished
    weights = str(out / "last.pt")
    warned = CliRunner().invoke(
        main, ["eval", str(spec), "--weights", weights, "--set", "head.dropout=0.2"]
    )
    assert warned.exit_code == 0, warned.output
    assert "warning:" in warned.output and "head: the run has" in warned.output
    refused = invoke("train", spec, "--out", out, "--resume", "--set", "stages[0].repeats=1")
    assert refused.exit_code == 1
    assert "trained from another architecture (stages: the run has" in refused.output
