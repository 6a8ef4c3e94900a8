"""Reading and writing torch files (resgraph.torchio): the checkpoints people have are
unwrapped, damaged or foreign files give one clear line, writes are atomic and their
failures are OutputError."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from helpers import CIFAR20, fill
from resgraph import load_spec, torchio
from resgraph.cli import main
from resgraph.emit.graph_module import build_module
from resgraph.errors import OutputError, WeightsError
from resgraph.train import checkpoint as ckpt_io

BANNED = ("weights_only=False", "file an issue", "Traceback", "WeightsUnpickler")


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    return fill(build_module(load_spec(CIFAR20)).state_dict())


def _prefixed(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {prefix + k: v for k, v in state.items()}


@pytest.mark.parametrize(
    "wrap",
    [
        lambda s: s,
        # pytorch/examples' imagenet main.py: a tensor beside the state_dict
        lambda s: {
            "epoch": 90,
            "arch": "resnet",
            "state_dict": _prefixed(s, "module."),
            "best_acc1": torch.tensor(76.1),
            "optimizer": {"state": {}},
        },
        lambda s: {"model_state_dict": s, "optimizer_state_dict": {}, "loss": 0.3},
        lambda s: {"model": _prefixed(s, "_orig_mod."), "data_mean": torch.zeros(3, 1, 1)},
        lambda s: {"net": _prefixed(s, "module._orig_mod."), "acc": 91.2},
        lambda s: {"checkpoint": 1, "weights": {"state_dict": s}},
        lambda s: _prefixed(s, "_orig_mod.module."),
    ],
    ids=["plain", "examples", "model_state_dict", "model", "net", "nested", "both"],
)
def test_read_state_dict_unwraps_real_checkpoints(tmp_path, state, wrap):
    path = tmp_path / "ckpt.pt"
    torch.save(wrap(state), path)
    got, _ = torchio.read_state_dict(path)
    assert list(got) == list(state)
    assert all(torch.equal(got[k], state[k]) for k in state)


def test_import_weights_accepts_resgraphs_own_last_pt(tmp_path, state):
    """A run's last.pt holds the weights under 'model' beside tensors such as data_mean."""
    spec = tmp_path / "net.yaml"
    spec.write_text(CIFAR20)
    last = tmp_path / "last.pt"
    ckpt_io.save_atomic(
        {
            "format": ckpt_io.FORMAT,
            "model": state,
            "data_mean": torch.zeros(3, 1, 1),
            "elapsed_s": 1.0,
            "history": [],
        },
        last,
    )
    out = tmp_path / "out" / "imported.pt"
    result = CliRunner().invoke(main, ["import-weights", str(spec), str(last), "-o", str(out)])
    assert result.exit_code == 0, result.output
    loaded = torch.load(out, weights_only=True)
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    # eval's reader finds the same weights and the checkpoint itself
    weights, ckpt = ckpt_io.read_weights(last)
    assert ckpt is not None and ckpt["elapsed_s"] == 1.0
    assert all(torch.equal(weights[k], state[k]) for k in state)


def test_a_mapping_without_weights_names_its_keys(tmp_path):
    path = tmp_path / "meta.pt"
    torch.save({"epoch": 3, "best_acc1": torch.tensor(1.0)}, path)
    with pytest.raises(WeightsError, match=r"holds no state_dict .*its keys are epoch, best_acc1"):
        torchio.read_state_dict(path)


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    files = {}
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    files["empty"] = empty, "the file is empty (0 bytes)"
    noise = tmp_path / "noise.pt"
    noise.write_bytes(bytes((i * 7919 + 13) % 256 for i in range(4096)))
    files["random bytes"] = noise, "not a PyTorch checkpoint (neither a zip archive nor a pickle)"
    fake = tmp_path / "fake.pt"  # starts like a pickle, then noise
    fake.write_bytes(b"\x80\x02" + bytes((i * 31 + 7) % 256 for i in range(512)))
    files["pickle noise"] = fake, "not a readable PyTorch checkpoint (damaged or truncated)"
    spec = tmp_path / "net.yaml"
    spec.write_text(CIFAR20)
    files["yaml"] = spec, "not a PyTorch checkpoint (it is a text file, a YAML spec?)"
    truncated = tmp_path / "truncated.pt"
    torch.save({"w": torch.zeros(1000)}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:300])
    files["truncated"] = truncated, "not a readable PyTorch checkpoint (damaged or truncated)"
    pickled = tmp_path / "pickled.pt"
    torch.save({"model": torch.nn.Linear(2, 2)}, pickled)
    files["pickled module"] = pickled, "cannot be read safely"
    files["missing"] = tmp_path / "nope.pt", "no such checkpoint file"
    files["folder"] = tmp_path, "is a folder"
    return files


@pytest.mark.parametrize(
    "kind",
    [
        "empty",
        "random bytes",
        "pickle noise",
        "yaml",
        "truncated",
        "pickled module",
        "missing",
        "folder",
    ],
)
def test_unreadable_files_give_one_clear_line(tmp_path, kind):
    path, message = _bad_files(tmp_path)[kind]
    with pytest.raises(WeightsError) as info:
        torchio.load(path)
    text = str(info.value)
    assert text.startswith(f"{path}: ") and message in text
    assert "\n" not in text and not any(b in text for b in BANNED)
    assert not text.endswith(": ")


@pytest.mark.parametrize("kind", ["empty", "random bytes", "yaml"])
@pytest.mark.parametrize("command", ["import-weights", "eval"])
def test_commands_print_the_line_and_exit_1(tmp_path, kind, command):
    path, message = _bad_files(tmp_path)[kind]
    spec = tmp_path / "s.yaml"
    spec.write_text(CIFAR20)
    args = (
        ["import-weights", str(spec), str(path), "-o", str(tmp_path / "o.pt")]
        if command == "import-weights"
        else ["eval", str(spec), "--weights", str(path)]
    )
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {path}: ") and message in result.stderr
    assert result.stderr.count("\n") == 1
    assert not any(b in result.output for b in BANNED)
    assert not (tmp_path / "o.pt").exists()


def test_resume_from_an_empty_checkpoint_is_one_clear_line(tmp_path):
    empty = tmp_path / "last.pt"
    empty.write_bytes(b"")
    with pytest.raises(WeightsError, match=r"last\.pt: the file is empty \(0 bytes\)"):
        ckpt_io.load(empty)


# -- writing ---------------------------------------------------------------------------------
def test_save_is_atomic_and_readable(tmp_path, state):
    path = tmp_path / "a" / "b.pt"
    torchio.save(state, path)
    assert list(torchio.load(path)) == list(state)
    assert sorted(p.name for p in path.parent.iterdir()) == ["b.pt"]


def test_a_full_disk_keeps_the_old_file_and_says_why(tmp_path, monkeypatch, state):
    path = tmp_path / "last.pt"
    torchio.save({"old": torch.ones(1)}, path)
    before = path.read_bytes()

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OutputError) as info:
        ckpt_io.save_atomic(state, path)
    assert str(info.value) == f"{path}: cannot write: no space left on the device"
    assert isinstance(info.value, OSError)  # callers that catch OSError still catch it
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temporary left


def test_import_weights_below_a_file_or_into_a_read_only_folder(tmp_path, monkeypatch, state):
    spec = tmp_path / "net.yaml"
    spec.write_text(CIFAR20)
    source = tmp_path / "src.pt"
    torch.save(state, source)
    runfile = tmp_path / "runfile"
    runfile.write_text("a file")
    result = CliRunner().invoke(
        main, ["import-weights", str(spec), str(source), "-o", str(runfile / "x.pt")]
    )
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: {runfile / 'x.pt'}: cannot write: {runfile} is a file, not a folder\n"
    )

    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr("tempfile.mkstemp", denied)
    out = tmp_path / "ro" / "x.pt"
    result = CliRunner().invoke(main, ["import-weights", str(spec), str(source), "-o", str(out)])
    assert result.exit_code == 1
    assert result.stderr == f"error: {out}: cannot write: permission denied\n"


def test_import_weights_keeps_an_existing_output(tmp_path, state):
    spec = tmp_path / "net.yaml"
    spec.write_text(CIFAR20)
    source = tmp_path / "src.pt"
    torch.save(state, source)
    out = tmp_path / "out.pt"
    out.write_bytes(b"precious")
    args = ["import-weights", str(spec), str(source), "-o", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and "pass --force" in result.stderr
    assert out.read_bytes() == b"precious"
    assert CliRunner().invoke(main, [*args, "--force"]).exit_code == 0
    assert list(torchio.load(out)) == list(state)
