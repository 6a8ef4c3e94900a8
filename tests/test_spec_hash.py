"""The spec's hash: defaults left out (so a new field with a default keeps old hashes), type
tags kept, the training recipe ignored."""

from __future__ import annotations

import pytest
from pydantic import Field

from resgraph import load_spec
from resgraph.emit.source import emit_source
from resgraph.passes import lower
from resgraph.spec import spec_hash
from resgraph.spec.digest import essential
from resgraph.spec.schema import ModelSpec

NET = """\
name: Hash net
input: {size: 32}
num_classes: 10
stem: {layout: cifar, width: 16}
block: {BLOCK}
stages:
  - {width: 16, repeats: 1}
  - {width: 32, repeats: 1, stride: 2}
"""


def _hash(block: str = "basic", extra: str = "") -> str:
    return spec_hash(load_spec(NET.replace("{BLOCK}", block) + extra))


def test_a_new_field_at_its_default_keeps_the_hash():
    class Later(ModelSpec):
        later: int = Field(0)

    spec = load_spec(NET.replace("{BLOCK}", "basic"))
    data = spec.model_dump()
    assert spec_hash(Later.model_validate(data)) == spec_hash(spec)
    assert spec_hash(Later.model_validate({**data, "later": 1})) != spec_hash(spec)


def test_a_default_written_out_hashes_as_left_out():
    assert _hash("{type: basic, reduce_first: 1, convs: 2}") == _hash("basic")
    assert _hash("{type: basic, reduce_first: 2}") != _hash("basic")
    assert _hash(extra="projection_kernel: 1\n") == _hash()


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("basic", "bottleneck"),
        ("{type: basic, attention: se}", "{type: basic, attention: eca}"),
        ("{type: basic, anti_alias: avgpool}", "{type: basic, anti_alias: blur}"),
    ],
)
def test_type_tags_stay_in_the_hash(one, other):
    # each type's defaults are left out: only its tag tells them apart
    assert _hash(one) != _hash(other)


def test_the_training_recipe_is_not_hashed():
    assert _hash(extra="train: {lr: 0.05}\n") == _hash()
    assert "train" not in essential(load_spec(NET.replace("{BLOCK}", "basic")))


def test_the_generated_header_records_the_hash():
    spec = load_spec(NET.replace("{BLOCK}", "basic"))
    assert f"(spec sha256 {spec_hash(spec)})" in emit_source(lower(spec))


def test_every_stage_is_in_the_hash():
    """Lists (the stages, per-block widths) are hashed item by item, not dropped."""
    deeper = NET.replace("{BLOCK}", "basic").replace(
        "{width: 32, repeats: 1, stride: 2}", "{width: 32, repeats: 2, stride: 2}"
    )
    assert spec_hash(load_spec(deeper)) != _hash()
    assert essential(load_spec(deeper))["stages"][1]["repeats"] == 2
