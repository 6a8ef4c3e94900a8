"""``import-weights --partial``: BatchNorm's step counters (scalars, so their shape fits
anywhere) never make a match on their own; they move only with their layer's statistics."""

from __future__ import annotations

import pytest
import torch

from helpers import CIFAR20
from resgraph.emit.graph_module import build_module
from resgraph.errors import WeightsError
from resgraph.passes import lower
from resgraph.spec import load_spec
from resgraph.transfer import STILL_COUNTER, transfer


@pytest.fixture(scope="module")
def net():
    ir = lower(load_spec(CIFAR20))
    return ir, build_module(ir, seed=0).state_dict()


def _counters(state):
    return {k: torch.tensor(7) for k in state if k.endswith(".num_batches_tracked")}


def test_counters_alone_are_no_fit(net):
    ir, target = net
    source = {**_counters(target), "features.0.weight": torch.ones(3)}
    with pytest.raises(WeightsError, match="not one tensor of the checkpoint"):
        transfer(ir, target, source)


def test_a_counter_moves_with_its_layers_statistics(net):
    ir, target = net
    source = {k: target[k] + 1 for k in ("conv1.weight", "bn1.running_mean", "bn1.running_var")}
    source["bn1.num_batches_tracked"] = torch.tensor(7)
    state, report = transfer(ir, target, source)
    assert state["bn1.num_batches_tracked"].item() == 7
    moved = {e.name for e in report.entries if e.status == "moved"}
    assert moved == {
        "conv1.weight",
        "bn1.running_mean",
        "bn1.running_var",
        "bn1.num_batches_tracked",
    }


@pytest.mark.parametrize("missing", ["bn1.running_mean", "bn1.running_var"])
def test_a_counter_without_its_statistics_stays_new(net, missing):
    ir, target = net
    source = {k: target[k] + 1 for k in ("conv1.weight", "bn1.running_mean", "bn1.running_var")}
    source[missing] = torch.ones(5)  # another width: the statistics do not move
    source["bn1.num_batches_tracked"] = torch.tensor(7)
    state, report = transfer(ir, target, source)
    assert state["bn1.num_batches_tracked"].item() == target["bn1.num_batches_tracked"].item()
    by = {(e.name, e.status): e.note for e in report.entries}
    assert by[("bn1.num_batches_tracked", "new")] == STILL_COUNTER
    assert by[("bn1.num_batches_tracked", "dropped")] == STILL_COUNTER
    totals = report.totals()
    assert totals["moved"]["tensors"] + totals["dropped"]["tensors"] == len(source)
