"""End-to-end training runs on a tiny spec: run folder contents, refusing to overwrite,
kill-and-resume bitwise equality, Ctrl-C, the NaN guard, eval, and the CLI's options."""

from __future__ import annotations

import csv
import signal
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from train_helpers import (
    make_cifar_folder,
    one_thread,  # noqa: F401 (an autouse fixture: one thread)
    resgraph,
    write_tiny_spec,
)
from train_hooks import NanAt, SignalAfter, with_callbacks

from resgraph.cli import main
from resgraph.train import checkpoint as ckpt_io
from resgraph.train.plots import COLUMNS

pytestmark = pytest.mark.slow  # trains, exports or builds large networks
pytestmark = [pytestmark, pytest.mark.xdist_group("train_run")]  # one worker trains once


def invoke(args: list[str]):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """One completed tiny run (12 iterations, evaluation every 4)."""
    tmp = tmp_path_factory.mktemp("finished")
    spec = write_tiny_spec(tmp)
    out = tmp / "run"
    result = invoke(["train", spec, "--out", out])
    assert result.exit_code == 0, result.output
    return spec, out, result.output


def test_run_folder_contents(finished: tuple[Path, Path, str]) -> None:
    spec, out, output = finished
    names = {p.name for p in out.iterdir()}
    assert {"config.yaml", "metrics.csv", "curves.png", "last.pt"} <= names
    with open(out / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == COLUMNS
    assert [int(r["iteration"]) for r in rows] == [4, 8, 12]
    assert all(0 <= float(r["test_error"]) <= 1 and float(r["images_per_s"]) > 0 for r in rows)
    assert [float(r["lr"]) for r in rows] == pytest.approx([0.1, 0.01, 0.001])  # 6 and 9 scaled
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ck = ckpt_io.load(out / "last.pt")
    for key in ("model", "optimizer", "scheduler", "rng", "data", "meter", "history", "config"):
        assert key in ck
    assert ck["complete"] and ck["data"]["iteration"] == 12
    assert ck["data"]["permutation"].shape == (1397,)
    assert {"torch", "python", "numpy"} <= set(ck["rng"][0])
    assert ck["config"]["milestones"] == [6, 9] and ck["config"]["train"]["seed"] == 0
    config = (out / "config.yaml").read_text()
    assert "spec: " + str(spec) in config and "device: cpu" in config
    assert "12 iterations" in output and "done: test error" in output


def test_existing_run_is_not_overwritten(finished: tuple[Path, Path, str]) -> None:
    spec, out, _ = finished
    before = (out / "last.pt").read_bytes()
    result = invoke(["train", spec, "--out", out])
    assert result.exit_code == 1
    assert "already holds a run" in result.output and "--resume" in result.output
    assert (out / "last.pt").read_bytes() == before
    again = invoke(["train", spec, "--out", out, "--resume"])
    assert again.exit_code == 0 and "already complete" in again.output
    changed = invoke(["train", spec, "--out", out, "--resume", "--lr", "0.05"])
    assert changed.exit_code == 1 and "lr: the run has 0.1, now 0.05" in changed.output


def test_eval_accepts_last_pt_and_plain_state_dict(
    finished: tuple[Path, Path, str], tmp_path: Path
) -> None:
    spec, out, _ = finished
    last = ckpt_io.load(out / "last.pt")["history"][-1]["test_error"]
    result = invoke(["eval", spec, "--weights", out / "last.pt"])
    assert result.exit_code == 0, result.output
    assert f"error {100 * last:.2f}%" in result.output and "of 400 wrong" in result.output
    plain = tmp_path / "weights.pt"
    torch.save({f"module.{k}": v for k, v in ckpt_io.load(out / "last.pt")["model"].items()}, plain)
    result = invoke(["eval", spec, "--weights", plain, "--dataset", "digits"])
    assert result.exit_code == 0 and "digits test set" in result.output, result.output
    bad = tmp_path / "bad.pt"
    torch.save({"fc.weight": torch.zeros(3, 3)}, bad)
    result = invoke(["eval", spec, "--weights", bad])
    assert result.exit_code == 1 and "do not fit this spec" in result.output


@pytest.mark.subprocess
def test_kill_and_resume_is_bitwise_identical(tmp_path: Path) -> None:
    """SIGKILL after iteration 6 (checkpoint at 4), resume: the same weights as a run
    that was never interrupted."""
    spec = write_tiny_spec(tmp_path)
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    args = ["train", spec, "--checkpoint-every", "4"]
    assert invoke([*args, "--out", whole]).exit_code == 0  # in this process: only the kill
    killed = resgraph([*args, "--out", broken], tmp_path, hooks=["signal=SIGKILL@6"])  # needs one
    assert killed.returncode == -signal.SIGKILL
    assert ckpt_io.load(broken / "last.pt")["data"]["iteration"] == 4
    resumed = invoke([*args, "--out", broken, "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert "resuming at iteration 4" in resumed.stdout
    a, b = ckpt_io.load(whole / "last.pt"), ckpt_io.load(broken / "last.pt")
    assert a["model"].keys() == b["model"].keys()
    for key, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][key]), key
    for pa, pb in zip(
        a["optimizer"]["state"].values(), b["optimizer"]["state"].values(), strict=True
    ):
        assert torch.equal(pa["momentum_buffer"], pb["momentum_buffer"])
    keep = ("iteration", "lr", "train_loss", "train_error", "test_loss", "test_error")
    assert [{k: r[k] for k in keep} for r in a["history"]] == [
        {k: r[k] for k in keep} for r in b["history"]
    ]


def test_ctrl_c_saves_a_checkpoint_and_resume_finishes_the_run(
    finished: tuple[Path, Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGINT during iteration 6: a checkpoint at 6, exit 130; --resume then ends with the
    weights of the uninterrupted run."""
    spec, whole, _ = finished
    out = tmp_path / "run"
    with monkeypatch.context() as m:
        with_callbacks(m, SignalAfter(signal.SIGINT, 5))
        result = invoke(["train", spec, "--out", out])
    assert result.exit_code == 130, result.output
    assert "stopped by SIGINT after iteration 6" in result.output and "--resume" in result.output
    ck = ckpt_io.load(out / "last.pt")
    assert ck["data"]["iteration"] == 6 and not ck["complete"]
    assert invoke(["train", spec, "--out", out, "--resume"]).exit_code == 0
    a, b = ckpt_io.load(whole / "last.pt")["model"], ckpt_io.load(out / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.subprocess
def test_sigterm_in_a_subprocess(tmp_path: Path) -> None:
    spec = write_tiny_spec(tmp_path)
    out = tmp_path / "run"
    result = resgraph(
        ["train", spec, "--out", out, "--iterations", "8"],
        tmp_path,
        hooks=["signal=SIGTERM@2"],
    )
    assert result.returncode == 143, result.stderr
    assert "stopped by SIGTERM after iteration 3" in result.stdout
    assert ckpt_io.load(out / "last.pt")["data"]["iteration"] == 3


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = write_tiny_spec(tmp_path)
    out = tmp_path / "run"
    with_callbacks(monkeypatch, NanAt(7))
    result = invoke(["train", spec, "--out", out])
    assert result.exit_code == 1
    assert "loss became nan between iterations 5 and 8" in result.output, result.output
    assert "last good checkpoint" in result.output and "(iteration 4)" in result.output
    ck = ckpt_io.load(out / "last.pt")
    assert ck["data"]["iteration"] == 4
    assert all(torch.isfinite(t).all() for t in ck["model"].values() if t.is_floating_point())


def test_train_on_a_cifar_folder_and_missing_data(tmp_path: Path) -> None:
    spec = tmp_path / "c.yaml"
    spec.write_text(
        write_tiny_spec(tmp_path)
        .read_text()
        .replace("size: 8", "size: 32")
        .replace("dataset: digits", "dataset: cifar10")
        .replace("iterations: 12", "iterations: 2")
        .replace("batch_size: 32", "batch_size: 20")
    )
    missing = invoke(["train", spec, "--out", tmp_path / "r0", "--data-dir", tmp_path / "none"])
    assert missing.exit_code == 1 and "CIFAR-10 not found" in missing.output
    assert not (tmp_path / "r0").exists()
    make_cifar_folder(tmp_path / "data", n=10)
    ok = invoke(["train", spec, "--out", tmp_path / "r1", "--data-dir", tmp_path / "data"])
    assert ok.exit_code == 0, ok.output
    assert "cifar10: 50 train / 10 test images" in ok.output


def test_bad_train_section_stops_the_command_with_its_location(tmp_path: Path) -> None:
    spec = write_tiny_spec(tmp_path, "  lr: -0.1\n")
    result = invoke(["train", spec, "--out", tmp_path / "run"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"{spec}:15:7: train.lr: must be > 0" in result.output, result.output
    assert not (tmp_path / "run").exists()


def test_cpu_options(tmp_path: Path) -> None:
    """bf16 autocast, channels-last and activation checkpointing run on the CPU; fp16 is
    refused with a message; the generated-source engine trains like the executed graph."""
    spec = write_tiny_spec(tmp_path)
    result = invoke(
        [
            "train",
            spec,
            "--out",
            tmp_path / "a",
            "--iterations",
            "4",
            "--amp",
            "bf16",
            "--channels-last",
            "--checkpoint-activations",
        ]
    )
    assert result.exit_code == 0, result.output
    assert "amp bf16, channels-last, checkpoint-activations" in result.output
    refused = invoke(["train", spec, "--out", tmp_path / "b", "--amp", "fp16"])
    assert refused.exit_code == 1 and "fp16 needs a CUDA GPU" in refused.output
    generated = invoke(
        [
            "train",
            spec,
            "--out",
            tmp_path / "g",
            "--iterations",
            "4",
            "--engine",
            "generated",
            "--checkpoint-activations",
        ]
    )
    assert generated.exit_code == 0, generated.output
    graph = invoke(["train", spec, "--out", tmp_path / "h", "--iterations", "4"])
    assert graph.exit_code == 0, graph.output
    a = ckpt_io.load(tmp_path / "g" / "last.pt")["model"]
    b = ckpt_io.load(tmp_path / "h" / "last.pt")["model"]
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-5) for k in a)
    both = invoke(["train", spec, "--epochs", "1", "--iterations", "3"])
    assert both.exit_code == 2 and "not both" in both.output


def test_warmup_validation_split_and_quiet(tmp_path: Path) -> None:
    extra = "  validation_split: 200\n  warmup_lr: 0.01\n  warmup_until_error: 0.95\n"
    spec = write_tiny_spec(tmp_path, extra)
    loud = invoke(["train", spec, "--out", tmp_path / "a", "--iterations", "8"])
    assert loud.exit_code == 0, loud.output
    assert "1,197 train / 400 test" in loud.output and "warm-up at lr 0.01" in loud.output
    assert "warm-up over at iteration 4" in loud.output
    history = ckpt_io.load(tmp_path / "a" / "last.pt")["history"]
    assert history[0]["lr"] == 0.01 and history[0]["val_error"] is not None
    with open(tmp_path / "a" / "metrics.csv") as f:
        assert f.readlines()[1].strip().split(",")[10] != ""  # val_error filled in
    quiet = invoke(["train", spec, "--out", tmp_path / "b", "--iterations", "4", "-q"])
    assert quiet.exit_code == 0 and quiet.output == ""


def test_checkpointed_blocks_give_the_same_gradients() -> None:
    from train_helpers import TINY_SPEC

    import resgraph as rg
    from resgraph.emit import build_model
    from resgraph.train.device import checkpoint_blocks

    ir = rg.lower(rg.load_spec(TINY_SPEC))
    plain, ckpt = build_model(ir, seed=1), build_model(ir, seed=1)
    assert checkpoint_blocks(ckpt, ir) == 4
    assert plain.state_dict().keys() == ckpt.state_dict().keys()
    x = torch.randn(8, 3, 8, 8)
    for m in (plain, ckpt):
        m(x).square().sum().backward()
    for (name, a), b in zip(plain.named_parameters(), ckpt.parameters(), strict=True):
        assert torch.allclose(a.grad, b.grad, atol=1e-6), name
    # the recomputation does not update batch-norm statistics a second time
    for (name, a), b in zip(plain.named_buffers(), ckpt.buffers(), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-6), name
