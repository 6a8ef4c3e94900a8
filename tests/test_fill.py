"""The deterministic fill shared by scripts/timm_fixture.py and the zoo tests (tests/fill.py)."""

from __future__ import annotations

import math
import zlib

import torch
from fill import fill, fill_, last_branch_norms, reference_input

STATE = {
    "conv1.weight": torch.empty(8, 3, 3, 3),
    "bn1.weight": torch.empty(8),
    "bn1.running_var": torch.empty(8),
    "bn1.num_batches_tracked": torch.empty((), dtype=torch.long),
    "layer1.0.bn1.weight": torch.empty(8),
    "layer1.0.bn2.weight": torch.empty(8),
    "layer1.0.bn3.weight": torch.empty(8),
    "layer1.0.se.fc1.bias": torch.empty(4),
    "layer2.0.bn1.weight": torch.empty(8),
    "layer2.0.bn2.weight": torch.empty(8),
    "fc.weight": torch.empty(10, 2048),
}


def test_values_depend_on_key_and_shape_only_not_on_order():
    forward = fill(STATE)
    backward = fill(dict(reversed(list(STATE.items()))))
    assert all(torch.equal(forward[k], backward[k]) for k in STATE)
    assert not torch.equal(forward["layer1.0.bn1.weight"], forward["layer2.0.bn1.weight"])


def test_the_documented_rule():
    out = fill(STATE)
    phase = 2 * math.pi * zlib.crc32(b"conv1.weight") / 2**32
    wave = torch.sin(torch.arange(8 * 27, dtype=torch.float64) * 0.37 + phase)
    expected = (wave * math.sqrt(4 / 27)).reshape(8, 3, 3, 3).float()
    torch.testing.assert_close(out["conv1.weight"], expected, rtol=0, atol=1e-6)
    assert out["bn1.running_var"].min() >= 1 and out["bn1.running_var"].max() <= 2
    assert out["bn1.num_batches_tracked"].item() == 0
    assert out["layer1.0.se.fc1.bias"].abs().max() <= 0.05
    assert 0.4 <= out["bn1.weight"].min() and out["bn1.weight"].max() <= 0.6
    assert out["layer1.0.bn3.weight"].max() <= 0.25  # the last norm of a branch is small


def test_the_last_norm_of_each_branch():
    assert last_branch_norms(STATE) == {"layer1.0.bn3.weight", "layer2.0.bn2.weight"}


def test_fill_in_place_matches_fill():
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    expected = fill(module.state_dict())
    fill_(module)
    assert all(torch.equal(v, expected[k]) for k, v in module.state_dict().items())


def test_reference_input_is_fixed():
    x = reference_input()
    assert x.shape == (2, 3, 64, 64) and x.dtype == torch.float64
    assert x[0, 0, 0, 1].item() == math.sin(0.01)
