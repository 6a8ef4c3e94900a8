"""The reference of timm's other residual families (tests/data/timm_families_reference.json.gz,
written by ``scripts/timm_fixture.py --family ...`` in a throwaway environment with timm 1.0.31)
is whole and consistent: every family's models are recorded, in timm's order; the parameter
count is the sum of the parameters in the state; the logits are recorded exactly for the models
within the file's bound, and the others say why they are not."""

from __future__ import annotations

import gzip
import json
import math

import pytest

from helpers import ROOT

FIXTURE = ROOT / "tests" / "data" / "timm_families_reference.json.gz"
FAMILIES = {"resnetv2": 20, "regnet": 36, "res2net": 9, "sknet": 5, "resnest": 8, "densenet": 6}


@pytest.fixture(scope="module")
def reference():
    return json.loads(gzip.decompress(FIXTURE.read_bytes()))


def test_every_family_is_recorded_in_timms_order(reference):
    families = reference["families"]
    assert {name: len(models) for name, models in families.items()} == FAMILIES
    assert list(reference["models"]) == [m for models in families.values() for m in models]
    assert reference["timm"] == "1.0.31" and reference["input"] == [2, 3, 64, 64]


def test_params_are_the_parameters_of_the_state(reference):
    for name, entry in reference["models"].items():
        counted = sum(math.prod(shape) for _, shape, kind in entry["state"] if kind == "p")
        assert counted == entry["params"], name
        keys = [key for key, _, _ in entry["state"]]
        assert len(keys) == len(set(keys)), name


def test_logits_are_recorded_exactly_within_the_bound(reference):
    bound = reference["max_logit_params"]
    left_out = []
    for name, entry in reference["models"].items():
        if entry["params"] > bound:
            assert entry["output"] is None, name
            assert f"{entry['params']:,} parameters" in entry["output_left_out"], name
            left_out.append(name)
        else:
            assert "output_left_out" not in entry, name
            logits = entry["output"]
            assert [len(row) for row in logits] == [1000, 1000], name
            assert all(math.isfinite(v) for row in logits for v in row), name
    assert 0 < len(left_out) < len(reference["models"])


def test_macs_grow_with_the_input_size(reference):
    for name, entry in reference["models"].items():
        size, macs, macs_224 = entry["input_size"], entry["macs"], entry["macs_224"]
        assert (macs > macs_224) == (size > 224) and (macs == macs_224) == (size == 224), name
