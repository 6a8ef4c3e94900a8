"""Both engines and the emitted source: zero-init of the right tensor in both engines, source
that does not depend on the hash seed, and loops instead of a line per block."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest
import torch

import resgraph
from helpers import ROOT

# --- zero-init of each residual branch's last BN, in both engines ---------------------------

BOTTLENECK_NET = """\
name: Zero init net
input: {channels: 3, size: 16}
num_classes: 10
stem: {layout: cifar, width: 8}
block: bottleneck
shortcut: B
zero_init_residual: true
stages:
  - {width: 4, repeats: 2, stride: 1}
  - {width: 8, repeats: 2, stride: 2}
"""


def _bn_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {
        k[: -len(".weight")]: v
        for k, v in model.state_dict().items()
        if k.endswith(".weight") and v.dim() == 1
    }


def _models(text: str) -> list[torch.nn.Module]:
    ir = resgraph.lower(resgraph.load_spec(text))
    return [
        resgraph.build_model(ir, "graph", seed=0),
        resgraph.build_model(ir, "generated", seed=0),
    ]


@pytest.mark.parametrize("engine", [0, 1], ids=["graph", "generated"])
@pytest.mark.parametrize("block, last", [("bottleneck", "bn3"), ("basic", "bn2")])
def test_zero_init_zeroes_the_weight_of_each_branchs_last_bn(
    engine: int, block: str, last: str
) -> None:
    model = _models(BOTTLENECK_NET.replace("block: bottleneck", f"block: {block}"))[engine]
    weights = _bn_weights(model)
    blocks = sorted(
        {k.rsplit(".", 1)[0] for k in weights if k.startswith("layer") and "downsample" not in k}
    )
    assert len(blocks) == 4
    for name, w in weights.items():
        zeroed = name.startswith("layer") and name.endswith("." + last)
        assert torch.all(w == 0) if zeroed else torch.all(w == 1), name
    for name, bias in model.state_dict().items():  # biases keep their 0 in every BN
        if name.endswith(".bias") and bias.dim() == 1 and not name.startswith("fc"):
            assert torch.all(bias == 0), name
    # so each identity block starts as its shortcut: the block computes relu(x)
    model.eval()
    channels = 16 if block == "bottleneck" else 4
    x = torch.randn(2, channels, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(model.get_submodule("layer1.1")(x), torch.relu(x))


def test_zero_init_off_and_plain_nets_keep_every_bn_at_one() -> None:
    for text in (
        BOTTLENECK_NET.replace("zero_init_residual: true", "zero_init_residual: false"),
        BOTTLENECK_NET.replace("shortcut: B", "shortcut: none"),
    ):
        for model in _models(text):
            assert all(torch.all(w == 1) for w in _bn_weights(model).values())


# --- emitted source: the same text whatever the hash seed -----------------------------------

MIXED = """\
name: Mixed net
input: {channels: 3, size: 16}
num_classes: 10
stem: {layout: cifar, width: 8}
block: {type: basic, join: gate}
shortcut: A
stochastic_depth: {final_survival: 0.5}
zero_init_residual: true
stages:
  - {width: 8, repeats: 2, stride: 1}
  - {width: 16, repeats: 2, stride: 2, block: {type: bottleneck, preactivation: true},
     shortcut: B}
  - {width: 64, repeats: 2, stride: 2, block: {type: basic, convs: 3}}
  - {repeats: 2, stride: 1, block: {type: dense, growth_rate: 4}}
"""

EMIT = """
import hashlib, sys
import resgraph
for text in sys.stdin.read().split("\\n---\\n"):
    source = resgraph.emit_source(resgraph.lower(resgraph.load_spec(text)))
    print(hashlib.sha256(source.encode()).hexdigest())
"""


@pytest.mark.subprocess
def test_emitted_source_does_not_depend_on_the_hash_seed() -> None:
    texts = [
        MIXED,
        (ROOT / "specs" / "cifar_highway_resnet20.yaml").read_text(),
        (ROOT / "specs" / "cifar_resnet110_stochastic_depth.yaml").read_text(),
    ]
    payload = "\n---\n".join(texts)
    outputs = set()
    for seed in ("0", "1", "2", "3", "4"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
        run = subprocess.run(
            [sys.executable, "-c", EMIT],
            input=payload,
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr
        outputs.add(run.stdout)
    assert len(outputs) == 1
    # and in this process, the same text again
    here = [
        hashlib.sha256(
            resgraph.emit_source(resgraph.lower(resgraph.load_spec(t))).encode()
        ).hexdigest()
        for t in texts
    ]
    assert outputs == {"\n".join(here) + "\n"}


# --- emitted source: loops, not one line per block ------------------------------------------


@pytest.mark.parametrize("extra", ["", "stochastic_depth: {final_survival: 0.5}\n"])
def test_emitted_source_grows_by_far_less_than_a_line_per_block(extra: str) -> None:
    """Identical blocks become one loop; blocks that differ in one argument only (stochastic
    depth's survival probability) one loop over the values."""
    spec = (ROOT / "specs" / "cifar_resnet110.yaml").read_text() + extra
    deeper = spec.replace("repeats: 18", "repeats: 48")
    short, long = (
        resgraph.emit_source(resgraph.lower(resgraph.load_spec(t))) for t in (spec, deeper)
    )
    assert short != long
    calls = [sum("(" in line for line in text.splitlines()) for text in (short, long)]
    assert calls[1] - calls[0] < 20  # 90 more blocks, no more constructor calls
