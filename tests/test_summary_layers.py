"""What `resgraph summary` reports, layer by layer: every op's label, its output shape, and
the totals; labels follow the paper's figures (He et al. 2015, Fig. 3 and Table 1)."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from click.testing import CliRunner

from helpers import ROOT
from resgraph.cli import main


def _layers(stem: str) -> dict[str, tuple[str, str]]:
    """layer name -> (op label, output shape), from the per-layer table."""
    result = CliRunner().invoke(
        main, ["summary", str(ROOT / "specs" / f"{stem}.yaml"), "--per-layer"]
    )
    assert result.exit_code == 0, result.output
    rows = {}
    lines = result.output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:2] == ["layer", "op"])
    for line in lines[start + 1 :]:
        if not line.strip() or line.startswith("-"):
            break
        name, rest = line.split(None, 1)
        cells = [c for c in rest.split("  ") if c.strip()]
        rows[name] = (cells[0].strip(), cells[1].strip())
    return rows


EXPECTED = {
    "resnet18": {
        "conv1": ("7x7 conv, 64, /2", "64x112x112"),
        "bn1": ("BN", "64x112x112"),
        "relu": ("ReLU", "64x112x112"),
        "maxpool": ("3x3 max pool, /2", "64x56x56"),
        "layer2.0.conv1": ("3x3 conv, 128, /2", "128x28x28"),
        "layer2.0.downsample.0": ("1x1 conv, 128, /2", "128x28x28"),
        "avgpool": ("global avg pool", "512"),
        "fc": ("fc, 1000", "1000"),
    },
    "cifar_resnet20": {
        "layer2.0.conv1": ("3x3 conv, 32, /2", "32x16x16"),
    },
    "resnext50_32x4d": {
        "layer1.0.conv2": ("3x3 conv, 128, g32", "128x56x56"),
        "layer4.0.conv2": ("3x3 conv, 1024, g32, /2", "1024x7x7"),
    },
    "cifar_wrn_28_10": {
        "layer1.0.dropout1": ("dropout 0.3", "160x32x32"),
    },
    "cifar_resnet110_stochastic_depth": {},
    "cifar_highway_resnet20": {
        "layer1.0.gate": ("1x1 conv, 16", "16x32x32"),
        "layer1.0.gate_sigmoid": ("sigmoid", "16x32x32"),
    },
    "cifar_densenet_bc_100_12": {},
}

LABELS = {  # labels each spec must show, however its layers are named
    "resnet18": {"+": 8},
    "cifar_resnet20": {"zero-pad 16->32, /2": 1, "zero-pad 32->64, /2": 1, "+": 9},
    "cifar_resnet110_stochastic_depth": {"drop path, p=0.991": 1, "drop path, p=0.5": 1},
    "cifar_highway_resnet20": {"T*F + (1-T)*x": 9, "sigmoid": 9},
    "cifar_densenet_bc_100_12": {
        "concat": 48,
        "2x2 avg pool, /2": 2,
        "1x1 conv, 108": 1,
        "1x1 conv, 150": 1,
    },
    "cifar_wrn_28_10": {"dropout 0.3": 12},
    "resnext50_32x4d": {"+": 16},
}


@pytest.mark.parametrize("stem", sorted(EXPECTED))
def test_per_layer_labels_and_shapes(stem: str) -> None:
    rows = _layers(stem)
    for name, expected in EXPECTED[stem].items():
        assert rows[name] == expected, name
    counts = Counter(label for label, _ in rows.values())
    for label, n in LABELS[stem].items():
        assert counts[label] == n, (label, counts)


def test_summary_json_totals_follow_the_layers() -> None:
    result = CliRunner().invoke(main, ["summary", str(ROOT / "specs" / "resnet18.yaml"), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["params"] == 11_689_512
    assert data["flops"] == 2 * data["macs"]
    assert sum(s["params"] for s in data["stages"]) == data["params"]
