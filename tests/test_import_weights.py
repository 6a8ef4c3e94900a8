"""`resgraph import-weights` (strict): a renamed checkpoint round-trips, and a mismatch names
the right tensor pair and writes nothing."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

import resgraph
from helpers import CIFAR20, fill
from resgraph.cli import main

# --- import-weights: the mismatch names the right tensor ------------------------------------

NET_B = CIFAR20.replace("shortcut: A", "shortcut: B")


def _import(tmp_path, state: dict[str, torch.Tensor]):  # type: ignore[no-untyped-def]
    spec = tmp_path / "net.yaml"
    spec.write_text(NET_B)
    checkpoint, out = tmp_path / "theirs.pt", tmp_path / "ours.pt"
    torch.save(state, checkpoint)
    result = CliRunner().invoke(
        main, ["import-weights", str(spec), str(checkpoint), "-o", str(out)]
    )
    return result, out


def _ours() -> dict[str, torch.Tensor]:
    model = resgraph.build_module(resgraph.lower(resgraph.load_spec(NET_B)), seed=0)
    return {
        k: v for k, v in fill(model.state_dict()).items() if not k.endswith("num_batches_tracked")
    }


def test_import_weights_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    state = _ours()
    renamed = {"module." + k.replace("fc.", "linear."): v for k, v in state.items()}
    result, out = _import(tmp_path, renamed)
    assert result.exit_code == 0, result.output
    converted = torch.load(out, weights_only=True)
    assert all(torch.equal(converted[k], v) for k, v in state.items())


def test_import_weights_checks_the_last_pair_too(tmp_path) -> None:  # type: ignore[no-untyped-def]
    state = _ours()
    last = list(state)[-1]
    assert last == "fc.bias"
    state[last] = torch.zeros(11)
    result, out = _import(tmp_path, state)
    assert result.exit_code == 1 and not out.exists()
    assert "fc.bias" in result.output and "11" in result.output, result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("side", ["checkpoint longer", "checkpoint shorter"])
def test_import_weights_count_mismatch_names_the_unpaired_tensor(tmp_path, side: str) -> None:  # type: ignore[no-untyped-def]
    state = _ours()
    count = len(state)
    if side == "checkpoint longer":
        state["extra.weight"] = torch.zeros(3)
        unpaired, paired = "extra.weight", "fc.bias"
    else:
        del state["fc.bias"]
        unpaired, paired = "fc.bias", "fc.weight"
    result, out = _import(tmp_path, state)
    assert result.exit_code == 1 and not out.exists()
    assert unpaired in result.output and paired not in result.output, result.output
    assert str(count) in result.output and str(len(state)) in result.output
