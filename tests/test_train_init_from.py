"""``resgraph train --init-from``: a new run starts at iteration 0 from the given weights
(a state_dict or a run's last.pt), strictly loaded, recorded in config.yaml; refused with
--resume and for weights of another network, in one line, before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner
from train_helpers import (
    one_thread,  # noqa: F401 (an autouse fixture: one thread)
    write_tiny_spec,
)
from train_hooks import with_callbacks

from helpers import fill
from resgraph import build_module, load_spec
from resgraph.cli import main
from resgraph.train import checkpoint as ckpt_io
from resgraph.train import loop

pytestmark = pytest.mark.slow  # trains, exports or builds large networks


class FirstWeights(loop.Callback):
    """The model's parameters and the iteration when the first loss is computed (before
    any step; the forward pass has moved BN's running statistics already)."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, dict[str, torch.Tensor]]] = []

    def on_loss(self, trainer: loop.Trainer, iteration: int, loss: torch.Tensor) -> torch.Tensor:
        if not self.seen:
            state = {k: v.detach().clone() for k, v in trainer.raw.named_parameters()}
            self.seen.append((iteration, state))
        return loss


def _train(monkeypatch, *args: object):  # type: ignore[no-untyped-def]
    hook = FirstWeights()
    with_callbacks(monkeypatch, hook)
    result = CliRunner().invoke(
        main, ["train", *map(str, args), "--iterations", "2", "--eval-every", "2"]
    )
    return result, hook


@pytest.fixture
def weights(tmp_path: Path) -> tuple[Path, Path, dict[str, torch.Tensor]]:
    spec = write_tiny_spec(tmp_path)
    state = fill(build_module(load_spec(spec)).state_dict())
    path = tmp_path / "w.pt"
    torch.save({"model_state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    return spec, path, state


def _equal(params: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> bool:
    """``params`` (named parameters) equal ``state``'s entries of those names."""
    return len(params) > 0 and all(torch.equal(v, state[k]) for k, v in params.items())


def test_a_run_starts_at_iteration_0_from_the_weights(tmp_path, monkeypatch, weights):
    spec, path, state = weights
    out = tmp_path / "run"
    result, hook = _train(monkeypatch, spec, "--out", out, "--init-from", path)
    assert result.exit_code == 0, result.output
    [(iteration, first)] = hook.seen
    assert iteration == 0 and _equal(first, state)
    assert f"starting from the weights in {path}" in result.stdout
    assert yaml.safe_load((out / "config.yaml").read_text())["init_from"] == str(path)
    ck = ckpt_io.load(out / "last.pt")
    assert ck["config"]["init_from"] == str(path) and ck["data"]["iteration"] == 2
    assert len(ck["optimizer"]["state"]) == len(list(build_module(load_spec(spec)).parameters()))

    # a run's own last.pt is a starting point too; without --init-from the weights differ
    again, hook = _train(
        monkeypatch, spec, "--out", tmp_path / "again", "--init-from", out / "last.pt"
    )
    assert again.exit_code == 0, again.output
    assert hook.seen[0][0] == 0 and _equal(hook.seen[0][1], ck["model"])
    fresh, hook = _train(monkeypatch, spec, "--out", tmp_path / "fresh")
    assert fresh.exit_code == 0, fresh.output
    assert not torch.equal(hook.seen[0][1]["conv1.weight"], state["conv1.weight"])
    assert yaml.safe_load((tmp_path / "fresh" / "config.yaml").read_text())["init_from"] is None


def test_init_from_with_resume_is_refused(tmp_path, monkeypatch, weights):
    spec, path, _ = weights
    out = tmp_path / "run"
    result, hook = _train(monkeypatch, spec, "--out", out, "--init-from", path, "--resume")
    assert result.exit_code == 1 and not hook.seen
    assert result.stderr.startswith("error: --init-from starts a new run")
    assert result.stderr.count("\n") == 1 and not out.exists()


def test_weights_of_another_network_are_one_line_naming_the_file(tmp_path, monkeypatch, weights):
    spec, _, state = weights
    other = tmp_path / "other.pt"
    wider = {
        k: torch.zeros(32, 16, 3, 3) if k == "layer2.0.conv1.weight" else v
        for k, v in state.items()
    }
    torch.save(wider, other)
    out = tmp_path / "run"
    result, hook = _train(monkeypatch, spec, "--out", out, "--init-from", other)
    assert result.exit_code == 1 and not hook.seen and not out.exists()
    assert result.stderr.count("error:") == 1
    line = next(x for x in result.stderr.splitlines() if x.startswith("error:"))
    assert line.startswith(f"error: {other}: the weights do not fit this spec")
    assert "layer2.0.conv1.weight (32, 16, 3, 3) vs (16, 8, 3, 3)" in line
    assert "resgraph import-weights --partial" in line

    missing = tmp_path / "missing.pt"
    result, _ = _train(monkeypatch, spec, "--out", out, "--init-from", missing)
    assert result.exit_code == 1 and not out.exists()
    assert result.stderr == f"error: {missing}: no such checkpoint file\n"


@pytest.mark.subprocess
@pytest.mark.slow
def test_two_gloo_processes_start_from_the_weights(tmp_path, weights):
    """Under torchrun every process loads the file; the replicas agree and, after one step
    at a negligible lr, still hold the file's weights."""
    import subprocess
    import sys

    from train_helpers import free_port, run_env

    spec, path, state = weights
    out = tmp_path / "run"
    command = [
        *(sys.executable, "-m", "torch.distributed.run", "--nnodes", "1"),
        *("--nproc_per_node", "2", "--master_addr", "127.0.0.1"),
        *("--master_port", str(free_port()), "-m", "resgraph", "train", str(spec)),
        *("--out", str(out), "--init-from", str(path), "--iterations", "1", "--lr", "1e-9"),
    ]
    env = run_env(GLOO_SOCKET_IFNAME="lo")
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("starting from the weights in") == 1  # rank 0 alone says so
    assert "2 processes end with identical parameters: yes" in done.stdout
    model = ckpt_io.load(out / "last.pt")["model"]
    for key in ("conv1.weight", "layer2.1.conv2.weight", "fc.weight"):
        torch.testing.assert_close(model[key], state[key], rtol=0, atol=1e-6)
