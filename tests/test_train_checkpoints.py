"""Training runs that only end right when the trainer restores every random state and writes
checkpoints so that a failed save keeps the previous one."""

from __future__ import annotations

import io
import signal
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from train_helpers import write_tiny_spec
from train_hooks import SignalAfter, with_callbacks

from resgraph.cli import main

pytestmark = pytest.mark.slow  # trains, exports or builds large networks

# Randomness after the data order: dropout before the classifier and stochastic depth.
RANDOM_LAYERS = "stochastic_depth: {final_survival: 0.5}\nhead: {dropout: 0.5}\n"


def _state(path: Path) -> dict:  # type: ignore[type-arg]
    return torch.load(path, map_location="cpu", weights_only=True)


def _invoke(*args: object, **env: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, [str(a) for a in args], env=env or None)


def test_interrupt_and_resume_with_dropout_and_stochastic_depth_is_bitwise_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Interrupted after iteration 6, resumed: the same weights as a run that was never
    interrupted, although every step draws dropout masks and branch drops from the CPU
    generator, which the checkpoint must carry."""
    torch.set_num_threads(1)
    spec = write_tiny_spec(tmp_path, RANDOM_LAYERS)
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    assert _invoke("train", spec, "--out", whole, "-q").exit_code == 0
    with monkeypatch.context() as m:
        with_callbacks(m, SignalAfter(signal.SIGINT, 5))
        stopped = _invoke("train", spec, "--out", broken, "-q")
    assert stopped.exit_code == 130, stopped.output
    assert _state(broken / "last.pt")["data"]["iteration"] == 6
    torch.manual_seed(12345)  # whatever state the process is in, resume must not depend on it
    resumed = _invoke("train", spec, "--out", broken, "--resume", "-q")
    assert resumed.exit_code == 0, resumed.output
    a, b = _state(whole / "last.pt")["model"], _state(broken / "last.pt")["model"]
    assert a.keys() == b.keys()
    for key, tensor in a.items():
        assert torch.equal(tensor, b[key]), key


class DiskFull(OSError):
    pass


def test_a_checkpoint_save_failing_half_way_keeps_the_previous_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second checkpoint's write stops after half its bytes (a full disk): the first
    one stays readable, and --resume continues from it."""
    spec = write_tiny_spec(tmp_path)
    out = tmp_path / "run"
    real_save = torch.save
    calls = []

    def failing_save(obj, f, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 1:
            return real_save(obj, f, *args, **kwargs)
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        half = buffer.getvalue()[: len(buffer.getvalue()) // 2]
        if isinstance(f, str | Path):
            with open(f, "wb") as handle:
                handle.write(half)
        else:
            f.write(half)
        raise DiskFull(28, "No space left on device")

    monkeypatch.setattr(torch, "save", failing_save)
    torch.set_num_threads(1)
    result = CliRunner().invoke(
        main, ["train", str(spec), "--out", str(out), "--checkpoint-every", "4", "-q"]
    )
    monkeypatch.setattr(torch, "save", real_save)
    assert result.exit_code != 0 and len(calls) == 2
    ck = _state(out / "last.pt")
    assert ck["data"]["iteration"] == 4
    resumed = CliRunner().invoke(main, ["train", str(spec), "--out", str(out), "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert "resuming at iteration 4" in resumed.output
    assert _state(out / "last.pt")["data"]["iteration"] == 12
