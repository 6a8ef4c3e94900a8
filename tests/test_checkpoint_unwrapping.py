"""Finding the state_dict inside a checkpoint: as deep as it is wrapped (within the limit),
and never one of two different ones picked silently."""

from __future__ import annotations

import pytest
import torch

from resgraph.errors import WeightsError
from resgraph.torchio import MAX_NESTING, unwrap_state_dict

A = {"conv.weight": torch.ones(2), "conv.bias": torch.zeros(2)}
B = {"conv.weight": torch.full((2,), 3.0), "conv.bias": torch.zeros(2)}


def _wrap(state, depth):
    keys = ["state_dict", "model", "net", "weights", "params"]
    for i in range(depth):
        state = {keys[i % len(keys)]: state, "epoch": i}
    return state


@pytest.mark.parametrize("depth", range(MAX_NESTING + 1))
def test_a_state_dict_is_found_down_to_the_limit(depth):
    found = unwrap_state_dict(_wrap(A, depth))
    assert found.keys() == A.keys() and torch.equal(found["conv.weight"], A["conv.weight"])


def test_deeper_is_refused_naming_the_top_keys():
    with pytest.raises(WeightsError, match=r"holds no state_dict .*its keys are params, epoch"):
        unwrap_state_dict(_wrap(A, MAX_NESTING + 1), "ck.pt")


def test_two_different_state_dicts_are_refused():
    with pytest.raises(WeightsError) as info:
        unwrap_state_dict({"state_dict": A, "model": B}, "ck.pt")
    assert str(info.value) == (
        "ck.pt: holds different state_dicts under ['state_dict'] and ['model']; save the one "
        "you mean on its own (torch.save(checkpoint['state_dict'], 'weights.pt')) and pass that"
    )


def test_the_same_state_dict_twice_is_taken():
    copy = {k: v.clone() for k, v in A.items()}
    found = unwrap_state_dict({"state_dict": A, "model": {"module": copy}})
    assert torch.equal(found["conv.weight"], A["conv.weight"])
